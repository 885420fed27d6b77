r"""Approximate message passing (Jeon, Ghods, Maleki, Studer, ISIT 2015).

``T × [AMP linear step on the bipartite graph, constellation denoiser]``
from ``x̂ = 0, v = Es`` (see :mod:`gnnmimo.blocks.amp`). Runs on batches with
mixed ``Nt`` and mixed ``Nr``.

Default ``iterations = 50``: the RE-MIMO paper's AMP baseline ran 50
iterations (more did not help). No damping, as in the paper: AMP is made for
large i.i.d. systems and degrades (without NaN) on small or correlated ones.
"""
from __future__ import annotations

from gnnmimo.blocks import Chain, State
from gnnmimo.blocks.amp import AMPLinear
from gnnmimo.blocks.denoiser import PRIOR_KEYS, Denoiser, prior_state
from gnnmimo.constellation import QAM
from gnnmimo.detector import UnrolledDetector
from gnnmimo.graph import MIMOGraph
from gnnmimo.registry import register


@register("amp")
class AMP(UnrolledDetector):
    """Classical AMP detector; returns the denoiser's logits after each iteration.

    Args:
        qam: the constellation.
        iterations: ``T`` (default 50).
    """

    def __init__(self, qam: QAM | int, iterations: int = 50):
        super().__init__(qam, iterations)
        self.linear = AMPLinear()
        self.denoiser = Denoiser(self.qam)
        self.chain = Chain(self.linear, self.denoiser, given=PRIOR_KEYS, register=False)

    def initial_state(self, graph: MIMOGraph) -> State:
        return prior_state(graph)

    def step(self, graph: MIMOGraph, state: State) -> State:
        return self.chain(graph, state)
