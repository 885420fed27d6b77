"""Every detector, checkpoint, sampler and training step on every available device (the ``device``
fixture: CPU always, CUDA when present), with the CPU's decisions as reference."""
import pytest
import torch

import zoo
from gnnmimo.sampling import MIMOSampler
from gnnmimo.train import TrainConfig
from helpers import quiet_trainer, requires_cvxpy, sample_batch

pytestmark = pytest.mark.usefixtures("one_thread")

#: options of the detectors whose parameters fix the system size (8x4 here)
SIZED = {"remimo": {"nr": 8}, "detnet": {"nr": 8, "nt": 4}, "langevin": {"seed": 0}}  # langevin: the same draws
#: decisions may differ between devices on this fraction of users (float rounding near a boundary)
TOLERATED_FLIPS = 0.02


def agree_with_the_cpu(detector, graph, device) -> None:
    expected = detector.detect(graph).hard
    moved = detector.to(device).detect(graph.to(device))
    assert moved.logits.device.type == device.type and moved.logits.dtype == graph.noise_var.dtype
    flips = (moved.hard.cpu() != expected).float().mean().item()
    assert flips <= (0.0 if device.type == "cpu" else TOLERATED_FLIPS), flips


@pytest.mark.parametrize("name", [n for n in zoo.list() if n != "sdr"])
def test_every_registered_detector_runs_on_the_device_with_the_cpus_decisions(name, device):
    torch.manual_seed(0)
    detector = zoo.create(name, 16, **SIZED.get(name, {})).eval()
    agree_with_the_cpu(detector, sample_batch(nr=8, nt=4, qam=16, size=64, snr_db=(10.0, 20.0)), device)


@requires_cvxpy
def test_sdr_runs_on_the_device_with_the_cpus_decisions(device):
    agree_with_the_cpu(zoo.create("sdr", 4), sample_batch(nr=4, nt=2, qam=4, size=4), device)


@pytest.mark.parametrize("name", zoo.list_pretrained())
def test_every_shipped_checkpoint_runs_on_the_device_with_the_cpus_decisions(name, device):
    detector = zoo.load(name)
    system = detector.checkpoint["system"]
    agree_with_the_cpu(detector, sample_batch(nr=system["nr"], nt=tuple(system["nt"]), qam=system["qam"],
                                              size=64, snr_db=(15.0, 25.0)), device)


def test_the_sampler_builds_its_batches_on_the_device(device):
    graph = MIMOSampler(8, (2, 4), 4, device=device).sample(8)
    assert {t.device.type for t in (graph.noise_var, graph["user"].y, graph.dense().H)} == {device.type}


def test_a_training_step_runs_on_the_device(device, tmp_path):
    config = TrainConfig(detector="remimo", options={"nr": 4, "d_model": 8, "heads": 2, "blocks": 1}, qam=4,
                         nr=4, nt=(2, 3), snr=(5.0, 15.0), steps=2, batch_size=8, eval_every=2, val_size=8,
                         device=str(device))
    trainer = quiet_trainer(config, tmp_path / "run.pt")
    trainer.run()
    assert {p.device.type for p in trainer.detector.parameters()} == {device.type}
