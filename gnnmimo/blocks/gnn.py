r"""Pairwise-MRF graph neural network (Scotti et al. 2020; GEPNet, Kosasih et al. 2022).

The posterior of the real-valued model ``y_r = H_r x_r + n_r`` (``σr² = σ²/2``,
:mod:`gnnmimo.blocks.real`) factorises over a pairwise Markov random field

.. math::
    p(x \mid y) \propto \prod_k \exp\Big(\frac{y^{\mathsf T}h_k x_k - \tfrac12 h_k^{\mathsf T}h_k x_k^2}{\sigma_r^2}\Big)
    \prod_{k<l} \exp\Big(-\frac{h_k^{\mathsf T}h_l\, x_k x_l}{\sigma_r^2}\Big)\, p(x_k),

one node per **real component** ``k`` (``h_k`` a column of ``H_r``) and a
complete graph. The GNN learns to pass messages on it:

* node input ``a_k = [y^{\mathsf T}h_k, −h_k^{\mathsf T}h_k, σr²]``, embedded once,
  ``u_k⁰ = W_a a_k + b_a`` (``S_u`` wide);
* edge input ``e_{kl} = [−h_k^{\mathsf T}h_l, σr²]`` on every ordered pair ``l → k``, ``l ≠ k``;
* ``L`` rounds of

  .. math::
      M_k = \sum_{l \ne k} \operatorname{MLP}_m([u_k, u_l, e_{kl}]),\quad
      g_k \leftarrow \operatorname{GRU}([M_k, c_k], g_k),\quad
      u_k = W_u g_k + b_u,

  where ``c_k`` are optional per-component inputs: a Gaussian observation
  ``x_k ≈ r_k + N(0, τ_k)`` from the detector around the GNN (GEPNet: the
  EP cavity ``t_k, h_k²``; AMP-GNN: AMP's ``r_k, Σ_k``), entering as
  ``c_k = [r_k, log τ_k]`` (the log keeps variances from ``1e-7`` to ``1e3``
  on one scale);
* readout ``MLP_r(u_k)`` → logits over the PAM alphabet of component ``k``.

**Observation skip** (``skip=True``, not in the papers): the readout is
added to the Gaussian observation's own log-likelihood,
``ℓ_k(s) = −(s − r_k)²/(2τ_k) + MLP_r(u_k)(s)``, and the readout's last
layer starts at zero. The untrained block then returns exactly the
constellation denoiser's posterior, so EP-GNN starts as EP and AMP-GNN as
AMP, and the GNN learns a correction of the Gaussian approximation (the
role the AMP-GNN paper gives it). With ``skip=False`` the GNN's logits are
used alone, as in GEPNet.

**Gaussian refinement** (``refine=True``, with the skip; not in the papers):
the readout also gives a shift ``δ_k`` and a log-scale ``ν_k`` of the
observation, on its own scale,

.. math::
    ℓ_k(s) = -\frac{(s - r_k - \sqrt{τ_k}\,δ_k)^2}{2 τ_k e^{ν_k}} + \operatorname{MLP}_r(u_k)(s),

so the GNN corrects the observation's mean (residual interference) and its
confidence directly, at every SNR, which an additive logit correction can
only approximate (its log-likelihood scales as ``1/τ_k``). ``δ, ν`` start
at zero too.

**Report head** (``report=True``, with the skip; not in the papers): a
second readout of the same form gives the posterior the detector *reports*
(``report_pam_logits``), while the first gives the one it *iterates with*
(``pam_logits``, e.g. EP's tilted distribution). A proper loss on the
reported posterior rewards hedging on components at risk; with one head,
that hedging also inflates the variances fed back into the iteration and
costs decisions. With two heads the
iterating head is trained only through what it does to later iterations
(the training runs behind this: docs/training.md §3).
AMP-GNN also needs AMP's Onsager term to see the rescaled observation
(``obs_log_scale``, :mod:`zoo.ampgnn`).

**Real nodes on the user graph.** Component ``k`` is ``Re x_i`` or ``Im x_i``
of user ``i``: real node ``2i + c`` (``c = 0`` Re, ``1`` Im). With
``g = h_iᴴh_j = a + jb`` (the ``gram`` of the complete user graph,
:meth:`MIMOGraph.user_edges`), the real Gram block of users ``i, j`` is
``[[a, −b], [b, a]]`` and ``y^{\mathsf T}h_k`` are the Re/Im parts of
``h_iᴴy``; the two components of one user are orthogonal columns
(``e = 0``), and are joined by an edge too, as in the complete graph. So a
batch of ``N_u`` users is a graph of ``2N_u`` real nodes, built edge-wise
from the user graph (any mix of ``Nt`` and ``Nr``, no padding). Node state
is stored per user, ``[N_u, 2, ·]``, to keep the block contract.

**Two implementations of the messages** (``messages=``), with the same
parameters under the same names, so a state dict or checkpoint moves freely
between them, and the same numbers (tested on mixed-``Nt`` batches, outputs
and gradients, for every MRF-GNN detector of the zoo):

* ``"graph"``: a PyG ``MessagePassing`` over the edge list above, the MLP on
  each of the ``Σ_b 2Nt_b(2Nt_b − 1)`` edges (the reference form).
* ``"dense"`` (default): the real nodes padded to ``[B, n]``, ``n = 2Nt_max``
  (node ``2i + c`` of an instance, :meth:`MIMOGraph.users_to_dense`), and
  the edge weights read off the dense Gram ``HᴴH``. The first layer of the
  message MLP is split by its input blocks,

  .. math::
      W [u_k; u_l; e_{kl}] + b = \underbrace{W_a u_k + b + w_σ σ_r^2}_{\text{per receiver}}
      + \underbrace{W_b u_l}_{\text{per sender}} - w_g\, h_k^{\mathsf T}h_l ,

  so it costs ``O(n·d²)`` per instance and is broadcast-added to the pairs
  ``[B, n, n, ·]``; the hidden layers run on the pairs; the sum over
  ``l ≠ k`` is a masked sum (padded nodes and the diagonal masked), and,
  the MLP's last layer being linear, it comes *before* that layer:
  ``M_k = W_o Σ_l z_{kl} + (n_b − 1) b_o``. The pairs are processed in
  blocks of instances of about :data:`PAIRS_PER_BLOCK` pairs, so that the
  ``[·, n, n, 64]`` intermediates stay in the cache instead of streaming
  hundreds of megabytes through memory (at 64×32, batch 1024, one
  ``[B, n, n, 64]`` float32 tensor is 1 GB). Measured on one CPU thread
  (``benchmarks/mrf_gnn.py``) it is several times faster than the edge list
  at every size, which is why it is the default. A batch that carries its own
  user edges (:meth:`MIMOGraph.add_user_edges`, or any user graph set by
  hand) runs on the edge list whatever the option, since its graph need not
  be complete.

Everything is shared across nodes and edges, so the block is permutation
equivariant in the users and works for any user count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from gnnmimo import ops
from gnnmimo.blocks.base import Block, State
from gnnmimo.blocks.denoiser import corrected_log_likelihood
from gnnmimo.blocks.mlp import mlp
from gnnmimo.constellation import QAM
from gnnmimo.graph import ANTENNA, INTERFERENCE, USER, MIMOGraph

#: the four real edges of a user edge j → i: (component c' of j, component c of i) and the
#: coefficients (of a, of b) of h_kᵀh_l in g = h_iᴴh_j = a + jb
_COMPONENT_PAIRS = ((0, 0), (1, 0), (0, 1), (1, 1))
_GRAM_COEFFICIENTS = ((1.0, 0.0), (0.0, -1.0), (0.0, 1.0), (1.0, 0.0))
#: pairs per block of instances on the dense path (module doc): 16384 pairs × 64 float32 channels
#: are 4 MB, within this CPU's cache; measured best of 4096 … 65536 (benchmarks/mrf_gnn.py)
PAIRS_PER_BLOCK = 16384
#: the implementations of the messages (module doc)
MESSAGES = ("dense", "graph")


@dataclass(eq=False)
class RealComponentGraph:
    """The pairwise MRF of a batch on its ``2N_u`` real components, as an edge list (module doc).

    Attributes:
        node_input: ``[2N_u, 3]`` ``[yᵀh_k, −h_kᵀh_k, σr²]``.
        edge_index: ``[2, E]`` source ``l``, target ``k`` (all ordered pairs of an instance).
        edge_input: ``[E, 2]`` ``[−h_kᵀh_l, σr²]``.
    """

    node_input: Tensor
    edge_index: Tensor
    edge_input: Tensor


@dataclass(eq=False)
class DenseRealComponents:
    """The pairwise MRF of a batch (or of a block of its instances) on the padded layout of its
    real components (module doc).

    Real node ``2i + c`` of an instance is component ``c`` of its user ``i``; ``n = 2Nt_max``.

    Attributes:
        node_input: ``[2N_u, 3]`` as :attr:`RealComponentGraph.node_input`.
        gram: ``[B, n, n]`` ``h_kᵀh_l`` (zero on padding).
        noise_var: ``[B]`` ``σr²``.
        pair_mask: ``[B, n, n]`` 1 on the pairs ``l ≠ k`` of real nodes, else 0 (in ``gram``'s dtype).
        degree: ``[2N_u, 1]`` ``2Nt_b − 1``, the neighbours of each real node.
        position: ``[2N_u]`` each real node's row ``b·n + 2i + c`` in the flattened ``[B·n]`` layout.
        node_ptr: ``B + 1`` ints, the first real node of each instance (and the total).
    """

    node_input: Tensor
    gram: Tensor
    noise_var: Tensor
    pair_mask: Tensor
    degree: Tensor
    position: Tensor
    node_ptr: list[int]

    def blocks(self, pairs: int | None) -> Iterator[tuple[slice, "DenseRealComponents"]]:
        """Consecutive blocks of instances of at most ``pairs`` pairs (at least one instance;
        ``None``: the whole batch), each as ``(its rows of the real nodes, its view)``."""
        batch, n = self.gram.shape[:2]
        step = batch if pairs is None else max(1, pairs // (n * n))
        for start in range(0, batch, step):
            stop = min(start + step, batch)
            first, last = self.node_ptr[start], self.node_ptr[stop]
            nodes = slice(first, last)
            yield nodes, DenseRealComponents(
                self.node_input[nodes], self.gram[start:stop], self.noise_var[start:stop],
                self.pair_mask[start:stop], self.degree[nodes], self.position[nodes] - start * n,
                [ptr - first for ptr in self.node_ptr[start:stop + 1]])


def real_component_graph(graph: MIMOGraph, dtype: torch.dtype) -> RealComponentGraph:
    """The real-component MRF of ``graph`` as an edge list, memoised on the batch per dtype
    (:meth:`MIMOGraph.memoised`); the batch itself is left as it is."""
    return graph.memoised(("real_component_graph", dtype), lambda: _build_real_component_graph(graph, dtype))


def dense_real_components(graph: MIMOGraph, dtype: torch.dtype) -> DenseRealComponents:
    """The real-component MRF of ``graph`` in the padded layout, memoised like
    :func:`real_component_graph`."""
    return graph.memoised(("dense_real_components", dtype), lambda: _build_dense_real_components(graph, dtype))


def _node_input(graph: MIMOGraph, dtype: torch.dtype) -> Tensor:
    """``[2N_u, 3]`` ``[yᵀh_k, −h_kᵀh_k, σr²]`` per real node."""
    noise_var = (graph.user_noise_var / 2).to(dtype)                              # σr² per user
    matched = torch.view_as_real(ops.matched_filter(graph, graph[ANTENNA].received)).to(dtype)   # [N_u, 2]
    energy = ops.column_energy(graph).to(dtype)[:, None].expand(-1, 2)
    return torch.stack([matched, -energy, noise_var[:, None].expand(-1, 2)], dim=-1).reshape(-1, 3)


def _build_real_component_graph(graph: MIMOGraph, dtype: torch.dtype) -> RealComponentGraph:
    num_users = graph.user_batch.numel()
    noise_var = (graph.user_noise_var / 2).to(dtype)
    (source, target), gram = graph.user_edges()                                 # user j → user i
    gram = torch.view_as_real(gram).to(dtype)                                    # (a, b), [E_u, 2]
    pairs = torch.tensor(_COMPONENT_PAIRS, device=source.device)
    cross_source = (2 * source[:, None] + pairs[:, 0]).reshape(-1)
    cross_target = (2 * target[:, None] + pairs[:, 1]).reshape(-1)
    cross_weight = (gram @ torch.tensor(_GRAM_COEFFICIENTS).to(gram).T).reshape(-1)   # h_kᵀh_l, [4E_u]
    users = torch.arange(num_users, device=source.device)
    own_source = torch.stack([2 * users, 2 * users + 1], -1).reshape(-1)         # Re ↔ Im of one user
    own_target = torch.stack([2 * users + 1, 2 * users], -1).reshape(-1)
    edge_index = torch.stack([torch.cat([cross_source, own_source]), torch.cat([cross_target, own_target])])
    weight = torch.cat([cross_weight, cross_weight.new_zeros(own_source.numel())])
    edge_input = torch.stack([-weight, noise_var.repeat_interleave(2)[edge_index[1]]], dim=-1)
    return RealComponentGraph(_node_input(graph, dtype), edge_index, edge_input)


def _build_dense_real_components(graph: MIMOGraph, dtype: torch.dtype) -> DenseRealComponents:
    a, b = torch.view_as_real(ops.dense_gram(graph.dense().H)).to(dtype).unbind(-1)   # g_ij = a + jb
    blocks = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)     # [B, i, j, c, c']
    batch, users = a.shape[:2]
    n = 2 * users
    gram = blocks.transpose(2, 3).reshape(batch, n, n)                              # row 2i + c, column 2j + c'
    node_mask = graph.user_mask().repeat_interleave(2, dim=1)                        # [B, n]
    pairs = node_mask[:, :, None] & node_mask[:, None, :]
    pairs &= ~torch.eye(n, dtype=torch.bool, device=pairs.device)
    degree = (2 * graph.num_users - 1)[graph.user_batch].repeat_interleave(2).to(dtype)[:, None]
    position = node_mask.flatten().nonzero()[:, 0]
    return DenseRealComponents(_node_input(graph, dtype), gram, (graph.noise_var / 2).to(dtype),
                               pairs.to(dtype), degree, position, (2 * graph[USER].ptr).tolist())


class MRFMessages(MessagePassing):
    """``M_k = Σ_{l≠k} MLP([u_k, u_l, e_kl])`` (sum aggregation; ``u_k`` the receiver), on the
    edge list (:meth:`forward`) or on the padded layout (:meth:`dense`); see the module doc.

    Args:
        node_channels: ``S_u``; edge_channels: width of ``e_kl``;
        hidden_channels: the MLP's hidden widths; out_channels: width of ``M_k``.
    """

    def __init__(self, node_channels: int, edge_channels: int, hidden_channels: Sequence[int],
                 out_channels: int):
        super().__init__(aggr="add")
        self.node_channels = node_channels
        self.net = mlp(2 * node_channels + edge_channels, *hidden_channels, out_channels)

    def forward(self, u: Tensor, edge_index: Tensor, edge_input: Tensor) -> Tensor:
        return self.propagate(edge_index, u=u, edge_input=edge_input)

    def message(self, u_i: Tensor, u_j: Tensor, edge_input: Tensor) -> Tensor:
        return self.net(torch.cat([u_i, u_j, edge_input], dim=-1))

    def dense(self, u: Tensor, mrf: DenseRealComponents, scratch: "Scratch | None" = None) -> Tensor:
        """``M [2N, out]`` from the states ``u [2N, S_u]`` of the real nodes of ``mrf`` (a batch or
        a block of it), on the padded layout, with the edge inputs ``e_kl = [−h_kᵀh_l, σr²]``
        (module doc). The pair tensors are written into ``scratch``'s buffers when given."""
        scratch = scratch or Scratch(enabled=False)
        first, hidden = self.net[0], self.net[1:-1]
        last = self.net[-1] if len(self.net) > 1 else None
        w_receiver, w_sender, w_gram, w_noise = first.weight.split([self.node_channels] * 2 + [1, 1], dim=1)
        batch, n = mrf.gram.shape[:2]
        padded = u.new_zeros(batch * n, u.shape[-1]).index_copy_(0, mrf.position, u).view(batch, n, -1)
        receiver = F.linear(padded, w_receiver, first.bias) + mrf.noise_var[:, None, None] * w_noise[:, 0]
        sender = F.linear(padded, w_sender)
        z = torch.add(receiver[:, :, None], sender[:, None],                       # [B, n, n, H₁]
                      out=scratch("pairs", (batch, n, n, receiver.shape[-1]), u)).view(batch * n * n, -1)
        z.addcmul_(mrf.gram.view(-1, 1), w_gram[:, 0].contiguous(), value=-1.0)  # − w_g h_kᵀh_l
        for k, layer in enumerate(hidden):          # (a strided w_g would make addcmul_ 20× slower)
            if isinstance(layer, nn.ReLU):
                z = z.relu_()
            else:
                z = torch.addmm(layer.bias, z, layer.weight.T, out=scratch(k, (z.shape[0], layer.out_features), u))
        mask = mrf.pair_mask.view(batch * n, 1, n)                              # Σ_{l ≠ k, l real}
        summed = torch.bmm(mask, z.view(batch * n, n, -1)).view(batch * n, -1)[mrf.position]
        return summed if last is None else F.linear(summed, last.weight).addcmul_(mrf.degree, last.bias)


class Scratch:
    """Output buffers reused by the blocks of pairs of one call (module doc): writing into memory
    already touched saves the page faults of a fresh allocation, which on this project's machine
    made the first pass over each new pair tensor several times slower than the next. Only
    without autograd (``out=`` tensors record no gradient); otherwise every request gives ``None``
    (a fresh tensor).

    Args:
        enabled: hand out buffers (default: when autograd is off).
    """

    def __init__(self, enabled: bool | None = None):
        self.buffers: dict | None = {} if (not torch.is_grad_enabled() if enabled is None else enabled) else None

    def __call__(self, key, shape: tuple[int, ...], like: Tensor) -> Tensor | None:
        """A ``shape`` view of buffer ``key`` (grown as needed, ``like``'s dtype and device), or ``None``."""
        if self.buffers is None:
            return None
        size = math.prod(shape)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.numel() < size:
            buffer = self.buffers[key] = like.new_empty(size)
        return buffer[:size].view(shape)


class PairwiseMRFGNN(Block):
    r"""``L`` rounds of the pairwise-MRF GNN and a PAM readout (see module doc).

    Args:
        qam: the constellation (the readout has ``P = √M`` outputs per component).
        rounds: ``L``, message-passing rounds per call.
        observation: read the Gaussian observation ``obs_mean, obs_var`` as
            the extra GRU inputs ``[r_k, log τ_k]``.
        skip: add the readout to the observation's log-likelihood (needs
            ``observation``; see module doc).
        refine: the readout also shifts and rescales the observation (needs
            ``skip``; see module doc).
        report: a second readout for the reported posterior (needs ``skip``;
            see module doc).
        node_channels: ``S_u``.
        message_channels: hidden widths of the message MLP.
        message_out: width of the aggregated message ``M_k``.
        gru_channels: width of the GRU state ``g_k``.
        readout_channels: hidden widths of the readout MLP.
        messages: ``"dense"`` (padded fast path, default) or ``"graph"`` (``MessagePassing`` on
            the edge list): an implementation choice, same parameters, same numbers (module doc).

    Sizes default to GEPNet's: ``S_u = 8``, message ``(2S_u+2)→64→32→8``,
    GRU 64, readout ``8→64→32→P``.

    :reads: ``obs_mean [N_u, 2]``, ``obs_var [N_u, 2]`` with ``observation``, else nothing.
    :optional reads: ``gnn_node [N_u, 2, S_u]`` and ``gnn_state [N_u, 2, G]``
        (carried across calls, e.g. EP iterations; first call: ``u⁰`` from
        the node input, ``g = 0``).
    :writes: ``gnn_node``, ``gnn_state``, ``pam_logits [N_u, 2, P]``; with ``refine``
        ``obs_log_scale [N_u, 2]`` (the iterated head's ``ν``); with ``report``
        ``report_pam_logits [N_u, 2, P]``.
    """

    default_optional_reads = ("gnn_node", "gnn_state")
    default_writes = ("gnn_node", "gnn_state", "pam_logits")

    def __init__(self, qam: QAM | int, rounds: int = 2, observation: bool = False, skip: bool = False,
                 refine: bool = False, report: bool = False, node_channels: int = 8,
                 message_channels: Sequence[int] = (64, 32), message_out: int = 8, gru_channels: int = 64,
                 readout_channels: Sequence[int] = (64, 32), messages: str = "dense"):
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        if skip and not observation:
            raise ValueError("the observation skip needs observation=True")
        if (refine or report) and not skip:
            raise ValueError("the Gaussian refinement and the report head need skip=True")
        if messages not in MESSAGES:
            raise ValueError(f"messages must be one of {MESSAGES}, got {messages!r}")
        super().__init__(reads=("obs_mean", "obs_var") if observation else (),
                         writes=(*self.default_writes, *("obs_log_scale",) * refine,
                                 *("report_pam_logits",) * report))
        self.qam = qam if isinstance(qam, QAM) else QAM(qam)
        self.rounds, self.observation = rounds, observation
        self.skip, self.refine, self.report = skip, refine, report
        self.message_implementation = messages
        self.embed = nn.Linear(3, node_channels)
        self.messages = MRFMessages(node_channels, 2, message_channels, message_out)
        self.gru = nn.GRUCell(message_out + 2 * observation, gru_channels)
        self.node_out = nn.Linear(gru_channels, node_channels)
        self.head_size = len(self.qam.pam) + 2 * refine
        self.readout = mlp(node_channels, *readout_channels, (1 + report) * self.head_size)
        if skip:  # start as the observation's own posterior
            nn.init.zeros_(self.readout[-1].weight)
            nn.init.zeros_(self.readout[-1].bias)

    def update(self, graph: MIMOGraph, state: State) -> State:
        dtype = self.embed.weight.dtype
        node_input, blocks = self.message_blocks(graph, dtype)
        num_users = graph.user_batch.numel()
        if "gnn_node" in state:
            u, g = state["gnn_node"].flatten(0, 1), state["gnn_state"].flatten(0, 1)
        else:
            u = self.embed(node_input)
            g = u.new_zeros(u.shape[0], self.gru.hidden_size)
        observation = None
        if self.observation:
            obs_mean, obs_var = (state[key].to(dtype).reshape(-1, 1) for key in ("obs_mean", "obs_var"))
            obs_var = obs_var.clamp_min(torch.finfo(dtype).tiny)
            observation = torch.cat([obs_mean, obs_var.log()], dim=-1)          # [2N_u, 2]
        parts = [self.message_rounds(passing, u[nodes], g[nodes], None if observation is None
                                     else observation[nodes]) for nodes, passing in blocks]
        u, g = parts[0] if len(parts) == 1 else (torch.cat(part) for part in zip(*parts))
        heads = self.readout(u).split(self.head_size, dim=-1)
        out = {"gnn_node": u.view(num_users, 2, -1), "gnn_state": g.view(num_users, 2, -1)}
        if self.skip:
            corrected = [self.corrected_observation(head, obs_mean[:, 0], obs_var[:, 0]) for head in heads]
            heads = [logits for logits, _ in corrected]
            if self.refine:
                out["obs_log_scale"] = corrected[0][1].view(num_users, 2)
        out["pam_logits"] = heads[0].view(num_users, 2, -1)
        if self.report:
            out["report_pam_logits"] = heads[1].view(num_users, 2, -1)
        return out

    def message_blocks(self, graph: MIMOGraph, dtype: torch.dtype) -> tuple[Tensor, list[tuple[slice, Callable]]]:
        """The node input ``[2N_u, 3]`` and the blocks ``(rows of their real nodes, u ↦ M)`` the
        rounds run on: blocks of instances on the dense path (module doc), the whole batch on
        the edge list (also for a batch that carries its own user edges)."""
        if self.message_implementation == "dense" and INTERFERENCE not in graph.edge_types:
            mrf = dense_real_components(graph, dtype)
            pairs = PAIRS_PER_BLOCK if mrf.gram.device.type == "cpu" else None
            scratch = Scratch()
            return mrf.node_input, [(nodes, partial(self.messages.dense, mrf=block, scratch=scratch))
                                    for nodes, block in mrf.blocks(pairs)]
        mrf = real_component_graph(graph, dtype)
        return mrf.node_input, [(slice(None), partial(self.messages, edge_index=mrf.edge_index,
                                                      edge_input=mrf.edge_input))]

    def message_rounds(self, passing: Callable[[Tensor], Tensor], u: Tensor, g: Tensor,
                       observation: Tensor | None) -> tuple[Tensor, Tensor]:
        """``L`` rounds ``g ← GRU([M, c], g)``, ``u = W_u g + b_u`` with ``M = passing(u)``."""
        for _ in range(self.rounds):
            message = passing(u)
            g = self.gru(message if observation is None else torch.cat([message, observation], dim=-1), g)
            u = self.node_out(g)
        return u, g

    def corrected_observation(self, head: Tensor, mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor | None]:
        """``ℓ(s)`` of one readout head and, with ``refine``, its log-scale ``ν`` (``[N]``):
        :func:`~gnnmimo.blocks.denoiser.corrected_log_likelihood`."""
        return corrected_log_likelihood(head, mean, var, self.qam.pam_as(head), self.refine)

    def extra_repr(self) -> str:
        return (f"qam={self.qam.order}, rounds={self.rounds}, observation={self.observation}, "
                f"skip={self.skip}, refine={self.refine}, report={self.report}, "
                f"messages={self.message_implementation!r}")
