r"""Approximate message passing (Jeon, Ghods, Maleki, Studer, ISIT 2015).

``T × [AMP linear step on the bipartite graph, constellation denoiser]``
from ``x̂ = 0, v = Es`` (see :mod:`gnnmimo.blocks.amp`). Runs on batches with
mixed ``Nt`` and mixed ``Nr``.

Default ``iterations = 50``: the RE-MIMO paper's AMP baseline ran 50
iterations (more did not help). No damping, as in the paper: AMP is made for
large i.i.d. systems and degrades (without NaN) on small or correlated ones.
"""
from __future__ import annotations

import torch
from torch import Tensor

from gnnmimo.blocks.amp import AMPLinear
from gnnmimo.blocks.denoiser import Denoiser, prior_state
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.graph import MIMOGraph
from zoo.registry import register


@register("amp")
class AMP(Detector):
    """Classical AMP detector; returns the denoiser's logits after each iteration.

    Args:
        qam: the constellation.
        iterations: ``T`` (default 50).
    """

    def __init__(self, qam: QAM | int, iterations: int = 50):
        super().__init__(qam)
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.iterations = iterations
        self.linear = AMPLinear()
        self.denoiser = Denoiser(self.qam)

    def iterate(self, graph: MIMOGraph) -> Tensor:
        state = prior_state(graph)
        logits = []
        for _ in range(self.iterations):
            state = self.denoiser(graph, self.linear(graph, state))
            logits.append(state["logits"])
        return torch.stack(logits)
