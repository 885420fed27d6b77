"""Reliability of the numbers: no high-SNR collapse in float32 (every shipped checkpoint and classical
detector, 40–80 dB), near-singular channels and tiny σ² give finite, sensible outputs or a clear
error, and a checkpoint run outside its trained system says so."""
import pytest
import torch

import zoo
from gnnmimo.blocks.ep import ep_cavity
from gnnmimo.channels import ChannelModel
from gnnmimo.checkpoint import read_checkpoint
from gnnmimo.cli import main as cli_main
from gnnmimo.evaluation import clustered_interval
from gnnmimo.graph import USER
from gnnmimo.sampling import MIMOSampler

pytestmark = pytest.mark.usefixtures("one_thread")

HIGH_SNRS = (40.0, 50.0, 60.0, 70.0, 80.0)


# ------------------------------------------------------------- 4. high-SNR sweep, float32
def sweep(detector, sampler: MIMOSampler, per_point: int) -> list[tuple[float, float]]:
    """The 95 % interval of the SER at each of :data:`HIGH_SNRS`, from one float32 batch holding
    ``per_point`` instances per SNR; asserts that the outputs are finite."""
    snr_db = torch.tensor(HIGH_SNRS).repeat_interleave(per_point)
    graph = sampler.sample(snr_db.numel(), sampler.generator(0), snr_db=snr_db)
    assert graph[USER].label.numel() and graph.noise_var.dtype == torch.float32
    detection = detector.detect(graph)
    assert torch.isfinite(detection.probs).all() and torch.isfinite(detection.llr()).all()
    errors = torch.zeros(graph.num_instances).index_add_(
        0, graph.user_batch, (detection.hard != graph[USER].label).float()).view(len(HIGH_SNRS), per_point)
    symbols = graph.num_users.view(len(HIGH_SNRS), per_point).sum(1)
    return [clustered_interval(int(e.sum()), int(n), per_point, int(e.square().sum()))
            for e, n in zip(errors, symbols)]


def assert_never_rises(intervals: list[tuple[float, float]]) -> None:
    """SER at a higher SNR is never significantly above the SER at a lower one (its interval's
    lower end above the other's upper end)."""
    for low, (low_snr, (_, upper)) in enumerate(zip(HIGH_SNRS, intervals)):
        for high_snr, (lower, _) in zip(HIGH_SNRS[low + 1:], intervals[low + 1:]):
            assert lower <= upper, f"SER rises from {low_snr} dB to {high_snr} dB: {intervals}"


def trained_sampler(name: str) -> MIMOSampler:
    """A float32 sampler of the system the pretrained checkpoint ``name`` was trained on."""
    system = read_checkpoint(zoo.weights.resolve(name))["system"]
    channel = system["channel"]
    rho = tuple(channel["rho"]) if isinstance(channel["rho"], list) else channel["rho"]
    return MIMOSampler(system["nr"], tuple(system["nt"]), system["qam"],
                       channel=ChannelModel(channel["kind"], rho, channel["csi_error"]))


@pytest.mark.parametrize("name", zoo.list_pretrained())
def test_no_shipped_checkpoint_degrades_at_high_snr_in_float32(name):
    assert_never_rises(sweep(zoo.load(name), trained_sampler(name), per_point=50))


#: the system each classical detector is swept on, by spec: (Nr, Nt, QAM, instances per point); ML and
#: SDR small (they explode with the size), AMP where it is made for (Nr ≫ Nt; at Nr/Nt ≤ 2 it has an
#: error floor, in float64 too); the float64 options also in float32
DEFAULT = (8, (4, 8), 16, 100)
CLASSICAL = {"amp": (16, 4, 16, 100), "ep": DEFAULT, "ep:double=False": DEFAULT, "kbest": DEFAULT, "mf": DEFAULT,
             "ml": (4, 2, 4, 100), "mmse": DEFAULT, "mmse:double=False": DEFAULT, "oamp": DEFAULT,
             "sdr": (4, 2, 4, 10), "vblast": DEFAULT, "zf": DEFAULT, "zf:double=False": DEFAULT,
             "zf-pic": DEFAULT}


@pytest.mark.parametrize("spec", sorted(CLASSICAL))
def test_no_classical_detector_degrades_at_high_snr_in_float32(spec):
    if spec == "sdr":
        pytest.importorskip("cvxpy")
    nr, nt, qam, per_point = CLASSICAL[spec]
    assert_never_rises(sweep(zoo.create_from_spec(spec, qam), MIMOSampler(nr, nt, qam), per_point))


def test_the_classical_sweep_covers_every_detector_without_weights():
    needs = {"detnet": {"nr": 4, "nt": 2}, "remimo": {"nr": 4}}
    swept = {zoo.parse_spec(spec)[0] for spec in CLASSICAL}
    untrained = [zoo.create(name, 4, **needs.get(name, {})) for name in zoo.list() if name not in swept]
    assert all(any(True for _ in detector.parameters()) for detector in untrained)


def test_the_cavity_floor_applies_to_the_variance_only_not_to_the_mean():
    """At 80 dB in float32 ``h²`` (here 1e-9) is below the floor 1e-7; the mean stays ``(μ − Σγ)/(1 − Σλ)``
    (it was scaled by 1e-7/1e-9: 30 instead of 0.3)."""
    sigma, mu, lam, gam = (torch.tensor([value]) for value in (1e-9, 0.3, 2.0, 0.5))
    t, h2 = ep_cavity(sigma, mu, lam, gam, eps=1e-7)
    assert h2.item() == pytest.approx(1e-7)
    assert t.item() == pytest.approx((0.3 - 1e-9 * 0.5) / (1 - 2e-9), rel=1e-6)


EVALUATE = ["evaluate", "--nr", "8", "--nt", "4", "--qam", "16", "--snr", "70", "--target-errors", "10",
            "--max-symbols", "100", "--batch-size", "25", "--no-progress"]


def test_a_checkpoint_takes_options_that_keep_its_weights_and_refuses_the_others(monkeypatch):
    assert zoo.load("epgnn-nr8-nt4-8-qam16", double=True).cavity.double
    seen = {}
    monkeypatch.setattr("gnnmimo.cli.evaluate.evaluate", lambda detectors, *a, **k: seen.update(detectors))
    assert cli_main(EVALUATE + ["--checkpoint", "epgnn-nr8-nt4-8-qam16:double=True",
                                "--checkpoint", "epgnn-nr8-nt4-8-qam16"]) == 0
    assert {label: d.cavity.double for label, d in seen.items()} == {
        "epgnn-nr8-nt4-8-qam16:double=True": True, "epgnn-nr8-nt4-8-qam16": False}
    with pytest.raises(SystemExit, match=r"error: report=False would change the architecture .*epgnn-nr8-nt4-8-qam16"
                                         r"\.pt \(its weights no longer fit: gnn\.readout\.4\.bias: \[12\] vs \[6\]"):
        cli_main(EVALUATE + ["--checkpoint", "epgnn-nr8-nt4-8-qam16:report=False"])
    with pytest.raises(SystemExit, match=r"error: bad detector option 'double' in 'epgnn-nr8-nt4-8-qam16:double'"):
        cli_main(EVALUATE + ["--checkpoint", "epgnn-nr8-nt4-8-qam16:double"])
