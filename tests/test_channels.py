"""Channel laws (docs/conventions.md §2): power, Kronecker correlation, ρ law, CSI error, padding."""
import numpy as np
import pytest
import torch
from scipy import stats

from gnnmimo.channels import (CHANNEL_KINDS, ChannelModel, block_mask, exponential_correlation,
                              sample_upper_triangular)
from gnnmimo.sampling import MIMOSampler


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mixed_counts(batch: int, nr=(2, 16), nt=(1, 8), seed: int = 0):
    """Random ``Nr_b``, ``Nt_b`` with ``Nt_b <= Nr_b`` (which ``orthogonal-sets`` needs)."""
    g = generator(seed)
    num_antennas = torch.randint(nr[0], nr[1] + 1, (batch,), generator=g)
    return num_antennas, torch.minimum(torch.randint(nt[0], nt[1] + 1, (batch,), generator=g), num_antennas)


@pytest.mark.parametrize("kind", CHANNEL_KINDS)
def test_element_power_is_one_over_nr(kind):
    """``E|H_ai|² = 1/Nr`` for every kind (``R`` has a unit diagonal), on mixed ``Nr``."""
    num_antennas, num_users = mixed_counts(4000)
    model = ChannelModel(kind, rho=0.0 if kind == "iid" else 0.8)
    H = model.sample(num_antennas, num_users, generator(1), torch.complex128)[0]
    mask = block_mask(num_antennas, num_users, *H.shape[1:])
    scaled = H.abs().square() * num_antennas[:, None, None]
    assert scaled[mask].mean().item() == pytest.approx(1.0, abs=0.03)
    for nr in (2, 16):  # per antenna count, not only on average
        rows = num_antennas == nr
        assert scaled[rows][mask[rows]].mean().item() == pytest.approx(1.0, abs=0.06)
    # circular: real and imaginary parts carry half the power each, uncorrelated
    assert (H.real.square() * num_antennas[:, None, None])[mask].mean().item() == pytest.approx(0.5, abs=0.02)
    assert (H.real * H.imag * num_antennas[:, None, None])[mask].mean().item() == pytest.approx(0.0, abs=0.02)


@pytest.mark.parametrize("kind", ["kronecker", "kronecker-rx"])
def test_kronecker_correlation(kind):
    r"""``E[H Hᴴ] = (Nt/Nr) R_r`` and ``E[Hᴴ H] = R_t`` (``= I`` for receive-only)."""
    nr, nt, rho, batch = 6, 4, 0.7, 20000
    model = ChannelModel(kind, rho=rho)
    counts = torch.full((batch,), nr), torch.full((batch,), nt)
    H = model.sample(*counts, generator(2), torch.complex128)[0]
    rx = (H @ H.mH).mean(0) * nr / nt
    tx = (H.mH @ H).mean(0)
    R = lambda n: exponential_correlation(torch.tensor([rho], dtype=torch.float64), n)[0]
    np.testing.assert_allclose(rx.numpy(), R(nr).numpy(), atol=0.03)
    np.testing.assert_allclose(tx.numpy(), (R(nt) if kind == "kronecker" else torch.eye(nt)).numpy(), atol=0.03)


def test_padding_keeps_every_instance_exact():
    """The correlation of an ``Nr_b × Nt_b`` instance does not depend on the padded size."""
    rho, batch = 0.6, 20000
    num_antennas = torch.full((batch,), 3)
    num_users = torch.full((batch,), 2)
    num_antennas[0], num_users[0] = 8, 7  # forces Nr_max = 8, Nt_max = 7
    H = ChannelModel("kronecker", rho=rho).sample(num_antennas, num_users, generator(3), torch.complex128)[0]
    H = H[1:, :3, :2]
    R = lambda n: exponential_correlation(torch.tensor([rho], dtype=torch.float64), n)[0].numpy()
    np.testing.assert_allclose((H @ H.mH).mean(0).numpy() * 3 / 2, R(3), atol=0.03)
    np.testing.assert_allclose((H.mH @ H).mean(0).numpy(), R(2), atol=0.03)


def test_orthogonal_sets_gram_is_block_diagonal():
    r"""``Hᴴ H = blockdiag(R_ρ)`` (sets of 4) exactly in every instance, padded or not: users of one set
    interfere, users of different sets are orthogonal; the frame is rotation invariant (``E H = 0``,
    ``E|H_ai|² = 1/Nr`` on each entry)."""
    num_antennas, num_users = mixed_counts(3000, nr=(6, 16), nt=(1, 12), seed=10)
    num_antennas[0], num_users[0] = 16, 12
    H = ChannelModel("orthogonal-sets", rho=0.7).sample(num_antennas, num_users, generator(11), torch.complex128)[0]
    users = torch.arange(12)
    expected = 0.7 ** (users[:, None] - users[None, :]).abs().double() * (users[:, None] // 4 == users[None, :] // 4)
    active = users[None, :] < num_users[:, None]
    mask = active[:, :, None] & active[:, None, :]
    gram = (H.mH @ H).real
    torch.testing.assert_close(gram, expected.to(gram.dtype).expand_as(gram) * mask, atol=1e-10, rtol=0)
    full = num_antennas == 16
    assert H[full].mean(0).abs().max().item() < 0.05
    torch.testing.assert_close((H[full].abs().square() * 16)[:, :, :1].mean(0),
                               torch.ones(16, 1, dtype=torch.float64), atol=0.15, rtol=0)


def test_orthogonal_sets_needs_no_more_users_than_antennas():
    with pytest.raises(ValueError, match="needs Nt <= Nr"):
        ChannelModel("orthogonal-sets", rho=0.5).sample(torch.tensor([4, 8]), torch.tensor([5, 8]))
    assert ChannelModel("orthogonal-sets", rho=(0.7, 0.9)).describe() == "orthogonal-sets(rho=0.7:0.9)"


def test_triangular_law():
    """``ρ`` ~ triangular on ``[low, high]`` with its mode at ``high``: ``F(x) = ((x−low)/(high−low))²``."""
    low, high = 0.3, 0.8
    samples = sample_upper_triangular(low, high, (20000,), generator(4))
    assert samples.min() >= low and samples.max() <= high
    law = stats.triang(c=1.0, loc=low, scale=high - low)
    assert stats.kstest(samples.numpy(), law.cdf).pvalue > 1e-3
    assert samples.mean().item() == pytest.approx((low + 2 * high) / 3, abs=0.005)


def test_channel_rho_range_is_drawn_per_instance():
    """Receive-side lag-1 correlation, estimated per instance, follows the triangular law."""
    low, high, nr, nt, batch = 0.3, 0.8, 8, 64, 2000
    model = ChannelModel("kronecker-rx", rho=(low, high))
    H = model.sample(torch.full((batch,), nr), torch.full((batch,), nt), generator(5), torch.complex128)[0]
    # H_{a+1} = ρ H_a + √(1−ρ²) W_{a+1} (exponential-model Cholesky rows), so ρ̂ ≈ ρ
    estimate = ((H[:, 1:] * H[:, :-1].conj()).real.sum((1, 2))
                / H[:, :-1].abs().square().sum((1, 2)))
    assert estimate.mean().item() == pytest.approx((low + 2 * high) / 3, abs=0.01)
    assert estimate.std().item() > 0.09  # a range: (high − low)/√18 ≈ 0.12 (a fixed ρ gives ≈ 0.03)
    assert low - 0.1 < estimate.min() and estimate.max() < high + 0.1


@pytest.mark.parametrize("kind", CHANNEL_KINDS)
def test_csi_error_power(kind):
    """``Ĥ = H + E`` with ``E`` i.i.d. ``CN(0, ε²/Nr)`` independent of ``H``, and that variance told."""
    epsilon2 = 0.1
    num_antennas, num_users = mixed_counts(4000, seed=6)
    model = ChannelModel(kind, rho=0.0 if kind == "iid" else 0.5, csi_error=epsilon2)
    H, H_hat, err_var = model.sample(num_antennas, num_users, generator(7), torch.complex128)
    torch.testing.assert_close(err_var[:, 0, 0], epsilon2 / num_antennas.double())
    mask = block_mask(num_antennas, num_users, *H.shape[1:])
    error = (H_hat - H) * num_antennas.sqrt()[:, None, None]
    assert error[mask].abs().square().mean().item() == pytest.approx(epsilon2, rel=0.03)
    assert (error * H.conj() * num_antennas.sqrt()[:, None, None])[mask].mean().abs().item() < 0.01
    H, H_hat, err_var = ChannelModel(kind, rho=0.0 if kind == "iid" else 0.5).sample(
        num_antennas, num_users, generator(7))
    assert H_hat is H and err_var is None


@pytest.mark.parametrize("kind", CHANNEL_KINDS)
def test_padded_entries_are_exactly_zero(kind):
    num_antennas, num_users = mixed_counts(500, seed=8)
    model = ChannelModel(kind, rho=0.0 if kind == "iid" else (0.2, 0.9), csi_error=0.2)
    H, H_hat, _ = model.sample(num_antennas, num_users, generator(9))
    mask = block_mask(num_antennas, num_users, *H.shape[1:])
    assert torch.count_nonzero(H[~mask]) == 0 and torch.count_nonzero(H_hat[~mask]) == 0
    assert torch.count_nonzero(H[mask]) == mask.sum()


def test_sampler_is_seeded_and_reproducible():
    sampler = MIMOSampler(nr=(4, 8), nt=(1, 4), qam=16, snr_db=(0, 20),
                          channel=ChannelModel("kronecker", rho=(0.2, 0.7), csi_error=0.1))
    first, again = (sampler.sample(64, sampler.generator(11)) for _ in range(2))
    other = sampler.sample(64, sampler.generator(12))
    for a, b in [(first.dense().H, again.dense().H), (first.dense().y, again.dense().y),
                 (first.noise_var, again.noise_var), (first.num_users, again.num_users),
                 (first.num_antennas, again.num_antennas), (first.dense_labels(), again.dense_labels())]:
        assert torch.equal(a, b)
    assert not torch.equal(first.noise_var, other.noise_var)


def test_double_precision():
    sampler = MIMOSampler(nr=4, nt=2, precision="double", channel=ChannelModel("kronecker", rho=0.5))
    graph = sampler.sample(8, sampler.generator(0))
    view = graph.dense()
    assert view.H.dtype == torch.complex128 and view.y.dtype == torch.complex128
    assert graph.noise_var.dtype == torch.float64 and graph.snr_db.dtype == torch.float64
    H = ChannelModel().sample(torch.tensor([3]), torch.tensor([2]), generator(0), torch.complex128)[0]
    assert H.dtype == torch.complex128
    single = MIMOSampler(nr=4, nt=2).sample(8, generator(0))
    assert single.dense().H.dtype == torch.complex64 and single.noise_var.dtype == torch.float32


def test_invalid_models():
    with pytest.raises(ValueError, match="unknown channel 'rician'"):
        ChannelModel("rician")
    with pytest.raises(ValueError, match="rho must satisfy"):
        ChannelModel("kronecker", rho=1.0)
    with pytest.raises(ValueError, match="rho must satisfy"):
        ChannelModel("kronecker", rho=(0.8, 0.2))
    with pytest.raises(ValueError, match="needs a correlation rho > 0"):
        ChannelModel("kronecker-rx")
    with pytest.raises(ValueError, match="csi_error"):
        ChannelModel(csi_error=-0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        exponential_correlation(torch.tensor([1.2]), 3)
    assert ChannelModel("kronecker", rho=(0.55, 0.75), csi_error=0.1).describe() == \
        "kronecker(rho=0.55:0.75)+csi(0.1)"

