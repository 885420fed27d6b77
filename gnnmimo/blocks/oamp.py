r"""OAMP linear step (Ma & Ping 2017; OAMPNet, He, Wen, Jin, Li 2018).

On the real-valued equivalent of each instance (``n = 2Nt`` unknowns,
``m = 2Nr`` observations, ``σr² = σ²/2``; :mod:`gnnmimo.blocks.real`), from
the current estimate ``x̂_t``:

.. math::
    v_t^2 &= \max\Big(\frac{\|y - H\hat x_t\|^2 - m\sigma_r^2}{\operatorname{tr}(H^{\mathsf T}H)}, \epsilon\Big)\\
    \hat W_t &= v_t^2 H^{\mathsf T}(v_t^2 HH^{\mathsf T} + \sigma_r^2 I)^{-1}
             = (H^{\mathsf T}H + \tfrac{\sigma_r^2}{v_t^2} I)^{-1} H^{\mathsf T},\qquad
    W_t = \frac{n}{\operatorname{tr}(\hat W_t H)} \hat W_t \quad\text{(de-correlated)}\\
    r_t &= \hat x_t + \gamma_t W_t (y - H\hat x_t)\\
    B_t &= I - \theta_t W_t H,\qquad
    \tau_t^2 = \frac{\operatorname{tr}(B_tB_t^{\mathsf T})}{n} v_t^2
             + \frac{\theta_t^2 \operatorname{tr}(W_tW_t^{\mathsf T})}{n} \sigma_r^2 .

The second form of ``Ŵ_t`` (push-through identity) solves an ``n×n``
system. ``r_t`` and ``τ_t²`` (the same for every component of an instance)
are the Gaussian observation handed to the denoiser, which gives
``x̂_{t+1} = E[x | r_t, τ_t²]``.

Plain OAMP has ``γ = θ = 1``; OAMPNet learns one ``(γ_t, θ_t)`` per layer:
build the block with ``learnable=True`` (or turn :attr:`gamma` /
:attr:`theta` into parameters in a subclass).

Everything but the choice of ``W_t`` is :func:`linear_step`, which takes
``W_t`` as a function of the system and ``v_t²``; :func:`decorrelated_lmmse`
is OAMP's, and MMNet's scaled matched filter (:mod:`gnnmimo.blocks.mmnet`)
goes through the same function.

Padding: padded users are zero columns, so ``Ŵ_t`` has zero rows there;
``I`` in ``B_t`` is restricted to real users and ``n``, ``m`` are the
instance's own sizes, so padding changes nothing.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from gnnmimo.blocks.base import Block, State
from gnnmimo.blocks.real import RealSystem, real_system, users_from_real, users_to_real
from gnnmimo.linalg import solve_spd
from gnnmimo.graph import MIMOGraph

#: ``W_t = matrix(system, v_t²)``: ``[B, n_max, m_max]`` from the system and ``v_t² [B, 1]``
LinearMatrix = Callable[[RealSystem, Tensor], Tensor]


def decorrelated_lmmse(system: RealSystem, error_var: Tensor) -> Tensor:
    """OAMP's ``W_t = n / tr(Ŵ_t H) · Ŵ_t`` with ``Ŵ_t = (HᵀH + σr²/v_t² I)⁻¹ Hᵀ``, ``[B, n_max, m_max]``."""
    H, gram = system.H, system.gram
    eye = torch.eye(gram.shape[-1], dtype=H.dtype, device=H.device)
    W_hat = solve_spd(gram + (system.noise_var[:, None] / error_var)[..., None] * eye, H.mT)
    n = system.num_unknowns[:, None]
    return (n / (W_hat * H.mT).sum((-2, -1))[:, None])[..., None] * W_hat


def linear_step(graph: MIMOGraph, mean: Tensor, matrix: LinearMatrix, gamma: Tensor, theta: Tensor,
                eps: float, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """The decoupled linear step of the module doc for any matrix ``W_t``.

    Args:
        graph: the batch.
        mean: ``[N_u, 2]`` the current estimate ``x̂_t``.
        matrix: ``W_t`` from the padded real system and ``v_t² [B, 1]``
            (e.g. :func:`decorrelated_lmmse`); zero rows on padded users.
        gamma, theta: scalar tensors ``γ_t``, ``θ_t``.
        eps: floor ``ε`` of ``v_t²``.
        dtype: real dtype to compute in (default: the batch's).

    Returns:
        ``(r_t, τ_t²)``, each ``[N_u, 2]`` in ``dtype``.
    """
    system = real_system(graph, dtype)
    H, y, noise_var = system.H, system.y, system.noise_var[:, None]           # σr² [B, 1]
    n, m = system.num_unknowns[:, None], system.num_observations[:, None]
    x = users_to_real(graph, mean.to(H.dtype))
    residual = y - (H @ x[..., None])[..., 0]                                 # [B, m_max]
    trace_gram = system.gram.diagonal(dim1=-2, dim2=-1).sum(-1, keepdim=True)
    error_var = ((residual.square().sum(-1, keepdim=True) - m * noise_var)
                 / trace_gram).clamp_min(eps)                                # v_t², [B, 1]
    W = matrix(system, error_var)                                             # [B, n_max, m_max]

    gamma, theta = gamma.to(H.dtype), theta.to(H.dtype)
    obs_mean = x + gamma * (W @ residual[..., None])[..., 0]
    B = torch.diag_embed(system.user_mask.to(H.dtype)) - theta * (W @ H)
    tau = (B.square().sum((-2, -1))[:, None] * error_var
           + theta.square() * W.square().sum((-2, -1))[:, None] * noise_var) / n  # [B, 1]
    return users_from_real(graph, obs_mean), users_from_real(graph, tau.expand_as(x))


class OAMPLinear(Block):
    """The OAMP linear (LMMSE-type, de-correlated) step (see module doc).

    Args:
        gamma: step size ``γ`` on the residual (1 for OAMP).
        theta: ``θ`` in the error-variance prediction (1 for OAMP).
        learnable: make ``γ`` and ``θ`` ``nn.Parameter`` s (OAMPNet).
        eps: floor ``ε`` of the error variance estimate ``v_t²``.
        double: compute in float64 whatever the batch precision.

    :reads: ``mean [N_u, 2]`` (``x̂_t``).
    :writes: ``obs_mean [N_u, 2]`` (``r_t``), ``obs_var [N_u, 2]`` (``τ_t²``).
    """

    default_reads = ("mean",)
    default_writes = ("obs_mean", "obs_var")

    def __init__(self, gamma: float | Tensor = 1.0, theta: float | Tensor = 1.0,
                 learnable: bool = False, eps: float = 1e-10, double: bool = False):
        super().__init__()
        gamma = torch.as_tensor(gamma, dtype=torch.get_default_dtype()).clone()
        theta = torch.as_tensor(theta, dtype=torch.get_default_dtype()).clone()
        if learnable:
            self.gamma, self.theta = nn.Parameter(gamma), nn.Parameter(theta)
        else:
            self.register_buffer("gamma", gamma)
            self.register_buffer("theta", theta)
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = eps
        self.double = double

    def update(self, graph: MIMOGraph, state: State) -> State:
        obs_mean, obs_var = linear_step(graph, state["mean"], decorrelated_lmmse, self.gamma, self.theta,
                                        self.eps, torch.float64 if self.double else None)
        return {"obs_mean": obs_mean, "obs_var": obs_var}

    def extra_repr(self) -> str:
        return f"eps={self.eps}, double={self.double}"
