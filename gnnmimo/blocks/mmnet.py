r"""MMNet linear step, i.i.d. variant (Khani, Alizadeh, Hoydis, Fleming 2019).

On the real-valued equivalent of each instance (``n = 2Nt`` unknowns,
``m = 2Nr`` observations, ``σr² = σ²/2``; :mod:`gnnmimo.blocks.real`), from
the current estimate ``x̂_t``, a matched-filter step with learned size
``θ1_t`` and a learned scale ``θ2_t`` on the predicted noise of its output:

.. math::
    c &= \frac{n}{\operatorname{tr}(H^{\mathsf T}H)},\qquad
    W_t = \theta^{(1)}_t\, c\, H^{\mathsf T}\\
    z_t &= \hat x_t + W_t (y - H\hat x_t)\\
    \tau_t^2 &= \frac{\operatorname{tr}(B_tB_t^{\mathsf T})}{n} v_t^2
             + \frac{\operatorname{tr}(W_tW_t^{\mathsf T})}{n} \sigma_r^2,\qquad B_t = I - W_t H,

with ``v_t²`` estimated from the residual exactly as in OAMP; the block hands
the denoiser the observation ``z_t`` with variance ``τ_t² / θ2_t``. This is
:func:`gnnmimo.blocks.oamp.linear_step` with ``W = c Hᵀ`` and
``γ = θ = θ1_t``.

**Scale** ``c`` **(a reparametrisation).** MMNet writes ``θ1_t Hᵀ``; the
factor ``c`` makes ``c·HᵀH`` have unit mean diagonal in every instance, so
``θ1 = 1`` (the initial value) is a normalised matched-filter step whatever
``Nr`` and the channel's scale, and one learned ``θ1_t`` serves instances of
different sizes. Both forms span the same detectors on a fixed-size,
fixed-scale system.

Padding: padded users are zero columns, so ``W_t`` has zero rows there, and
``n``, ``tr(HᵀH)`` are the instance's own: padding changes nothing.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gnnmimo.blocks.base import Block, State
from gnnmimo.blocks.oamp import linear_step
from gnnmimo.blocks.real import RealSystem
from gnnmimo.graph import MIMOGraph


def scaled_matched_filter(system: RealSystem, error_var: Tensor) -> Tensor:
    """``c Hᵀ`` with ``c = n / tr(HᵀH)`` per instance, ``[B, n_max, m_max]`` (``v_t²`` unused)."""
    trace_gram = system.gram.diagonal(dim1=-2, dim2=-1).sum(-1)
    return (system.num_unknowns / trace_gram)[:, None, None] * system.H.mT


class MMNetLinear(Block):
    """One MMNet layer's linear step with learned ``θ1_t``, ``θ2_t`` (see module doc).

    Args:
        theta1: initial step size ``θ1`` (1: the normalised matched-filter step).
        theta2: initial scale ``θ2`` dividing the predicted noise variance.
        eps: floor ``ε`` of the error variance estimate ``v_t²``.
        double: compute in float64 whatever the batch precision.

    :reads: ``mean [N_u, 2]`` (``x̂_t``).
    :writes: ``obs_mean [N_u, 2]`` (``z_t``), ``obs_var [N_u, 2]`` (``τ_t² / θ2_t``).
    """

    default_reads = ("mean",)
    default_writes = ("obs_mean", "obs_var")

    def __init__(self, theta1: float = 1.0, theta2: float = 1.0, eps: float = 1e-10, double: bool = False):
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.theta1 = nn.Parameter(torch.tensor(float(theta1)))
        self.theta2 = nn.Parameter(torch.tensor(float(theta2)))
        self.eps = eps
        self.double = double

    def update(self, graph: MIMOGraph, state: State) -> State:
        obs_mean, tau = linear_step(graph, state["mean"], scaled_matched_filter, self.theta1, self.theta1,
                                    self.eps, torch.float64 if self.double else None)
        return {"obs_mean": obs_mean, "obs_var": tau / self.theta2.to(tau.dtype)}

    def extra_repr(self) -> str:
        return f"eps={self.eps}, double={self.double}"
