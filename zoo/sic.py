"""Interference-cancellation detectors: ordered MMSE-SIC (V-BLAST) and ZF + one-shot PIC.

Both end, per user, with a scalar Gaussian observation ``z_i = x_i + w_i``,
``w_i ~ CN(0, ν_i)``, scored by :meth:`QAM.gaussian_logits`
(``logit(s) = −|z_i − s|²/ν_i``); the algorithms are in
:mod:`gnnmimo.equalization`.
"""
from __future__ import annotations

from torch import Tensor

from gnnmimo import equalization
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register
from zoo.linear import LinearDetector, ZeroForcing


@register("vblast")
class VBLAST(LinearDetector):
    """Ordered successive interference cancellation with MMSE nulling (MMSE V-BLAST),
    :func:`gnnmimo.equalization.vblast_equalize`. Works for any ``Nt``, ``Nr``."""

    def equalize(self, graph: MIMOGraph) -> tuple[Tensor, Tensor]:
        return equalization.vblast_equalize(graph, self.qam)


@register("zf-pic")
class ZFPIC(ZeroForcing):
    """Zero forcing followed by one-shot parallel interference cancellation,
    :func:`gnnmimo.equalization.zf_pic_equalize`.

    This is what the RE-MIMO paper's "V-BLAST" baseline really computed (the
    code it took from an earlier repository): ZF, hard decisions and a single
    parallel cancellation — not ordered successive cancellation, which is
    :class:`VBLAST` (``"vblast"``). Needs ``Nt ≤ Nr`` (ZF).
    """

    def equalize(self, graph: MIMOGraph) -> tuple[Tensor, Tensor]:
        return equalization.zf_pic_equalize(graph, self.qam, self.double)
