"""Linear detectors: matched filter, zero forcing and LMMSE.

Each scores its equaliser's Gaussian observation ``z_i = x_i + w_i``,
``w_i ~ CN(0, ν_i)`` per user with ``logit(s) = −|z_i − s|² / ν_i``; the
equalisers and their maths are in :mod:`gnnmimo.equalization`.
"""
from __future__ import annotations

from torch import Tensor

from gnnmimo import equalization
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register


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
    """Matched filter (:func:`gnnmimo.equalization.mf_equalize`)."""

    def equalize(self, graph):
        return equalization.mf_equalize(graph)


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


@register("zf")
class ZeroForcing(SolvingDetector):
    """Zero forcing, ``(HᴴH)⁻¹Hᴴy`` (:func:`gnnmimo.equalization.zf_equalize`).
    Raises if any instance has ``Nt > Nr``."""

    needs_users_at_most_antennas = True
    users_at_most_antennas_hint = "; use mmse instead"
    display_name = "ZF"

    def equalize(self, graph):
        return equalization.zf_equalize(graph, self.double)


@register("mmse")
class LMMSE(SolvingDetector):
    """Linear MMSE with soft outputs from the post-equalisation SINR
    (:func:`gnnmimo.equalization.lmmse_equalize`); with a batch's channel-estimation error variance
    folded into its noise (:meth:`~gnnmimo.graph.MIMOGraph.error_in_noise`)."""

    uses_error_variance = True

    def equalize(self, graph):
        return equalization.lmmse_equalize(graph, self.double)
