r"""Likelihood features: the residual and the components of the log-likelihood gradient.

RE-MIMO (Pratik, Rao, Welling, §IV-B) injects the forward model into every
iteration through the gradient of the log-likelihood (eq. 14, 17),

.. math::
    \nabla^i_{y|x} = \frac{\partial \log p(y|x, H)}{\partial x_i}
                   = \frac{h_i^H (y - H z)}{\sigma^2},

evaluated at the soft symbol of the previous prediction (eq. 18),

.. math::
    z_i = \sum_{s \in \mathcal X} p(x_i = s \mid \hat x_i)\, s,
    \qquad p(\cdot \mid \hat x_i) = \operatorname{softmax}(\hat x_i).

It does not hand the network the gradient itself but its constituents, each
normalised so that its variance does not grow with the user count (the
``√2`` because each complex value becomes two real ones):

* the residual ``δy = y − H z`` → ``δy / √(2 Nt)`` (eq. 22, 23; with
  ``z = 0`` it is the ``y / √(2 Nt)`` of the embedding input, eq. 24),
* the channel column ``h_i`` (unnormalised),
* the noise standard deviation ``σ`` → ``σ / √(2 Nt)``,

where ``σ² = E|n_a|²`` is the complex noise variance per antenna. Complex
vectors enter as their real-valued equivalent: ``h_i → [Re h_i; Im h_i]``,
the ``i``-th column of ``H_r = [[Re H, −Im H], [Im H, Re H]]``, and
``δy → [Re δy; Im δy]``, each ``2 Nr`` reals. The residual and σ are the
same for every user of an instance (permutation invariant), ``h_i`` and
``z_i`` follow their user (permutation equivariant).

The block also writes the gradient itself in a scale-free form, a gradient
step on ``log p(y|x)`` from ``z`` with step ``σ²/‖h_i‖²`` (the iteration of
eq. 6 that RE-MIMO generalises),

.. math::
    r_i = z_i + \frac{\sigma^2}{\lVert h_i\rVert^2}\nabla^i_{y|z}
        = z_i + \frac{h_i^H \delta y}{\lVert h_i\rVert^2},

the parallel-interference-cancellation observation ``r_i = x_i + w_i`` (a
Gaussian-observation ``obs_mean`` in the block contract's terms). RE-MIMO
as published does not use it (the network gets the components and must
learn the product ``h_iᴴ δy``); ``REMIMO(gradient=True)`` feeds it as well.

Because the feature sizes are ``2 Nr``, every instance of a batch must have
the same number of antennas ``Nr``.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from gnnmimo import ops
from gnnmimo.blocks.base import Block, State
from gnnmimo.constellation import QAM
from gnnmimo.graph import ANTENNA, CHANNEL, USER, MIMOGraph


def as_real(z: Tensor) -> Tensor:
    """Complex ``[..., n]`` → real ``[..., 2n]`` = ``[Re z, Im z]``."""
    return torch.cat([z.real, z.imag], dim=-1)


def channel_columns(graph: MIMOGraph) -> Tensor:
    """``[N_u, 2 Nr]`` real channel column ``[Re h_i; Im h_i]`` of every user.

    Read off the bipartite edges (``H_ai`` sits at row ``a`` of user ``i``);
    needs the same ``Nr`` in every instance.
    """
    antenna, user = graph[CHANNEL].edge_index
    h = graph[CHANNEL].h
    columns = h.new_zeros(graph[USER].num_nodes, int(graph.num_antennas.max()))
    columns[user, graph.antenna_index[antenna]] = h
    return as_real(columns)


def per_user_scale(graph: MIMOGraph) -> Tensor:
    """``[N_u, 1]`` the normalisation ``1 / √(2 Nt)`` of each user's instance."""
    return (2.0 * graph.num_users[graph.user_batch]).rsqrt()[:, None]


class LikelihoodFeatures(Block):
    r"""Soft symbol, normalised residual and channel/noise features (RE-MIMO eq. 14–18).

    Args:
        qam: the constellation the logits are over.

    :reads: ``logits`` ``[N_u, M]`` — the previous prediction ``x̂_i`` (zeros
        before the first one: uniform probabilities, ``z = 0``, ``δy = y``).
    :optional reads: ``channel``, ``noise`` (passed through when both are present).
    :writes:
        * ``mean`` ``[N_u, 2]`` — the soft symbol ``z_i`` (eq. 18) as ``(Re, Im)``;
        * ``residual`` ``[N_u, 2Nr]`` — ``[Re δy; Im δy] / √(2Nt)`` of the user's
          instance, ``δy = y − H z``;
        * ``channel`` ``[N_u, 2Nr]`` — ``[Re h_i; Im h_i]``;
        * ``noise`` ``[N_u, 1]`` — ``σ / √(2Nt)``;
        * ``obs_mean`` ``[N_u, 2]`` — the gradient step ``r_i = z_i + h_iᴴ δy / ‖h_i‖²``.

    ``channel`` and ``noise`` do not depend on the iteration: they are
    computed once and passed through when the state already holds them.
    """

    default_reads = ("logits",)
    default_optional_reads = ("channel", "noise")
    default_writes = ("mean", "residual", "channel", "noise", "obs_mean")

    def __init__(self, qam: QAM | int):
        super().__init__()
        self.qam = qam if isinstance(qam, QAM) else QAM(qam)

    def update(self, graph: MIMOGraph, state: State) -> State:
        logits = state["logits"]
        probs = logits.softmax(-1).to(graph[ANTENNA].received.dtype)
        z = probs @ self.qam.points_as(graph[ANTENNA].received)                # eq. 18, [N_u]
        residual = ops.residual(graph, z)                                # [N_a]
        energy = ops.column_energy(graph)
        step = z + ops.matched_filter(graph, residual) / energy.clamp_min(torch.finfo(energy.dtype).tiny)
        residual, _ = to_dense_batch(residual, graph.antenna_batch, batch_size=graph.num_instances)
        scale = per_user_scale(graph).to(logits.dtype)
        out = {
            "mean": torch.stack([z.real, z.imag], dim=-1).to(logits.dtype),
            "residual": as_real(residual)[graph.user_batch].to(logits.dtype) * scale,
            "obs_mean": torch.stack([step.real, step.imag], dim=-1).to(logits.dtype),
        }
        if "channel" in state and "noise" in state:
            out["channel"], out["noise"] = state["channel"], state["noise"]
        else:
            out["channel"] = channel_columns(graph).to(logits.dtype)
            out["noise"] = graph.user_noise_var.sqrt()[:, None].to(logits.dtype) * scale
        return out
