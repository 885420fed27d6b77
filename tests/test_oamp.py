"""OAMP: linear step = dense equations per instance, SER vs MMSE, learnable γ/θ, numerics, properties."""
import pytest
import torch

import zoo
from gnnmimo.blocks.oamp import OAMPLinear
from gnnmimo.blocks.real import real_system, users_to_real
from gnnmimo.graph import USER
from gnnmimo.sampling import MIMOSampler


def dense_oamp_reference(H, y, noise_var, x, gamma, theta, eps=1e-10):
    """One OAMP linear step (Ma & Ping 2017) on one unpadded real system (``m×m`` form of Ŵ)."""
    m, n = H.shape
    residual = y - H @ x
    v2 = torch.clamp((residual @ residual - m * noise_var) / torch.trace(H.T @ H), min=eps)
    W_hat = v2 * H.T @ torch.linalg.inv(v2 * H @ H.T + noise_var * torch.eye(m, dtype=H.dtype))
    W = n / torch.trace(W_hat @ H) * W_hat
    r = x + gamma * W @ residual
    B = torch.eye(n, dtype=H.dtype) - theta * W @ H
    tau = torch.trace(B @ B.T) * v2 / n + theta ** 2 * torch.trace(W @ W.T) * noise_var / n
    return r, tau


@pytest.mark.parametrize("gamma,theta", [(1.0, 1.0), (0.7, 1.3)])
def test_linear_step_equals_dense_equations(gamma, theta):
    sampler = MIMOSampler(nr=(3, 8), nt=(1, 6), qam=16, precision="double")
    graph = sampler.sample(6, sampler.generator(2), snr_db=15)
    x = 0.3 * torch.randn(graph[USER].num_nodes, 2, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0))
    block = OAMPLinear(gamma, theta)
    state = block(graph, {"mean": x})
    gamma, theta = block.gamma.double(), block.theta.double()  # stored in the default dtype
    r_dense, tau_dense = users_to_real(graph, state["obs_mean"]), users_to_real(graph, state["obs_var"])
    system, x_dense, nt_max = real_system(graph), users_to_real(graph, x), graph.user_mask().shape[1]
    nr_max = system.H.shape[1] // 2
    for b in range(graph.num_instances):  # the reference runs instance by instance, unpadded
        nt, nr = int(graph.num_users[b]), int(graph.num_antennas[b])
        cols = torch.cat([torch.arange(nt), nt_max + torch.arange(nt)])
        rows = torch.cat([torch.arange(nr), nr_max + torch.arange(nr)])
        r, tau = dense_oamp_reference(system.H[b][rows][:, cols], system.y[b][rows], system.noise_var[b],
                                      x_dense[b, cols], gamma, theta)
        torch.testing.assert_close(r_dense[b, cols], r, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(tau_dense[b, cols], tau.expand(2 * nt), rtol=1e-8, atol=1e-12)


def test_oamp_beats_mmse(ser):
    # 8x4, 16-QAM, 14 dB: MMSE 4.35e-2 published; OAMP measured ≈ 2.8e-2 on the same samples
    sampler = MIMOSampler(nr=8, nt=4, qam=16)
    graph = sampler.sample(2000, sampler.generator(3), snr_db=14)
    oamp, mmse = ser(zoo.create("oamp", qam=16), graph), ser(zoo.create("mmse", qam=16), graph)
    assert oamp < 0.85 * mmse, (oamp, mmse)


def test_learnable_parameters_get_gradients():
    block = OAMPLinear(learnable=True)
    assert {name for name, _ in block.named_parameters()} == {"gamma", "theta"}
    assert not list(OAMPLinear().parameters())  # plain OAMP: buffers only
    sampler = MIMOSampler(nr=6, nt=(2, 4), qam=16)
    graph = sampler.sample(8, sampler.generator(1), snr_db=10)
    x = 0.1 * torch.ones(graph[USER].num_nodes, 2)
    state = block(graph, {"mean": x})
    (state["obs_mean"].square().sum() + state["obs_var"].sum()).backward()
    assert block.gamma.grad is not None and block.theta.grad is not None


def test_bad_options_raise():
    with pytest.raises(ValueError, match="eps"):
        OAMPLinear(eps=0.0)
    with pytest.raises(ValueError, match="iterations"):
        zoo.create("oamp", qam=16, iterations=0)
