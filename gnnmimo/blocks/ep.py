r"""Expectation propagation blocks (Céspedes, Olmos, Sánchez-Fernández, Santamaría, TCOM 2014).

EP approximates the prior of each real unknown by a Gaussian site
``exp(−λ_i x_i²/2 + γ_i x_i)`` and iterates, on the real-valued equivalent
(``σr² = σ²/2``, :mod:`gnnmimo.blocks.real`):

**Cavity** (:class:`EPCavity`, a batched solve per instance)

.. math::
    \Sigma = \sigma_r^2 (H^{\mathsf T}H + \sigma_r^2\operatorname{diag}\lambda)^{-1},\quad
    \mu = (H^{\mathsf T}H + \sigma_r^2\operatorname{diag}\lambda)^{-1} (H^{\mathsf T}y + \sigma_r^2\gamma),\quad
    h_i^2 = \max\Big(\frac{\Sigma_{ii}}{d_i}, \epsilon\Big),\quad
    t_i = \frac{\mu_i - \Sigma_{ii}\gamma_i}{d_i},\quad
    d_i = \max(1 - \Sigma_{ii}\lambda_i, \text{eps of the dtype}),

the Gaussian observation ``x_i ≈ t_i + N(0, h_i²)`` with the site of ``i``
removed (``1/h_i² = 1/Σ_ii − λ_i`` and ``t_i/h_i² = μ_i/Σ_ii − γ_i`` before the
floor and the clamp, :func:`ep_cavity` says why they are computed so). The
solve is written with ``σr²`` as a regulariser, not ``1/σr²`` as a weight, so
that no σ² of the dtype's normal range overflows it. A tilted posterior (mean ``μp_i``, variance ``σp_i²``) is then
formed, by the constellation denoiser for EP or by a learned block for
EP-GNN/GEPNet.

**Update** (:class:`EPUpdate`)

.. math::
    \lambda^{\rm new} = \frac{1}{\sigma_{p}^2} - \frac{1}{h^2},\quad
    \gamma^{\rm new} = \frac{\mu_p}{\sigma_p^2} - \frac{t}{h^2};

where ``λ_new < 0`` the old pair is kept; then damping
``λ ← βλ_old + (1−β)λ_new`` (same for ``γ``).

EP state per user, ``[N_u, 2]`` (Re, Im): ``ep_lambda`` (site precisions
``λ``) and ``ep_gamma`` (site precision-means ``γ``). :class:`EPCavity`
starts them at the prior ``λ = 1/Es``, ``γ = 0`` when absent. Padded users
of the dense solve get ``λ = 1/Es, γ = 0``: their columns of ``H`` are zero,
so they decouple (``Σ_ii = Es``, ``μ_i = 0``) and change nothing.

Precision: with ``double=True`` the cavity computes in float64 and writes
float64 state, so the denoiser and the update that follow also run in
float64 (as the baseline behind the published numbers, ``ε = 1e-13``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from gnnmimo.blocks.base import Block, State
from gnnmimo.blocks.denoiser import ES, default_eps
from gnnmimo.blocks.real import real_system, users_from_real, users_to_real
from gnnmimo.linalg import inverse_diagonal_and_solve
from gnnmimo.graph import USER, MIMOGraph


def ep_cavity(sigma: Tensor, mu: Tensor, lam: Tensor, gam: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    r"""Cavity moments ``(t, h²)`` from the Gaussian posterior marginals.

    Args:
        sigma: ``Σ_ii``, mu: ``μ_i``, lam: ``λ_i``, gam: ``γ_i``, all ``[...]``.
        eps: floor of ``h²``.

    The mean is computed as ``t = (μ − Σγ)/(1 − Σλ)``, not as ``h²(μ/Σ − γ)``:
    the two are equal, but the floor ``ε`` belongs to the variance alone. At
    high SNR ``h² ≈ σr²/‖h_i‖²`` drops below ``ε`` (below 1e-7 from about 65 dB
    in float32), and a floored ``h²`` times ``μ/Σ`` scaled the mean by
    ``ε/h²`` (SER 0.75 at 80 dB).

    ``1 − Σ_ii λ_i`` is the share of the posterior precision that does not
    come from the site, positive in exact arithmetic (``Σ_ii ≤ 1/λ_i``). For a
    user the channel barely sees (a column 100 dB below the others) it is
    below the rounding error of its dtype; it is clamped to the dtype's
    ``eps``, so that user's cavity is uninformative (``h² = Σ_ii/eps``), as
    its channel is — a cavity at the floor ``ε`` would claim the opposite and
    corrupt the other users through the site update.
    """
    denominator = (1.0 - sigma * lam).clamp_min(torch.finfo(sigma.dtype).eps)
    return (mu - sigma * gam) / denominator, (sigma / denominator).clamp_min(eps)


def ep_site_update(post_mean: Tensor, post_var: Tensor, cav_mean: Tensor, cav_var: Tensor,
                   lam: Tensor, gam: Tensor, damping: float) -> tuple[Tensor, Tensor]:
    r"""New site parameters ``(λ, γ)`` from a tilted posterior and the cavity (module doc).

    All tensors ``[...]``; ``damping`` is ``β``, the weight of the old value.
    """
    lam_new = 1.0 / post_var - 1.0 / cav_var
    gam_new = post_mean / post_var - cav_mean / cav_var
    keep = lam_new < 0
    lam_new = torch.where(keep, lam, lam_new)
    gam_new = torch.where(keep, gam, gam_new)
    return damping * lam + (1.0 - damping) * lam_new, damping * gam + (1.0 - damping) * gam_new


class EPCavity(Block):
    """EP Gaussian posterior and cavity (see module doc).

    Args:
        eps: floor of the cavity variance ``h²`` (default
            :func:`~gnnmimo.blocks.denoiser.default_eps` of the compute dtype:
            1e-13 in float64).
        double: compute in float64 whatever the batch precision.

    :reads: nothing.
    :optional reads: ``ep_lambda [N_u, 2]``, ``ep_gamma [N_u, 2]`` (the prior
        ``1/Es, 0`` when absent).
    :writes: ``obs_mean [N_u, 2]`` (``t_i``), ``obs_var [N_u, 2]`` (``h_i²``),
        ``ep_lambda``, ``ep_gamma`` (unchanged, or initialised).
    """

    default_optional_reads = ("ep_lambda", "ep_gamma")
    default_writes = ("obs_mean", "obs_var", "ep_lambda", "ep_gamma")

    def __init__(self, eps: float | None = None, double: bool = True):
        super().__init__()
        self.eps = eps
        self.double = double

    def update(self, graph: MIMOGraph, state: State) -> State:
        system = real_system(graph, torch.float64 if self.double else None)
        dtype = system.H.dtype
        eps = default_eps(dtype) if self.eps is None else self.eps
        if "ep_lambda" in state:
            lam, gam = state["ep_lambda"].to(dtype), state["ep_gamma"].to(dtype)
        else:
            lam = torch.full((graph[USER].num_nodes, 2), 1.0 / ES, dtype=dtype, device=system.H.device)
            gam = torch.zeros_like(lam)
        noise_var = system.noise_var[:, None]
        lam_dense = users_to_real(graph, lam, fill_value=1.0 / ES)                  # [B, n_max]
        gam_dense = users_to_real(graph, gam)
        # σr² Σ⁻¹ = HᵀH + σr² diag λ: no 1/σr², which overflows for a σ² near the smallest normal number
        scaled_sigma, mu = inverse_diagonal_and_solve(system.gram, system.matched_filter + noise_var * gam_dense,
                                                      noise_var * lam_dense, fallback=True)
        sigma, mu = users_from_real(graph, noise_var * scaled_sigma), users_from_real(graph, mu)   # Σ_ii, μ_i
        t, h2 = ep_cavity(sigma, mu, lam, gam, eps)
        return {"obs_mean": t, "obs_var": h2, "ep_lambda": lam, "ep_gamma": gam}

    def extra_repr(self) -> str:
        return f"eps={self.eps}, double={self.double}"


class EPUpdate(Block):
    """EP site update with the ``λ < 0`` revert and damping (see module doc).

    Args:
        damping: ``β ∈ [0, 1)``, the weight of the old value (0.9 in the
            EP baseline, 0.7 in GEPNet).

    :reads: ``mean``, ``var`` (the tilted posterior ``μp, σp²``), ``obs_mean``,
        ``obs_var`` (the cavity ``t, h²``), ``ep_lambda``, ``ep_gamma``; all ``[N_u, 2]``.
    :writes: ``ep_lambda``, ``ep_gamma``.
    """

    default_reads = ("mean", "var", "obs_mean", "obs_var", "ep_lambda", "ep_gamma")
    default_writes = ("ep_lambda", "ep_gamma")

    def __init__(self, damping: float = 0.9):
        super().__init__()
        if not 0.0 <= damping < 1.0:
            raise ValueError(f"damping β must lie in [0, 1), got {damping}")
        self.damping = damping

    def update(self, graph: MIMOGraph, state: State) -> State:
        lam, gam = ep_site_update(state["mean"], state["var"], state["obs_mean"], state["obs_var"],
                                  state["ep_lambda"], state["ep_gamma"], self.damping)
        return {"ep_lambda": lam, "ep_gamma": gam}

    def extra_repr(self) -> str:
        return f"damping={self.damping}"
