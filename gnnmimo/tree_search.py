r"""Real-valued triangular models and tree searches (K-best, sphere decoding).

Tree-search detectors work on the real-valued equivalent of docs/conventions.md §6:
``n = 2 Nt_max`` real unknowns, each from the √M-PAM alphabet ``A``
(:attr:`QAM.pam`, ``P = √M`` values). A QR decomposition of the permuted
real channel, ``H_r Π = Q R`` (``R`` upper triangular ``[n, n]``), turns the
ML metric into a sum over the levels of a tree,

.. math::
    \|y_r - H_r x_r\|^2 = \|z - R u\|^2 + c
        = c + \sum_{\ell=0}^{n-1} \Big(z_\ell - \sum_{j \ge \ell} R_{\ell j} u_j\Big)^2,

with ``u = Πᵀ x_r`` (tree position ``ℓ`` holds real unknown ``perm[ℓ]``),
``z = Qᵀ y_r`` and ``c = ‖y_r‖² − ‖z‖²`` (the energy outside the column
space, the same for every candidate). The search starts at the root
``ℓ = n − 1`` and ends at the leaves ``ℓ = 0``; the increment of level ``ℓ``
only depends on the symbols already fixed at levels ``> ℓ``:

.. math::
    \Delta_\ell(u_\ell) = R_{\ell\ell}^2 (c_\ell - u_\ell)^2, \qquad
    c_\ell = \Big(z_\ell - \sum_{j > \ell} R_{\ell j} u_j\Big) / R_{\ell\ell}.

**Padded users.** In a batch with different ``Nt`` per instance, the real
unknowns of padded users (zero columns of ``H_r``) are moved to the *top* of
the tree (the root levels) and get ``R_ℓℓ = 1``, ``z_ℓ = 0`` and zero
couplings. At such a level the search has a single candidate, the fixed
value ``0`` with increment ``0``, so these levels neither branch nor touch
the real users' metrics; an instance with fewer users simply searches a
shorter tree below a chain of trivial nodes.

**Decomposition and orderings.** The QR decomposition is computed on the
complex channel, ``H Π = Q R`` with ``Π`` permuting *users* and a real
positive diagonal, and then written in real form with the real and
imaginary part of each user on adjacent levels: ``[[Re R, −Im R],
[Im R, Re R]]`` interleaved per user is upper triangular (its diagonal
2×2 blocks are ``R_ii · I``), so the real tree has ``2 Nt`` levels with
``Re x`` and ``Im x`` of a user next to each other. ``"sorted"`` is the
sorted QR decomposition (SQRD, Wübben et al., 2001): modified Gram–Schmidt
that at step ``i`` picks the remaining user of smallest residual norm, so
the weak users end up at the leaves and the reliable ones near the root,
where decisions are made first. Pivoting on users (not on the ``2 Nt`` real
columns, whose norms tie in pairs) keeps the order independent of how the
users are labelled, so the searches are permutation equivariant.
``"natural"`` keeps the users' order (padded users still go to the root).

Everything is vectorised over the batch; Python loops run only over tree
levels (QR, K-best) or search steps (sphere decoder).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gnnmimo.constellation import QAM
from gnnmimo.graph import DenseView
from gnnmimo.linalg import adjoint_times, squared_magnitude

ORDERINGS = ("sorted", "natural")


@dataclass
class TriangularModel:
    """The triangularised real model of a padded batch (see module doc).

    Attributes:
        R: ``[B, n, n]`` upper-triangular factor, ``n = 2 Nt_max``.
        z: ``[B, n]`` rotated observation ``Qᵀ y_r``.
        offset: ``[B]`` ``c = ‖y_r‖² − ‖z‖² ≥ 0``, so that tree distances plus
            ``offset`` are true squared distances ``‖y − H x‖²``.
        perm: ``[B, n]`` long, real unknown held by each tree position
            (unknown ``k < Nt_max`` is ``Re x_k``, ``Nt_max + k`` is ``Im x_k``).
        active: ``[B, n]`` bool, false on positions holding padded unknowns.
    """

    R: Tensor
    z: Tensor
    offset: Tensor
    perm: Tensor
    active: Tensor

    @property
    def num_levels(self) -> int:
        return self.z.shape[1]

    def select(self, keep: Tensor) -> "TriangularModel":
        """The model of the instances selected by ``keep`` (bool ``[B]`` or long indices)."""
        return TriangularModel(self.R[keep], self.z[keep], self.offset[keep], self.perm[keep],
                               self.active[keep])

    def level_tables(self, qam: QAM) -> "LevelTables":
        """Per-level constants of the search (see :class:`LevelTables`)."""
        pam = qam.pam_as(self.z)
        values = pam * self.active[..., None]                          # zeros on padded levels
        allowed = self.active[..., None] | (torch.arange(pam.numel(), device=pam.device) == 0)
        penalty = torch.zeros_like(values).masked_fill(~allowed, float("inf"))
        scaled = self.R.diagonal(dim1=1, dim2=2)[..., None] * values
        return LevelTables(self.R.triu(1), self.z, values, scaled, penalty)

    def symbol_indices(self, paths: Tensor, qam: QAM) -> Tensor:
        """PAM indices per tree position ``[B, ..., n]`` → symbol indices ``[B, ..., Nt_max]``.

        Undoes the permutation and pairs ``Re``/``Im`` components with
        :meth:`QAM.index_of_pam`; padded users come out as an arbitrary
        valid index (mask them with the batch's user mask).
        """
        perm = self.perm.reshape(self.perm.shape[0], *([1] * (paths.dim() - 2)), -1).expand_as(paths)
        unknowns = torch.empty_like(paths).scatter_(-1, perm, paths)
        half = unknowns.shape[-1] // 2
        return qam.index_of_pam(unknowns[..., :half], unknowns[..., half:])


def _swap_last(tensor: Tensor, rows: Tensor, i: int, j: Tensor) -> None:
    """In place, swap entries ``i`` and ``j[b]`` of the last dimension of every ``tensor[b]``."""
    first, second = tensor[rows, ..., i].clone(), tensor[rows, ..., j].clone()
    tensor[rows, ..., i], tensor[rows, ..., j] = second, first


def triangularize(view: DenseView, ordering: str = "sorted") -> TriangularModel:
    r"""Sorted QR decomposition of a padded batch, in real form (module doc).

    Modified Gram–Schmidt over the ``Nt_max`` complex columns (one Python
    iteration per column, vectorised over the batch). With ``"sorted"``,
    step ``i`` swaps in the remaining user of smallest residual norm (SQRD);
    padded users are never picked before real ones, so they fill the last
    positions (the root of the tree), with ``R_ii = 1`` and ``z_i = 0``.

    Args:
        view: the padded batch; needs ``Nt_b ≤ Nr_b`` (full column rank).
        ordering: ``"sorted"`` (SQRD) or ``"natural"``.

    Returns:
        :class:`TriangularModel` with ``n = 2 Nt_max`` levels.
    """
    if ordering not in ORDERINGS:
        raise ValueError(f"unknown ordering {ordering!r}; use one of {ORDERINGS}")
    H, y, active = view.H, view.y, view.user_mask
    batch, _, nt = H.shape
    device = H.device
    perm = torch.arange(nt, device=device).expand(batch, nt).clone()
    if ordering == "natural":                                          # real users first, stable
        perm = torch.sort((~active).to(torch.uint8), dim=1, stable=True).indices
    Q = H.gather(2, perm[:, None, :].expand_as(H)).clone()             # working columns [B, Nr, Nt]
    active = active.gather(1, perm).clone()
    R = H.new_zeros(batch, nt, nt)
    rows = torch.arange(batch, device=device)
    for i in range(nt):
        if ordering == "sorted":
            norms = squared_magnitude(Q[:, :, i:]).sum(1).masked_fill(~active[:, i:], float("inf"))
            pivot = i + norms.argmin(1)                                # [B]
            for t in (Q, R, perm, active):
                _swap_last(t, rows, i, pivot)
        norm = squared_magnitude(Q[:, :, i]).sum(1).sqrt()
        norm = torch.where(active[:, i], norm.clamp_min(torch.finfo(norm.dtype).tiny), 1.0)
        q = Q[:, :, i] / norm[:, None]                                 # zero on padded columns
        R[:, i, i] = norm.to(R.dtype)
        R[:, i, i + 1:] = (q.conj()[:, None, :] @ Q[:, :, i + 1:])[:, 0]
        Q[:, :, i + 1:] -= q[:, :, None] * R[:, i, None, i + 1:]
        Q[:, :, i] = q
    z = adjoint_times(Q, y)
    offset = (squared_magnitude(y).sum(1) - squared_magnitude(z).sum(1)).clamp_min(0.0)
    # real form, user i -> levels (2i, 2i+1) = (Re, Im): blocks [[Re r, -Im r], [Im r, Re r]]
    blocks = torch.stack([torch.stack([R.real, -R.imag], -1), torch.stack([R.imag, R.real], -1)], -2)
    R_real = blocks.permute(0, 1, 3, 2, 4).reshape(batch, 2 * nt, 2 * nt)  # [B, Nt, 2, Nt, 2] -> [B, n, n]
    z_real = torch.stack([z.real, z.imag], -1).reshape(batch, 2 * nt)
    perm_real = torch.stack([perm, perm + nt], -1).reshape(batch, 2 * nt)
    active_real = active.repeat_interleave(2, dim=1)
    return TriangularModel(R_real, z_real, offset, perm_real, active_real)


@dataclass
class LevelTables:
    r"""What the increment ``Δ_ℓ`` of every candidate needs, per level.

    Attributes:
        coupling: ``[B, n, n]`` strictly upper part of ``R`` (so stale path
            values at levels ``≤ ℓ`` are multiplied by zero).
        z: ``[B, n]``.
        values: ``[B, n, P]`` candidate values: the PAM alphabet on active
            levels, zeros on padded ones.
        scaled: ``[B, n, P]`` ``R_ℓℓ · values``.
        penalty: ``[B, n, P]`` ``0`` for allowed candidates, ``inf`` for the
            slots ``1 … P−1`` of padded levels (a single branch, value 0).
    """

    coupling: Tensor
    z: Tensor
    values: Tensor
    scaled: Tensor
    penalty: Tensor

    def at(self, index) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(coupling row, z, scaled, penalty)`` of one level per instance.

        ``index`` selects it: ``(slice(None), ℓ)`` for one level for all
        instances, ``(rows, level)`` for a level per instance.
        """
        return self.coupling[index], self.z[index], self.scaled[index], self.penalty[index]

    def select(self, keep: Tensor) -> "LevelTables":
        return LevelTables(*(t[keep] for t in (self.coupling, self.z, self.values, self.scaled, self.penalty)))


def increments(residual: Tensor, scaled: Tensor, penalty: Tensor) -> Tensor:
    r"""``Δ_ℓ(a) = (ρ_ℓ − R_ℓℓ a)²`` of every candidate ``a`` of one level.

    Args:
        residual: ``[B, L]`` ``ρ_ℓ = z_ℓ − Σ_{j>ℓ} R_ℓj u_j`` of ``L`` partial paths.
        scaled, penalty: ``[B, P]`` rows of :class:`LevelTables`.

    Returns:
        ``[B, L, P]``, ``inf`` for candidates that are not allowed.
    """
    return (residual[..., None] - scaled[:, None, :]).square() + penalty[:, None, :]


def level_increments(level: tuple[Tensor, Tensor, Tensor, Tensor], fixed: Tensor) -> Tensor:
    """:func:`increments` with the residual computed from the fixed values of the paths.

    Args:
        level: :meth:`LevelTables.at` of the level, shapes ``[B, n]``, ``[B]``,
            ``[B, P]``, ``[B, P]``.
        fixed: ``[B, L, n]`` values of ``L`` partial paths per instance.
    """
    coupling, z, scaled, penalty = level
    return increments(z[:, None] - (fixed * coupling[:, None, :]).sum(-1), scaled, penalty)


def kbest_search(model: TriangularModel, qam: QAM, k: int) -> tuple[Tensor, Tensor]:
    r"""Breadth-first K-best search over the tree of every instance.

    Level by level from the root, every kept partial path is extended by the
    ``P`` candidates of the level and the ``k`` extensions of smallest partial
    distance survive (``torch.topk`` per instance). Paths that cannot exist
    (fewer than ``k`` leaves) carry an infinite distance.

    Each path carries the residuals ``ρ_j = z_j − Σ_{i>ℓ} R_ji u_i`` of the
    levels ``j < ℓ`` still to decide (fixing ``u_ℓ = a`` subtracts
    ``R_{:ℓ,ℓ} a``), so a level costs one gather of ``[B, L, ℓ]`` and no
    reduction; the paths are recovered at the end from back-pointers.

    ``P`` being a power of two (square QAM), a candidate's parent and slot are a shift and a
    mask of its flat index, not an integer division.

    Returns:
        ``paths [B, L, n]`` PAM indices per tree position and ``dist [B, L]``
        their squared distances ``‖y − H x‖²`` sorted ascending, with
        ``L = min(k, P · L_prev)`` after the last level.
    """
    tables = model.level_tables(qam)
    batch, n, size = tables.values.shape
    dist = model.z.new_zeros(batch, 1)
    residual = model.z[:, None, :]                                   # [B, L, levels still open]
    parents, slots = [None] * n, [None] * n
    shift = size.bit_length() - 1                                   # size = 2^shift
    for level in range(n - 1, -1, -1):
        candidates = dist[..., None] + increments(residual[..., level], tables.scaled[:, level],
                                                  tables.penalty[:, level])
        # the survivors' order matters only at the leaves (a third faster unsorted above them)
        dist, flat = candidates.flatten(1).topk(min(k, candidates[0].numel()), dim=1, largest=False,
                                                sorted=level == 0)
        parents[level], slots[level] = flat >> shift, flat & (size - 1)
        value = tables.values[:, level].gather(1, slots[level])                       # [B, L]
        residual = (residual[..., :level].gather(1, parents[level][..., None].expand(-1, -1, level))
                    - model.R[:, None, :level, level] * value[..., None])
    paths = torch.empty(batch, dist.shape[1], n, dtype=torch.long, device=dist.device)
    survivor = torch.arange(dist.shape[1], device=dist.device).expand(batch, -1)
    for level in range(n):                                          # leaves back to the root
        paths[:, :, level] = slots[level].gather(1, survivor)
        survivor = parents[level].gather(1, survivor)
    return paths, dist + model.offset[:, None]


@dataclass
class SphereDecoding:
    """Result of :func:`sphere_decode` for a batch of ``B`` instances.

    Attributes:
        best: ``[B, n]`` PAM indices per tree position of the ML point.
        dist: ``[B]`` its squared distance ``‖y − H x_ML‖²``.
        leaf_metrics: ``[B, Nt_max, M]``, for each user and symbol the smallest
            distance among the leaves the search reached (``inf`` if none).
        visited: ``[B]`` long, number of tree nodes visited (candidates fixed),
            the usual complexity measure of a sphere decoder.
    """

    best: Tensor
    dist: Tensor
    leaf_metrics: Tensor
    visited: Tensor


def sphere_decode(model: TriangularModel, qam: QAM, compact_below: float = 0.5) -> SphereDecoding:
    r"""Exact ML by Schnorr–Euchner depth-first search, vectorised over instances.

    Every instance carries its own search state: current level ``ℓ``, the
    partial distance entering each level, the candidates of each level sorted
    by increment (Schnorr–Euchner zig-zag order: ascending ``|c_ℓ − a|``),
    the rank of the next candidate to try at each level, and its best radius
    ``r²`` (initially ``∞``, so the first leaf reached is the Babai / ZF-SIC
    point). One Python iteration advances every unfinished instance by one
    node:

    * the next candidate at level ``ℓ`` fits, ``d + Δ < r²``: fix it; at a
      leaf, set ``r² ← d + Δ``, record the path and go up; otherwise descend
      and sort the candidates of level ``ℓ − 1``;
    * it does not fit (or the level is exhausted): all later candidates are
      worse, go up; leaving the root ends the search.

    The loop stops when every instance has left its root. The number of
    iterations is set by the hardest instance of the batch, so when fewer
    than ``compact_below`` of the working instances are still searching,
    the finished ones are written out and the working set shrinks: the cost
    of an iteration follows the number of unfinished instances.

    Returns:
        :class:`SphereDecoding`.
    """
    batch, n = model.z.shape
    users, size = n // 2, qam.pam_size
    device = model.z.device
    out = SphereDecoding(torch.zeros(batch, n, dtype=torch.long, device=device), model.z.new_empty(batch),
                         model.z.new_empty(batch, users, qam.order),
                         torch.zeros(batch, dtype=torch.long, device=device))
    offset = model.offset
    tables = model.level_tables(qam)
    ids = torch.arange(batch, device=device)       # original instance of each working row
    rows = ids.clone()

    level = torch.full((batch,), n - 1, dtype=torch.long, device=device)
    entering = model.z.new_zeros(batch, n)         # partial distance entering each level
    # candidates of each level by increasing increment, plus a sentinel (inf) once exhausted
    sorted_inc = model.z.new_full((batch, n, size + 1), float("inf"))
    sorted_slot = torch.zeros(batch, n, size + 1, dtype=torch.long, device=device)
    rank = torch.zeros(batch, n, dtype=torch.long, device=device)
    path = torch.zeros(batch, n, dtype=torch.long, device=device)
    fixed = model.z.new_zeros(batch, n)
    radius = model.z.new_full((batch,), float("inf"))
    best = torch.zeros(batch, n, dtype=torch.long, device=device)
    metrics = model.z.new_full((batch, users, qam.order), float("inf"))
    visited = torch.zeros(batch, dtype=torch.long, device=device)

    def enter(mask: Tensor) -> None:
        """Sort the candidates of the current level of the instances in ``mask``."""
        at = (rows, level.clamp_max(n - 1))
        inc, slot = level_increments(tables.at(at), fixed[:, None])[:, 0].sort(dim=1)
        sorted_inc[at] = torch.where(mask[:, None], F.pad(inc, (0, 1), value=float("inf")), sorted_inc[at])
        sorted_slot[at] = torch.where(mask[:, None], F.pad(slot, (0, 1)), sorted_slot[at])
        rank[at] = torch.where(mask, 0, rank[at])

    enter(level < n)
    working = batch
    while True:
        running = level < n
        still = int(running.sum())
        if not still or still < compact_below * working:    # write out finished ones, shrink
            done = ~running
            out.best[ids[done]], out.dist[ids[done]] = best[done], radius[done]
            out.leaf_metrics[ids[done]], out.visited[ids[done]] = metrics[done], visited[done]
            if not still:
                break
            (ids, level, entering, sorted_inc, sorted_slot, rank, path, fixed, radius, best, metrics,
             visited) = (t[running] for t in (ids, level, entering, sorted_inc, sorted_slot, rank, path,
                                               fixed, radius, best, metrics, visited))
            model, tables = model.select(running), tables.select(running)
            working = still
            rows = torch.arange(working, device=device)
            running = level < n
        # the next candidate of the current level (finished instances sit at n and never fit)
        lvl = level.clamp_max(n - 1)
        r = rank[rows, lvl]
        candidate = entering[rows, lvl] + sorted_inc[rows, lvl, r]
        fits = running & (candidate < radius)
        slot = sorted_slot[rows, lvl, r]
        visited += fits
        rank[rows, lvl] = r + fits
        path[rows, lvl] = slot               # values at levels <= the current one are never read
        fixed[rows, lvl] = tables.values[rows, lvl, slot]
        # leaves: shrink the radius, record the path and its symbols
        leaf = fits & (lvl == 0)
        if leaf.any():
            radius = torch.where(leaf, candidate, radius)
            best = torch.where(leaf[:, None], path, best)
            reached = torch.where(leaf, candidate, float("inf"))[:, None, None].expand(-1, users, 1)
            metrics.scatter_reduce_(2, model.symbol_indices(path, qam)[..., None], reached, "amin")
        # move: descend where an inner node was fixed, go up elsewhere (leaving the root ends)
        descend = fits & (lvl > 0)
        entering[rows, (lvl - 1).clamp_min(0)] = candidate
        level = torch.where(descend, lvl - 1, lvl + 1)
        enter(descend)
    out.dist += offset
    out.leaf_metrics += offset[:, None, None]
    return out


def list_metrics(symbols: Tensor, dist: Tensor, order: int) -> Tensor:
    """Smallest distance per user and symbol over a candidate list.

    Args:
        symbols: ``[B, L, Nt]`` symbol indices of ``L`` candidates.
        dist: ``[B, L]`` their squared distances (``inf`` for void entries).
        order: ``M``.

    Returns:
        ``[B, Nt, M]``, ``inf`` where no candidate has that symbol.
    """
    batch, _, users = symbols.shape
    metrics = dist.new_full((batch, users, order), float("inf"))
    return metrics.scatter_reduce_(2, symbols.transpose(1, 2),
                                   dist[:, None, :].expand(-1, users, -1), "amin")


def metrics_to_logits(metrics: Tensor, noise_var: Tensor, clip: float) -> Tensor:
    r"""Max-log symbol logits from per-symbol distances, clipped.

    ``logit_i(s) = −(d_i(s) − d_min) / σ²`` with ``d_i(s)`` the smallest
    ``‖y − Hx‖²`` over candidates with ``x_i = s`` (``σ²`` complex noise
    variance, so ``−d/σ²`` is the log-likelihood); symbols without a
    candidate, and any logit below ``−clip``, get ``−clip`` (the role of
    Sionna's LLR clipping for missing counter-hypotheses).

    Shapes: ``metrics [B, Nt, M]``, ``noise_var [B]`` → ``[B, Nt, M]``.
    """
    best = metrics.amin(dim=(1, 2), keepdim=True)
    logits = -(metrics - best) / noise_var[:, None, None]
    return logits.nan_to_num(nan=-clip).clamp_min(-clip)
