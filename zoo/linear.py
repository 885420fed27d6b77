r"""Linear detectors: matched filter, zero forcing and LMMSE.

Each equalises to one scalar observation per user, ``z_i = x_i + w_i`` with
``w_i ~ CN(0, ν_i)`` (treating interference as Gaussian noise), and scores
the constellation with ``logit(s) = −|z_i − s|² / ν_i``.

* MF:    ``z_i = h_iᴴ y / ‖h_i‖²``,
  ``ν_i = (Σ_{j≠i} |h_iᴴ h_j|² + σ² ‖h_i‖²) / ‖h_i‖⁴`` — message passing on
  the bipartite graph (``Hᴴ y``) and the user graph (Gram entries).
* ZF:    ``z = (HᴴH)⁻¹ Hᴴ y``, ``ν_i = σ² [(HᴴH)⁻¹]_ii``; needs ``Nt ≤ Nr``.
* LMMSE: ``W = (HᴴH + σ² I)⁻¹ Hᴴ``, ``μ_i = [WH]_ii``; the unbiased estimate
  ``z_i = [Wy]_i / μ_i`` has ``ν_i = (1 − μ_i)/μ_i = 1/SINR_i`` (unit-energy
  symbols), the post-equalisation SINR.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from torch_geometric.utils import scatter

from gnnmimo import ops
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.graph import ANTENNA, DenseView, MIMOGraph
from zoo.registry import register


class LinearDetector(Detector):
    """A one-shot detector defined by its equaliser output ``(z, ν)`` per user."""

    def equalize(self, graph: MIMOGraph) -> tuple[Tensor, Tensor]:
        """Return ``z [N_u]`` (complex) and ``ν [N_u]`` (real, > 0)."""
        raise NotImplementedError

    def iterate(self, graph: MIMOGraph) -> Tensor:
        z, nu = self.equalize(graph)
        return self.qam.gaussian_logits(z, nu)[None]


@register("mf")
class MatchedFilter(LinearDetector):
    """Matched filter (graph form; see module doc)."""

    def equalize(self, graph):
        energy = ops.column_energy(graph)
        z = ops.matched_filter(graph, graph[ANTENNA].y) / energy
        (_, target), gram = graph.user_edges()
        interference = scatter(gram.abs().square(), target, dim=0,
                               dim_size=energy.numel(), reduce="sum")
        nu = (interference + graph.user_noise_var * energy) / energy.square()
        return z, nu


def hermitian_inverse(matrix: Tensor, what: str = "the system matrix") -> Tensor:
    """Inverse of Hermitian positive-definite ``[B, n, n]`` matrices (Cholesky).

    Raises ``ValueError`` naming the instances whose ``what`` is numerically
    singular.
    """
    factor, info = torch.linalg.cholesky_ex(matrix)
    if (info != 0).any():
        bad = (info != 0).nonzero()[:, 0]
        raise ValueError(f"{what} is numerically singular in instances {bad[:5].tolist()} "
                         f"({bad.numel()} in all)")
    return torch.cholesky_inverse(factor)


class SolvingDetector(LinearDetector):
    """A linear detector that inverts an ``Nt × Nt`` matrix per instance.

    Args:
        qam: the constellation.
        double: solve in float64 whatever the batch precision (default true;
            single precision loses LMMSE at very high SNR with ``Nt > Nr``).
    """

    def __init__(self, qam: QAM | int, double: bool = True):
        super().__init__(qam)
        self.double = double

    def dense_view(self, graph: MIMOGraph) -> DenseView:
        view = graph.dense()
        if not self.double:
            return view
        return replace(view, H=view.H.to(torch.complex128), y=view.y.to(torch.complex128),
                       noise_var=view.noise_var.double())

    def iterate(self, graph: MIMOGraph) -> Tensor:
        return super().iterate(graph).to(graph.noise_var.dtype)


@register("zf")
class ZeroForcing(SolvingDetector):
    """Zero forcing, ``(HᴴH)⁻¹Hᴴy``. Raises if any instance has ``Nt > Nr``."""

    def check_input(self, graph):
        super().check_input(graph)
        self.require_users_at_most_antennas(graph, "; use mmse instead", name="ZF")

    def equalize(self, graph):
        view = self.dense_view(graph)
        gram = ops.dense_gram(view.H)
        # padded users get an identity row so the system stays invertible; they decouple
        pad = (~view.user_mask).to(gram.real.dtype)
        gram = gram + torch.diag_embed(pad).to(gram.dtype)
        inverse = hermitian_inverse(gram, "HᴴH (rank-deficient channel)")
        z = (inverse @ ops.dense_matched_filter(view.H, view.y)[..., None])[..., 0]
        nu = view.noise_var[:, None] * inverse.diagonal(dim1=-2, dim2=-1).real
        return graph.users_from_dense(z), graph.users_from_dense(nu)


@register("mmse")
class LMMSE(SolvingDetector):
    """Linear MMSE with soft outputs from the post-equalisation SINR."""

    def equalize(self, graph):
        view = self.dense_view(graph)
        gram = ops.dense_gram(view.H)
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        inverse = hermitian_inverse(gram + view.noise_var[:, None, None] * eye, "HᴴH + σ²I")
        estimate = (inverse @ ops.dense_matched_filter(view.H, view.y)[..., None])[..., 0]
        # 1 − μ_i = σ² [(G + σ²I)⁻¹]_ii, computed directly: accurate at high SNR
        shortfall = view.noise_var[:, None] * inverse.diagonal(dim1=-2, dim2=-1).real
        shortfall = graph.users_from_dense(shortfall).clamp(torch.finfo(shortfall.dtype).tiny, 1.0)
        gain = 1.0 - shortfall
        return graph.users_from_dense(estimate) / gain, shortfall / gain
