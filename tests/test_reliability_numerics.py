"""Reliability of the numbers: no high-SNR collapse in float32 (every shipped checkpoint and classical
detector, 40–80 dB), near-singular channels and tiny σ² give finite, sensible outputs or a clear
error, and a checkpoint run outside its trained system says so."""
import warnings

import pytest
import torch

import zoo
from gnnmimo.blocks.ep import ep_cavity
from gnnmimo.channels import ChannelModel
from gnnmimo.checkpoint import read_checkpoint
from gnnmimo.cli import main as cli_main
from gnnmimo.constellation import QAM
from gnnmimo.evaluation import OutsideTrainedSystemWarning, clustered_interval, evaluate
from gnnmimo.graph import USER, MIMOGraph
from gnnmimo.sampling import MIMOSampler
from gnnmimo.tr38901 import channel_from_fields
from helpers import sample_batch

pytestmark = pytest.mark.usefixtures("one_thread")

HIGH_SNRS = (40.0, 50.0, 60.0, 70.0, 80.0)


# ------------------------------------------------------------- 4. high-SNR sweep, float32
def sweep(detector, sampler: MIMOSampler, per_point: int) -> list[tuple[float, float]]:
    """The 95 % interval of the SER at each of :data:`HIGH_SNRS`, from one float32 batch holding
    ``per_point`` instances per SNR; asserts that the outputs are finite."""
    snr_db = torch.tensor(HIGH_SNRS).repeat_interleave(per_point)
    graph = sampler.sample(snr_db.numel(), sampler.generator(0), snr_db=snr_db)
    assert graph[USER].y.numel() and graph.noise_var.dtype == torch.float32
    detection = detector.detect(graph)
    assert torch.isfinite(detection.probs).all() and torch.isfinite(detection.llr()).all()
    errors = torch.zeros(graph.num_instances).index_add_(
        0, graph.user_batch, (detection.hard != graph[USER].y).float()).view(len(HIGH_SNRS), per_point)
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
    return MIMOSampler(system["nr"], tuple(system["nt"]), system["qam"], channel=channel_from_fields(system["channel"]))


@pytest.mark.parametrize("name", zoo.list_pretrained())
def test_no_shipped_checkpoint_degrades_at_high_snr_in_float32(name):
    assert_never_rises(sweep(zoo.load(name), trained_sampler(name), per_point=100))


#: the system each classical detector is swept on, by spec: (Nr, Nt, QAM, instances per point); ML and
#: SDR small (they explode with the size), AMP where it is made for (Nr ≫ Nt; at Nr/Nt ≤ 2 it has an
#: error floor, in float64 too); the float64 options also in float32
DEFAULT = (8, (4, 8), 16, 200)
CLASSICAL = {"amp": (16, 4, 16, 200), "ep": DEFAULT, "ep:double=False": DEFAULT, "kbest": DEFAULT,
             "langevin:seed=0,steps=5,trajectories=4": DEFAULT, "mf": DEFAULT,
             "ml": (4, 2, 4, 200), "mmse": DEFAULT, "mmse:double=False": DEFAULT, "oamp": DEFAULT,
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
                                         r"\.pt \(the weights do not fit: gnn\.readout\.4\.bias: \[12\] vs \[6\]"):
        cli_main(EVALUATE + ["--checkpoint", "epgnn-nr8-nt4-8-qam16:report=False"])
    with pytest.raises(SystemExit, match=r"error: bad detector option 'double' in 'epgnn-nr8-nt4-8-qam16:double'"):
        cli_main(EVALUATE + ["--checkpoint", "epgnn-nr8-nt4-8-qam16:double"])


# ------------------------------------------------ 6. near-singular channels and tiny σ²
def weak_user_batch(scale: float = 1.0, noise_var: float | None = None, dtype=torch.complex64, nr=8, nt=4,
                    qam=16, snr_db=40.0):
    """32 labelled instances whose user 0 has its channel column scaled by ``scale`` (``y`` drawn with
    it), optionally with the noise variance replaced by ``noise_var`` (the noise scaled to match)."""
    graph = sample_batch(nr, nt, qam, size=32, snr_db=snr_db)
    view, label = graph.dense(), graph.dense_labels()
    H, x = view.H.to(dtype), QAM(qam).symbols(label, dtype)
    noise = view.y.to(dtype) - (H @ x[..., None])[..., 0]
    old_var = view.noise_var.to(H.real.dtype)
    new_var = old_var if noise_var is None else torch.full_like(old_var, noise_var)
    H[:, :, 0] *= scale
    y = (H @ x[..., None])[..., 0] + noise * (new_var / old_var).sqrt()[:, None]
    return MIMOGraph.from_dense(y, H, new_var, label=label, qam=qam)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("scale", [1e-5, 1e-15])
@pytest.mark.parametrize("spec", ["mmse", "mmse:double=False", "vblast"])
def test_lmmse_and_vblast_give_a_user_the_channel_barely_sees_a_uniform_posterior(spec, scale, dtype):
    """A user 100 dB (or 300 dB) below the others, at 20 dB: before, V-BLAST and LMMSE in float32 gave
    NaN probabilities for it (its SINR is below float32's eps: the MMSE gain 1 − σ²P_ii rounded to 0)."""
    graph = weak_user_batch(scale, dtype=dtype, nr=16, snr_db=20.0)
    detection = zoo.create_from_spec(spec, 16).detect(graph)
    probs, llr = detection.probs.view(32, 4, 16), detection.llr().view(32, 4, 4)
    assert torch.isfinite(probs).all() and torch.isfinite(llr).all()
    torch.testing.assert_close(probs[:, 0], torch.full_like(probs[:, 0], 1 / 16), atol=1e-3, rtol=0)
    assert llr[:, 0].abs().max() < 1e-2 and (llr[:, 1:].abs() > 1).all()
    assert (detection.hard.view(32, 4)[:, 1:] == graph.dense_labels()[:, 1:]).all()


SMALLEST_NOISE_VAR = torch.finfo(torch.float32).tiny / torch.finfo(torch.float32).eps
#: (batch options, subnormals flushed to zero as the command line runs)
NEAR_SINGULAR = {"a user 100 dB below": (dict(scale=1e-5), False),
                 "a column scaled by 3e-19": (dict(scale=3e-19), False),
                 "the smallest σ² allowed": (dict(noise_var=SMALLEST_NOISE_VAR), False),
                 "the smallest σ² allowed, subnormals flushed": (dict(noise_var=SMALLEST_NOISE_VAR), True)}


@pytest.mark.parametrize("case", sorted(NEAR_SINGULAR))
@pytest.mark.parametrize("spec", sorted(CLASSICAL))
def test_every_classical_detector_stays_finite_on_near_singular_channels_and_tiny_noise(spec, case):
    """Before: NaN from EP (σ² = 1.2e-38: 1/σ² overflowed its solve), from V-BLAST (a weak user),
    and from float32 EP a corrupted decision of the other users (a weak user's cavity at the floor)."""
    if spec == "sdr":
        pytest.importorskip("cvxpy")
    nr, nt, qam, _ = CLASSICAL[spec]
    options, flush = NEAR_SINGULAR[case]
    graph = weak_user_batch(nr=nr, nt=nt if isinstance(nt, int) else 4, qam=qam, **options)
    torch.set_flush_denormal(flush)
    try:
        detection = zoo.create_from_spec(spec, qam).detect(graph)
    finally:
        torch.set_flush_denormal(False)
    assert torch.isfinite(detection.probs).all() and torch.isfinite(detection.llr()).all()
    if spec.startswith(("ep", "mmse", "vblast", "zf", "kbest")):   # the strong users are decided
        assert (detection.hard.view(32, -1)[:, 1:] == graph.dense_labels()[:, 1:]).all()


def test_a_noise_var_or_a_column_energy_too_small_for_the_dtype_is_refused_up_front():
    for noise_var, shown in ((1e-45, r"1\.4e-45"), (1e-33, "1e-33")):   # subnormal; normal, without the margin
        with pytest.raises(ValueError, match=rf"noise_var {shown} \(instances \[0, 1, 2, 3, 4\]\) is too "
                                             r"small for float32: it must be at least 9\.86e-32 \(the smallest "
                                             r"normal number 1\.18e-38 over the precision 1\.19e-07\)"):
            weak_user_batch(noise_var=noise_var)
    with pytest.raises(ValueError, match=r"users whose channel column energy ‖h_i‖² underflows complex64 \(below "
                                         r"its smallest normal number 1\.18e-38, e\.g\. .*; instances \[0, 1, 2"):
        weak_user_batch(scale=1e-20)
    mmse = zoo.create("mmse", 16)   # both are normal numbers in float64
    probs = mmse.detect(weak_user_batch(scale=1e-20, dtype=torch.complex128)).probs.view(32, 4, 16)
    torch.testing.assert_close(probs[:, 0], torch.full_like(probs[:, 0], 1 / 16), atol=1e-3, rtol=0)
    graph = weak_user_batch(noise_var=1e-45, dtype=torch.complex128)
    assert (mmse.detect(graph).hard == graph[USER].y).all()


# ------------------------------------------------ 6b. a checkpoint outside its trained system
def run_evaluate(detectors, sampler, nts):
    return evaluate(detectors, sampler, nts, [20.0], target_errors=1, max_symbols=8, batch_size=2, progress=False)


def test_a_checkpoint_evaluated_outside_its_trained_system_warns_once_naming_both():
    detectors = {"mmse": zoo.create("mmse", 16), "epgnn": zoo.load("epgnn-nr8-nt4-8-qam16")}   # trained: 8, 4…8, iid
    sampler = MIMOSampler(16, 2, 16, channel=ChannelModel("kronecker", 0.9, 0.1))
    with pytest.warns(OutsideTrainedSystemWarning) as caught:
        run_evaluate(detectors, sampler, [2, 12])
    assert [str(w.message) for w in caught] == [
        "'epgnn' is evaluated outside the system its checkpoint was trained on: Nr 16 (trained 8); Nt 2…12 "
        "(trained 4…8); channel kronecker(rho=0.9)+csi(0.1) (trained iid); its numbers there are extrapolation"]
    kron = {"oampnet": zoo.load("oampnet-nr16-nt4-8-qam16-kron")}   # trained: ρ 0.55…0.75
    with pytest.warns(OutsideTrainedSystemWarning, match=r"channel kronecker\(rho=0\.5:0\.7\) \(trained "
                                                         r"kronecker\(rho=0\.55:0\.75\)\)"):
        run_evaluate(kron, MIMOSampler(16, 4, 16, channel=ChannelModel("kronecker", (0.5, 0.7))), [4])


def test_no_warning_inside_the_trained_system():
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutsideTrainedSystemWarning)
        run_evaluate({"epgnn": zoo.load("epgnn-nr8-nt4-8-qam16")}, MIMOSampler(8, 4, 16), [4, 6, 8])
        run_evaluate({"oampnet": zoo.load("oampnet-nr16-nt4-8-qam16-kron")},
                     MIMOSampler(16, 4, 16, channel=ChannelModel("kronecker", (0.6, 0.7))), [5])


def test_the_command_line_shows_the_warning(capsys):
    assert cli_main(EVALUATE + ["--checkpoint", "epgnn-nr8-nt4-8-qam16", "--nr", "16"]) == 0
    assert "warning: 'epgnn-nr8-nt4-8-qam16' is evaluated outside the system its checkpoint was trained on: " \
           "Nr 16 (trained 8); its numbers there are extrapolation\n" in capsys.readouterr().err
