"""The precision policy: bf16 autocast for the learned blocks, the classical maths in the batch's dtype.

On a CPU without bf16 matrix instructions these tests run bf16 in software (slowly), so they use few
instances; the paired comparison on shared instances is what makes few enough.
"""
import json
import warnings

import pytest
import torch

import gnnmimo.detector
import gnnmimo.precision
import zoo
from gnnmimo.checkpoint import save_checkpoint
from gnnmimo.cli import main as cli_main
from gnnmimo.evaluation import paired_comparison
from gnnmimo.graph import USER
from gnnmimo.precision import SlowPrecisionWarning
from gnnmimo.sampling import MIMOSampler
from gnnmimo.tr38901 import channel_from_fields
from gnnmimo.train import TrainConfig
from helpers import quiet_trainer, sample_batch

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::gnnmimo.precision.SlowPrecisionWarning")]


def test_unknown_precisions_fp16_on_a_cpu_and_classical_detectors_are_refused():
    detector = zoo.create("remimo", 4, nr=4, d_model=8, heads=2, blocks=1)
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'bf16', 'fp16'\], got 'half'"):
        detector.set_precision("half")
    with pytest.raises(ValueError, match="'fp16' is for CUDA"):
        detector.set_precision("fp16")
    with pytest.raises(ValueError, match="ZeroForcing has no learned parts"):
        zoo.create("zf", 4).set_precision("bf16")
    assert zoo.create("zf", 4).set_precision("fp32").precision == "fp32"
    with pytest.raises(ValueError, match="compute_precision must be one of"):
        TrainConfig(compute_precision="bf32")


@pytest.mark.parametrize("fast", [True, False])
def test_bf16_warns_only_on_a_cpu_without_bf16_matrix_units(monkeypatch, fast):
    monkeypatch.setattr(gnnmimo.precision, "cpu_has_fast_bf16", lambda: fast)
    detector = zoo.create("remimo", 4, nr=4, d_model=8, heads=2, blocks=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector.set_precision("bf16")
    assert [w.category for w in caught] == ([] if fast else [SlowPrecisionWarning])


def test_classical_blocks_stay_in_the_batch_dtype_under_autocast():
    """EP-Transformer's EP blocks are classical: inside the bf16 region their cavity and posterior
    are computed in float32, while the learned transformer's matrix products run in bf16."""
    detector = zoo.create("ep-transformer", 4).eval()
    graph = sample_batch(nr=8, nt=4, qam=4, size=32)
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            outputs = output if isinstance(output, dict) else {"out": output}
            keys = getattr(module, "writes", outputs)
            seen[name] = {outputs[key].dtype for key in keys if outputs[key].is_floating_point()}
        return hook

    detector.cavity.register_forward_hook(record("cavity"))
    detector.site_update.register_forward_hook(record("site update"))
    detector.encoder.attention.query.register_forward_hook(record("attention query"))
    detector.set_precision("bf16").detect(graph)
    assert seen == {"cavity": {torch.float32}, "site update": {torch.float32},
                    "attention query": {torch.bfloat16}}
    assert detector.detect(graph).logits.dtype == torch.float32   # returned in the batch's dtype


@pytest.mark.parametrize("name", zoo.list_pretrained())
def test_bf16_inference_of_every_shipped_checkpoint_gives_its_fp32_ser(name):
    """Paired on the same 150 instances at the middle of the trained SNR range of the largest Nt:
    the SER difference's 95 % interval contains 0."""
    detector = zoo.load(name)
    system, ranges = detector.checkpoint["system"], detector.checkpoint["training"]["snr_ranges"]
    nt = system["nt"][1]
    snr = sum(ranges[str(nt)]) / 2
    sampler = MIMOSampler(system["nr"], nt, system["qam"], snr_db=(snr, snr),
                          channel=channel_from_fields(system["channel"]))
    graph = sampler.sample(150, sampler.generator(7))

    def errors_per_instance():
        wrong = (detector.detect(graph).hard != graph[USER].y).long()
        return wrong.new_zeros(graph.num_instances).index_add_(0, graph.user_batch, wrong)

    fp32 = errors_per_instance()
    bf16 = (detector.set_precision("bf16"), errors_per_instance())[1]
    comparison = paired_comparison(bf16, fp32, nt, "fp32")
    assert comparison.ci_low <= 0 <= comparison.ci_high, comparison


def test_a_short_bf16_training_run_reaches_the_fp32_validation_loss():
    """20 steps of a small RE-MIMO from the same initialisation and data: the bf16 run's validation
    loss is within 5 % of the fp32 run's (validated in each run's own precision)."""
    config = dict(detector="remimo", options={"nr": 4, "d_model": 16, "heads": 2, "blocks": 2}, qam=4, nr=4,
                  nt=(2, 3), snr=(5.0, 15.0), steps=20, batch_size=32, lr=3e-3, eval_every=20, val_size=128)
    losses = {}
    for precision in ("fp32", "bf16"):
        trainer = quiet_trainer(TrainConfig(**config, compute_precision=precision))
        losses[precision] = trainer.run()["val_loss"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05), losses


def test_cli_precision_threads_and_compile_reach_the_detectors_and_the_records(tmp_path, monkeypatch):
    """``--precision bf16`` lowers the learned detectors only, ``--threads`` is set for the command,
    ``--compile`` routes every detector through its compiled iterate, and the records say which
    compute precision made them."""
    seen = {}
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.setdefault("threads", n))
    monkeypatch.setattr(gnnmimo.detector.Detector, "compile",
                        lambda self, **options: seen.setdefault("compiled", []).append(type(self).__name__) or self)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, zoo.create("remimo", 4, nr=4, d_model=8, heads=2, blocks=1))
    out = tmp_path / "out.json"
    assert cli_main(["evaluate", "--detector", "mmse", "--checkpoint", str(path), "--nr", "4", "--nt", "2",
                     "--qam", "4", "--snr", "5", "--target-errors", "10", "--max-symbols", "200",
                     "--batch-size", "50", "--no-progress", "--precision", "bf16", "--threads", "1",
                     "--compile", "--json", str(out)]) == 0
    precisions = {r["detector"]: r["provenance"]["detector"]["precision"] for r in json.loads(out.read_text())}
    assert precisions == {"mmse": "fp32", "tiny": "bf16"}
    assert seen == {"threads": 1, "compiled": [type(zoo.create("mmse", 4)).__name__, "REMIMO"]}


def test_a_compiled_detector_gives_the_eager_numbers_on_mixed_user_counts():
    """``Detector.compile`` (here with dynamo's ``eager`` backend, to test the tracing without
    minutes of code generation) on two batches of other Nt mixes."""
    torch.manual_seed(0)
    eager = zoo.create("remimo", 4, nr=4, d_model=8, heads=2, blocks=2).eval()
    compiled = zoo.create("remimo", 4, nr=4, d_model=8, heads=2, blocks=2).eval()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile(backend="eager")
    for seed in (0, 1):
        graph = sample_batch(nr=4, nt=(1, 4), qam=4, size=24, seed=seed)
        torch.testing.assert_close(compiled.detect(graph).logits, eager.detect(graph).logits)


def test_freed_memory_is_kept_in_the_process_on_glibc():
    """The command line's allocator setting takes effect where glibc is the C library (this project's
    Linux machines), and is harmless to repeat."""
    import platform

    from gnnmimo.allocator import keep_freed_memory
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
