"""The SNR convention (docs/conventions.md §3): ``SNR = E‖Hx‖² / E‖n‖²``, ``σ² = Nt / (Nr·10^{SNR/10})``.

Batches are drawn with perfect CSI so the graph holds the true ``H``; the
noise is recovered as ``n = y − Hx`` with ``x`` mapped from the labels.
"""
import pytest
import torch

from gnnmimo.channels import ChannelModel, noise_variance
from gnnmimo.constellation import QAM
from gnnmimo.sampling import MIMOSampler


def signal_and_noise(graph):
    """Per instance ``‖Hx‖²``, ``‖n‖²`` ``[B]`` and the per-antenna noise ``[B, Nr_max]``."""
    view = graph.dense()
    x = QAM(graph.qam).symbols(graph.dense_labels(0), view.H.dtype) * view.user_mask
    signal = (view.H @ x[..., None])[..., 0]
    noise = view.y - signal
    return signal.abs().square().sum(-1), noise.abs().square().sum(-1), noise


def assert_ratio(signal, noise, target, what, max_error=0.05):
    """``Σ signal / Σ noise`` equals ``target`` within 4 standard errors (ratio estimator,
    ``se = std(s − R n) / (mean(n) √B)``), and that interval is within ``max_error``."""
    ratio = signal.sum() / noise.sum()
    se = ((signal - ratio * noise).std() / (noise.mean() * len(noise) ** 0.5)).item()
    assert 4 * se < max_error * target, f"{what}: too few samples (se {se / target:.1%})"
    assert abs(ratio.item() - target) < 4 * se, (
        f"{what}: measured SNR {ratio.item():.4g}, requested {target:.4g} (se {se:.2g})")


CONFIGS = [
    dict(nr=8, nt=4, channel=ChannelModel()),
    dict(nr=(4, 16), nt=(1, 8), channel=ChannelModel()),
    dict(nr=(4, 16), nt=(1, 12), channel=ChannelModel("kronecker", rho=0.6)),
    dict(nr=(2, 8), nt=(1, 8), channel=ChannelModel("kronecker-rx", rho=(0.3, 0.9))),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c['nr']}x{c['nt']}-{c['channel'].describe()}")
def test_measured_snr_matches_request(config):
    levels = torch.tensor([-5.0, 10.0, 25.0], dtype=torch.float64)
    batch = 8000 * len(levels)
    sampler = MIMOSampler(qam=16, precision="double", **config)
    graph = sampler.sample(batch, sampler.generator(1), snr_db=levels.repeat_interleave(batch // len(levels)))
    signal, noise, _ = signal_and_noise(graph)
    snr = 10 ** (graph.snr_db / 10)
    assert_ratio(signal, noise * snr, 1.0, "all SNRs pooled", max_error=0.03)
    for snr_db in levels:
        at = graph.snr_db == snr_db
        assert_ratio(signal[at], noise[at], 10 ** (snr_db.item() / 10), f"SNR {snr_db.item()} dB",
                     max_error=0.06)
    # the convention holds per instance size, not only on average over a mixed batch
    for nt in graph.num_users.unique()[[0, -1]]:
        rows = graph.num_users == nt
        assert_ratio(signal[rows], noise[rows] * snr[rows], 1.0, f"Nt={int(nt)}", max_error=0.15)


def test_noise_variance_and_circularity_on_mixed_batches():
    """Per-instance SNR ranges: σ²_b follows the formula, ``n ~ CN(0, σ²_b I)`` on real antennas only."""
    sampler = MIMOSampler(nr=(2, 16), nt=(1, 8), qam=64, snr_db=(0.0, 30.0), precision="double")
    graph = sampler.sample(20000, sampler.generator(3))
    assert graph.snr_db.min() >= 0 and graph.snr_db.max() <= 30 and graph.snr_db.std() > 5
    expected = graph.num_users / (graph.num_antennas * 10 ** (graph.snr_db / 10))
    torch.testing.assert_close(graph.noise_var, expected.double())
    torch.testing.assert_close(noise_variance(torch.tensor(10.0), torch.tensor(8), torch.tensor(4)),
                               torch.tensor(0.05))
    _, _, noise = signal_and_noise(graph)
    antennas = graph.dense().antenna_mask
    assert torch.count_nonzero(noise[~antennas]) == 0
    normalised = noise / graph.noise_var.sqrt()[:, None]
    assert normalised[antennas].abs().square().mean().item() == pytest.approx(1.0, abs=0.01)
    assert normalised[antennas].real.square().mean().item() == pytest.approx(0.5, abs=0.01)
    assert (normalised.real * normalised.imag)[antennas].mean().item() == pytest.approx(0.0, abs=0.01)


def test_symbols_have_unit_energy_and_uniform_labels():
    sampler = MIMOSampler(nr=8, nt=(1, 8), qam=16, precision="double")
    graph = sampler.sample(20000, sampler.generator(4))
    labels = graph["user"].y
    counts = torch.bincount(labels, minlength=16).double()
    assert (counts / counts.mean() - 1).abs().max() < 0.05
    assert QAM(16).symbols(labels, torch.complex128).abs().square().mean().item() == pytest.approx(1.0, abs=0.01)
