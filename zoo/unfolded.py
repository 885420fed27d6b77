r"""Deep-unfolded detectors: an iterative algorithm with its own parameters per layer.

OAMPNet, MMNet and DetNet unroll ``T`` iterations of an algorithm and give
each iteration (layer) ``t`` its own learned parameters, so layer ``t`` is
``state = self.layer(graph, state, t)`` rather than the shared step of
:class:`~gnnmimo.detector.UnrolledDetector`. Each layer leaves its symbol
logits in ``state["logits"] [N_u, M]`` and its soft estimate in
``state["mean"] [N_u, 2]`` (Re, Im), which these papers train on with a
squared error (:func:`gnnmimo.losses.symbol_mse_loss`) instead of a
cross-entropy: a subclass defines ``loss(graph)`` from :meth:`estimates`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gnnmimo.blocks.base import Block, State
from gnnmimo.blocks.denoiser import Denoiser, prior_state
from gnnmimo.constellation import QAM
from gnnmimo.detector import UnrolledDetector
from gnnmimo.graph import MIMOGraph


class UnfoldedDetector(UnrolledDetector):
    """An unrolled detector with its own parameters per layer: subclasses override
    :meth:`~gnnmimo.detector.UnrolledDetector.layer` (``t = 0 … T−1``), which writes
    ``logits [N_u, M]`` and ``mean [N_u, 2]``, and usually define ``loss`` from
    :meth:`estimates`.
    """

    def estimates(self, graph: MIMOGraph) -> Tensor:
        """``[T, N_u, 2]`` soft estimates ``(Re, Im)`` after each layer, on a validated batch."""
        self.check_input(graph)
        return torch.stack([state["mean"] for state in self.states(graph)])


class LinearDenoiserNet(UnfoldedDetector):
    """``T`` layers ``[own linear step, shared constellation denoiser]`` from the prior ``x̂ = 0, v = Es``.

    The linear step of layer ``t`` (a block reading ``mean`` and writing the
    Gaussian observation ``obs_mean, obs_var``) comes from :meth:`make_linear`;
    OAMPNet and MMNet differ only there and in their loss.

    Args:
        qam: the constellation.
        iterations: layers ``T``.
        double: compute the linear steps in float64.
    """

    def __init__(self, qam: QAM | int, iterations: int = 10, double: bool = False):
        super().__init__(qam, iterations)
        self.linears = nn.ModuleList(self.make_linear(double) for _ in range(iterations))
        self.denoiser = Denoiser(self.qam)

    def make_linear(self, double: bool) -> Block:
        """A new linear step with its own parameters."""
        raise NotImplementedError

    def initial_state(self, graph: MIMOGraph) -> State:
        return prior_state(graph)

    def layer(self, graph: MIMOGraph, state: State, t: int) -> State:
        return self.denoiser(graph, self.linears[t](graph, state))
