r"""Pointwise MLPs: the same network applied to every user independently.

RE-MIMO's predictor (§IV-D) is one: a fully connected network with two
hidden layers of ``d_ψ/2`` and ``d_ψ/4`` units and ReLU, applied to

.. math::
    \psi_i^t = \Big[s_i^t,\ \hat x_i^{t-1},\ \frac{\delta y^{t-1}}{\sqrt{2N_t}},\ h_i,\
               \frac{\sigma}{\sqrt{2N_t}}\Big]                      \qquad (23)

and producing the new pre-softmax prediction ``x̂_i^t`` over the ``M``
constellation points. The parameters are shared by all users, so the block
is permutation equivariant and works for any user count.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from gnnmimo.blocks.base import Block, State
from gnnmimo.graph import MIMOGraph


def mlp(*sizes: int) -> nn.Sequential:
    """``Linear(sizes[0], sizes[1]) → ReLU → … → Linear(sizes[-2], sizes[-1])`` (no final activation).

    The ReLUs work in place on the fresh output of the linear layer before them (safe for autograd:
    a linear layer's backward does not need its output), which saves a large allocation per layer.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {sizes}")
    layers = []
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if k:
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


class PointwiseMLP(Block):
    r"""``state[output] = MLP([state[k] for k in inputs])``, user by user.

    Args:
        in_channels: the total width of the concatenated inputs.
        out_channels: the output width (``M`` for logits).
        hidden_channels: the hidden widths; default ``(⌈d/2⌉, ⌈d/4⌉)`` with
            ``d = in_channels``, RE-MIMO's predictor.
        inputs: the state keys concatenated (in this order) into the input;
            default RE-MIMO's ``ψ`` (eq. 23).
        output: the state key written; default ``"logits"``.

    :reads: ``inputs`` (each ``[N_u, ·]``), in this order (per instance, see
        :mod:`gnnmimo.blocks.base`).
    :writes: ``output`` ``[N_u, out_channels]``.
    """

    autocast = True  # learned: may run in reduced precision

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: Sequence[int] | None = None,
                 inputs: Sequence[str] = ("hidden", "logits", "residual", "channel", "noise"),
                 output: str = "logits"):
        super().__init__(reads=inputs, writes=(output,))
        if hidden_channels is None:
            hidden_channels = (-(-in_channels // 2), -(-in_channels // 4))
        self.in_channels = in_channels
        self.net = mlp(in_channels, *hidden_channels, out_channels)

    def update(self, graph: MIMOGraph, state: State) -> State:
        features = torch.cat([state[key] for key in self.reads], dim=-1)
        if features.shape[-1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects {self.in_channels} input features from "
                             f"{self.reads}, got {features.shape[-1]}")
        return {self.writes[0]: self.net(features)}
