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

Everything is shared across nodes and edges, so the block is permutation
equivariant in the users and works for any user count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from gnnmimo import ops
from gnnmimo.blocks.base import Block, State
from gnnmimo.blocks.denoiser import gaussian_log_probs
from gnnmimo.blocks.mlp import mlp
from gnnmimo.constellation import QAM
from gnnmimo.graph import ANTENNA, MIMOGraph

#: the four real edges of a user edge j → i: (component c' of j, component c of i) and the
#: coefficients (of a, of b) of h_kᵀh_l in g = h_iᴴh_j = a + jb
_COMPONENT_PAIRS = ((0, 0), (1, 0), (0, 1), (1, 1))
_GRAM_COEFFICIENTS = ((1.0, 0.0), (0.0, -1.0), (0.0, 1.0), (1.0, 0.0))


@dataclass(eq=False)
class RealComponentGraph:
    """The pairwise MRF of a batch on its ``2N_u`` real components (module doc).

    Attributes:
        node_input: ``[2N_u, 3]`` ``[yᵀh_k, −h_kᵀh_k, σr²]``.
        edge_index: ``[2, E]`` source ``l``, target ``k`` (all ordered pairs of an instance).
        edge_input: ``[E, 2]`` ``[−h_kᵀh_l, σr²]``.
    """

    node_input: Tensor
    edge_index: Tensor
    edge_input: Tensor


def real_component_graph(graph: MIMOGraph, dtype: torch.dtype) -> RealComponentGraph:
    """The real-component MRF of ``graph``, memoised on the batch per dtype
    (:meth:`MIMOGraph.memoised`); the batch itself is left as it is."""
    return graph.memoised(("real_component_graph", dtype), lambda: _build_real_component_graph(graph, dtype))


def _build_real_component_graph(graph: MIMOGraph, dtype: torch.dtype) -> RealComponentGraph:
    num_users = graph.user_batch.numel()
    noise_var = (graph.user_noise_var / 2).to(dtype)                              # σr² per user
    matched = torch.view_as_real(ops.matched_filter(graph, graph[ANTENNA].y)).to(dtype)   # [N_u, 2]
    energy = ops.column_energy(graph).to(dtype)[:, None].expand(-1, 2)
    node_input = torch.stack([matched, -energy, noise_var[:, None].expand(-1, 2)], dim=-1).reshape(-1, 3)

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
    return RealComponentGraph(node_input, edge_index, edge_input)


class MRFMessages(MessagePassing):
    """``M_k = Σ_{l≠k} MLP([u_k, u_l, e_kl])`` (sum aggregation; ``u_k`` the receiver).

    Args:
        node_channels: ``S_u``; edge_channels: width of ``e_kl``;
        hidden_channels: the MLP's hidden widths; out_channels: width of ``M_k``.
    """

    def __init__(self, node_channels: int, edge_channels: int, hidden_channels: Sequence[int],
                 out_channels: int):
        super().__init__(aggr="add")
        self.net = mlp(2 * node_channels + edge_channels, *hidden_channels, out_channels)

    def forward(self, u: Tensor, edge_index: Tensor, edge_input: Tensor) -> Tensor:
        return self.propagate(edge_index, u=u, edge_input=edge_input)

    def message(self, u_i: Tensor, u_j: Tensor, edge_input: Tensor) -> Tensor:
        return self.net(torch.cat([u_i, u_j, edge_input], dim=-1))


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
                 readout_channels: Sequence[int] = (64, 32)):
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        if skip and not observation:
            raise ValueError("the observation skip needs observation=True")
        if (refine or report) and not skip:
            raise ValueError("the Gaussian refinement and the report head need skip=True")
        super().__init__(reads=("obs_mean", "obs_var") if observation else (),
                         writes=(*self.default_writes, *("obs_log_scale",) * refine,
                                 *("report_pam_logits",) * report))
        self.qam = qam if isinstance(qam, QAM) else QAM(qam)
        self.rounds, self.observation = rounds, observation
        self.skip, self.refine, self.report = skip, refine, report
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
        mrf = real_component_graph(graph, dtype)
        num_users = graph.user_batch.numel()
        if "gnn_node" in state:
            u, g = state["gnn_node"].flatten(0, 1), state["gnn_state"].flatten(0, 1)
        else:
            u = self.embed(mrf.node_input)
            g = u.new_zeros(u.shape[0], self.gru.hidden_size)
        extra = []
        if self.observation:
            obs_mean, obs_var = (state[key].to(dtype).reshape(-1, 1) for key in ("obs_mean", "obs_var"))
            obs_var = obs_var.clamp_min(torch.finfo(dtype).tiny)
            extra = [obs_mean, obs_var.log()]
        for _ in range(self.rounds):
            message = self.messages(u, mrf.edge_index, mrf.edge_input)
            g = self.gru(torch.cat([message, *extra], dim=-1), g)
            u = self.node_out(g)
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

    def corrected_observation(self, head: Tensor, mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor | None]:
        """``ℓ(s)`` of one readout head (the observation's log-likelihood, refined, plus the head's
        logits) and, with ``refine``, its log-scale ``ν`` (``[N]``)."""
        if not self.refine:
            return head + gaussian_log_probs(mean, var, self.qam.pam_as(head)), None
        logits, shift, log_scale = head.split([len(self.qam.pam), 1, 1], dim=-1)
        mean = mean + var.sqrt() * shift[:, 0]
        var = var * log_scale[:, 0].exp()
        return logits + gaussian_log_probs(mean, var, self.qam.pam_as(logits)), log_scale[:, 0]

    def extra_repr(self) -> str:
        return (f"qam={self.qam.order}, rounds={self.rounds}, observation={self.observation}, "
                f"skip={self.skip}, refine={self.refine}, report={self.report}")
