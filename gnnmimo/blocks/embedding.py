r"""Initial user states: the transmitter-count encoding TE and the embedding network.

**TE** (RE-MIMO §IV-F, eq. 25–26) tells every user how many co-transmitters
its instance has, with the sinusoids of the transformer's positional
encoding, indexed by the user count ``Nt`` instead of a position:

.. math::
    TE_{2i}(N_t) = \sin\!\big(N_t / (2N_r)^{2i/d_{TE}}\big) / \sqrt{d_s}, \qquad
    TE_{2i+1}(N_t) = \cos\!\big(N_t / (2N_r)^{2i/d_{TE}}\big) / \sqrt{d_s}.

The wavelengths run from ``2π`` to ``2N_r · 2π``; the paper takes
``d_TE = N_r``. Sinusoids (rather than a learned table) let the network
interpolate to user counts it has not seen.

**Embedding network** γ (§IV-E, eq. 24): a pointwise MLP with one hidden
layer of ``4 d_s`` units and ReLU maps the hand-designed features

.. math::
    f_i = \Big[\frac{y}{\sqrt{2N_t}},\ h_i,\ \frac{\sigma}{\sqrt{2N_t}},\ TE(N_t)\Big]

to the initial state ``s_i^0 = γ(f_i) · √d_s``. The ``y / √(2Nt)`` and
``σ / √(2Nt)`` features are those of
:class:`~gnnmimo.blocks.likelihood.LikelihoodFeatures` evaluated before the
first prediction (``x̂ = 0`` → ``z = 0`` → ``δy = y``), so the block reads
them from the state.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gnnmimo.blocks.base import Block, State
from gnnmimo.blocks.mlp import mlp
from gnnmimo.graph import MIMOGraph


def transmitter_encoding(num_users: Tensor, nr: int, dim: int, d_model: int) -> Tensor:
    """TE of eq. 25–26: ``[B]`` user counts → ``[B, dim]`` (any float dtype of the default)."""
    i = torch.arange(dim, device=num_users.device) // 2
    frequency = (2.0 * nr) ** (-2.0 * i / dim)
    phase = num_users.to(torch.get_default_dtype())[:, None] * frequency
    even = (torch.arange(dim, device=num_users.device) % 2) == 0
    return torch.where(even, phase.sin(), phase.cos()) / math.sqrt(d_model)


class TransmitterEncoding(nn.Module):
    """TE as a module: ``graph → [N_u, dim]``, the encoding of each user's ``Nt``.

    Args:
        nr: the receive antennas ``N_r`` (sets the longest wavelength).
        dim: ``d_TE`` (the paper: ``N_r``).
        d_model: ``d_s``, the state width (sets the scale ``1/√d_s``).
    """

    def __init__(self, nr: int, dim: int, d_model: int):
        super().__init__()
        self.nr, self.dim, self.d_model = nr, dim, d_model

    def forward(self, graph: MIMOGraph) -> Tensor:
        encoding = transmitter_encoding(graph.num_users, self.nr, self.dim, self.d_model)
        return encoding[graph.user_batch]

    def extra_repr(self) -> str:
        return f"nr={self.nr}, dim={self.dim}, d_model={self.d_model}"


class Embedding(Block):
    r"""RE-MIMO's embedding network γ: initial state ``s_i^0 = γ(f_i) √d_s`` (eq. 24).

    Args:
        nr: receive antennas ``N_r`` (the features are ``2 N_r`` wide).
        d_model: the state width ``d_s``.
        te_dim: ``d_TE``; default ``N_r`` as in the paper.

    :reads: ``residual`` ``[N_u, 2Nr]`` (``y/√(2Nt)`` before any prediction),
        ``channel`` ``[N_u, 2Nr]``, ``noise`` ``[N_u, 1]``.
    :writes: ``hidden`` ``[N_u, d_s]``.
    """

    default_reads = ("residual", "channel", "noise")
    default_writes = ("hidden",)
    autocast = True  # learned: may run in reduced precision

    def __init__(self, nr: int, d_model: int, te_dim: int | None = None):
        super().__init__()
        self.d_model = d_model
        self.encoding = TransmitterEncoding(nr, nr if te_dim is None else te_dim, d_model)
        self.net = mlp(4 * nr + 1 + self.encoding.dim, 4 * d_model, d_model)

    def update(self, graph: MIMOGraph, state: State) -> State:
        te = self.encoding(graph).to(state["residual"].dtype)
        features = torch.cat([state["residual"], state["channel"], state["noise"], te], dim=-1)
        return {"hidden": self.net(features) * math.sqrt(self.d_model)}
