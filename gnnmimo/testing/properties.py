"""Properties every MIMO detector should have, as assertions.

Each helper runs a :class:`~gnnmimo.detector.Detector` (in eval mode,
without gradients; its training flag is restored afterwards) and raises
``AssertionError`` with a diagnosis — which users of which instances (with
their ``Nt``, ``Nr`` and SNR) disagree, and by how much — when the property
fails:

* :func:`assert_permutation_equivariant`: relabelling the users (and, on
  request, the antennas) of an instance relabels the outputs the same way;
* :func:`assert_batch_independent`: an instance's output does not depend on
  the other instances of its batch, their sizes or their order;
* :func:`assert_generalises_over_user_counts`: the detector runs on every
  user count of a range, and on a batch mixing them, with well-formed
  outputs (:func:`assert_well_formed`).

Every check runs twice on a detector with parameters: as given, and with
its parameters randomised (:func:`~gnnmimo.testing.randomise.randomised_parameters`,
seeded by the check's ``seed``), because learned hybrids start with
zero-initialised heads and would otherwise pass as their classical parent;
the message says which of the two failed (``randomise=False`` skips the
second run). An exception raised inside the detector is re-raised as an
``AssertionError`` chained to it, naming the instances (``Nt``, ``Nr``, SNR)
that raise it when run alone. Attributes attached to the batch (node-level,
instance-level, on the channel edges) follow their nodes and instances into
the batches the checks rebuild (:meth:`~gnnmimo.graph.MIMOGraph.carry_attributes`).

Outputs are compared as **probabilities** (softmax of the logits), not
logits: logits are defined up to a per-user constant and are huge for
confident decisions, while probabilities are bounded. Detectors with
discrete steps (ordered SIC, K-best, sphere decoding) can take a different
branch when two candidates tie up to rounding, because a permutation changes
the order of floating-point sums; ``max_mismatch`` tolerates such a fraction
of users. The default tolerance on probabilities depends on the precision of
the batch (:data:`DEFAULT_ATOL`); test in double precision for tight checks.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor

from gnnmimo.channels import ChannelModel
from gnnmimo.detector import Detection, Detector
from gnnmimo.graph import ANTENNA, CHANNEL, USER, MIMOGraph
from gnnmimo.registry import registered_name
from gnnmimo.sampling import MIMOSampler
from gnnmimo.testing.randomise import has_parameters, randomised_parameters

#: absolute tolerance on probabilities when ``atol=None``, by batch precision
DEFAULT_ATOL = {torch.complex64: 1e-2, torch.complex128: 1e-6}
#: at most this many disagreeing users are listed in a failure message
SHOWN = 5
#: after a detector raised on a batch, at most this many of its instances are run alone to find the culprits
ISOLATED = 32


# ------------------------------------------------------------------ running
@contextlib.contextmanager
def _evaluation(detector: Detector) -> Iterator[None]:
    training = detector.training
    detector.eval()
    try:
        yield
    finally:
        detector.train(training)


def _run(detector: Detector, graph: MIMOGraph, name: str) -> Detection:
    """``detector.detect(graph)`` in eval mode; an exception is re-raised as an ``AssertionError``
    (chained) that describes the batch and the instances that raise it alone."""
    with _evaluation(detector):
        try:
            return detector.detect(graph)
        except Exception as error:
            raise AssertionError(f"{name} raised {type(error).__name__}: {error}\n  "
                                 f"{_culprits(detector, graph)}") from error


def _culprits(detector: Detector, graph: MIMOGraph) -> str:
    """Which instances of ``graph`` make ``detector`` raise when run alone (the first
    :data:`ISOLATED`), described with their sizes and SNR."""
    sizes = (f"on a batch of {graph.num_instances} instances with Nt in {graph.num_users.unique().tolist()} "
             f"and Nr in {graph.num_antennas.unique().tolist()}")
    if graph.num_instances == 1:
        return f"{sizes}: {_describe_instance(graph, 0)}"
    failing = []
    for b in range(min(graph.num_instances, ISOLATED)):  # only after a failure
        try:
            detector.detect(graph.get_example(b))
        except Exception:
            failing.append(b)
    if not failing:
        return f"{sizes}; none of its first {min(graph.num_instances, ISOLATED)} instances raises alone"
    shown = "; ".join(_describe_instance(graph, b) for b in failing[:SHOWN])
    return f"{sizes}; run alone, {len(failing)} instances raise: {shown}"


def _variants(detector: Detector, randomise: bool, seed: int) -> Iterator[tuple[Detector, str]]:
    """``(detector, which)``: as given and, when it has parameters, with them randomised."""
    if not (randomise and has_parameters(detector)):
        yield detector, ""
        return
    yield detector, " [parameters as given]"
    yield (randomised_parameters(detector, seed=seed),
           f" [parameters randomised: randomised_parameters(detector, seed={seed})]")


def _on_variants(detector: Detector, randomise: bool, seed: int,
                 check: Callable[[Detector, str], None]) -> None:
    """``check(model, name)`` on each variant of :func:`_variants`, ``name`` saying which."""
    for model, which in _variants(detector, randomise, seed):
        check(model, _name(detector) + which)


def _iteration_probs(detection: Detection) -> Tensor:
    """``[T, N_u, M]`` logits → ``[N_u, T, M]`` probabilities after every iteration."""
    return detection.logits.softmax(-1).transpose(0, 1)


def _has(graph: MIMOGraph, key: str) -> bool:
    return key in graph


# ------------------------------------------------------- batch assembly
@dataclass
class _Instances:
    """Zero-padded dense instances, to assemble new batches from parts of old ones.

    ``y [K, Nr]``, ``H [K, Nr, Nt]``, ``noise_var``, ``num_users``, ``num_antennas`` ``[K]``,
    ``label [K, Nt]`` and ``snr_db [K]`` (or ``None``). Entries beyond each instance's
    counts are ignored by :meth:`MIMOGraph.from_dense`. ``instance [K]``, ``user [K, Nt]``
    and ``antenna [K, Nr]`` record where each instance and node comes from in the batch
    the parts were taken of, to carry its attributes (:meth:`graph`).
    """

    y: Tensor
    H: Tensor
    noise_var: Tensor
    num_users: Tensor
    num_antennas: Tensor
    label: Tensor | None
    snr_db: Tensor | None
    instance: Tensor
    user: Tensor
    antenna: Tensor

    @property
    def size(self) -> int:
        return self.num_users.numel()

    @classmethod
    def of(cls, graph: MIMOGraph) -> "_Instances":
        view = graph.dense()
        batch, nr, nt = view.H.shape
        device = view.H.device
        return cls(view.y, view.H, graph.noise_var, graph.num_users, graph.num_antennas,
                   graph.dense_labels(0) if "y" in graph[USER] else None,
                   graph.snr_db if _has(graph, "snr_db") else None,
                   torch.arange(batch, device=device),
                   graph[USER].ptr[:-1, None] + torch.arange(nt, device=device),
                   graph[ANTENNA].ptr[:-1, None] + torch.arange(nr, device=device))

    def _map(self, function) -> "_Instances":
        return _Instances(*(None if value is None else function(name, value)
                            for name, value in vars(self).items()))

    def take(self, index: Tensor) -> "_Instances":
        return self._map(lambda name, value: value[index])

    def padded(self, nr: int, nt: int) -> "_Instances":
        pads = {"y": (0, nr - self.y.shape[1]), "label": (0, nt - self.H.shape[2]),
                "user": (0, nt - self.H.shape[2]), "antenna": (0, nr - self.y.shape[1]),
                "H": (0, nt - self.H.shape[2], 0, nr - self.H.shape[1])}
        return self._map(lambda name, value: torch.nn.functional.pad(value, pads[name])
                         if name in pads else value)

    @staticmethod
    def cat(parts: list["_Instances"]) -> "_Instances":
        nr = max(part.H.shape[1] for part in parts)
        nt = max(part.H.shape[2] for part in parts)
        parts = [part.padded(nr, nt) for part in parts]
        return _Instances(*(None if values[0] is None else torch.cat(values)
                            for values in zip(*(vars(part).values() for part in parts))))

    @staticmethod
    def block_diagonal(first: "_Instances", second: "_Instances") -> "_Instances":
        """Pairs of instances as one larger instance: ``H = [[H_a, 0], [0, H_b]]``,
        ``y = [y_a; y_b]``, users and antennas of ``a`` then ``b``; σ² and SNR of ``a``.
        Counts add, so ``Nt ≤ Nr`` is preserved. Vectorised with gathers."""
        nr, nt = first.H.shape[1:]
        device = first.H.device
        rows, cols = torch.arange(2 * nr, device=device), torch.arange(2 * nt, device=device)
        in_a_row, in_a_col = rows < first.num_antennas[:, None], cols < first.num_users[:, None]
        # position inside the source instance (clamped entries lie beyond the counts: ignored)
        row = torch.where(in_a_row, rows, rows - first.num_antennas[:, None]).clamp(0, nr - 1)
        col = torch.where(in_a_col, cols, cols - first.num_users[:, None]).clamp(0, nt - 1)
        k = torch.arange(first.size, device=device)[:, None, None]
        block_a = in_a_row[:, :, None] & in_a_col[:, None, :]
        block_b = ~in_a_row[:, :, None] & ~in_a_col[:, None, :]
        H = torch.where(block_a, first.H[k, row[:, :, None], col[:, None, :]],
                        torch.where(block_b, second.H[k, row[:, :, None], col[:, None, :]], 0))
        y = torch.where(in_a_row, first.y.gather(1, row), second.y.gather(1, row))
        label = None if first.label is None else torch.where(
            in_a_col, first.label.gather(1, col), second.label.gather(1, col))
        user = torch.where(in_a_col, first.user.gather(1, col), second.user.gather(1, col))
        antenna = torch.where(in_a_row, first.antenna.gather(1, row), second.antenna.gather(1, row))
        return _Instances(y, H, first.noise_var, first.num_users + second.num_users,
                          first.num_antennas + second.num_antennas, label, first.snr_db,
                          first.instance, user, antenna)

    def graph(self, source: MIMOGraph) -> MIMOGraph:
        """The batch of these instances, with the attributes of ``source`` they were taken of."""
        graph = MIMOGraph.from_dense(self.y, self.H, self.noise_var, self.num_users, self.num_antennas,
                                     label=self.label, snr_db=self.snr_db, qam=source.qam)
        real = lambda index, counts: index[torch.arange(index.shape[1], device=index.device) < counts[:, None]]
        return graph.carry_attributes(source, self.instance, real(self.user, self.num_users),
                                      real(self.antenna, self.num_antennas))


# -------------------------------------------------------------- permutation
def within_instance_permutation(counts: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Independent random permutations of ``0 … n_b−1``, one per instance.

    Args:
        counts: ``[B]`` sizes ``n_b ≤ size``.
        size: the padded size.
        generator: a CPU random stream.

    Returns:
        ``[B, size]`` long: row ``b`` holds a permutation of ``0 … n_b−1`` in
        its first ``n_b`` entries and the identity on the padding. Random keys
        are sorted, with padded keys above all real ones (no loop).
    """
    keys = torch.rand(counts.numel(), size, generator=generator).to(counts.device)
    real = torch.arange(size, device=counts.device) < counts[:, None]
    return torch.where(real, keys, 2.0).argsort(dim=1, stable=True)


def within_instance_cycle(counts: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Independent uniformly random ``n_b``-cycles, one per instance: derangements.

    ``σ_b(k) = π_b(π_b⁻¹(k) + 1 mod n_b)`` with ``π_b`` from :func:`within_instance_permutation`:
    the cycle that visits the positions in the random order ``π_b``. It moves every user of
    every instance with ``n_b ≥ 2`` (a random permutation is the identity with probability
    ``1/n_b!``: for ``n_b = 2``, one instance in two would be left unpermuted).

    Returns:
        ``[B, size]`` long, as :func:`within_instance_permutation`.
    """
    order = within_instance_permutation(counts, size, generator)
    position = order.argsort(dim=1)  # π⁻¹, the identity on the padding as π is
    following = torch.where(position < counts[:, None] - 1, position + 1, 0)
    real = torch.arange(size, device=counts.device) < counts[:, None]
    return torch.where(real, order.gather(1, following), order)


def permute_users(graph: MIMOGraph, seed: int = 0,
                  antennas: bool = False) -> tuple[MIMOGraph, Tensor, Tensor | None]:
    """Relabel the users (and optionally the antennas) of every instance independently.

    Permutes the columns of each ``H`` (and the labels with them) and, with
    ``antennas``, the rows of ``H`` and the entries of ``y``:
    ``H'[b] = P_a H[b] P_u``, ``y'[b] = P_a y[b]``. σ², the counts, the SNR
    and the constellation are kept, and attached attributes follow their nodes.
    The permutations are random cycles (:func:`within_instance_cycle`), so
    every user of an instance with ``Nt ≥ 2`` moves, whatever the seed.

    Returns:
        ``(permuted, user_perm, antenna_perm)``: the new batch; ``[B, Nt_max]``
        with user ``k`` of instance ``b`` in ``permuted`` being user
        ``user_perm[b, k]`` of ``graph``; likewise ``[B, Nr_max]`` for the
        antennas (``None`` unless ``antennas``).
    """
    generator = torch.Generator().manual_seed(seed)
    instances = _Instances.of(graph)
    batch, nr, nt = instances.H.shape
    user_perm = within_instance_cycle(graph.num_users, nt, generator)
    instances.H = instances.H.gather(2, user_perm[:, None, :].expand(batch, nr, nt))
    instances.user = instances.user.gather(1, user_perm)
    if instances.label is not None:
        instances.label = instances.label.gather(1, user_perm)
    antenna_perm = None
    if antennas:
        antenna_perm = within_instance_cycle(graph.num_antennas, nr, generator)
        instances.H = instances.H.gather(1, antenna_perm[:, :, None].expand(batch, nr, nt))
        instances.y = instances.y.gather(1, antenna_perm)
        instances.antenna = instances.antenna.gather(1, antenna_perm)
    return instances.graph(graph), user_perm, antenna_perm


def _unpermute(graph: MIMOGraph, user_perm: Tensor, values: Tensor) -> Tensor:
    """Per-user ``values [N_u, ...]`` of the permuted batch → in ``graph``'s user order."""
    dense = graph.users_to_dense(values)
    index = user_perm.view(*user_perm.shape, *([1] * (dense.dim() - 2))).expand_as(dense)
    return graph.users_from_dense(torch.empty_like(dense).scatter_(1, index, dense))


# --------------------------------------------------------------- comparison
def _default_atol(graph: MIMOGraph, atol: float | None) -> float:
    if atol is not None:
        return atol
    return DEFAULT_ATOL.get(graph[CHANNEL].h.dtype, DEFAULT_ATOL[torch.complex64])


def _describe_instance(graph: MIMOGraph, b: int, user: int | None = None) -> str:
    label = f"instance {b}" + ("" if user is None else f" user {user}")
    label += f" (Nt={int(graph.num_users[b])}, Nr={int(graph.num_antennas[b])}"
    if _has(graph, "snr_db"):
        label += f", SNR={float(graph.snr_db[b]):.1f} dB"
    return label + ")"


def _describe_user(graph: MIMOGraph, user: int) -> str:
    return _describe_instance(graph, int(graph.user_batch[user]), int(graph.user_index[user]))


def _assert_probs_close(expected: Tensor, actual: Tensor, graph: MIMOGraph, users: Tensor, *,
                        atol: float, rtol: float, max_mismatch: float, failure: str) -> None:
    """Compare per-user probabilities and explain the users that disagree.

    Args:
        expected, actual: ``[n, T, M]`` probabilities after each iteration.
        graph, users: the batch and the ``[n]`` user nodes of it the rows describe.
        max_mismatch: the fraction of users allowed to disagree.
        failure: the first sentence of the message.
    """
    if expected.shape != actual.shape:
        raise AssertionError(f"{failure}: outputs have shapes {tuple(expected.shape)} and "
                             f"{tuple(actual.shape)} ([users, iterations, M])")
    difference = (actual - expected).abs()
    bad = ~(difference <= atol + rtol * expected.abs())  # NaN counts as a disagreement
    bad_user = bad.flatten(1).any(1)
    count = int(bad_user.sum())
    if count <= max_mismatch * bad_user.numel():
        return
    worst = difference.nan_to_num(float("inf")).flatten(1).amax(1)
    order = worst.masked_fill(~bad_user, -1.0).argsort(descending=True)[:min(count, SHOWN)]
    lines = [f"{failure}: {count} of {bad_user.numel()} users differ by more than "
             f"atol={atol:g} + rtol={rtol:g}·|p| (allowed fraction {max_mismatch:g})."]
    for row in order.tolist():
        want, got = expected[row, -1], actual[row, -1]
        lines.append(f"  {_describe_user(graph, int(users[row]))}: max |Δp| = {float(worst[row]):.3g}; "
                     f"final decision expected {int(want.argmax())} (p={float(want.max()):.3f}), "
                     f"got {int(got.argmax())} (p={float(got.max()):.3f})")
    raise AssertionError("\n".join(lines))


def _name(detector: Detector) -> str:
    return registered_name(type(detector)) or type(detector).__name__


# --------------------------------------------------------------- properties
def assert_permutation_equivariant(detector: Detector, graph: MIMOGraph, seed: int = 0, *,
                                   permute_antennas: bool = False, atol: float | None = None,
                                   rtol: float = 0.0, max_mismatch: float = 0.0,
                                   check_iterations: bool = True, randomise: bool = True) -> None:
    """Assert that relabelling users relabels the outputs the same way.

    With ``P`` a permutation of the users of instance ``b`` (a random cycle
    drawn independently per instance by :func:`permute_users`, so every user
    of an instance with ``Nt ≥ 2`` moves), the detector must
    satisfy ``p(H P, y) = P⁻¹-reordered p(H, y)`` for the final symbol
    probabilities ``[N_u, M]`` and, with ``check_iterations``, for the
    probabilities after every iteration ``[T, N_u, M]``. With
    ``permute_antennas`` the rows of ``H`` and ``y`` are permuted too, a
    symmetry of every detector that treats antennas alike (not of
    sorted-QR-based ones).

    Args:
        detector: any :class:`~gnnmimo.detector.Detector`.
        graph: the batch to test on.
        seed: seeds the permutations.
        atol, rtol: tolerance on probabilities; ``atol=None`` picks
            :data:`DEFAULT_ATOL` from the batch precision.
        max_mismatch: fraction of users allowed to disagree (ties, see the
            module doc).
        check_iterations: also compare every iteration, not only the last.
        randomise: also check the detector with its parameters randomised (module doc).

    Raises:
        AssertionError: naming the users whose outputs differ, or the instances on which the
            detector raised.
    """
    permuted, user_perm, _ = permute_users(graph, seed, antennas=permute_antennas)
    what = "users and antennas" if permute_antennas else "users"

    def check(model: Detector, name: str) -> None:
        expected = _iteration_probs(_run(model, graph, name))
        actual = _unpermute(graph, user_perm, _iteration_probs(_run(model, permuted, name + f" (permuted {what})")))
        if not check_iterations:
            expected, actual = expected[:, -1:], actual[:, -1:]
        _assert_probs_close(
            expected, actual, graph, torch.arange(expected.shape[0], device=expected.device),
            atol=_default_atol(graph, atol), rtol=rtol, max_mismatch=max_mismatch,
            failure=f"{name} is not permutation equivariant (permuting {what}, seed={seed})")

    _on_variants(detector, randomise, seed, check)


def assert_batch_independent(detector: Detector, graph: MIMOGraph, seed: int = 0, *,
                             num_instances: int = 3, atol: float | None = None, rtol: float = 0.0,
                             max_mismatch: float = 0.0, check_iterations: bool = True,
                             randomise: bool = True) -> None:
    """Assert that an instance's output does not depend on its batch-mates.

    The detector runs on ``graph`` (the reference), then

    1. on each of ``num_instances`` randomly chosen instances **alone** (a
       batch of one, built with :meth:`~gnnmimo.graph.MIMOGraph.select`, so
       with no padding);
    2. on a **different, shuffled batch of mixed sizes**: a random subset of
       the instances (always including the chosen ones), new smaller
       batch-mates (random instances cut to their first ``⌈Nt/2⌉`` users)
       and, if the detector accepts mixed ``Nr``, new larger ones (pairs of
       instances merged block-diagonally, ``[[H_a, 0], [0, H_b]]``, which
       changes the padded sizes ``Nt_max`` and ``Nr_max``), in random order.

    Every original instance in these runs must reproduce its reference
    probabilities ``[Nt_b, T, M]``. One detector call per chosen instance
    is needed for (1); everything else is vectorised.

    Args:
        detector: any :class:`~gnnmimo.detector.Detector`.
        graph: the batch to test on.
        seed: seeds the choices and the shuffle.
        num_instances: how many instances to run alone.
        atol, rtol, max_mismatch, check_iterations, randomise: as in
            :func:`assert_permutation_equivariant`.

    Raises:
        AssertionError: naming the instances whose outputs change, or those on which the
            detector raised.
    """
    generator = torch.Generator().manual_seed(seed)
    device = graph.num_users.device
    batch, ptr = graph.num_instances, graph[USER].ptr
    options = dict(atol=_default_atol(graph, atol), rtol=rtol, max_mismatch=max_mismatch)
    chosen = torch.randperm(batch, generator=generator)[:num_instances].to(device)
    alone = [graph.select(torch.tensor([b], device=device)) for b in chosen.tolist()]
    mixed, source = _mixed_batch(graph, chosen, detector.supports_mixed_antennas, generator)
    originals = source[source >= 0].sort().values
    instance = mixed.user_batch

    def check(model: Detector, name: str) -> None:
        expected = _iteration_probs(_run(model, graph, name))
        if not check_iterations:
            expected = expected[:, -1:]

        def compare(run: MIMOGraph, users: Tensor, keep: Tensor, failure: str) -> None:
            """``users [N_u(run)]``: the node in ``graph`` of each user of ``run``; compare where ``keep``."""
            actual = _iteration_probs(_run(model, run, name))[:, -expected.shape[1]:]
            _assert_probs_close(expected[users[keep]], actual[keep], graph, users[keep], **options,
                                failure=failure)

        for b, single in zip(chosen.tolist(), alone):
            compare(single, ptr[b] + single.user_index, torch.ones_like(single.user_index, dtype=torch.bool),
                    f"{name} is not batch independent: instance {b} run alone differs from the "
                    f"same instance in its batch of {batch}")
        compare(mixed, ptr[source[instance].clamp(min=0)] + mixed.user_index, source[instance] >= 0,
                f"{name} is not batch independent: instances {originals.tolist()} give different "
                f"outputs in a shuffled batch of {source.numel()} with batch-mates of other sizes "
                f"(instance order {source.tolist()} with -1 for new batch-mates, user counts "
                f"{mixed.num_users.tolist()}, antenna counts {mixed.num_antennas.tolist()})")

    _on_variants(detector, randomise, seed, check)


def _mixed_batch(graph: MIMOGraph, chosen: Tensor, mixed_antennas: bool,
                 generator: torch.Generator) -> tuple[MIMOGraph, Tensor]:
    """The shuffled batch of :func:`assert_batch_independent` (its step 2), and ``[K]`` the
    instance of ``graph`` each of its instances is, ``-1`` for a new batch-mate."""
    device, batch = graph.num_users.device, graph.num_instances
    rest = torch.randperm(batch, generator=generator).to(device)
    rest = rest[~torch.isin(rest, chosen)]
    keep = int(torch.randint(int(chosen.numel() == 0), rest.numel() + 1, (), generator=generator))
    originals = torch.cat([chosen, rest[:keep]])
    everything = _Instances.of(graph)
    smaller = everything.take(torch.randint(0, batch, (max(1, batch // 2),), generator=generator).to(device))
    smaller.num_users = (smaller.num_users + 1) // 2
    parts = [everything.take(originals), smaller]
    if mixed_antennas:
        pairs = torch.randint(0, batch, (2, max(1, batch // 4)), generator=generator).to(device)
        parts.append(_Instances.block_diagonal(everything.take(pairs[0]), everything.take(pairs[1])))
    source = torch.cat([originals, torch.full((sum(p.size for p in parts[1:]),), -1, device=device)])
    shuffle = torch.randperm(source.numel(), generator=generator).to(device)
    return _Instances.cat(parts).take(shuffle).graph(graph), source[shuffle]


def assert_well_formed(detection: Detection, graph: MIMOGraph, *, atol: float = 1e-4,
                       context: str = "") -> None:
    """Assert that a detection has the shapes and values the interface promises.

    For ``N_u`` users, ``M`` points and ``k = log2 M`` bits: ``logits``
    ``[T ≥ 1, N_u, M]`` and finite; ``probs`` ``[N_u, M]``, non-negative,
    summing to 1 within ``atol``; ``hard`` ``[N_u]`` integer in ``[0, M)``;
    ``llr("app")`` and ``llr("maxlog")`` ``[N_u, k]`` and finite.

    Raises:
        AssertionError: listing every problem found (and ``context``).
    """
    qam, num_users = detection.qam, graph[USER].num_nodes
    where = f" ({context})" if context else ""
    logits = detection.logits
    if logits.dim() != 3 or logits.shape[0] < 1 or tuple(logits.shape[1:]) != (num_users, qam.order):
        raise AssertionError(f"logits have shape {tuple(logits.shape)}, expected [T >= 1, "
                             f"N_u={num_users}, M={qam.order}]{where}")
    problems = []

    def instances(bad_user: Tensor) -> list[int]:
        return graph.user_batch[bad_user].unique()[:SHOWN].tolist()

    finite = torch.isfinite(logits).all(-1).all(0)
    if not finite.all():
        problems.append(f"logits hold NaN/Inf for {int((~finite).sum())} users (instances "
                        f"{instances(~finite)})")
    probs = detection.probs
    total = probs.double().sum(-1)
    off = ~((total - 1).abs() <= atol) | (probs < 0).any(-1)
    if probs.shape != (num_users, qam.order):
        problems.append(f"probs have shape {tuple(probs.shape)}, expected [{num_users}, {qam.order}]")
    elif off.any():
        problems.append(f"probabilities of {int(off.sum())} users are negative or do not sum to 1 "
                        f"(sums in [{float(total.min()):.6g}, {float(total.max()):.6g}], instances "
                        f"{instances(off)})")
    hard = detection.hard
    if hard.shape != (num_users,) or hard.dtype.is_floating_point or hard.dtype.is_complex:
        problems.append(f"hard decisions are {hard.dtype} {tuple(hard.shape)}, expected integer "
                        f"[{num_users}]")
    elif ((hard < 0) | (hard >= qam.order)).any():
        problems.append(f"hard decisions outside [0, {qam.order}): {hard.unique()[:SHOWN].tolist()}")
    order = getattr(graph, "qam", None)
    if order is not None and order != qam.order:
        problems.append(f"the detection is over {qam.order}-QAM, the batch carries {order}-QAM")
    for method in ("app", "maxlog"):
        llr = detection.llr(method)
        if llr.shape != (num_users, qam.num_bits):
            problems.append(f"llr({method!r}) has shape {tuple(llr.shape)}, expected "
                            f"[{num_users}, {qam.num_bits}]")
        elif not torch.isfinite(llr).all():
            bad = ~torch.isfinite(llr).all(-1)
            problems.append(f"llr({method!r}) holds NaN/Inf for {int(bad.sum())} users (instances "
                            f"{instances(bad)})")
    if problems:
        raise AssertionError("malformed detection" + where + ":\n  " + "\n  ".join(problems))


def assert_generalises_over_user_counts(detector: Detector, nr: int | tuple[int, int],
                                        nt_range: tuple[int, int], qam: int | None = None, *,
                                        channel: ChannelModel | None = None,
                                        snr_db: float | tuple[float, float] = (0.0, 30.0),
                                        batch_size: int = 8, seed: int = 0, precision: str = "single",
                                        device: str | torch.device = "cpu", randomise: bool = True) -> None:
    """Assert that the detector handles every user count of a range, alone and mixed.

    Samples ``batch_size`` instances for each ``Nt`` in ``nt_range``
    (inclusive), then one batch of ``2·batch_size`` instances whose ``Nt``
    is drawn per instance from the range, and checks every output with
    :func:`assert_well_formed`: logits ``[T, N_u, M]`` finite, probabilities
    summing to 1, hard decisions in range, LLRs ``[N_u, k]`` finite.

    Args:
        detector: any :class:`~gnnmimo.detector.Detector`.
        nr: receive antennas (a range mixes them, for detectors that allow it).
        nt_range: ``(low, high)`` user counts.
        qam: the constellation order (default: the detector's).
        channel: the channel law (default i.i.d. Rayleigh).
        snr_db: a value or a per-instance range.
        batch_size, seed, precision, device: of the sampled batches.
        randomise: as in :func:`assert_permutation_equivariant`.

    Raises:
        AssertionError: naming the user count whose outputs are malformed, or on which the
            detector raised.
    """
    low, high = nt_range
    sampler = MIMOSampler(nr=nr, nt=(low, high), qam=qam or detector.qam.order, snr_db=snr_db,
                          channel=channel or ChannelModel(), precision=precision, device=device)
    generator = sampler.generator(seed)
    graphs = {f"with Nt={nt}, Nr={nr}": sampler.sample(batch_size, generator, nt=nt)
              for nt in range(low, high + 1)}
    graphs[f"on a batch mixing Nt in {low}..{high}, Nr={nr}"] = sampler.sample(2 * batch_size, generator)

    def check(model: Detector, name: str) -> None:
        for where, graph in graphs.items():
            assert_well_formed(_run(model, graph, f"{name} {where}"), graph, context=f"{name} {where}")

    _on_variants(detector, randomise, seed, check)
