r"""A learned temperature on the reported symbol logits.

Gaussian approximations (the EP cavity, AMP's decoupled observation) are
overconfident where they err, so the cross-entropy of their posteriors is
dominated by calibration: a model trained on it first learns to soften its
posteriors. Inside an iterative detector that softening also changes the
means and variances passed to the next iteration, and can cost decisions
while it lowers the loss. This block gives the loss a place to calibrate
that leaves the iteration alone: it rescales only the reported logits,

.. math::
    \operatorname{logits}_i \leftarrow e^{a + b \log σ^2_i}\,\operatorname{logits}_i,

one temperature per instance from its noise variance ``σ²`` (``a = b = 0``
at the start: the identity). The arg-max, and so every hard decision, is
unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from gnnmimo.blocks.base import Block, State
from gnnmimo.graph import MIMOGraph


class Calibration(Block):
    """``logits ← exp(a + b log σ²) · logits`` (module doc); ``a, b`` learned, starting at 0.

    :reads: ``logits [N_u, M]``.
    :writes: ``logits``.
    """

    reads = ("logits",)
    writes = ("logits",)

    def __init__(self):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(2))

    def update(self, graph: MIMOGraph, state: State) -> State:
        logits = state["logits"]
        log_noise = graph.user_noise_var.to(logits.dtype).log()
        scale = (self.log_scale[0] + self.log_scale[1] * log_noise).exp()
        return {"logits": logits * scale[:, None]}
