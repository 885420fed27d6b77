"""AMP: graph message passing = dense equations on mixed Nt/Nr, SER vs MMSE, numerics, properties."""
import pytest
import torch

import zoo
from gnnmimo.blocks.amp import AMPLinear, squared_channel
from gnnmimo.blocks.denoiser import ES, Denoiser, gaussian_denoise, prior_state
from gnnmimo.blocks.real import real_system, users_to_real
from gnnmimo.constellation import QAM
from gnnmimo.graph import ANTENNA, USER
from gnnmimo.sampling import MIMOSampler


def dense_amp_reference(H, y, noise_var, pam, iterations):
    """Real GAMP (Jeon et al., ISIT 2015) on one unpadded real system ``H [m, n]``, ``y [m]`` (float64).

    Returns the observations ``(r, Σ)`` ``[n]`` of every iteration.
    """
    H2 = H.square()
    x, v = torch.zeros(H.shape[1], dtype=H.dtype), torch.full((H.shape[1],), ES, dtype=H.dtype)
    z_prev, V_prev = y.clone(), torch.zeros_like(y)
    out = []
    for _ in range(iterations):
        V = H2 @ v
        z = H @ x - V * (y - z_prev) / (noise_var + V_prev)
        sigma = 1 / (H2.T @ (1 / (noise_var + V)))
        r = x + sigma * (H.T @ ((y - z) / (noise_var + V)))
        out.append((r, sigma))
        _, x, v = gaussian_denoise(r, sigma, pam)
        z_prev, V_prev = z, V
    return out


def test_graph_amp_equals_dense_reference_on_mixed_nt_and_nr():
    sampler = MIMOSampler(nr=(4, 9), nt=(2, 6), qam=16, precision="double")
    graph = sampler.sample(6, sampler.generator(4), snr_db=10)
    assert graph.num_antennas.unique().numel() > 1 and graph.num_users.unique().numel() > 1
    linear, denoiser = AMPLinear(), Denoiser(16)
    state, steps = prior_state(graph), []
    for _ in range(4):
        state = linear(graph, state)
        steps.append((users_to_real(graph, state["obs_mean"]), users_to_real(graph, state["obs_var"])))
        state = denoiser(graph, state)
    system, pam, nt_max = real_system(graph), QAM(16).pam, graph.user_mask().shape[1]
    nr_max = system.H.shape[1] // 2
    for b in range(graph.num_instances):  # the reference runs instance by instance, unpadded
        nt, nr = int(graph.num_users[b]), int(graph.num_antennas[b])
        cols = torch.cat([torch.arange(nt), nt_max + torch.arange(nt)])
        rows = torch.cat([torch.arange(nr), nr_max + torch.arange(nr)])
        reference = dense_amp_reference(system.H[b][rows][:, cols], system.y[b][rows],
                                        system.noise_var[b], pam, len(steps))
        for (r, sigma), (r_ref, sigma_ref) in zip(steps, reference):
            torch.testing.assert_close(r[b, cols], r_ref, rtol=1e-9, atol=1e-10)
            torch.testing.assert_close(sigma[b, cols], sigma_ref, rtol=1e-9, atol=1e-12)


def test_squared_channel_is_symmetric_block_product():
    sampler = MIMOSampler(nr=(2, 5), nt=(1, 4), qam=16, precision="double")
    graph = sampler.sample(4, sampler.generator(0))
    g = torch.Generator().manual_seed(1)
    w_user = torch.rand(graph[USER].num_nodes, 2, generator=g, dtype=torch.float64)
    w_antenna = torch.rand(graph[ANTENNA].received.numel(), 2, generator=g, dtype=torch.float64)
    # ⟨w_a, B∘2 w_u⟩ = ⟨B∘2ᵀ w_a, w_u⟩ (adjoint pair), and B∘2 of all-ones gives Σ|h|² per node
    left = (w_antenna * squared_channel(graph, w_user, "antenna")).sum()
    right = (squared_channel(graph, w_antenna, "user") * w_user).sum()
    torch.testing.assert_close(left, right)
    ones = torch.ones(graph[USER].num_nodes, 2, dtype=torch.float64)
    view = graph.dense()
    energy = view.H.abs().square().sum(-1)[view.antenna_mask]
    torch.testing.assert_close(squared_channel(graph, ones, "antenna"), energy[:, None].expand(-1, 2))


def test_amp_beats_mmse_on_a_large_system(ser):
    # AMP is near-optimal for large i.i.d. systems: 32x16, 16-QAM, 14 dB (measured ≈ 9e-3 vs 3.7e-2)
    sampler = MIMOSampler(nr=32, nt=16, qam=16)
    graph = sampler.sample(400, sampler.generator(8), snr_db=14)
    amp, mmse = ser(zoo.create("amp", qam=16), graph), ser(zoo.create("mmse", qam=16), graph)
    assert amp < 0.5 * mmse, (amp, mmse)


def test_amp_runs_on_a_batch_mixing_nr(ser):
    # Nr from 8 to 32 in one batch (measured: 163 vs 204 errors on 1772 symbols)
    sampler = MIMOSampler(nr=(8, 32), nt=(4, 8), qam=16)
    graph = sampler.sample(300, sampler.generator(9), snr_db=10)
    assert graph.num_antennas.unique().numel() > 10
    amp, mmse = ser(zoo.create("amp", qam=16), graph), ser(zoo.create("mmse", qam=16), graph)
    assert amp < mmse, (amp, mmse)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="iterations"):
        zoo.create("amp", qam=16, iterations=0)
    with pytest.raises(KeyError, match="AMPLinear reads"):
        AMPLinear()(None, {"mean": torch.zeros(1, 2)})
