r"""Orthogonal AMP (Ma & Ping 2017), the classical form of OAMPNet (He et al. 2018).

``T × [OAMP linear step (de-correlated LMMSE), constellation denoiser]``
from ``x̂ = 0`` with ``γ = θ = 1`` (see :mod:`gnnmimo.blocks.oamp`).

Default ``iterations = 10``: OAMPNet's 10 layers, against which OAMP is
compared in He et al. The denoiser is the posterior mean ``E[x | r_t, τ_t²]``
as in He et al.'s statement of OAMP (the error variance ``v_t²`` of the next
step is re-estimated from the residual, not propagated from the denoiser).
"""
from __future__ import annotations

from gnnmimo.blocks import Chain, State
from gnnmimo.blocks.denoiser import PRIOR_KEYS, Denoiser, prior_state
from gnnmimo.blocks.oamp import OAMPLinear
from gnnmimo.constellation import QAM
from gnnmimo.detector import UnrolledDetector
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register


@register("oamp")
class OAMP(UnrolledDetector):
    """Classical OAMP detector; returns the denoiser's logits after each iteration.

    Args:
        qam: the constellation.
        iterations: ``T`` (default 10).
        double: compute the linear step in float64.
    """

    def __init__(self, qam: QAM | int, iterations: int = 10, double: bool = False):
        super().__init__(qam, iterations)
        self.linear = OAMPLinear(double=double)
        self.denoiser = Denoiser(self.qam)
        self.chain = Chain(self.linear, self.denoiser, given=PRIOR_KEYS, register=False)

    def initial_state(self, graph: MIMOGraph) -> State:
        return prior_state(graph)

    def step(self, graph: MIMOGraph, state: State) -> State:
        return self.chain(graph, state)
