"""Linear-algebra primitives on MIMO batches, in graph and dense form.

Each operation exists twice: as message passing over the edges of a
:class:`~gnnmimo.graph.MIMOGraph` (works for any mix of ``Nr``/``Nt``, costs
``O(E)``), and on the zero-padded :class:`~gnnmimo.graph.DenseView`
(batched matrix products). The two are tested equal on mixed batches. The column energy
``‖h_i‖²`` is the exception: the batch computes it once from its dense view for its own
validation (:meth:`~gnnmimo.graph.MIMOGraph.column_energy`), and :func:`column_energy` returns that.

Shapes: ``N_u`` users and ``N_a`` antennas in the batch, ``E`` bipartite
edges; dense shapes ``[B, Nr_max, Nt_max]``.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from gnnmimo.graph import ANTENNA, CHANNEL, USER, MIMOGraph
from gnnmimo.linalg import adjoint_times


def residual(graph: MIMOGraph, x: Tensor) -> Tensor:
    """``r_a = y_a − Σ_i H_ai x_i``: per-user ``x [N_u]`` → per-antenna ``[N_a]``."""
    antenna, user = graph[CHANNEL].edge_index
    interference = scatter(graph[CHANNEL].h * x[user], antenna, dim=0,
                           dim_size=graph[ANTENNA].received.numel(), reduce="sum")
    return graph[ANTENNA].received - interference


def matched_filter(graph: MIMOGraph, r: Tensor) -> Tensor:
    """``u_i = Σ_a conj(H_ai) r_a``: per-antenna ``r [N_a]`` → per-user ``[N_u]``."""
    antenna, user = graph[CHANNEL].edge_index
    return scatter(graph[CHANNEL].h.conj() * r[antenna], user, dim=0,
                   dim_size=graph[USER].num_nodes, reduce="sum")


def column_energy(graph: MIMOGraph) -> Tensor:
    """``‖h_i‖² = Σ_a |H_ai|²`` per user, ``[N_u]`` (real): :meth:`MIMOGraph.column_energy`, which
    validation computes anyway (memoised on the batch)."""
    return graph.column_energy()


def gram_on_edges(graph: MIMOGraph, edge_index: Tensor) -> Tensor:
    """``G_ij = h_iᴴ h_j = Σ_a conj(H_ai) H_aj`` for user edges ``j → i``.

    Walks the two-hop paths ``i ← a → j`` through each antenna of the
    instance: every user edge is expanded into ``Nr_b`` paths, the bipartite
    edges of both hops are located by their row-major position, and the
    products are summed back per user edge.

    Args:
        edge_index: ``[2, E_u]`` user edges (row 0 source ``j``, row 1 target ``i``),
            both ends in the same instance.

    Returns:
        ``[E_u]`` complex Gram entries.
    """
    source, target = edge_index
    instance = graph.user_batch[target]
    num_users, num_antennas = graph.num_users[instance], graph.num_antennas[instance]
    edge_ptr = torch.cumsum(graph.num_users * graph.num_antennas, 0) - graph.num_users * graph.num_antennas
    path_edge = torch.repeat_interleave(torch.arange(source.numel(), device=source.device), num_antennas)
    first_path = torch.cumsum(num_antennas, 0) - num_antennas
    antenna = torch.arange(path_edge.numel(), device=source.device) - first_path[path_edge]
    row = edge_ptr[instance][path_edge] + antenna * num_users[path_edge]
    user_index = graph.user_index
    h = graph[CHANNEL].h
    products = h[row + user_index[target][path_edge]].conj() * h[row + user_index[source][path_edge]]
    return scatter(products, path_edge, dim=0, dim_size=source.numel(), reduce="sum")


# ------------------------------------------------------------------ dense forms
def dense_residual(H: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """``y − H x`` with ``H [B, Nr, Nt]``, ``y [B, Nr]``, ``x [B, Nt]``."""
    return y - (H @ x[..., None])[..., 0]


def dense_matched_filter(H: Tensor, r: Tensor) -> Tensor:
    """``Hᴴ r`` with ``H [B, Nr, Nt]``, ``r [B, Nr]`` → ``[B, Nt]`` (:func:`~gnnmimo.linalg.adjoint_times`)."""
    return adjoint_times(H, r)


def dense_gram(H: Tensor) -> Tensor:
    """``Hᴴ H``, ``[B, Nt, Nt]``."""
    return H.mH @ H
