r"""Expectation propagation detector (Céspedes et al., IEEE TCOM 2014).

``T × [EP cavity (batched solve), constellation denoiser (tilted posterior),
EP site update]`` from ``λ = 1/Es, γ = 0`` (see :mod:`gnnmimo.blocks.ep`).
The logits of iteration ``t`` are those of the tilted posterior ``p_i`` of
that iteration; the decision uses the last one.

Defaults follow the baseline behind the published EP numbers
(docs/published-results.md): ``T = 10``, damping ``β = 0.9``
on the old value, ``ε = 1e-13`` in float64 (``double=True``).
"""
from __future__ import annotations

from gnnmimo.blocks import Chain, State
from gnnmimo.blocks.denoiser import Denoiser
from gnnmimo.blocks.ep import EPCavity, EPUpdate
from gnnmimo.constellation import QAM
from gnnmimo.detector import UnrolledDetector
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register


@register("ep")
class EP(UnrolledDetector):
    """Classical EP detector; a batch's channel-estimation error variance is folded into its noise
    first (:meth:`~gnnmimo.graph.MIMOGraph.error_in_noise`).

    Args:
        qam: the constellation.
        iterations: ``T`` (default 10).
        damping: ``β``, the weight of the old site parameters (default 0.9).
        eps: the variance floor ``ε`` of the cavity and the tilted posterior
            (default 1e-13 in float64, 1e-7 in float32).
        double: compute in float64 whatever the batch precision (default true).
            The logits are returned in the batch's precision.
    """

    uses_error_variance = True

    def __init__(self, qam: QAM | int, iterations: int = 10, damping: float = 0.9,
                 eps: float | None = None, double: bool = True):
        super().__init__(qam, iterations)
        self.cavity = EPCavity(eps=eps, double=double)
        self.denoiser = Denoiser(self.qam, eps=eps)
        self.site_update = EPUpdate(damping)
        # the site update leaves the tilted posterior's logits in the state
        self.chain = Chain(self.cavity, self.denoiser, self.site_update, given=(), register=False)

    def step(self, graph: MIMOGraph, state: State) -> State:
        return self.chain(graph, state)
