r"""The real-valued equivalent system, padded per instance, for dense blocks.

Blocks that solve linear systems (OAMP, EP) work on the real-valued
equivalent of each instance (docs/conventions.md §6),

.. math::
    \mathbf y_r = \mathbf H_r \mathbf x_r + \mathbf n_r,\quad
    \mathbf H_r = \begin{bmatrix}\Re H & -\Im H\\ \Im H & \Re H\end{bmatrix},\quad
    \mathbf n_r \sim \mathcal N(0, \sigma_r^2 I),\ \sigma_r^2 = \sigma^2/2,

with ``n = 2 Nt_b`` real unknowns and ``m = 2 Nr_b`` real observations. In a
batch the instances are zero-padded to ``[B, 2Nr_max, 2Nt_max]`` (the layout
of :meth:`gnnmimo.graph.DenseView.real`: real unknown ``k < Nt_max`` is
``Re x_k``, ``Nt_max + k`` is ``Im x_k``). Padded users are zero columns and
padded antennas zero rows, so they do not touch the real entries of ``H_rᵀH_r``,
``H_rᵀy_r`` or ``y_r − H_r x_r``; a block only has to keep its own padded
diagonal entries neutral (e.g. a prior precision on padded users).

The per-user block state stores the two real components of user ``i`` as a
row ``[N_u, 2] = (Re, Im)``; :func:`users_to_real` / :func:`users_from_real`
convert between that and the padded ``[B, 2Nt_max]`` vectors.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from gnnmimo.graph import CHANNEL, MIMOGraph


@dataclass(eq=False)
class RealSystem:
    """A batch's real-valued equivalent, zero-padded.

    Attributes:
        H: ``[B, m_max, n_max]`` real channels ``H_r`` (``m_max = 2Nr_max``, ``n_max = 2Nt_max``).
        y: ``[B, m_max]`` real observations ``y_r``.
        noise_var: ``[B]`` noise variance per real dimension ``σr² = σ²/2``.
        user_mask: ``[B, n_max]`` bool, true on the real unknowns of real users.
        num_unknowns: ``[B]`` ``n = 2 Nt_b`` (same dtype as ``H``).
        num_observations: ``[B]`` ``m = 2 Nr_b`` (same dtype as ``H``).
    """

    H: Tensor
    y: Tensor
    noise_var: Tensor
    user_mask: Tensor
    num_unknowns: Tensor
    num_observations: Tensor

    @cached_property
    def gram(self) -> Tensor:
        """``H_rᵀ H_r``, ``[B, n_max, n_max]`` (zero rows/columns on padded users)."""
        return self.H.mT @ self.H

    @cached_property
    def matched_filter(self) -> Tensor:
        """``H_rᵀ y_r``, ``[B, n_max]``."""
        return (self.H.mT @ self.y[..., None])[..., 0]


def real_system(graph: MIMOGraph, dtype: torch.dtype | None = None) -> RealSystem:
    """The padded real-valued system of ``graph``, memoised on the batch per dtype
    (:meth:`MIMOGraph.memoised`; its ``gram`` and ``matched_filter`` are computed lazily).

    Args:
        dtype: real dtype to compute in (default: the precision of the batch,
            float32 for complex64 data, float64 for complex128).
    """
    dtype = dtype or graph[CHANNEL].h.real.dtype

    def build() -> RealSystem:
        view = graph.dense()
        H_r, y_r = view.real()
        mask = view.user_mask
        return RealSystem(H=H_r.to(dtype), y=y_r.to(dtype), noise_var=view.noise_var.to(dtype) / 2,
                          user_mask=torch.cat([mask, mask], dim=-1),
                          num_unknowns=2 * graph.num_users.to(dtype),
                          num_observations=2 * graph.num_antennas.to(dtype))
    return graph.memoised(("real_system", dtype), build)


def users_to_real(graph: MIMOGraph, x: Tensor, fill_value: float = 0.0) -> Tensor:
    """Per-user components ``[N_u, 2]`` → padded real vectors ``[B, 2Nt_max]``.

    Padded users get ``fill_value``.
    """
    dense = graph.users_to_dense(x, fill_value)  # [B, Nt_max, 2]
    return dense.transpose(1, 2).reshape(dense.shape[0], -1)


def users_from_real(graph: MIMOGraph, x: Tensor) -> Tensor:
    """Padded real vectors ``[B, 2Nt_max]`` → per-user components ``[N_u, 2]``."""
    dense = x.reshape(x.shape[0], 2, -1).transpose(1, 2)  # [B, Nt_max, 2]
    return graph.users_from_dense(dense)
