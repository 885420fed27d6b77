r"""Graph-transformer encoder layer over the users of each instance (RE-MIMO's encoder module).

RE-MIMO (§IV-C) updates the user states jointly with one transformer encoder
layer whose input is wider than its state: for user ``i`` at iteration ``t``

.. math::
    \phi_i^t = \Big[s_i^{t-1},\ \hat x_i^{t-1},\ \frac{\delta y^{t-1}}{\sqrt{2N_t}},\ h_i\Big]  \qquad (22)

and, with multi-head self-attention (eq. 19–21) from ``d_φ`` to ``d_s``,
residual connections and post-LayerNorm,

.. math::
    u_i = \operatorname{LayerNorm}\big(s_i^{t-1} + \operatorname{MHSA}(\Phi^t)_i\big), \qquad
    s_i^t = \operatorname{LayerNorm}\big(u_i + W_2\,\operatorname{ReLU}(W_1 u_i)\big),

with a feed-forward hidden width of ``4 d_s``. σ is not an input: it is the
same for every user and does not shape the interactions.

The attention runs either as message passing on the complete user graph or
on the padded dense layout (:mod:`gnnmimo.blocks.attention`); the two share
parameters, so ``attention=`` is an implementation choice, not a model one.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from gnnmimo.blocks.attention import self_attention
from gnnmimo.blocks.base import Block, State
from gnnmimo.blocks.mlp import mlp
from gnnmimo.graph import MIMOGraph


class TransformerEncoderLayer(Block):
    r"""One post-norm transformer encoder layer on the user graph (see module doc).

    Args:
        in_channels: ``d_φ``, the width of the concatenated inputs.
        d_model: ``d_s``, the width of the state ``hidden``.
        heads: attention heads ``H``.
        ffn_channels: feed-forward hidden width; default ``4 d_s``.
        attention: ``"dense"`` (padded, masked) or ``"graph"`` (``MessagePassing``).
        inputs: the state keys forming ``φ`` (in this order); the first must be
            ``hidden``, the residual branch. Default RE-MIMO's eq. 22.

    :reads: ``inputs``, in this order (per instance, see :mod:`gnnmimo.blocks.base`).
    :writes: ``hidden`` ``[N_u, d_s]`` and ``attention`` ``[N_u, H, Nt_max]``
        (the weights ``α_ij`` of each head, for inspection).
    """

    default_writes = ("hidden", "attention")
    autocast = True  # learned: may run in reduced precision

    def __init__(self, in_channels: int, d_model: int, heads: int, ffn_channels: int | None = None,
                 attention: str = "dense",
                 inputs: Sequence[str] = ("hidden", "logits", "residual", "channel")):
        if not inputs or inputs[0] != "hidden":
            raise ValueError(f"the first input must be 'hidden' (the residual branch), got {tuple(inputs)}")
        super().__init__(reads=inputs)
        self.in_channels = in_channels
        self.attention = self_attention(attention, in_channels, d_model, heads)
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn = mlp(d_model, ffn_channels or 4 * d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def update(self, graph: MIMOGraph, state: State) -> State:
        phi = torch.cat([state[key] for key in self.reads], dim=-1)
        if phi.shape[-1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects {self.in_channels} input features from "
                             f"{self.reads}, got {phi.shape[-1]}")
        update, weights = self.attention(graph, phi)
        hidden = self.norm1(state["hidden"] + update)
        hidden = self.norm2(hidden + self.ffn(hidden))
        return {"hidden": hidden, "attention": weights}
