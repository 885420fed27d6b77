"""Gaussian-to-constellation denoiser: exact posterior moments, symbol logits, floors."""
import pytest
import torch

from gnnmimo.blocks.denoiser import Denoiser, gaussian_denoise
from gnnmimo.constellation import QAM


@pytest.mark.parametrize("order", [4, 16, 64])
def test_posterior_moments_by_bayes_rule(order):
    qam = QAM(order)
    g = torch.Generator().manual_seed(0)
    r = torch.randn(200, dtype=torch.float64, generator=g)
    tau = torch.rand(200, dtype=torch.float64, generator=g) + 1e-3
    log_probs, mean, var = gaussian_denoise(r, tau, qam.pam)
    likelihood = torch.exp(-(r[:, None] - qam.pam) ** 2 / (2 * tau[:, None]))
    posterior = likelihood / likelihood.sum(-1, keepdim=True)
    torch.testing.assert_close(log_probs.exp(), posterior)
    torch.testing.assert_close(mean, posterior @ qam.pam)
    torch.testing.assert_close(var, (posterior * (qam.pam - mean[:, None]) ** 2).sum(-1))


def test_block_logits_equal_complex_gaussian_logits():
    # equal variances τ on Re and Im = a complex observation with variance 2τ
    qam = QAM(16)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(50, dtype=torch.complex128, generator=g)
    tau = torch.rand(50, dtype=torch.float64, generator=g) + 0.01
    state = Denoiser(qam)(None, {"obs_mean": torch.view_as_real(z), "obs_var": tau[:, None].expand(-1, 2)})
    assert state["pam_logits"].shape == (50, 2, 4) and state["logits"].shape == (50, 16)
    expected = qam.gaussian_logits(z, 2 * tau)
    torch.testing.assert_close(state["logits"].log_softmax(-1), expected.log_softmax(-1))
    torch.testing.assert_close(state["mean"], torch.view_as_real(state["logits"].softmax(-1).to(qam.points.dtype) @ qam.points))


def test_floors_and_zero_variance():
    qam = QAM(16)
    r = torch.tensor([qam.pam[1].item(), 0.0, 1e3], dtype=torch.float32)
    log_probs, mean, var = gaussian_denoise(r, torch.tensor([0.0, 1e-30, 1e-3]), qam.pam, eps=1e-9)
    assert torch.isfinite(log_probs).all() and torch.isfinite(mean).all()
    assert (var >= 1e-9).all()
    torch.testing.assert_close(mean[0], qam.pam[1].float())
    torch.testing.assert_close(mean[2], qam.pam[-1].float())
