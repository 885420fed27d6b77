r"""Orthogonal AMP (Ma & Ping 2017), the classical form of OAMPNet (He et al. 2018).

``T × [OAMP linear step (de-correlated LMMSE), constellation denoiser]``
from ``x̂ = 0`` with ``γ = θ = 1`` (see :mod:`gnnmimo.blocks.oamp`).

Default ``iterations = 10``: OAMPNet's 10 layers, against which OAMP is
compared in He et al. The denoiser is the posterior mean ``E[x | r_t, τ_t²]``
as in He et al.'s statement of OAMP (the error variance ``v_t²`` of the next
step is re-estimated from the residual, not propagated from the denoiser).
"""
from __future__ import annotations

import torch
from torch import Tensor

from gnnmimo.blocks.denoiser import Denoiser, prior_state
from gnnmimo.blocks.oamp import OAMPLinear
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.graph import MIMOGraph
from zoo.registry import register


@register("oamp")
class OAMP(Detector):
    """Classical OAMP detector; returns the denoiser's logits after each iteration.

    Args:
        qam: the constellation.
        iterations: ``T`` (default 10).
        double: compute the linear step in float64.
    """

    def __init__(self, qam: QAM | int, iterations: int = 10, double: bool = False):
        super().__init__(qam)
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.iterations = iterations
        self.linear = OAMPLinear(double=double)
        self.denoiser = Denoiser(self.qam)

    def iterate(self, graph: MIMOGraph) -> Tensor:
        state = prior_state(graph)
        logits = []
        for _ in range(self.iterations):
            state = self.denoiser(graph, self.linear(graph, state))
            logits.append(state["logits"])
        return torch.stack(logits).to(graph.noise_var.dtype)
