"""Reliability of inputs: every argument of ``gnnmimo evaluate``, ``gnnmimo train`` and their Python
APIs is checked before any work, with a message naming it and the allowed range; and runs whose work
explodes (10⁹ SNR points, ML or SDR at sizes where they take hours) are refused up front unless
``--allow-slow``."""
import math

import numpy as np
import pytest
import torch

import zoo
from gnnmimo.channels import ChannelModel
from gnnmimo.cli import main as cli_main
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.evaluation import evaluate
from gnnmimo.registry import create_from_spec
from gnnmimo.sampling import MIMOSampler, usable_device
from gnnmimo.train import TrainConfig
from helpers import TINY_EVALUATE as EVALUATE, requires_cvxpy, with_option

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = ["train", "--detector", "remimo", "--nr", "4", "--nt", "2:3", "--qam", "4", "--snr", "5:15",
         "--steps", "2", "--eval-every", "2", "--batch-size", "8", "--val-size", "8", "--d-model", "8",
         "--heads", "2", "--blocks", "2", "--no-progress", "--out", "run.pt"]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without a usable GPU")


@pytest.fixture
def no_work(tmp_path, monkeypatch):
    """Run in an empty directory; fail if an evaluation or a training run starts."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("gnnmimo.cli.evaluate.evaluate", lambda *a, **k: pytest.fail("evaluation started"))
    monkeypatch.setattr("gnnmimo.train.trainer.Trainer.run", lambda *a, **k: pytest.fail("training started"))
    yield
    assert not list(tmp_path.iterdir())


def refused(argv, capsys) -> str:
    """The error message of a command that must exit before any work (argparse's or ours)."""
    with pytest.raises(SystemExit) as stop:
        cli_main(argv)
    return str(stop.value) if isinstance(stop.value.code, str) else capsys.readouterr().err


# ------------------------------------------------------------- 7. command-line arguments
@pytest.mark.parametrize("option, value, message", [
    ("--max-symbols", "0", "argument --max-symbols: expected an integer >= 1, got '0'"),
    ("--target-errors", "0", "argument --target-errors: expected an integer >= 1, got '0'"),
    ("--batch-size", "0", "argument --batch-size: expected an integer >= 1, got '0'"),
    ("--nr", "0", "argument --nr: expected an integer >= 1, got '0'"),
    ("--nt", "0", "argument --nt: user counts must be >= 1, got '0'"),
    ("--nt", "0,4", "argument --nt: user counts must be >= 1, got '0,4'"),
    ("--nt", "0:4", "argument --nt: user counts must be >= 1, got '0:4'"),
    ("--snr", "nan", "argument --snr: expected finite SNR1,SNR2,… or START:STEP:STOP (STEP > 0) in dB; got 'nan'"),
    ("--snr", "0,inf", "argument --snr: expected finite SNR1,SNR2,…"),
    ("--snr", "0:nan:10", "argument --snr: expected finite SNR1,SNR2,…"),
    ("--csi-error", "nan", "argument --csi-error: expected a finite number >= 0, got 'nan'"),
    ("--csi-error", "-0.1", "argument --csi-error: expected a finite number >= 0, got '-0.1'"),
    ("--rho", "1", "argument --rho: expected RHO or LOW:HIGH with 0 <= LOW <= HIGH < 1, got '1'"),
    ("--rho", "nan", "argument --rho: expected RHO or LOW:HIGH with 0 <= LOW <= HIGH < 1, got 'nan'"),
    ("--rho", "0.7:0.5", "argument --rho: expected RHO or LOW:HIGH with 0 <= LOW <= HIGH < 1, got '0.7:0.5'"),
    ("--qam", "8", "argument --qam: invalid choice: 8 (choose from 4, 16, 64, 256)"),
    ("--ser-target", "0", "argument --ser-target: expected a number between 0 and 1 (both excluded), got '0'"),
    ("--device", "foo", "argument --device: device 'foo' cannot be used here: Expected one of cpu, cuda"),
    pytest.param("--device", "cuda", "argument --device: device 'cuda' cannot be used here: Torch not compiled "
                 "with CUDA enabled", marks=no_cuda),
    ("--detector", "ep:iterations=2.5", "error: detector 'ep': option iterations must be an int (its default is "
     "10), got 2.5 (float)"),
    ("--detector", "mmse:double=1", "error: detector 'mmse': option double must be True or False (its default is "
     "True), got 1 (int)"),
    ("--resume", None, "error: --resume continues the records of --json; give the file"),
])
def test_evaluate_refuses_bad_arguments_before_any_work(option, value, message, no_work, capsys):
    argv = EVALUATE + [option] if value is None else with_option(EVALUATE, option, value)
    if option == "--rho":
        argv += ["--channel", "kronecker"]
    assert message in refused(argv, capsys)


@pytest.mark.parametrize("option, value, message", [
    ("--steps", "0", "argument --steps: expected an integer >= 1, got '0'"),
    ("--eval-every", "0", "argument --eval-every: expected an integer >= 1, got '0'"),
    ("--checkpoint-every", "0", "argument --checkpoint-every: expected an integer >= 1, got '0'"),
    ("--batch-size", "0", "argument --batch-size: expected an integer >= 1, got '0'"),
    ("--val-size", "0", "argument --val-size: expected an integer >= 1, got '0'"),
    ("--nr", "0", "argument --nr: expected an integer >= 1, got '0'"),
    ("--nt", "0:3", "argument --nt: user counts must be >= 1, got '0:3'"),
    ("--nt-step", "0", "argument --nt-step: expected an integer >= 1, got '0'"),
    ("--blocks", "0", "argument --blocks: expected an integer >= 1, got '0'"),
    ("--threads", "0", "argument --threads: expected an integer >= 1, got '0'"),
    ("--lr", "0", "argument --lr: expected a number > 0, got '0'"),
    ("--lr", "nan", "argument --lr: expected a number > 0, got 'nan'"),
    ("--lr", "inf", "error: invalid training configuration: lr must be a finite number > 0, got inf"),
    ("--clip-grad-norm", "-1", "argument --clip-grad-norm: expected a number > 0, got '-1'"),
    ("--plateau-factor", "1.5", "argument --plateau-factor: expected a number between 0 and 1 (both excluded)"),
    ("--plateau-patience", "-1", "argument --plateau-patience: expected an integer >= 0, got '-1'"),
    ("--ce-weight", "nan", "argument --ce-weight: expected a finite number >= 0, got 'nan'"),
    ("--snr", "5:nan", "argument --snr: expected auto, auto:SER_LOW_END:SER_HIGH_END"),
    ("--snr", "auto:1e-3:1e-1", "error: invalid training configuration: snr_targets must be two SERs with "
     "1 > low-SNR end > high-SNR end > 0"),
    ("--device", "foo", "argument --device: device 'foo' cannot be used here"),
])
def test_train_refuses_bad_arguments_before_any_work(option, value, message, no_work, capsys):
    assert message in refused(with_option(TRAIN, option, value), capsys)


def test_train_refuses_a_detector_option_of_the_wrong_type_before_any_work(no_work, capsys):
    argv = ["train", "--detector", "epgnn:rounds=1.5", "--nr", "4", "--nt", "2:3", "--qam", "4", "--snr", "5:15",
            "--no-progress", "--out", "run.pt"]
    assert refused(argv, capsys) == ("error: detector 'epgnn': option rounds must be an int (its default is 2), "
                                     "got 1.5 (float)")


# ------------------------------------------------------------------------ 7. the Python API
@pytest.mark.parametrize("change, message", [
    (dict(max_symbols=0), "max_symbols must be an integer >= 1, got 0"),
    (dict(target_errors=0), "target_errors must be an integer >= 1, got 0"),
    (dict(batch_size=2.5), "batch_size must be an integer >= 1, got 2.5"),
    (dict(nts=[0, 2]), r"nts \(user counts\) must be integers >= 1, got \[0\]"),
    (dict(snrs_db=[0.0, math.nan]), r"snrs_db must be finite numbers \(dB\), got \[nan\]"),
])
def test_evaluate_api_refuses_bad_arguments(change, message, monkeypatch):
    monkeypatch.setattr("gnnmimo.evaluation._tally", lambda *a: pytest.fail("computed"))
    arguments = dict(nts=[2], snrs_db=[0.0], target_errors=20, max_symbols=400, batch_size=100, progress=False)
    with pytest.raises(ValueError, match=message):
        evaluate({"mmse": zoo.create("mmse", 4)}, MIMOSampler(4, 2, 4), **{**arguments, **change})


@pytest.mark.parametrize("build", [lambda: QAM("16"), lambda: QAM(16.0), lambda: zoo.create("ep", qam="16"),
                                   lambda: zoo.create("ep", qam=16.0)])
def test_a_constellation_order_that_is_not_an_int_is_a_type_error_naming_qam(build):
    with pytest.raises(TypeError, match=r"qam \(the constellation order\) must be an int, one of 4, 16, 64, 256"):
        build()


def test_detector_options_are_checked_against_their_defaults_types():
    with pytest.raises(TypeError, match=r"option iterations must be an int \(its default is 10\), got 2.5"):
        zoo.create("ep", 16, iterations=2.5)
    with pytest.raises(TypeError, match="option double must be True or False"):
        create_from_spec("ep:double=1", 16)
    with pytest.raises(TypeError, match="option ordering must be a string"):
        zoo.create("kbest", 16, ordering=1)
    assert zoo.create("kbest", 16, clip=5).clip == 5.0                  # an int is a number
    assert zoo.create("kbest", 16, k=np.int64(3)).k == 3                 # so is a NumPy integer


def test_channel_and_device_inputs_are_checked_in_the_api():
    with pytest.raises(ValueError, match="csi_error .* must be a finite number >= 0, got nan"):
        ChannelModel(csi_error=math.nan)
    with pytest.raises(ValueError, match="rho must satisfy 0 <= low <= high < 1, got nan"):
        ChannelModel("kronecker", math.nan)
    with pytest.raises(ValueError, match="device 'foo' cannot be used here"):
        MIMOSampler(4, 2, 4, device="foo")
    assert usable_device("cpu") == torch.device("cpu")


@no_cuda
def test_cuda_on_a_cpu_only_torch_is_refused_by_the_sampler_and_the_training_configuration():
    with pytest.raises(ValueError, match="device 'cuda' cannot be used here: Torch not compiled with CUDA"):
        MIMOSampler(4, 2, 4, device="cuda")
    with pytest.raises(ValueError, match="invalid training configuration: device 'cuda' cannot be used here"):
        TrainConfig(device="cuda")


@pytest.mark.parametrize("change, message", [
    (dict(steps=2.5), "steps must be of type int, got 2.5"),
    (dict(lr=0.0), "lr must be a finite number > 0, got 0.0"),
    (dict(lr="1e-3"), "lr must be of type float, got '1e-3'"),
    (dict(nr=0), "nr must be >= 1"),
    (dict(qam=8), r"qam must be one of \(4, 16, 64, 256\)"),
    (dict(nt=(2.5, 4)), r"nt must be two integers \(low, high\), got \(2.5, 4\)"),
    (dict(nt_step=0), "nt_step must be >= 1"),
    (dict(plateau_factor=1.0), "plateau_factor must lie strictly between 0 and 1"),
    (dict(clip_grad_norm=0.0), "clip_grad_norm must be > 0"),
    (dict(checkpoint_every=0), "checkpoint_every must be >= 1"),
    (dict(snr=(5.0, math.inf)), "with finite low <= high"),
    (dict(snr_targets=(1e-3, 1e-1)), "snr_targets must be two SERs"),
    (dict(precision="half"), "precision must be 'single' or 'double'"),
])
def test_train_config_refuses_bad_values(change, message):
    with pytest.raises(ValueError, match=f"invalid training configuration: .*{message}"):
        TrainConfig(**change)


# ---------------------------------------------------------------------- 11. runaway work
@pytest.mark.parametrize("option, value, message", [
    ("--snr", "0:1e-9:1", "argument --snr: '0:1e-9:1' gives 1e+09 values, more than the 10000 one list may hold"),
    ("--nt", "1:1000000000", "argument --nt: '1:1000000000' gives 1e+09 values, more than the 10000"),
])
def test_a_list_of_a_billion_points_is_refused_before_it_is_built(option, value, message, no_work, monkeypatch,
                                                                  capsys):
    monkeypatch.setattr("gnnmimo.cli.arguments.np.arange", lambda *a: pytest.fail("built the list"))
    assert message in refused(with_option(EVALUATE, option, value), capsys)


@pytest.mark.parametrize("argv, message", [
    (["--detector", "ml", "--nr", "16", "--nt", "16", "--qam", "16"],
     "ml: ml at Nt=16, 16-QAM searches 16^16 = 1.8e+19 candidates per instance"),
    (["--detector", "ml", "--nr", "16", "--nt", "8:11", "--qam", "16"],
     "ml: ml at Nt=10, 16-QAM searches 16^10 = 1.1e+12 candidates per instance (the sphere decoder visits ever "
     "more of them as the SNR falls); beyond 2^36 = 6.9e+10 a run takes hours (and at Nt 11)"),
    pytest.param(["--detector", "sdr", "--nr", "128", "--nt", "64", "--qam", "16"],
                 "sdr: sdr at Nt=64 solves a 129×129 semidefinite program per instance, one instance after "
                 "another: about 1.3e+02 s each", marks=requires_cvxpy),
])
def test_ml_and_sdr_at_sizes_where_they_explode_are_refused_unless_allowed(argv, message, no_work, monkeypatch,
                                                                           capsys):
    argv = EVALUATE[:1] + argv + ["--snr", "10", "--no-progress"]
    text = refused(argv, capsys)
    assert text.startswith("error: this run would take far longer than one can expect:")
    assert message in text and text.endswith("reduce --nt, drop the detector, or add --allow-slow to run it anyway")
    started = []
    monkeypatch.setattr("gnnmimo.cli.evaluate.evaluate", lambda *a, **k: started.append(True) or [])
    monkeypatch.setattr("gnnmimo.cli.evaluate.markdown_table", lambda results: "")
    monkeypatch.setattr("gnnmimo.cli.evaluate.snr_at_ser_table", lambda results, target: "")
    assert cli_main(argv + ["--allow-slow"]) == 0 and started == [True]


def test_the_work_thresholds_leave_the_documented_sizes_alone():
    """ML as the model cards run it (16×4…8, 4- and 16-QAM) and up to 2^36 candidates; the classical
    detectors of ``make demo`` at any size."""
    assert zoo.create("ml", 16).excessive_work(16, 9) is None and zoo.create("ml", 16).excessive_work(16, 10)
    assert zoo.create("ml", 4).excessive_work(16, 18) is None and zoo.create("ml", 4).excessive_work(16, 19)
    assert zoo.create("ml", 64).excessive_work(8, 6) is None and zoo.create("ml", 256).excessive_work(8, 5)
    for name in ("mmse", "ep", "kbest", "vblast", "amp", "oamp"):
        assert zoo.create(name, 16).excessive_work(128, 64) is None
    assert Detector(16).excessive_work(10 ** 6, 10 ** 6) is None


@requires_cvxpy
def test_the_sdr_threshold():
    assert zoo.create("sdr", 16).excessive_work(32, 16) is None and zoo.create("sdr", 16).excessive_work(32, 17)


def test_any_detector_can_declare_excessive_work(no_work, monkeypatch, capsys):
    """The hook is a method of every Detector: a plugin overrides it like ml and sdr do."""
    monkeypatch.setattr(type(zoo.create("mmse", 4)), "excessive_work",
                        lambda self, nr, nt: f"needs {nr * nt} hours" if nt > 1 else None, raising=False)
    text = refused(with_option(EVALUATE, "--nt", "1:3"), capsys)
    assert "mmse: needs 8 hours (and at Nt 3)" in text
