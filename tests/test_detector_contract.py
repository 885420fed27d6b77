"""The detector contract: options recorded however a detector is built, an identity that never
borrows a parent's name, checkpoints refused when they could not be reloaded exactly, one
precision policy (float64 batches through every detector), and re-registration."""
import warnings

import pytest
import torch

import zoo
from gnnmimo import registry
from gnnmimo.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from gnnmimo.graph import MIMOGraph
from zoo.epgnn import EPGNN
from zoo.linear import LMMSE
from helpers import sample_batch

pytestmark = pytest.mark.usefixtures("one_thread")

#: options that every registered detector needs to be built for the batches below (Nr 8, Nt ≤ 4)
BUILD_OPTIONS = {"remimo": {"nr": 8}, "detnet": {"nr": 8, "nt": 4}}


class PatientEPGNN(EPGNN):
    """An unregistered subclass of a registered detector, with an option of its own."""

    def __init__(self, qam, patience: int = 3, **options):
        super().__init__(qam, **options)
        self.patience = patience


def batch(nr=8, nt=(2, 4), qam=16, precision="single", size=12, seed=0):
    return sample_batch(nr, nt, qam, size, seed, snr_db=(5.0, 25.0), precision=precision)


def in_double(graph):
    """The same instances in float64."""
    view = graph.dense()
    return MIMOGraph.from_dense(view.y.to(torch.complex128), view.H.to(torch.complex128), graph.noise_var.double(),
                                graph.num_users, graph.num_antennas, label=graph.dense_labels(0),
                                snr_db=graph.snr_db.double(), qam=graph.qam)


def randomised(detector, seed=0):
    """The detector with random weights (zero-initialised heads would make it its classical parent)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in detector.parameters():
            parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return detector.eval()


def test_a_constructor_built_detector_saves_and_loads_with_its_options(tmp_path):
    detector = randomised(EPGNN(16, skip=False, iterations=7))
    assert detector.hparams == {"iterations": 7, "rounds": 2, "damping": 0.9, "double": False, "skip": False,
                                "refine": False, "report": False, "messages": "dense"}
    save_checkpoint(tmp_path / "epgnn.pt", detector)
    loaded = load_checkpoint(tmp_path / "epgnn.pt")
    assert type(loaded) is EPGNN and loaded.hparams == detector.hparams and loaded.iterations == 7
    graph = batch()
    torch.testing.assert_close(loaded.detect(graph).logits, detector.detect(graph).logits, rtol=0, atol=0)


def test_an_unregistered_subclass_keeps_its_own_class(tmp_path):
    detector = randomised(PatientEPGNN(16, patience=5, rounds=1))
    assert registry.identity(detector) == f"{__name__}:PatientEPGNN"
    assert detector.hparams == {"patience": 5, "rounds": 1}
    save_checkpoint(tmp_path / "patient.pt", detector)
    assert read_checkpoint(tmp_path / "patient.pt")["module"] == __name__
    loaded = load_checkpoint(tmp_path / "patient.pt")
    assert type(loaded) is PatientEPGNN and loaded.patience == 5
    graph = batch()
    torch.testing.assert_close(loaded.detect(graph).logits, detector.detect(graph).logits, rtol=0, atol=0)


def test_a_checkpoint_that_could_not_be_reloaded_is_refused(tmp_path):
    class Local(LMMSE):
        pass

    with pytest.raises(ValueError, match="Local cannot be rebuilt from a checkpoint: it is not registered and it "
                                         "is defined inside a function"):
        save_checkpoint(tmp_path / "local.pt", Local(16))
    with pytest.raises(ValueError, match=r"option damping=tensor\(0.5000\) is not plain data"):
        save_checkpoint(tmp_path / "tensor.pt", EPGNN(16, damping=torch.tensor(0.5)))
    assert not list(tmp_path.iterdir())


def test_registering_again_replaces_the_same_class_and_refuses_another():
    class Redefined(LMMSE):
        pass

    name = "contract-test-redefined"
    registry.register(name)(Redefined)
    try:
        first = Redefined
        exec_namespace = {"LMMSE": LMMSE}
        exec("class Redefined(LMMSE):\n    pass", exec_namespace)  # the same cell run again
        again = exec_namespace["Redefined"]
        again.__module__, again.__qualname__ = first.__module__, first.__qualname__
        with pytest.warns(UserWarning, match="is defined again; the new definition replaces"):
            registry.register(name)(again)
        assert registry.detector_class(name) is again and registry.registered_name(first) is None
        with pytest.raises(ValueError, match="already registered"):
            registry.register(name)(PatientEPGNN)
    finally:
        registry._NAMES.pop(registry._REGISTRY.pop(name), None)


def test_a_subclass_never_inherits_the_registered_name():
    assert registry.registered_name(EPGNN) == "epgnn"
    assert registry.registered_name(PatientEPGNN) is None


@pytest.mark.parametrize("name", [n for n in zoo.list() if n != "sdr"])
def test_float64_batches_run_through_every_registered_detector(name):
    detector = zoo.create(name, 16, **BUILD_OPTIONS.get(name, {}))
    if any(True for _ in detector.parameters()):
        randomised(detector)
    graph = batch(nt=(4, 4) if name == "detnet" else (2, 4), precision="double")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detection = detector.detect(graph)
    assert detection.logits.dtype == torch.float64 and torch.isfinite(detection.logits).all()


@pytest.mark.parametrize("name", zoo.list_pretrained())
def test_float64_batches_run_through_every_shipped_checkpoint(name):
    detector = zoo.load(name)
    system = detector.checkpoint["system"]
    graph = batch(system["nr"], tuple(system["nt"]), system["qam"], size=64)
    detection = detector.detect(in_double(graph))
    assert detection.logits.dtype == torch.float64 and torch.isfinite(detection.logits).all()
    # the same instances in single precision give the same decisions almost everywhere
    assert (detection.hard == detector.detect(graph).hard).float().mean() > 0.97
