r"""AMP linear step as message passing on the bipartite antenna–user graph.

Generalised AMP with per-antenna variance tracking (Jeon, Ghods, Maleki,
Studer, ISIT 2015) on the real-valued
equivalent model ``y_r = H_r x_r + n_r``, ``σr² = σ²/2``, written edge-wise so
that it runs on any batch (mixed ``Nt`` **and** mixed ``Nr``, no padding).

**Real model on the complex graph.** The real-valued equivalent couples the
real and imaginary parts: the entry ``H_ai = h_R + j h_I`` of the complex
channel is the 2×2 real block

.. math::
    B_{ai} = \begin{bmatrix} h_R & -h_I \\ h_I & h_R \end{bmatrix},\qquad
    B^{\circ 2}_{ai} = \begin{bmatrix} h_R^2 & h_I^2 \\ h_I^2 & h_R^2 \end{bmatrix}

(``B∘2`` the entry-wise square, which is what the variance recursions of
real GAMP use). Node states are pairs ``(Re, Im)``: per user ``x̂_i, v_i, r_i,
Σ_i ∈ R²``, per antenna ``Z_a, V_a, y_a ∈ R²``. Products with ``B`` and ``Bᵀ``
are complex multiplications, ``B_ai x = H_ai x`` and ``B_aiᵀ s = conj(H_ai) s``
(so the means reuse :func:`gnnmimo.ops.residual` and
:func:`gnnmimo.ops.matched_filter`); products with ``B∘2`` (a symmetric
block) are the message ``h_R² w + h_I² w̄`` where ``w̄`` swaps the two
components. One iteration:

.. math::
    V_a &= \sum_i B^{\circ 2}_{ai} v_i, \\
    Z_a &= \sum_i B_{ai} \hat x_i - V_a \odot \frac{y_a - Z_a^{\rm prev}}{\sigma_r^2 + V_a^{\rm prev}}
        \quad\text{(Onsager term)},\\
    \Sigma_i &= \Big[\sum_a B^{\circ 2}_{ai} \frac{1}{\sigma_r^2 + V_a}\Big]^{-1}, \qquad
    r_i = \hat x_i + \Sigma_i \odot \sum_a B_{ai}^{\mathsf T} \frac{y_a - Z_a}{\sigma_r^2 + V_a},

all divisions and inverses entry-wise. This is exactly the real GAMP of
Jeon et al. applied to ``H_r``, not an approximation: the Re and Im
components keep their own variances. (When ``v_i`` has equal components —
a circularly symmetric belief — it reduces to the complex AMP with
``V_a = Σ_i |H_ai|² v_i``; the real form is kept because the constellation
denoiser gives different variances to the two components.)

**State.** Besides the per-user keys, the step keeps the previous
iteration's antenna quantities, as antenna-node state ``[N_a, 2]``:
``antenna_residual = y_a − Z_a`` and ``antenna_var = V_a``. When they are
missing (the first iteration), ``Z^prev = y`` so the Onsager term vanishes —
the start ``x̂ = 0, v = Es, Z^prev = y`` of the algorithm with
:func:`gnnmimo.blocks.denoiser.prior_state`.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from gnnmimo import ops
from gnnmimo.blocks.base import Block, State
from gnnmimo.graph import ANTENNA, CHANNEL, USER, MIMOGraph


def as_complex(x: Tensor) -> Tensor:
    """``[N, 2]`` (Re, Im) → ``[N]`` complex."""
    return torch.complex(x[:, 0], x[:, 1])


def as_pairs(z: Tensor) -> Tensor:
    """``[N]`` complex → ``[N, 2]`` (Re, Im)."""
    return torch.view_as_real(z)


def squared_channel(graph: MIMOGraph, w: Tensor, to: str) -> Tensor:
    r"""Apply the entry-wise squared real channel ``B∘2`` over the bipartite edges.

    ``to == "antenna"``: ``u_a = Σ_i B∘2_ai w_i`` (``w [N_u, 2]`` → ``[N_a, 2]``);
    ``to == "user"``: ``u_i = Σ_a B∘2_ai w_a`` (``w [N_a, 2]`` → ``[N_u, 2]``; the
    block is symmetric, so this is ``(B∘2)ᵀ``).

    The block is diagonal in the coordinates ``S = w_re + w_im``,
    ``D = w_re − w_im``:
    ``B∘2 = ½|h|² [[1, 1], [1, 1]] + ½Re(h²) [[1, −1], [−1, 1]]``, so each edge
    sends ``(P, Q) = (½|h|² S, ½Re(h²) D)`` and the node gets
    ``(ΣP + ΣQ, ΣP − ΣQ)``.
    """
    if to not in ("antenna", "user"):
        raise ValueError(f"squared_channel sends to 'antenna' or 'user', got {to!r}")
    antenna, user = graph[CHANNEL].edge_index
    source, target, size = ((user, antenna, graph[ANTENNA].received.numel()) if to == "antenna"
                            else (antenna, user, graph[USER].num_nodes))
    h_re, h_im = as_pairs(graph[CHANNEL].h).to(w.dtype).square().unbind(-1)
    weight = torch.stack([h_re + h_im, h_re - h_im], dim=-1) / 2               # (|h|², Re h²)/2, [E, 2]
    sum_difference = torch.stack([w[:, 0] + w[:, 1], w[:, 0] - w[:, 1]], dim=-1)
    message = weight * sum_difference.index_select(0, source)
    p, q = scatter(message, target, dim=0, dim_size=size, reduce="sum").unbind(-1)
    return torch.stack([p + q, p - q], dim=-1)


class AMPLinear(Block):
    r"""The AMP linear step on the bipartite graph (see module doc for the maths).

    :reads: ``mean [N_u, 2]`` (``x̂``), ``var [N_u, 2]`` (``v``).
    :optional reads: ``antenna_residual [N_a, 2]`` (``y_a − Z_a`` of the previous step) and
        ``antenna_var [N_a, 2]`` (``V_a`` of the previous step); absent at the first step.
    :writes: ``obs_mean [N_u, 2]`` (``r_i``), ``obs_var [N_u, 2]`` (``Σ_i``),
        ``antenna_residual [N_a, 2]``, ``antenna_var [N_a, 2]``.

    Computed in the batch's precision. The variances are kept finite
    (``Σ_i`` is clipped to ``[tiny, 1/tiny]``) so a diverging run — AMP is
    not made for strongly correlated channels — degrades instead of
    producing NaN.
    """

    default_reads = ("mean", "var")
    default_optional_reads = ("antenna_residual", "antenna_var")
    default_writes = ("obs_mean", "obs_var", "antenna_residual", "antenna_var")

    def update(self, graph: MIMOGraph, state: State) -> State:
        y = as_pairs(graph[ANTENNA].received)
        mean, var = state["mean"].to(y.dtype), state["var"].to(y.dtype)
        noise_var = (graph.noise_var[graph.antenna_batch] / 2).to(y.dtype)[:, None]  # σr², [N_a, 1]

        antenna_var = squared_channel(graph, var, to="antenna")                       # V_a
        residual = as_pairs(ops.residual(graph, as_complex(mean)))                  # y − Σ B x̂
        if "antenna_residual" in state:
            previous = state["antenna_residual"] / (noise_var + state["antenna_var"])
            residual = residual + antenna_var * previous                              # y − Z_a
        scaled = residual / (noise_var + antenna_var)                                 # (y − Z_a)/(σr² + V_a)

        tiny = torch.finfo(y.dtype).tiny
        precision = squared_channel(graph, 1.0 / (noise_var + antenna_var), to="user")
        obs_var = 1.0 / precision.clamp(tiny, 1.0 / tiny)                              # Σ_i
        correction = as_pairs(ops.matched_filter(graph, as_complex(scaled)))
        obs_mean = mean + obs_var * correction                                        # r_i
        return {"obs_mean": obs_mean, "obs_var": obs_var,
                "antenna_residual": residual, "antenna_var": antenna_var}
