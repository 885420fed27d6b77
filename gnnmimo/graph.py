"""MIMO instances as PyG heterogeneous graphs.

One instance ``y = H x + n`` (``H ∈ C^{Nr×Nt}``) is one graph with

* ``Nt`` **user** nodes (store ``"user"``; ``y``: the transmitted symbol
  index, when known — the target, as ``y`` is in PyG),
* ``Nr`` **antenna** nodes (store ``"antenna"``; ``received``: the received
  sample ``y_a`` of the equation),
* **bipartite** edges ``antenna a → user i`` (type :data:`CHANNEL`) carrying
  ``h = H_ai`` (the channel the detector sees, ``Ĥ`` under imperfect CSI),
* on demand, **complete user-graph** edges ``j → i`` for ``i ≠ j`` (type
  :data:`INTERFERENCE`) carrying ``gram = h_iᴴ h_j``: computed without
  touching the batch by :meth:`MIMOGraph.user_edges` (what blocks use), or
  stored on it by :meth:`MIMOGraph.add_user_edges` (for users' own code),
* graph-level ``noise_var`` (σ², complex, per antenna), ``snr_db``,
  ``num_users``, ``num_antennas`` and ``qam`` (the constellation order), each
  ``[B]``: one entry per instance, so that batches concatenate.

A batch of ``B`` instances is one :class:`MIMOGraph` with disjoint node sets,
exactly as PyG batches graphs (``batch`` and ``ptr`` vectors per node type).
Instances may differ in ``Nt`` and ``Nr``.

A ``MIMOGraph`` *is* a PyG :class:`~torch_geometric.data.Batch` whose graphs
are its instances: ``num_graphs`` (= ``batch_size``) is ``B``,
``get_example(b)`` / ``graph[b]`` is instance ``b`` as a one-instance batch,
``to_data_list()`` lists them, and ``Batch.from_data_list`` or
``torch_geometric.loader.DataLoader`` over any mix of one- and many-instance
``MIMOGraph`` objects gives the ``MIMOGraph`` of all their instances, equal to the
one :meth:`MIMOGraph.from_dense` builds from them (instance-level ``batch``
vectors are offset by the instances before them, ``ptr`` is derived from the
counts). Real-valued features for stock PyG layers (``x``, ``edge_attr``, a
reverse relation) are added on request by :meth:`MIMOGraph.add_features`. Bipartite edges are stored in
``(instance, antenna, user)`` row-major order, so instance ``b``'s edge
``(a, i)`` sits at ``edge_ptr[b] + a·Nt_b + i``.

:meth:`MIMOGraph.dense` gives the zero-padded view ``[B, Nr_max, Nt_max]``
with masks, for blocks that are dense by nature (solves, attention).
Zero padding is neutral for the linear algebra we do: padded users have zero
columns and padded antennas zero rows.
"""
from __future__ import annotations

import warnings
from abc import ABCMeta
from dataclasses import dataclass
from typing import Callable, Hashable, TypeVar

import torch
from torch import Tensor
from torch_geometric.data import Batch, HeteroData
from torch_geometric.data.batch import DynamicInheritance
from torch_geometric.data.storage import NodeStorage
from torch_geometric.utils import cumsum, to_dense_batch

from gnnmimo.channels import block_mask
from gnnmimo.linalg import in_chunks

Value = TypeVar("Value")

USER, ANTENNA = "user", "antenna"
CHANNEL = (ANTENNA, "channel", USER)
INTERFERENCE = (USER, "interferes", USER)
#: the channel relation read the other way, user → antenna (PyG's ``ToUndirected`` naming)
REVERSE_CHANNEL = (USER, "rev_channel", ANTENNA)
#: the real-valued features of :meth:`MIMOGraph.add_features`, column by column
FEATURES = {
    USER: ("Re hᵢᴴy", "Im hᵢᴴy", "‖hᵢ‖²", "σ²"),
    ANTENNA: ("Re yₐ", "Im yₐ", "σ²"),
    CHANNEL: ("Re Hₐᵢ", "Im Hₐᵢ"),
    INTERFERENCE: ("Re hᵢᴴhⱼ", "Im hᵢᴴhⱼ"),
    REVERSE_CHANNEL: ("Re Hₐᵢ", "Im Hₐᵢ"),
}
#: the graph-level attribute holding each node type's per-instance counts
COUNTS = {USER: "num_users", ANTENNA: "num_antennas"}
#: attributes renamed in 0.2 so that ``y`` means the target, as in PyG: (store, old name) → new name.
#: The old names keep working, with a DeprecationWarning, until 0.3.
RENAMED = {(ANTENNA, "y"): "received", (USER, "label"): "y"}


@dataclass
class DenseView:
    """Zero-padded dense view of a batch.

    The batch memoises it (:meth:`MIMOGraph.dense`) and may share its storage with the batch's
    own ``h`` and ``y``: treat it as read-only, copy before changing it.

    Attributes:
        y: ``[B, Nr_max]`` complex received samples.
        H: ``[B, Nr_max, Nt_max]`` complex channels (as the detector sees them).
        noise_var: ``[B]`` complex noise variance σ².
        user_mask: ``[B, Nt_max]`` bool, true on real users.
        antenna_mask: ``[B, Nr_max]`` bool, true on real antennas.
    """

    y: Tensor
    H: Tensor
    noise_var: Tensor
    user_mask: Tensor
    antenna_mask: Tensor

    def real(self) -> tuple[Tensor, Tensor]:
        r"""Real-valued equivalent ``(H_r [B, 2Nr, 2Nt], y_r [B, 2Nr])``.

        ``H_r = [[Re H, −Im H], [Im H, Re H]]``, ``y_r = [Re y; Im y]``; real
        unknown ``k < Nt`` is ``Re x_k`` and ``Nt + k`` is ``Im x_k``. Noise
        per real dimension has variance ``σ²/2``.
        """
        H = self.H
        top = torch.cat([H.real, -H.imag], dim=-1)
        bottom = torch.cat([H.imag, H.real], dim=-1)
        return torch.cat([top, bottom], dim=-2), torch.cat([self.y.real, self.y.imag], dim=-1)


class MIMONodeStorage(NodeStorage):
    """The user and antenna stores of a :class:`MIMOGraph`.

    ``ptr`` (``[B + 1]``, where each instance's nodes start) is derived from the
    batch's counts rather than stored, so that it is right after PyG's
    collation too (which concatenates stored attributes and skips ``ptr``).
    The names of :data:`RENAMED` still read and write their new attributes,
    with a ``DeprecationWarning``.
    """

    @property
    def ptr(self) -> Tensor:
        return cumsum(getattr(self._parent(), COUNTS[self._key]))

    def _renamed(self, key: str) -> str:
        new = None if key.startswith("_") else RENAMED.get((self.__dict__.get("_key"), key))
        if new is None:
            return key
        warnings.warn(f"graph[{self._key!r}].{key} is deprecated and will be removed in gnnmimo 0.3; "
                      f"use graph[{self._key!r}].{new}", DeprecationWarning, stacklevel=3)
        return new

    def __getattr__(self, key: str):
        return super().__getattr__(self._renamed(key))

    def __setattr__(self, key: str, value) -> None:
        super().__setattr__(self._renamed(key), value)


class _BatchMeta(DynamicInheritance, ABCMeta):
    """Metaclass of :class:`MIMOGraph`: PyG's :class:`~torch_geometric.data.Batch` (whose
    metaclass builds a ``Batch`` subclass of whatever is collated, and which collates a
    ``Batch`` subclass into itself) and ``HeteroData``'s ``ABCMeta``. A ``MIMOGraph`` is built
    directly: there is no other class to inherit from dynamically."""

    def __call__(cls, *args, **kwargs):
        return type.__call__(cls, *args, **kwargs)


class MIMOGraph(Batch, HeteroData, metaclass=_BatchMeta):
    """A batch of MIMO instances as one heterogeneous PyG graph (see module doc).

    Build it with :meth:`from_dense` (your own tensors), :meth:`from_sionna`
    (Sionna's layout) or :class:`gnnmimo.sampling.MIMOSampler`.
    """

    # PyG's Batch pickles itself as "the Batch subclass of my base class"; a MIMOGraph is a
    # plain class and pickles as HeteroData does.
    __reduce__ = object.__reduce__

    # ---------------------------------------------------------------- building
    @classmethod
    def from_dense(cls, y: Tensor, H: Tensor, noise_var: Tensor | float,
                   num_users: Tensor | None = None, num_antennas: Tensor | None = None,
                   label: Tensor | None = None, snr_db: Tensor | None = None,
                   qam: int | None = None, err_var: Tensor | float | None = None) -> "MIMOGraph":
        """Wrap dense (optionally padded) tensors into a graph batch.

        Args:
            y: ``[B, Nr]`` complex received samples.
            H: ``[B, Nr, Nt]`` complex channels seen by the detector.
            noise_var: σ², a float or ``[B]``; must be positive.
            num_users: ``[B]`` actual ``Nt_b ≤ Nt`` (default: all ``Nt``).
                Columns beyond ``Nt_b`` are ignored.
            num_antennas: ``[B]`` actual ``Nr_b ≤ Nr`` (default: all ``Nr``).
            label: ``[B, Nt]`` transmitted symbol indices (an integer tensor, in
                ``[0, qam)`` on real users), if known.
            snr_db: ``[B]`` the SNR the instance was drawn at, if known.
            qam: the constellation order the symbols come from, if known.
            err_var: the channel-estimation error variance ``E|H_ai − Ĥ_ai|²`` of the entries of
                ``H`` (real, ``>= 0``), if known: a float, ``[B]`` (one per instance) or
                ``[B, Nr, Nt]``; stored per channel edge (module doc).

        Raises:
            ValueError: on inconsistent shapes, an empty batch (``B = 0``), ``Nr = 0`` or
                ``Nt = 0``, non-complex data, σ² ≤ 0, NaN/Inf in ``y``, ``H``, σ² or ``err_var``,
                a negative ``err_var``, or labels outside ``[0, qam)``.
            TypeError: on complex or non-numeric σ², or non-integer labels.
        """
        if not (torch.is_complex(y) and torch.is_complex(H)):
            raise ValueError(f"y and H must be complex tensors, got {y.dtype} and {H.dtype}")
        if H.dim() != 3 or y.dim() != 2 or y.shape != H.shape[:2]:
            raise ValueError(f"expected y [B, Nr] and H [B, Nr, Nt], got y {tuple(y.shape)} "
                             f"and H {tuple(H.shape)}")
        _check_sizes_and_noise(H, noise_var)
        batch, nr, nt = H.shape
        device = H.device
        y = y.to(H.dtype)
        noise_var = torch.as_tensor(noise_var, dtype=H.real.dtype, device=device)
        if noise_var.dim() == 0:
            noise_var = noise_var.expand(batch)
        if noise_var.shape != (batch,):
            raise ValueError(f"noise_var must be a scalar or [B={batch}], got {tuple(noise_var.shape)}")
        num_users = _counts(num_users, nt, batch, device, "num_users")
        num_antennas = _counts(num_antennas, nr, batch, device, "num_antennas")

        user_mask = torch.arange(nt, device=device) < num_users[:, None]
        antenna_mask = torch.arange(nr, device=device) < num_antennas[:, None]
        user_ptr, antenna_ptr = cumsum(num_users), cumsum(num_antennas)
        # the padded view, owned by the batch (the caller may change H in place afterwards)
        padded = bool((num_users < nt).any() or (num_antennas < nr).any())
        if padded:
            mask = block_mask(num_antennas, num_users, nr, nt)
            H, y = torch.where(mask, H, 0), torch.where(antenna_mask, y, 0)
            b, a, i = mask.nonzero(as_tuple=True)
            edge_index = torch.stack([antenna_ptr[b] + a, user_ptr[b] + i])
            h = H[b, a, i]
            on_edges = lambda dense: dense[b, a, i]
        else:  # every instance is Nr × Nt: the row-major edges are the flattened H, no search
            H, y = H.clone(), y.clone()
            edge_index = _full_block_edges(batch, nr, nt, device)
            h = H.reshape(-1)
            on_edges = lambda dense: dense.reshape(-1)

        data = cls()
        data[USER].batch = user_mask.nonzero()[:, 0]
        data[USER].num_nodes = int(user_ptr[-1])
        if label is not None:
            if label.shape != (batch, nt):
                raise ValueError(f"label must be [B, Nt] = {(batch, nt)}, got {tuple(label.shape)}")
            data[USER].y = _checked_labels(label[user_mask], qam)
        data[ANTENNA].received = y[antenna_mask] if padded else y.reshape(-1)
        data[ANTENNA].batch = antenna_mask.nonzero()[:, 0]
        data[ANTENNA].num_nodes = int(antenna_ptr[-1])
        data[CHANNEL].edge_index = edge_index
        data[CHANNEL].h = h
        if err_var is not None:
            data[CHANNEL].err_var = on_edges(_entry_variances(err_var, H))
        data.noise_var = noise_var
        data.num_users = num_users
        data.num_antennas = num_antennas
        if snr_db is not None:
            data.snr_db = snr_db
        if qam is not None:
            data["qam"] = torch.full((batch,), qam, dtype=torch.long, device=device)
        nr_max, nt_max = int(num_antennas.max()), int(num_users.max())
        data.memoised("dense", lambda: DenseView(y[:, :nr_max], H[:, :nr_max, :nt_max], noise_var,
                                                 user_mask[:, :nt_max], antenna_mask[:, :nr_max]))
        data.validate()
        return data

    @classmethod
    def from_sionna(cls, y: Tensor, h: Tensor, s: Tensor, **kwargs) -> "MIMOGraph":
        """Wrap tensors in the layout of Sionna's MIMO detectors.

        Args:
            y: ``[..., Nr]`` complex received samples.
            h: ``[..., Nr, Nt]`` complex channels.
            s: the noise: a variance (scalar or ``[...]``) or a covariance
                ``[..., Nr, Nr]``, either broadcastable (as in Sionna, e.g. one
                ``[Nr, Nr]`` for all instances). A non-scalar covariance
                ``S = L Lᴴ`` is whitened (``y ← L⁻¹y``, ``H ← L⁻¹H``, σ² = 1).
                An ``s`` shaped exactly like ``[...]`` is read as variances.
            **kwargs: passed to :meth:`from_dense` (e.g. ``label``, ``qam``).

        Leading dimensions ``[...]`` are flattened into the instance dimension.

        Raises:
            ValueError: on inconsistent shapes or a covariance that is not
                positive definite (and as :meth:`from_dense`).
        """
        if h.dim() < 2 or y.shape != h.shape[:-1]:
            raise ValueError(f"expected y [..., Nr] and h [..., Nr, Nt], got {tuple(y.shape)} "
                             f"and {tuple(h.shape)}")
        nr, nt = h.shape[-2:]
        batch_shape = y.shape[:-1]
        s = torch.as_tensor(s, device=h.device)
        covariance = s.dim() >= 2 and s.shape[-2:] == (nr, nr) and s.shape != batch_shape
        target = (*batch_shape, nr, nr) if covariance else batch_shape
        try:
            s = s.expand(target)
        except RuntimeError:
            raise ValueError(f"s must be a noise variance broadcastable to {tuple(batch_shape)} or a "
                             f"covariance broadcastable to {(*batch_shape, nr, nr)}, got "
                             f"{tuple(s.shape)}") from None
        if covariance:
            chol, info = torch.linalg.cholesky_ex(s.to(h.dtype))
            if (info != 0).any():
                raise ValueError(f"noise covariance s is not positive definite at "
                                 f"{(info != 0).nonzero()[:5].tolist()} (index into [...])")
            h = torch.linalg.solve_triangular(chol, h, upper=False)
            y = torch.linalg.solve_triangular(chol, y[..., None], upper=False)[..., 0]
            s = torch.ones(batch_shape, device=h.device)
        return cls.from_dense(y.reshape(-1, nr), h.reshape(-1, nr, nt), s.reshape(-1), **kwargs)

    # -------------------------------------------------------------- validation
    def validate(self, raise_on_error: bool = True) -> bool:
        """Check the numbers a detector relies on.

        Raises ``ValueError`` (or returns ``False`` if ``raise_on_error`` is
        false) when σ² ≤ 0 or too small for its dtype (:func:`_too_small_noise_var`),
        when ``y``, ``H`` or σ² hold NaN/Inf, when an ``err_var`` is negative or not finite,
        or when a user's channel column is all zero or its energy underflows the dtype (no
        detector can see that user).
        """
        problems = self.memoised("problems", self._problems, autograd=False)
        if problems and raise_on_error:
            raise ValueError("invalid MIMO batch: " + "; ".join(problems))
        return not problems

    def _problems(self) -> list[str]:
        """What :meth:`validate` reports, one sentence per problem (none: valid)."""
        problems = []
        if not torch.isfinite(self.noise_var).all():
            problems.append("noise_var holds NaN/Inf")
        elif (self.noise_var <= 0).any():
            bad = (self.noise_var <= 0).nonzero()[:, 0]
            problems.append(f"noise_var must be > 0 (instances {bad[:5].tolist()} have "
                            f"{self.noise_var[bad[:5]].tolist()})")
        else:
            problems += _too_small_noise_var(self.noise_var)
        h, (_, user) = self[CHANNEL].h, self[CHANNEL].edge_index
        err_var = self[CHANNEL].get("err_var")
        bad = None if err_var is None else ~(torch.isfinite(err_var) & (err_var >= 0))
        if bad is not None and bool(bad.any()):
            problems.append(f"err_var must be finite and >= 0 (instances "
                            f"{self.user_batch[user[bad]].unique()[:5].tolist()})")
        for name, value, node_batch in (("H", h, lambda: self.user_batch[user]),
                                        ("y", self[ANTENNA].received, lambda: self.antenna_batch)):
            if bool(torch.isfinite(torch.view_as_real(value).sum())):
                continue  # a finite sum has finite terms (one pass, 20× faster than isfinite)
            finite = torch.isfinite(torch.view_as_real(value)).all(-1)
            if not finite.all():
                problems.append(f"{name} holds NaN/Inf (instances "
                                f"{node_batch()[~finite].unique()[:5].tolist()})")
        energy = self.column_energy()
        tiny = torch.finfo(energy.dtype).tiny
        if bool((energy >= tiny).all()):  # every column seen, none underflowing: the common case
            return problems
        seen = torch.zeros(self[USER].num_nodes, dtype=torch.bool, device=user.device)
        seen[user[h != 0]] = True
        if not seen.all():
            problems.append(f"users with an all-zero channel column (instances "
                            f"{self.user_batch[~seen].unique()[:5].tolist()})")
        weak = seen & (energy < tiny)
        if weak.any():
            # such a column is zero to every computation in its dtype (its Gram entries underflow);
            # one just above it is weak, not invisible, and the detectors give that user a
            # near-uniform posterior
            problems.append(
                f"users whose channel column energy ‖h_i‖² underflows {_dtype_name(h.dtype)} (below its "
                f"smallest normal number {tiny:.3g}, e.g. {energy[weak][0].item():.3g}; instances "
                f"{self.user_batch[weak].unique()[:5].tolist()}): scale y, H and noise_var up, or use complex128")
        return problems

    # ------------------------------------------------------------- PyG batch
    def get_node_store(self, key: str) -> NodeStorage:
        if key in COUNTS and key not in self._node_store_dict:
            self._node_store_dict[key] = MIMONodeStorage(_parent=self, _key=key)
        return super().get_node_store(key)

    def __inc__(self, key: str, value, store=None, *args, **kwargs):
        """Collation offsets: a node store's ``batch`` (instance of each node) by this batch's
        ``B`` instances, the rest as in PyG (edge indices by the node counts)."""
        if key == "batch" and isinstance(store, NodeStorage):
            return self.num_instances
        return super().__inc__(key, value, store, *args, **kwargs)

    def collect(self, key: str, allow_empty: bool = False) -> dict:
        """``{type: value}`` over the node and edge stores holding ``key`` (what ``x_dict``,
        ``y_dict``, … give), as in ``HeteroData`` but without the deprecated names of
        :data:`RENAMED`: ``y_dict`` holds the targets only."""
        mapping = {store._key: store[key] for store in [*self.node_stores, *self.edge_stores] if key in store}
        if not mapping and not allow_empty:
            raise KeyError(f"no node or edge type of the batch has {key!r}"
                           + (" (add them with graph.add_features())" if key in ("x", "edge_attr") else ""))
        return mapping

    @property
    def num_graphs(self) -> int:
        """The number of instances ``B`` (each instance is one graph)."""
        return self.num_instances

    def get_example(self, idx: int) -> "MIMOGraph":
        """Instance ``idx`` (negative counts from the end) as a one-instance batch."""
        if not -self.num_instances <= idx < self.num_instances:
            raise IndexError(f"instance {idx} out of range for a batch of {self.num_instances}")
        return self.select(torch.tensor([idx % self.num_instances], device=self.num_users.device))

    # ------------------------------------------------------------- properties
    @property
    def num_instances(self) -> int:
        return self.num_users.numel()

    @property
    def qam(self) -> int | None:
        """The constellation order of the batch's symbols, or ``None`` if unknown.

        Stored per instance (``graph["qam"]``, ``[B]``) so that batches collate; a batch
        mixing constellations has no single order and raises ``ValueError``.
        """
        order = self._global_store.get("qam")
        if not isinstance(order, Tensor):
            return order
        low, high = torch.stack(order.aminmax()).tolist()  # one device sync
        if low != high:
            raise ValueError(f"the batch mixes constellations ({order.unique().tolist()}-QAM); "
                             f"a detector needs one")
        return low

    @property
    def user_batch(self) -> Tensor:
        """``[N_u]`` instance of each user node."""
        return self[USER].batch

    @property
    def antenna_batch(self) -> Tensor:
        """``[N_a]`` instance of each antenna node."""
        return self[ANTENNA].batch

    @property
    def user_index(self) -> Tensor:
        """``[N_u]`` position of each user inside its instance (``0 … Nt_b−1``)."""
        batch = self.user_batch
        return torch.arange(batch.numel(), device=batch.device) - self[USER].ptr[batch]

    @property
    def antenna_index(self) -> Tensor:
        """``[N_a]`` position of each antenna inside its instance."""
        batch = self.antenna_batch
        return torch.arange(batch.numel(), device=batch.device) - self[ANTENNA].ptr[batch]

    def column_energy(self) -> Tensor:
        """``[N_u]`` ``‖h_i‖² = Σ_a |H_ai|²`` per user (real), from the dense view in cache-sized
        chunks (the squares of a whole batch are a temporary as large as ``H``); memoised."""
        return self.memoised("column_energy", lambda: self.users_from_dense(_column_energy(self.dense().H)))

    @property
    def user_noise_var(self) -> Tensor:
        """``[N_u]`` σ² of each user's instance."""
        return self.noise_var[self.user_batch]

    # ------------------------------------------------------------ dense views
    def dense(self) -> DenseView:
        """The zero-padded view; see :class:`DenseView`. Memoised (:meth:`memoised`): a batch built by
        :meth:`from_dense` starts with it, others build it once."""
        return self.memoised("dense", self._build_dense)

    def _build_dense(self) -> DenseView:
        batch, nt_max, nr_max = self.num_instances, int(self.num_users.max()), int(self.num_antennas.max())
        antenna, user = self[CHANNEL].edge_index
        h = self[CHANNEL].h
        H = h.new_zeros(batch, nr_max, nt_max)
        H[self.user_batch[user], self.antenna_index[antenna], self.user_index[user]] = h
        y, antenna_mask = to_dense_batch(self[ANTENNA].received, self.antenna_batch, batch_size=batch,
                                         max_num_nodes=nr_max)
        return DenseView(y, H, self.noise_var, self.user_mask(), antenna_mask)

    def dense_err_var(self) -> Tensor | None:
        """``[B, Nr_max, Nt_max]`` the channel-estimation error variances ``v_ai`` (zero on padding),
        or ``None`` when the batch carries none; memoised."""
        if "err_var" not in self[CHANNEL]:
            return None

        def build() -> Tensor:
            antenna, user = self[CHANNEL].edge_index
            dense = self[CHANNEL].err_var.new_zeros(self.dense().H.shape)
            dense[self.user_batch[user], self.antenna_index[antenna], self.user_index[user]] = self[CHANNEL].err_var
            return dense
        return self.memoised("dense_err_var", build)

    def error_in_noise(self) -> "MIMOGraph":
        r"""The batch with its channel-estimation error folded into the noise, for detectors that
        take ``Ĥ`` as exact; the batch itself when it carries no ``err_var``.

        With ``H = Ĥ + Ẽ`` (``Ẽ`` zero-mean, uncorrelated with ``Ĥ`` and ``x``, independent
        entries of variance ``v_aj``: exact for LMMSE estimates, an approximation otherwise,
        docs/conventions.md §2.4) and unit-energy symbols, ``y = Ĥx + (Ẽx + n)`` has the
        effective noise variance ``d_a = σ² + Σ_j v_aj E|x_j|² = σ² + Σ_j v_aj`` at antenna ``a``
        (Gaussian in the detectors' model). Scaling row ``a`` of ``y`` and ``Ĥ`` by
        ``√(d̄/d_a)``, with ``d̄`` the instance's mean ``d_a`` over its antennas, whitens it: the
        new batch has the noise variance ``d̄`` on every antenna. The LMMSE equaliser of the new
        batch is the error-aware one, ``(ĤᴴD⁻¹Ĥ + I)⁻¹ĤᴴD⁻¹y`` with ``D = diag(d_a)``; with equal
        ``v`` on every entry (``--csi-error``: ``v = ε²/Nr``) it is the classic
        ``(ĤᴴĤ + (σ² + Nt ε²/Nr) I)⁻¹Ĥᴴy``. Labels, ``snr_db`` and ``qam`` are kept.
        """
        err_var = self.dense_err_var()
        if err_var is None:
            return self
        view = self.dense()
        d = self.noise_var[:, None] + err_var.sum(-1)                                 # [B, Nr_max]
        mean = (d * view.antenna_mask).sum(-1) / self.num_antennas                   # [B]
        rows = torch.where(view.antenna_mask, (mean[:, None] / d).sqrt(), 0).to(view.H.dtype)
        label = self.dense_labels(0) if "y" in self[USER] else None
        snr_db = self.snr_db if "snr_db" in self else None
        return MIMOGraph.from_dense(view.y * rows, view.H * rows[..., None], mean, self.num_users,
                                    self.num_antennas, label=label, snr_db=snr_db, qam=self.qam)

    def user_mask(self) -> Tensor:
        """``[B, Nt_max]`` bool mask of real users in the padded layout."""
        return torch.arange(int(self.num_users.max()), device=self.num_users.device) < self.num_users[:, None]

    def users_to_dense(self, x: Tensor, fill_value: float = 0.0) -> Tensor:
        """Per-user values ``[N_u, ...]`` → padded ``[B, Nt_max, ...]``."""
        return to_dense_batch(x, self.user_batch, fill_value=fill_value, batch_size=self.num_instances,
                              max_num_nodes=int(self.num_users.max()))[0]

    def users_from_dense(self, x: Tensor) -> Tensor:
        """Padded ``[B, Nt_max, ...]`` → per-user values ``[N_u, ...]``."""
        return x[self.user_mask()]

    def dense_labels(self, fill_value: int = -1) -> Tensor:
        """``[B, Nt_max]`` transmitted symbol indices, ``fill_value`` on padding."""
        return self.users_to_dense(self[USER].y, fill_value)

    # ---------------------------------------------------------- user graph
    def user_edges(self) -> tuple[Tensor, Tensor]:
        """The user graph as ``(edge_index [2, E_u], gram [E_u])``, without changing the batch.

        The batch's own :data:`INTERFERENCE` edges when it has them (added by
        :meth:`add_user_edges` or by hand), else the complete user graph:
        edges ``j → i`` (source ``j``, target ``i``) for all ``i ≠ j`` of an
        instance, with ``gram = h_iᴴ h_j`` read off the batched dense product
        ``HᴴH`` (the graph form, :func:`gnnmimo.ops.gram_on_edges`, gives the
        same numbers and is tested equal, but is slower).

        The complete graph is computed on demand and kept in the batch's
        private memo (:meth:`memoised`), not in its PyG stores: blocks call
        this every iteration, and a block must not change the caller's batch
        (its ``edge_types``, its stores' keys, what it collates or saves to).
        """
        if INTERFERENCE in self.edge_types:
            return self[INTERFERENCE].edge_index, self[INTERFERENCE].gram
        return self.memoised("user_edges", self._complete_user_graph)

    def _complete_user_graph(self) -> tuple[Tensor, Tensor]:
        H = self.dense().H
        mask = self.user_mask()
        pairs = mask[:, :, None] & mask[:, None, :]
        pairs &= ~torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
        b, i, j = pairs.nonzero(as_tuple=True)
        ptr = self[USER].ptr
        edge_index = torch.stack([ptr[b] + j, ptr[b] + i])  # source j, target i
        return edge_index, (H.mH @ H)[b, i, j]

    def add_user_edges(self) -> "MIMOGraph":
        """Store the complete user graph (type :data:`INTERFERENCE`, ``edge_index`` and
        ``gram``, see :meth:`user_edges`) on the batch, in place; returns the batch.

        For code that wants the edges as part of the graph (to inspect, save
        or run PyG layers on); detectors and blocks use :meth:`user_edges` and
        never call this. Does nothing if the edges are already present.
        """
        if INTERFERENCE not in self.edge_types:
            self[INTERFERENCE].edge_index, self[INTERFERENCE].gram = self.user_edges()
        return self

    # ------------------------------------------------------------ PyG features
    def add_features(self, reverse: bool = False) -> "MIMOGraph":
        """Store real-valued features that stock PyG layers take as they are; in place, returns
        the batch.

        Adds (columns named in :data:`FEATURES`, in the real dtype of ``h``):

        * ``graph[USER].x`` ``[N_u, 4]``: ``Re, Im hᵢᴴy``, ``‖hᵢ‖²`` and ``σ²``;
        * ``graph[ANTENNA].x`` ``[N_a, 3]``: ``Re, Im yₐ`` and ``σ²``;
        * ``graph[CHANNEL].edge_attr`` ``[E, 2]``: ``Re, Im Hₐᵢ``;
        * the user graph (:meth:`add_user_edges`) with ``edge_attr`` ``[E_u, 2]``:
          ``Re, Im hᵢᴴhⱼ`` on edge ``j → i``;
        * with ``reverse``, the relation :data:`REVERSE_CHANNEL` (user ``i`` → antenna ``a``)
          with the same ``edge_attr`` as its channel edge.

        ``Hᴴy`` (user ``x``) and ``HᴴH`` (user ``x`` and the user-graph ``edge_attr``) are a
        sufficient statistic for the symbols given σ², so a model on the user graph alone
        loses nothing; the antenna side serves bipartite (AMP-like) models. The features are
        copies: computed from ``h``, ``received`` and σ² now, and not updated if those change.
        ``x_dict``, ``edge_index_dict`` and ``edge_attr_dict`` then feed ``to_hetero`` models.
        """
        from gnnmimo import ops  # ops builds on this module

        received, h = self[ANTENNA].received, self[CHANNEL].h
        matched = ops.matched_filter(self, received)
        self[USER].x = torch.cat([torch.view_as_real(matched), self.column_energy()[:, None],
                                  self.user_noise_var[:, None]], dim=1)
        self[ANTENNA].x = torch.cat([torch.view_as_real(received),
                                     self.noise_var[self.antenna_batch][:, None]], dim=1)
        self[CHANNEL].edge_attr = torch.view_as_real(h).clone()
        self.add_user_edges()
        self[INTERFERENCE].edge_attr = torch.view_as_real(self[INTERFERENCE].gram).clone()
        if reverse:
            self[REVERSE_CHANNEL].edge_index = self[CHANNEL].edge_index.flip(0)
            self[REVERSE_CHANNEL].edge_attr = self[CHANNEL].edge_attr
        return self

    # ------------------------------------------------------------------ memo
    def memoised(self, slot: Hashable, build: Callable[[], Value], autograd: bool = True) -> Value:
        """``build()``, computed once per batch and ``slot``.

        The blocks of an iterative detector derive the same quantities from
        the batch every iteration (the real system, the real-component MRF);
        the result is kept on the batch object, keyed by the identity and
        in-place version counters of ``h``, ``y`` and ``noise_var``, so
        replacing or editing them in place rebuilds it. A value derived from
        tensors is also keyed by the autograd mode (``autograd``): by inference
        mode (its tensors cannot enter autograd outside it) and, when the data
        require gradients, by whether gradients are on (a value built without
        them has no history). Pass ``autograd=False`` for plain Python values.
        """
        h, y, noise_var = self[CHANNEL].h, self[ANTENNA].received, self.noise_var
        key = (h, _version(h), y, _version(y), noise_var, _version(noise_var))
        if autograd:
            wants_grad = h.requires_grad or y.requires_grad or noise_var.requires_grad
            key += (torch.is_inference_mode_enabled(), torch.is_grad_enabled() and wants_grad)
        memo = self.__dict__.setdefault("_memo", {})
        cached = memo.get(slot)
        if cached is not None and all(a is b if isinstance(a, Tensor) else a == b for a, b in zip(cached[0], key)):
            return cached[1]
        value = build()
        memo[slot] = (key, value)
        return value

    # ------------------------------------------------------------- selection
    def select(self, instances: Tensor) -> "MIMOGraph":
        """A new batch made of the given instances (``[K]`` long, repeats allowed), in that order,
        with every attribute (:meth:`carry_attributes`)."""
        view = self.dense()
        label = self.dense_labels(0)[instances] if "y" in self[USER] else None
        snr_db = self.snr_db[instances] if "snr_db" in self else None
        chosen = MIMOGraph.from_dense(view.y[instances], view.H[instances], self.noise_var[instances],
                                      self.num_users[instances], self.num_antennas[instances],
                                      label=label, snr_db=snr_db, qam=self.qam)
        return chosen.carry_attributes(self, instances, self[USER].ptr[instances][chosen.user_batch]
                                       + chosen.user_index, self[ANTENNA].ptr[instances][chosen.antenna_batch]
                                       + chosen.antenna_index)

    def carry_attributes(self, source: "MIMOGraph", instances: Tensor, users: Tensor,
                         antennas: Tensor) -> "MIMOGraph":
        """Copy onto this batch, built from parts of ``source``, the attributes of ``source`` it
        lacks (features, attributes a user attached); in place, returns the batch.

        Args:
            source: the batch this one was built from.
            instances: ``[B]`` the instance of ``source`` each instance comes from.
            users, antennas: ``[N_u]``, ``[N_a]`` the node of ``source`` each node comes from,
                ``-1`` for none.

        Graph-level tensors with one row per instance of ``source`` are gathered by
        ``instances``, node-level ones by node, and :data:`CHANNEL` edge-level ones by the edge
        of ``source`` between the same antenna and user (the row-major layout); rows without a
        source (``-1``, or an antenna and a user from different source instances, as between
        the blocks of merged instances) are zero. Other values are copied. The user graph
        (:data:`INTERFERENCE`) and the reverse relation are derived again
        (:meth:`add_user_edges`, :meth:`add_features`).

        Raises:
            ValueError: if ``source`` has an edge type this method cannot derive.
        """
        unknown = set(source.edge_types) - {CHANNEL, INTERFERENCE, REVERSE_CHANNEL}
        if unknown:
            raise ValueError(f"cannot carry the edge types {sorted(unknown)} to a rebuilt batch; "
                             f"attach them again after rebuilding")
        for key, value in source._global_store.items():
            if key not in self._global_store:
                rows = isinstance(value, Tensor) and value.dim() and value.shape[0] == source.num_instances
                self[key] = value[instances] if rows else value
        for node_type, index in ((USER, users), (ANTENNA, antennas)):
            for key, value in source[node_type].items():
                if key not in self[node_type]:
                    rows = isinstance(value, Tensor) and value.dim() and value.shape[0] == source[node_type].num_nodes
                    self[node_type][key] = _gather(value, index) if rows else value
        channel = source[CHANNEL]
        extra = [key for key in channel.keys() if key not in self[CHANNEL]]
        if extra:
            edge = self._source_edges(source, users, antennas)
            for key in extra:
                value = channel[key]
                rows = isinstance(value, Tensor) and value.dim() and value.shape[0] == channel.num_edges
                self[CHANNEL][key] = _gather(value, edge) if rows else value
        if INTERFERENCE in source.edge_types:
            self.add_user_edges()
        if INTERFERENCE in source.edge_types and "edge_attr" in source[INTERFERENCE] \
                or REVERSE_CHANNEL in source.edge_types:
            self.add_features(reverse=REVERSE_CHANNEL in source.edge_types)
        return self

    def _source_edges(self, source: "MIMOGraph", users: Tensor, antennas: Tensor) -> Tensor:
        """``[E]`` the :data:`CHANNEL` edge of ``source`` joining the source nodes of each edge's
        ends, ``-1`` where there is none (see :meth:`carry_attributes`)."""
        antenna, user = self[CHANNEL].edge_index
        a, i = antennas[antenna], users[user]
        known = (a >= 0) & (i >= 0)
        a, i = a.clamp(min=0), i.clamp(min=0)
        b = source.user_batch[i]
        known &= source.antenna_batch[a] == b
        edge_ptr = cumsum(source.num_users * source.num_antennas)
        edge = edge_ptr[b] + source.antenna_index[a] * source.num_users[b] + source.user_index[i]
        return torch.where(known, edge, -1)


def _gather(value: Tensor, index: Tensor) -> Tensor:
    """``value[index]`` with zero rows where ``index`` is ``-1``."""
    rows = value[index.clamp(min=0)]
    return rows.masked_fill(~(index >= 0).view(-1, *[1] * (rows.dim() - 1)), 0)


def _column_energy(H: Tensor) -> Tensor:
    """``[B, Nt]`` ``‖h_i‖²`` of ``H [B, Nr, Nt]`` (:meth:`MIMOGraph.column_energy`)."""
    batch, nr, nt = H.shape
    parts = torch.view_as_real(H).reshape(batch, nr, 2 * nt)
    (energy,) = in_chunks(lambda start, r: ((r * r).sum(1),), (parts,), parts[0].numel() * parts.element_size())
    return energy.view(batch, nt, 2).sum(-1)


def _full_block_edges(batch: int, nr: int, nt: int, device) -> Tensor:
    """``[2, B·Nr·Nt]`` bipartite edges of ``B`` full ``Nr × Nt`` instances in row-major order
    (instance, antenna, user): edge ``(b, a, i)`` joins antenna ``b·Nr + a`` to user ``b·Nt + i``."""
    edges = torch.empty(2, batch, nr, nt, dtype=torch.long, device=device)
    edges[0].copy_(torch.arange(batch * nr, device=device).view(batch, nr, 1).expand(-1, -1, nt))
    edges[1].copy_(torch.arange(batch * nt, device=device).view(batch, 1, nt).expand(-1, nr, -1))
    return edges.view(2, -1)


def _too_small_noise_var(noise_var: Tensor) -> list[str]:
    """The problem with a positive σ² below ``tiny/eps`` of its dtype (9.9e-32 in float32), or none.

    ``tiny`` is the smallest normal number: the detectors divide by σ² (``1/σ²`` overflows below it)
    and scale it (``σ²/2``, ``σ²/‖h_i‖²``, ``σ²P_ii``), and a subnormal result has lost its
    precision or, with subnormals flushed to zero as the command line runs, becomes 0 (NaN
    probabilities, all-zero LLRs). The margin ``1/eps`` keeps every such product normal.
    """
    finfo = torch.finfo(noise_var.dtype)
    smallest = finfo.tiny / finfo.eps
    bad = (noise_var < smallest).nonzero()[:, 0]
    if not bad.numel():
        return []
    return [f"noise_var {noise_var[bad[0]].item():.3g} (instances {bad[:5].tolist()}) is too small for "
            f"{_dtype_name(noise_var.dtype)}: it must be at least {smallest:.3g} (the smallest normal number "
            f"{finfo.tiny:.3g} over the precision {finfo.eps:.3g}); scale y and H up, or use complex128"]


def _dtype_name(dtype: torch.dtype) -> str:
    """``torch.complex64`` → ``"complex64"``."""
    return str(dtype).removeprefix("torch.")


def _version(tensor: Tensor) -> int:
    """In-place version counter (inference tensors have none and cannot change in place
    outside inference mode, so they count as version 0)."""
    return 0 if tensor.is_inference() else tensor._version


def _check_sizes_and_noise(H: Tensor, noise_var) -> None:
    """The checks of :meth:`MIMOGraph.from_dense` that torch would otherwise fail on far away, or
    pass silently: an empty batch or antenna or user dimension, and a σ² that is not real (a
    complex one would be cast to its real part)."""
    batch, nr, nt = H.shape
    if batch == 0:
        raise ValueError("empty batch: y and H hold B = 0 instances; a batch needs at least one")
    if nr == 0 or nt == 0:
        raise ValueError(f"H [B, Nr, Nt] = {tuple(H.shape)} must have Nr >= 1 antennas and Nt >= 1 users")
    try:
        dtype = torch.as_tensor(noise_var).dtype
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"noise_var (σ²) must be a real number or a real [B] tensor, got {noise_var!r}") from None
    if dtype.is_complex or dtype == torch.bool:
        raise TypeError(f"noise_var (σ², a variance) must be real, got {dtype} values")


def _checked_labels(labels: Tensor, qam: int | None) -> Tensor:
    """``labels`` (the real users' symbol indices, at least one), if they are integers in
    ``[0, qam)`` (``[0, ∞)`` when ``qam`` is not given)."""
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"label must be an integer tensor of symbol indices, got {labels.dtype}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or (qam is not None and high >= qam):
        allowed = f"[0, {qam - 1}] (qam={qam})" if qam is not None else "[0, ∞)"
        raise ValueError(f"label must lie in {allowed} on real users, got values in [{low}, {high}]")
    return labels


def _entry_variances(err_var: Tensor | float, H: Tensor) -> Tensor:
    """``err_var`` (a float, ``[B]``, ``[B, 1, 1]`` or ``[B, Nr, Nt]``) as ``[B, Nr, Nt]`` in ``H``'s real dtype."""
    batch, nr, nt = H.shape
    err_var = torch.as_tensor(err_var, device=H.device)
    if err_var.is_complex() or err_var.dtype == torch.bool:
        raise TypeError(f"err_var must be real, got {err_var.dtype}")
    err_var = err_var.to(H.real.dtype)
    if err_var.shape == (batch,):
        err_var = err_var[:, None, None]
    if err_var.dim() not in (0, 3) or err_var.dim() == 3 and err_var.shape not in ((batch, 1, 1), (batch, nr, nt)):
        raise ValueError(f"err_var must be a float, [B={batch}] or [B, Nr, Nt] = {(batch, nr, nt)}, got "
                         f"{tuple(err_var.shape)}")
    return err_var.expand(batch, nr, nt)


def _counts(counts: Tensor | None, maximum: int, batch: int, device, name: str) -> Tensor:
    if counts is None:
        return torch.full((batch,), maximum, dtype=torch.long, device=device)
    counts = torch.as_tensor(counts, device=device).long()
    if counts.shape != (batch,):
        raise ValueError(f"{name} must be [B={batch}], got {tuple(counts.shape)}")
    if (counts < 1).any() or (counts > maximum).any():
        raise ValueError(f"{name} must lie in [1, {maximum}], got values in "
                         f"[{int(counts.min())}, {int(counts.max())}]")
    return counts
