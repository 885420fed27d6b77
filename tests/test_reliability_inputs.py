"""Reliability of inputs: corrupt checkpoints give one clear error (issue 19 item 8), bad graph and
sampler input is refused up front (item 9), Ctrl-C during start-up tells the truth, killed writers'
temporary files are cleaned, a resume at another thread count warns (item 12)."""
import os
import re
import signal
import warnings

import pytest
import torch

import zoo
from gnnmimo.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, without_training_state
from gnnmimo.cli import main as cli_main
from gnnmimo.files import atomic_write
from gnnmimo.graph import MIMOGraph
from gnnmimo.sampling import MIMOSampler
from helpers import quiet_trainer
from test_reliability import EVALUATE, TRAIN, tiny

pytestmark = pytest.mark.usefixtures("one_thread")

#: ``gnnmimo train`` arguments of the run :func:`tiny` configures (to resume it)
TRAIN_TINY = TRAIN + ["--lr", "0.003"]
PRETRAINED = zoo.weights.PRETRAINED_DIR / "remimo-nr16-nt4-8-qam4.pt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """A finished 2-step run of :func:`tiny` (checkpoint with training state), as loaded by torch."""
    out = tmp_path_factory.mktemp("trained") / "run.pt"
    quiet_trainer(tiny(), out).run()
    return torch.load(out, weights_only=True)


class NotPlainData:
    """An object that ``weights_only`` loading refuses."""


def changed(checkpoint: dict, **entries) -> dict:
    """``checkpoint`` with ``entries`` replaced (those given as ``...`` removed)."""
    payload = {**checkpoint, **entries}
    return {key: value for key, value in payload.items() if value is not ...}


# name: (what to write, given the trained checkpoint; what the error says)
CORRUPT = {
    "text": (lambda good: "some notes\n", r"not a torch.save file \(it begins with b'some'\)"),
    "empty": (lambda good: b"", r"empty file"),
    "truncated": (lambda good: PRETRAINED.read_bytes()[:PRETRAINED.stat().st_size // 2],
                  r"truncated or corrupt zip archive"),
    "foreign-dict": (lambda good: {"a": 1}, r"not a gnnmimo checkpoint: no 'format'.* \(its keys: 'a'\)"),
    "state-dict": (lambda good: good["model"], r"not a gnnmimo checkpoint: a bare state_dict of \d+ tensors"),
    "list": (lambda good: [1, 2], r"not a gnnmimo checkpoint: it holds a list"),
    "missing-model": (lambda good: changed(good, model=...), r"missing key 'model'"),
    "missing-version": (lambda good: changed(good, format_version=...), r"missing key 'format_version'"),
    "newer": (lambda good: changed(good, format_version=3),
              r"format_version 3 is newer than this gnnmimo \(.*\) reads \(2\); upgrade gnnmimo"),
    "detector-not-a-dict": (lambda good: changed(good, detector="remimo"), r"'detector' is a str, not dict"),
    "objects": (lambda good: changed(good, extra=NotPlainData()),
                r"it holds objects other than tensors and plain data \(test_reliability_inputs.NotPlainData\), "
                r"which are not unpickled \(weights_only\)"),
}


def write(path, content) -> None:
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)


# ------------------------------------------------------------- 8. corrupt checkpoints
@pytest.mark.parametrize("case", list(CORRUPT))
def test_a_corrupt_checkpoint_gives_one_clear_error_naming_the_file_everywhere(tmp_path, trained, case):
    """Before: KeyError: 101, EOFError, RuntimeError (zip), UnpicklingError, KeyError 'model',
    TypeError; a bare ValueError without the reason for the others."""
    content, reason = CORRUPT[case]
    path = tmp_path / f"{case}.pt"
    write(path, content(trained))
    message = rf"cannot read checkpoint {re.escape(str(path))}: {reason}"
    for load in (read_checkpoint, load_checkpoint, zoo.load):
        with pytest.raises(CheckpointError, match=message):
            load(path)
    with pytest.raises(SystemExit, match="^error: " + message):
        cli_main(EVALUATE + ["--checkpoint", str(path)])
    with pytest.raises(SystemExit, match="^error: " + message):
        cli_main(TRAIN_TINY + ["--out", str(path), "--resume"])


def test_weights_that_do_not_fit_the_rebuilt_detector_are_a_clear_error(tmp_path, trained):
    """Before: torch's multi-line RuntimeError text, listing every tensor."""
    path = tmp_path / "shapes.pt"
    model = {key: value[:1] if value.dim() else value for key, value in trained["model"].items()}
    torch.save(changed(trained, model=model), path)
    message = (rf"the weights in {re.escape(str(path))} do not fit this detector \(checkpoint vs detector\): "
               r"[\w.]+: shape \[1")
    with pytest.raises(CheckpointError, match=message + r".*more\)$"):
        zoo.load(path)
    with pytest.raises(SystemExit, match="^error: " + message):
        cli_main(EVALUATE + ["--checkpoint", str(path)])
    with pytest.raises(SystemExit, match="^error: " + message):
        cli_main(TRAIN_TINY + ["--out", str(path), "--resume"])


def test_a_detector_that_cannot_be_rebuilt_names_the_file(tmp_path, trained):
    """Before: the registry's ValueError, without the file."""
    path = tmp_path / "unknown.pt"
    torch.save(changed(trained, detector={**trained["detector"], "name": "no-such-detector"}, module=None), path)
    message = rf"cannot rebuild the detector of {re.escape(str(path))} \('no-such-detector'.*unknown detector"
    with pytest.raises(CheckpointError, match=message):
        zoo.load(path)


@pytest.mark.parametrize("case, damage, message", [
    ("weights-only", without_training_state, r"it holds weights only, no training state"),
    ("no-optimizer", lambda good: changed(good, state=changed(good["state"], optimizer=...)),
     r"missing key\(s\) 'state.optimizer'"),
    ("bad-rng", lambda good: changed(good, state={**good["state"], "rng": {**good["state"]["rng"],
                                                                           "torch": torch.zeros(3)}}),
     r"its training state does not load \(TypeError: RNG state must be a torch.ByteTensor\)"),
])
def test_resuming_from_a_checkpoint_without_a_usable_training_state_is_a_clear_error(tmp_path, trained, case,
                                                                                  damage, message):
    """Before: KeyError 'optimizer' and a RuntimeError from torch.set_rng_state, after the
    validation set was built; weights only was a ValueError without the same prefix."""
    path = tmp_path / f"{case}.pt"
    torch.save(damage(trained), path)
    message = rf"cannot resume from {re.escape(str(path))}: {message}"
    with pytest.raises(CheckpointError, match=message):
        quiet_trainer(tiny(), path, resume=True)
    with pytest.raises(SystemExit, match="^error: " + message):
        cli_main(TRAIN_TINY + ["--out", str(path), "--resume"])


# --------------------------------------------------------------- 9. bad graph input
Y, H = torch.ones(2, 4, dtype=torch.cfloat), torch.eye(4, 3, dtype=torch.cfloat).expand(2, 4, 3)
LABEL = torch.zeros(2, 3, dtype=torch.long)


@pytest.mark.parametrize("arguments, error, message", [
    ((Y[:0], H[:0], 1.0), ValueError, r"empty batch: y and H hold B = 0 instances"),
    ((Y, H[:, :, :0], 1.0), ValueError, r"H \[B, Nr, Nt\] = \(2, 4, 0\) must have Nr >= 1 antennas and Nt >= 1"),
    ((Y[:, :0], H[:, :0], 1.0), ValueError, r"H \[B, Nr, Nt\] = \(2, 0, 3\) must have Nr >= 1"),
    ((Y, H, torch.tensor([1 + 1j, 1 + 0j])), TypeError, r"noise_var \(σ², a variance\) must be real, got "
                                                        r"torch.complex64"),
    ((Y, H, 1 + 1j), TypeError, r"noise_var .* must be real"),
    ((Y, H, "1"), TypeError, r"noise_var \(σ²\) must be a real number or a real \[B\] tensor, got '1'"),
    ((Y, H, 1.0, None, None, LABEL - 1, None, 4), ValueError,
     r"label must lie in \[0, 3\] \(qam=4\) on real users, got values in \[-1, -1\]"),
    ((Y, H, 1.0, None, None, LABEL + 4, None, 4), ValueError, r"label must lie in \[0, 3\] \(qam=4\)"),
    ((Y, H, 1.0, None, None, LABEL - 1), ValueError, r"label must lie in \[0, ∞\)"),
    ((Y, H, 1.0, None, None, LABEL.float(), None, 4), TypeError,
     r"label must be an integer tensor of symbol indices, got torch.float32"),
    ((Y, H, 1.0, None, None, LABEL.bool(), None, 4), TypeError, r"label must be an integer tensor"),
])
def test_from_dense_refuses_bad_input_naming_the_argument(arguments, error, message):
    """Before: B = 0 and Nt = 0 were accepted (failing later in any detector), Nr = 0 gave an
    IndexError about a mask, a complex σ² was cast to its real part with a torch warning, a string
    σ² gave "new(): invalid data type 'str'", and every bad label was accepted."""
    with pytest.raises(error, match=message):
        MIMOGraph.from_dense(*arguments)


def test_labels_on_padded_users_are_not_checked():
    """Columns beyond Nt_b are ignored (the padding of ``dense_labels`` is -1)."""
    label = torch.tensor([[0, 3, -1], [1, 2, 3]])
    graph = MIMOGraph.from_dense(Y, H, 1.0, num_users=torch.tensor([2, 3]), label=label, qam=4)
    assert graph["user"].y.tolist() == [0, 3, 1, 2, 3]


@pytest.mark.parametrize("arguments, error, message", [
    ((0,), ValueError, r"batch_size must be >= 1, got 0"),
    ((-1,), ValueError, r"batch_size must be >= 1, got -1"),
    ((2.5,), TypeError, r"batch_size must be an integer, got 2.5"),
    ((3, None, None, 0), ValueError, r"nt must be >= 1, got 0"),
    ((3, None, float("nan")), ValueError, r"snr_db must be finite \(dB\), got \[nan\]"),
    ((3, None, torch.zeros(2)), ValueError, r"snr_db must be a value or \[batch_size=3\], got shape \(2,\)"),
])
def test_sample_refuses_bad_arguments_naming_them(arguments, error, message):
    """Before: RuntimeError "cannot sample n_sample <= 0 samples" (0 and -1), a multinomial TypeError
    (2.5), "num_users must lie in [1, 0]" (nt=0), a NaN batch refused by validate (NaN SNR), and
    a RuntimeError about expanded sizes (wrong shape)."""
    sampler = MIMOSampler(4, 2, 4)
    with pytest.raises(error, match=message):
        sampler.sample(*arguments)


@pytest.mark.parametrize("options, error, message", [
    (dict(nr=0, nt=2), ValueError, r"nr must be >= 1, got 0"),
    (dict(nr=4, nt=(0, 2)), ValueError, r"nt must be >= 1, got \(0, 2\)"),
    (dict(nr=4, nt=2.5), TypeError, r"nt must be an integer or a \(low, high\) pair of them, got 2.5"),
    (dict(nr=4, nt=True), TypeError, r"nt must be an integer"),
    (dict(nr=4, nt=(1, 2, 3)), TypeError, r"nt must be an integer or a \(low, high\) pair of them, got \(1, 2, 3\)"),
    (dict(nr="4", nt=2), TypeError, r"nr must be an integer or a \(low, high\) pair of them, got '4'"),
    (dict(nr=4, nt=2, snr_db=float("nan")), ValueError, r"snr_db must be finite \(dB\), got nan"),
    (dict(nr=4, nt=2, snr_db=(0.0, float("inf"))), ValueError, r"snr_db must be finite \(dB\), got \(0.0, inf\)"),
    (dict(nr=4, nt=2, snr_db=1j), TypeError, r"snr_db must be a number or a \(low, high\) pair"),
])
def test_sampler_construction_refuses_bad_arguments_naming_them(options, error, message):
    """Before: nt=2.5 failed at the first sample in torch.ones, (1, 2, 3) and '4' gave "too many / not
    enough values to unpack", True was accepted as 1 user, a NaN or infinite SNR surfaced only as a
    NaN (or σ² = 0) batch at the first sample; nr=0 was refused already."""
    with pytest.raises(error, match=message):
        MIMOSampler(qam=4, **options)


# ------------------------------------------------------- 12. Ctrl-C during start-up
@pytest.mark.parametrize("hook, snr", [("gnnmimo.train.trainer.auto_snr_ranges", "auto"),
                                       ("gnnmimo.train.trainer.validation_set", "5:15"),
                                       ("gnnmimo.train.trainer.Trainer.log_references", "5:15")])
def test_ctrl_c_before_the_first_checkpoint_says_none_was_written(tmp_path, monkeypatch, capsys, hook, snr):
    """During the SNR calibration, the validation set, or between construction and run. Before: a
    KeyboardInterrupt traceback from the first two, and "aborted at step 0; run.pt holds the last
    checkpoint" (no run.pt existed) from the third."""
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(hook, interrupt)
    out = tmp_path / "run.pt"
    assert cli_main(TRAIN + ["--snr", snr, "--out", str(out)]) == 130
    when = "at step 0" if hook.endswith("log_references") else "during start-up"
    assert f"aborted {when}; no checkpoint of this run was written\n" in capsys.readouterr().err
    assert not out.exists()


def test_ctrl_c_after_a_checkpoint_names_the_step_it_holds(tmp_path, monkeypatch, capsys):
    """Aborted at step 3 of a run checkpointed at step 2, then at the start of its resume."""
    def abort_at_step_3(trainer):
        if trainer.step == 3:
            raise KeyboardInterrupt
    monkeypatch.setattr("gnnmimo.cli.train.deadline", lambda minutes: abort_at_step_3)
    out = tmp_path / "run.pt"
    assert cli_main(TRAIN + ["--steps", "4", "--out", str(out)]) == 130
    assert f"aborted at step 3; {out} holds the checkpoint of step 2 (continue with --resume)" \
        in capsys.readouterr().err
    assert read_checkpoint(out)["state"]["step"] == 2

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("gnnmimo.train.trainer.Trainer.log_references", interrupt)
    assert cli_main(TRAIN + ["--steps", "4", "--out", str(out), "--resume"]) == 130
    assert f"aborted at step 2; {out} holds the checkpoint of step 2" in capsys.readouterr().err


# ------------------------------------------------------- 12. temporary files of killed writers
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_killed_writers_temporary_file_is_removed_by_the_next_write_but_a_live_ones_is_kept(tmp_path):
    """A child process is stopped inside ``atomic_write`` (alive, then SIGKILLed). Before: its
    ``.run.json.*.tmp`` stayed forever."""
    target = tmp_path / "run.json"
    ready, go = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write half a file, tell the parent, wait to be killed
        try:
            os.close(ready)
            atomic_write(target, lambda handle: (handle.write(b"half"), handle.flush(), os.write(go, b"!"),
                                                 signal.pause()))
        finally:
            os._exit(1)
    os.close(go)   # so that a child failing early ends the read below instead of blocking it
    temporaries = lambda: sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    try:
        assert os.read(ready, 1) == b"!"
        left = temporaries()
        assert len(left) == 1 and left[0].startswith(".run.json.")
        atomic_write(target, lambda handle: handle.write(b"1"))
        assert temporaries() == left   # its writer is alive: a concurrent write, kept
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready)
    kept = [".run.json.abc123.tmp",                          # not named by a writer
            f".run.json.another-host.{pid}.abc123.tmp",      # a writer on another machine
            ".other.json.host.1.abc.tmp"]                    # another target's
    for name in kept:
        (tmp_path / name).write_bytes(b"")
    atomic_write(target, lambda handle: handle.write(b"2"))
    assert temporaries() == sorted(kept)
    assert target.read_bytes() == b"2"


def test_a_write_nested_in_another_to_the_same_target_keeps_the_outer_temporary_file(tmp_path):
    """A concurrent writer of this process (alive) must not lose its temporary file."""
    target = tmp_path / "f"

    def outer(handle):
        handle.write(b"outer")
        atomic_write(target, lambda inner: inner.write(b"inner"))
    atomic_write(target, outer)
    assert target.read_bytes() == b"outer" and os.listdir(tmp_path) == ["f"]


# ----------------------------------------------------------- 12. thread count on resume
def test_the_checkpoint_records_the_thread_count_and_a_resume_at_another_count_warns(tmp_path):
    """The run's recorded count is changed to 2 (this process runs 1 thread: no contention in a
    test). Before: the count was not recorded and a resume at another count said nothing."""
    out = tmp_path / "run.pt"
    quiet_trainer(tiny(steps=4), out).run(on_step=lambda trainer: trainer.step == 2 and trainer.request_stop())
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["state"]["threads"] == 1 and checkpoint["state"]["torch_version"] == str(torch.__version__)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet_trainer(tiny(steps=4), out, resume=True)   # same count: no warning
    torch.save(changed(checkpoint, state={**checkpoint["state"], "threads": 2}), out)
    with pytest.warns(UserWarning, match=rf"resuming {re.escape(str(out))} with torch threads 1 where the run "
                                         r"so far had 2: the continuation is not bit-identical to an "
                                         r"uninterrupted run; torch.set_num_threads\(2\) \(gnnmimo train "
                                         r"--threads 2\)"):
        quiet_trainer(tiny(steps=4), out, resume=True)
    with pytest.warns(UserWarning, match="torch threads 1 where the run so far had 2"):
        assert cli_main(TRAIN_TINY + ["--steps", "4", "--out", str(out), "--resume"]) == 0
    assert read_checkpoint(out)["state"]["threads"] == 1
