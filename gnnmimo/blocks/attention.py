r"""Multi-head self-attention over the users of each instance, in two implementations.

Scaled dot-product attention (Vaswani et al.; RE-MIMO eq. 19–21): every user
``i`` of an instance attends to every user ``j`` of the same instance,
itself included,

.. math::
    \alpha^h_{ij} = \operatorname{softmax}_j\!\Big(\frac{(W^q_h\phi_i)^\top (W^k_h\phi_j)}{\sqrt{d_k}}\Big),
    \qquad
    \operatorname{out}_i = W^o\,\big\Vert_{h=1}^{H} \sum_j \alpha^h_{ij}\, W^v_h\phi_j .

As in RE-MIMO the input width ``d_φ`` and the output width ``d_s`` may
differ: ``W^q_h, W^k_h, W^v_h ∈ R^{d_k × d_φ}`` with ``d_k = ⌈d_φ/H⌉`` by
default, ``W^o ∈ R^{d_s × H d_k}`` (all with biases).

* :class:`GraphSelfAttention` is a PyG ``MessagePassing`` over the complete
  user graph (:meth:`~gnnmimo.graph.MIMOGraph.user_edges` plus a self-loop
  per user); the softmax runs over the incoming edges of each user
  (:func:`torch_geometric.utils.softmax`). It costs ``O(Σ_b Nt_b²)`` edges.
* :class:`DenseSelfAttention` pads the users to ``[B, Nt_max]``
  (``to_dense_batch``) and masks padded keys: batched matrix products, the
  fast path for complete graphs.

Both have the same parameters under the same names, so a state dict moves
freely between them, and give the same numbers (tested on mixed-``Nt``
batches). Both return the attention weights as ``[N_u, H, Nt_max]``: row
``i`` holds ``α^h_{ij}`` for the users ``j`` of ``i``'s instance in their
instance order (zeros past ``Nt_b``).
"""
from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import add_self_loops, softmax

from gnnmimo.graph import USER, MIMOGraph
from gnnmimo.precision import autocast_input


class _Projections:
    """The parameters shared by both implementations (``query``, ``key``, ``value``, ``out``)."""

    def _init_projections(self, in_channels: int, out_channels: int, heads: int,
                          head_channels: int | None) -> None:
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.head_channels = head_channels or -(-in_channels // heads)
        width = heads * self.head_channels
        self.query = nn.Linear(in_channels, width)
        self.key = nn.Linear(in_channels, width)
        self.value = nn.Linear(in_channels, width)
        self.out = nn.Linear(width, out_channels)
        self.scale = self.head_channels ** -0.5

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[..., d_φ]`` → query, key, value, each ``[..., H, d_k]``."""
        shape = (*x.shape[:-1], self.heads, self.head_channels)
        return self.query(x).view(shape), self.key(x).view(shape), self.value(x).view(shape)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, heads={self.heads}, "
                f"head_channels={self.head_channels}")


class GraphSelfAttention(_Projections, MessagePassing):
    """Self-attention as message passing on the complete user graph (see module doc).

    Args:
        in_channels: ``d_φ``.
        out_channels: ``d_s``.
        heads: ``H``.
        head_channels: ``d_k = d_v``; default ``⌈d_φ / H⌉``.

    :input: ``graph`` (its user edges come from :meth:`MIMOGraph.user_edges`), ``x [N_u, d_φ]``.
    :output: ``(out [N_u, d_s], attention [N_u, H, Nt_max])``.
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int, head_channels: int | None = None):
        super().__init__(aggr="sum", node_dim=0)
        self._init_projections(in_channels, out_channels, heads, head_channels)
        self._alpha: Tensor | None = None

    def forward(self, graph: MIMOGraph, x: Tensor) -> tuple[Tensor, Tensor]:
        num_users = graph[USER].num_nodes
        edge_index, _ = add_self_loops(graph.user_edges()[0], num_nodes=num_users)
        query, key, value = self._split(autocast_input(x))
        out = self.propagate(edge_index, query=query, key=key, value=value, size=(num_users, num_users))
        alpha, self._alpha = self._alpha, None
        source, target = edge_index
        attention = alpha.new_zeros(num_users, self.heads, int(graph.num_users.max()))
        attention[target, :, graph.user_index[source]] = alpha
        return self.out(out.flatten(1)), attention

    def message(self, query_i: Tensor, key_j: Tensor, value_j: Tensor, index: Tensor,
                ptr: Tensor | None, size_i: int | None) -> Tensor:
        score = (query_i * key_j).sum(-1) * self.scale                   # [E, H]
        alpha = softmax(score, index, ptr, size_i)                        # over the edges into i
        self._alpha = alpha
        return value_j * alpha[..., None]


class DenseSelfAttention(_Projections, nn.Module):
    """Self-attention on the padded ``[B, Nt_max]`` layout with a key padding mask.

    Same arguments, parameters, inputs and outputs as :class:`GraphSelfAttention`.
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int, head_channels: int | None = None):
        super().__init__()
        self._init_projections(in_channels, out_channels, heads, head_channels)

    def forward(self, graph: MIMOGraph, x: Tensor) -> tuple[Tensor, Tensor]:
        mask = graph.user_mask()                                          # [B, Nt]
        query, key, value = (t.transpose(1, 2) for t in self._split(graph.users_to_dense(autocast_input(x))))
        score = (query @ key.transpose(-1, -2)) * self.scale              # [B, H, Nt, Nt]
        score = score.masked_fill(~mask[:, None, None, :], float("-inf"))
        alpha = score.softmax(-1)
        out = (alpha @ value).transpose(1, 2).flatten(2)                  # [B, Nt, H d_k]
        return self.out(graph.users_from_dense(out)), graph.users_from_dense(alpha.transpose(1, 2))


ATTENTIONS = {"dense": DenseSelfAttention, "graph": GraphSelfAttention}


def self_attention(kind: str, in_channels: int, out_channels: int, heads: int,
                   head_channels: int | None = None) -> nn.Module:
    """Build the ``"dense"`` or ``"graph"`` implementation."""
    if kind not in ATTENTIONS:
        raise ValueError(f"unknown attention implementation {kind!r}; use one of {sorted(ATTENTIONS)}")
    return ATTENTIONS[kind](in_channels, out_channels, heads, head_channels)
