r"""Monte-Carlo SER/BER evaluation of several detectors on the same samples.

For each user count ``Nt`` and SNR, the batches come from a *batch source*
(:mod:`gnnmimo.batch_sources`): a sampler's seeded stream (batch ``k`` from its
own seed, derived from the point's seed — itself from ``(seed, Nt, SNR)`` — and
``k``, so a point is reproducible on its own, a resumed run draws the same
samples, and any batch can be drawn without the ones before it), or stored
instances (your tensors or graphs, a file; :class:`~gnnmimo.instances.InstanceSet`),
whose batches of a point end with its instances. Every detector still running
sees every batch; a detector stops at a point once it has made
``target_errors`` symbol errors or seen ``max_symbols`` symbols (or when the
batches end), so all detectors are measured on a common prefix of the same
batches.

**Sharded over ranks** (a ``torchrun`` launch, :mod:`gnnmimo.distributed`):
the batches are the stream's fixed chunks, and in round ``j`` rank ``r`` of
``N`` counts batch ``jN + r``. After each round the ranks exchange the counts
of their batch (per detector: the error counts, the coded counts of a coded
run and each instance's symbol errors, padded to ``batch_size`` for the short
last batch of stored instances; a rank past their end sends an empty tally,
which ends the point) and every rank adds them up in stream order, batch by
batch, with the stopping rule checked after each batch as in one process: a
detector done within a round ignores the rest of it. So an ``N``-rank run
counts exactly the batches a single process counts, and its records (errors,
symbols, intervals, paired statistics, coded counts; not ``seconds``) are
identical for every ``N``; at most ``N − 1`` batches per detector and point
are computed in vain.

**Intervals** (95 % by default) are Clopper–Pearson intervals on the
*effective* sample size of Korn & Graubard (1998). The symbols of one instance
share its channel, so errors come in bursts (a badly conditioned channel costs
several users at once) and are not independent trials; the instances are. With
``M`` instances of ``n`` symbols (bits) each and ``e_m`` errors in instance
``m``, the rate ``p̂ = Σe_m / (Mn)`` has the cluster variance

.. math::
    \widehat{\operatorname{Var}}(\hat p) = \frac{\sum_m (e_m - n\hat p)^2}{(M-1)\,M\,n^2},

and the interval is Clopper–Pearson's for ``p̂ N_eff`` errors in
``N_eff = min(Mn, p̂(1 − p̂) / Var)`` trials — the binomial interval when errors
are isolated, wider by about the square root of the mean burst size when they
are not.

**Paired comparisons** (``reference=``). Two detectors measured on the same
instances differ far less than their intervals suggest, because the hard
channels are hard for both. With ``e_m, e_m^{ref}`` the symbol errors of
instance ``m`` on the common prefix of ``M`` instances (``Nt`` symbols each),
``d_m = e_m − e_m^{ref}``, the SER difference ``d̄ / Nt`` gets a Student-t
interval from the spread of the ``d_m``, and a two-sided sign test counts
the instances where the detector made fewer (``better``) or more
(``worse``) errors than the reference: a 0.1 dB gap that independent
intervals cannot resolve shows up there. From a single instance the interval
is undefined (``None``, ``null`` in JSON).

**Provenance.** Every record stores what determined it besides its point
(:func:`record_provenance`: the source's identity — seed and sampler, or the
SHA-256 of stored instances —, stopping rule, batch size, the detector's spec
and checkpoint hash, …). Records of an earlier run passed as
``previous`` are reused only when their provenance equals this run's; a
stored record of a planned point made otherwise raises :class:`ResumeMismatch`
before any work.

**Trained systems.** A detector loaded from a checkpoint carries the system it
was trained on (``detector.checkpoint["system"]``: Nr, the Nt range, the
channel). Evaluated outside it — another Nr (the Nr-agnostic models run
anywhere), a user count outside the range, another channel kind, ρ outside the
trained range, another CSI error — its numbers are extrapolation;
:func:`evaluate` says so once per detector with an
:class:`OutsideTrainedSystemWarning` naming both systems.
"""
from __future__ import annotations

import itertools
import math
import numbers
import time
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from scipy.stats import beta, binomtest, t as student_t
from torch import Tensor

from gnnmimo import distributed
from gnnmimo.batch_sources import BatchSource, batch_source, point_seed
from gnnmimo.channels import ChannelModel
from gnnmimo.checkpoint import differences, library_version
from gnnmimo.detector import Detector
from gnnmimo.graph import MIMOGraph
from gnnmimo.link import CodedCounts, CodedLink, CodedResult, LDPC5GCode, snr_db_of_ebno_db
from gnnmimo.progress import progress_bar
from gnnmimo.registry import class_path, registered_name
from gnnmimo.sampling import MIMOSampler
from gnnmimo.tr38901 import TR38901Channel, channel_from_fields


def clopper_pearson(errors: float, trials: float, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for an error rate ``errors / trials`` (real counts allowed)."""
    if trials == 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    low = beta.ppf(alpha / 2, errors, trials - errors + 1) if errors > 0 else 0.0
    high = beta.ppf(1 - alpha / 2, errors + 1, trials - errors) if errors < trials else 1.0
    return float(low), float(high)


def clustered_interval(errors: int, trials: int, clusters: int, error_squares: int,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson on the effective sample size, for ``errors`` in ``trials``
    split evenly over ``clusters`` instances with ``Σ e_m² = error_squares``
    (see the module docstring)."""
    if clusters < 2 or errors in (0, trials):
        return clopper_pearson(errors, trials, confidence)
    rate, per_cluster = errors / trials, trials / clusters
    spread = error_squares - 2 * rate * per_cluster * errors + clusters * (rate * per_cluster) ** 2
    variance = spread / ((clusters - 1) * clusters * per_cluster ** 2)
    effective = trials if variance <= 0 else min(trials, rate * (1 - rate) / variance)
    return clopper_pearson(rate * effective, effective, confidence)


@dataclass
class PairedComparison:
    """A detector against a ``reference`` on the ``instances`` both saw at one point (module doc).

    Attributes:
        symbol_errors, reference_symbol_errors: errors of each on those instances.
        ser_difference, ci_low, ci_high: SER of the detector minus SER of the reference, with
            its interval (negative: the detector is better); the interval is ``None`` when
            ``instances`` is 1 (no spread to estimate it from).
        better, worse: instances with fewer / more errors than the reference.
        p_value: two-sided sign test of ``better`` against ``worse``.
    """

    reference: str
    instances: int
    symbol_errors: int
    reference_symbol_errors: int
    ser_difference: float
    ci_low: float | None
    ci_high: float | None
    better: int
    worse: int
    p_value: float


def sign_test(better: int, worse: int) -> float:
    """Two-sided p-value of ``better`` successes in ``better + worse`` fair coin flips."""
    return float(binomtest(better, better + worse).pvalue) if better + worse else 1.0


def paired_comparison(errors: Tensor, reference_errors: Tensor, symbols_per_instance: int,
                      reference: str, confidence: float = 0.95) -> PairedComparison:
    """Compare per-instance symbol errors ``[M]`` of a detector and a reference on the same
    instances (module doc)."""
    difference = (errors - reference_errors).double()
    count = difference.numel()
    mean = float(difference.mean()) / symbols_per_instance
    low = high = None  # one instance: no spread, no interval (infinite bounds would not be valid JSON)
    if count > 1:
        spread = float(difference.std()) / symbols_per_instance
        half_width = student_t.ppf((1 + confidence) / 2, count - 1) * spread / math.sqrt(count)
        low, high = mean - half_width, mean + half_width
    better, worse = int((difference < 0).sum()), int((difference > 0).sum())
    return PairedComparison(reference, count, int(errors.sum()), int(reference_errors.sum()), mean,
                            low, high, better, worse, sign_test(better, worse))


@dataclass
class PointResult:
    """One detector at one (Nt, SNR) point. ``seconds`` is detector time only.

    ``instances`` and the sums of squared per-instance error counts are the
    statistics of the intervals (0 in records written before they were kept);
    ``paired`` compares the detector with the run's reference detector; ``coded`` holds the coded
    BER and BLER of a coded run (:mod:`gnnmimo.link`), ``ebno_db`` the point's Eb/N0 when the run's
    axis is Eb/N0;
    ``provenance`` is what determined the record besides its :attr:`key`
    (:func:`record_provenance`; ``None`` in records written before it was kept,
    which a resumed run cannot verify and so refuses).
    """

    detector: str
    nr: int
    nt: int
    qam: int
    channel: str
    snr_db: float
    symbols: int
    symbol_errors: int
    ser: float
    ser_ci_low: float
    ser_ci_high: float
    bits: int
    bit_errors: int
    ber: float
    ber_ci_low: float
    ber_ci_high: float
    seconds: float
    instances: int = 0
    symbol_error_squares: int = 0
    bit_error_squares: int = 0
    paired: PairedComparison | None = None
    provenance: dict | None = None
    coded: CodedResult | None = None
    ebno_db: float | None = None

    def __post_init__(self):
        if isinstance(self.paired, dict):  # read back from JSON
            self.paired = PairedComparison(**self.paired)
        if isinstance(self.coded, dict):
            self.coded = CodedResult(**self.coded)

    @property
    def key(self) -> tuple:
        """Which point the record is of (a resumed run also compares :attr:`provenance`)."""
        return point_key(self.detector, self.nr, self.nt, self.qam, self.channel, self.snr_db)

    def to_dict(self) -> dict:
        return asdict(self)


def point_key(detector: str, nr: int, nt: int, qam: int, channel: str, snr_db: float) -> tuple:
    return detector, int(nr), int(nt), int(qam), channel, round(float(snr_db), 6)


def record_provenance(detector: Detector, source: BatchSource, *, target_errors: int, max_symbols: int, batch_size: int,
                      reference: str | None, code: LDPC5GCode | None = None, target_block_errors: int | None = None,
                      seed: int = 0) -> dict:
    """What determines a record of ``detector`` besides its point (:func:`point_key`), as plain JSON data.

    * the batches: the ``source``'s provenance (:mod:`gnnmimo.batch_sources`): for a sampler's
      stream ``seed``, how batches are seeded (``stream``), ``precision``, ``nr``, ``channel`` and
      ``device`` type (:meth:`~gnnmimo.batch_sources.SampledBatches.provenance`; how many ranks share
      the work does not change the numbers); for stored instances ``data.sha256``, the digest of
      their content, and ``data.instances``;
    * where a point stops: ``target_errors``, ``max_symbols`` and ``batch_size`` (the stopping rule is
      checked after every batch);
    * the ``detector``: its registered name (or ``module:Class``), constellation and resolved options
      (:attr:`~gnnmimo.detector.Detector.hparams`) and compute ``precision``
      (:attr:`~gnnmimo.detector.Detector.precision`); for a detector loaded from a ``checkpoint``, the path
      or pretrained name it was loaded by (``source``) and the ``sha256`` of the file's content;
    * the paired ``reference`` and the ``library_version``;
    * in a coded run, the ``code``, ``target_block_errors`` and the ``seed`` of the information bits
      (absent otherwise; a sampler's stream names the same seed).
    """
    cls = type(detector)
    loaded = detector.checkpoint
    coded = ({} if code is None else
             {"code": code.spec, "target_block_errors": target_block_errors, "seed": seed})
    return _plain({
        **coded, "library_version": library_version(), **source.provenance(),
        "target_errors": target_errors, "max_symbols": max_symbols, "batch_size": batch_size,
        "detector": {"name": registered_name(cls) or class_path(cls), "qam": detector.qam.order,
                     "options": detector.hparams, "precision": detector.precision},
        "checkpoint": None if loaded is None else {"source": loaded.get("source", loaded.get("path")),
                                                   "sha256": loaded.get("sha256")},
        "reference": reference,
    })


def _plain(value):
    """``value`` as strict JSON data: tuples as lists, keys as strings, anything else (an object, a
    non-finite float) by its ``repr``, so that a record compares equal to itself read back."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return repr(value)


class ResumeMismatch(ValueError):
    """Stored records of points a run would reuse, made otherwise than the run would make them."""


def reusable_keys(previous: Iterable[PointResult], planned: Mapping[tuple, str],
                  provenance: Mapping[str, dict]) -> set[tuple]:
    """The keys of the ``previous`` records that a run may reuse instead of running their points again.

    Args:
        planned: the run's points, :func:`point_key` → detector name.
        provenance: the run's :func:`record_provenance`, by detector name.

    Raises:
        ResumeMismatch: listing, per detector, the stored records of planned points whose provenance
            differs (each difference as ``field: stored vs now``) or is missing (written before
            records kept it: they cannot be verified).
    """
    reusable, problems = set(), defaultdict(list)  # (detector, what differs) → points
    for record in previous:
        name = planned.get(record.key)
        if name is None:
            continue  # not a point of this run: kept as it is
        found = (["written before records kept their provenance, so it cannot be verified"]
                 if record.provenance is None else differences(record.provenance, provenance[name]))
        if found:
            problems[(record.detector, "; ".join(found))].append(f"Nt={record.nt} SNR={record.snr_db:g}")
        else:
            reusable.add(record.key)
    if problems:
        lines = [f"{detector} ({len(points)} point{'s' * (len(points) > 1)}: {', '.join(points[:3])}"
                 f"{', …' if len(points) > 3 else ''}): {found}" for (detector, found), points in problems.items()]
        raise ResumeMismatch("stored records of points of this run were made otherwise (stored vs now):\n  "
                             + "\n  ".join(lines))
    return reusable


def _checked_points(nts: Iterable[int], snrs_db: Iterable[float], **counts: int) -> tuple[list[int], list[float]]:
    """``nts`` and ``snrs_db`` as lists, after checking them and the ``counts`` (each an int >= 1)."""
    def is_int(value) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    for name, value in counts.items():
        if not (is_int(value) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    nts, snrs_db = list(nts), list(snrs_db)
    bad_nts = [nt for nt in nts if not (is_int(nt) and nt >= 1)]
    if bad_nts:
        raise ValueError(f"nts (user counts) must be integers >= 1, got {bad_nts}")
    bad_snrs = [snr for snr in snrs_db if not (isinstance(snr, numbers.Real) and math.isfinite(snr))]
    if bad_snrs:
        raise ValueError(f"snrs_db must be finite numbers (dB), got {bad_snrs}")
    return [int(nt) for nt in nts], [float(snr) for snr in snrs_db]


def planned_points(source: BatchSource, nts: Iterable[int] | None, snrs_db: Iterable[float] | None,
                   **counts: int) -> list[tuple[int, float]]:
    """The ``(Nt, SNR)`` points of a run on ``source`` (after :func:`_checked_points`): every pair of
    ``nts × snrs_db`` for a source that draws any point (a sampler); for stored instances, the points
    they hold whose Nt is in ``nts`` and SNR in ``snrs_db`` (each, where given).

    Raises:
        ValueError: when a sampler gets no ``nts`` or ``snrs_db``, or a given Nt or SNR selects none
            of the stored points (the message lists them).
    """
    held = source.points()
    if held is None:
        if nts is None or snrs_db is None:
            raise ValueError("nts and snrs_db are needed to evaluate on a sampler (it draws any point)")
        nts, snrs_db = _checked_points(nts, snrs_db, **counts)
        return [(nt, snr) for nt in nts for snr in snrs_db]
    wanted_nts, wanted_snrs = _checked_points(nts or (), snrs_db or (), **counts)
    wanted_snrs = [round(snr, 6) for snr in wanted_snrs]
    unknown = ([f"Nt {nt}" for nt in wanted_nts if nt not in {p[0] for p in held}]
               + [f"SNR {snr:g} dB" for snr in wanted_snrs if snr not in {round(p[1], 6) for p in held}])
    if unknown:
        raise ValueError(f"the instances hold no point at {', '.join(unknown)}; they hold (Nt, SNR dB) "
                         f"{', '.join(f'({nt}, {snr:g})' for nt, snr in held)}")
    return [(nt, snr) for nt, snr in held
            if (not wanted_nts or nt in wanted_nts) and (not wanted_snrs or round(snr, 6) in wanted_snrs)]


#: the counts of a batch's tally (:func:`_tally`), in order; then its detector time (ns), the coded
#: counts (:class:`~gnnmimo.link.CodedCounts`, zero uncoded) and the per-instance errors
TALLY_COUNTS = ("instances", "symbols", "bits", "symbol_errors", "bit_errors", "symbol_error_squares",
                "bit_error_squares")
CODED_COUNTS = tuple(vars(CodedCounts()))
_HEAD = len(TALLY_COUNTS) + 1 + len(CODED_COUNTS)


def _tally(detector: Detector, graph: MIMOGraph | None, width: int, link: CodedLink | None = None,
           info_bits: Tensor | None = None) -> Tensor:
    """``[len(TALLY_COUNTS) + 1 + len(CODED_COUNTS) + width]`` int64: what detecting one batch adds
    to a :class:`_Counter` — the counts, the detector's time in nanoseconds, the coded counts of
    ``link`` on ``info_bits`` and each instance's symbol errors, padded with −1 to ``width``
    instances (one tensor of one shape on every rank, so that ranks exchange it in one collective).
    ``graph=None`` (past the end of stored instances): an empty tally, 0 instances."""
    if graph is None:
        return torch.cat([torch.zeros(_HEAD, dtype=torch.long), torch.full((width,), -1)])
    start = time.perf_counter_ns()
    detection = detector.detect(graph)
    hard = detection.hard
    nanoseconds = time.perf_counter_ns() - start
    coded = CodedCounts() if link is None else link.count(graph, detection.llr(), info_bits.to(hard.device))
    label = graph["user"].y
    errors = torch.stack([(hard != label).long(),  # [2, N_u]: symbol, bit errors per user
                          (detector.qam.bits_of(hard) != detector.qam.bits_of(label)).sum(-1)])
    per_instance = errors.new_zeros(2, graph.num_instances).index_add_(1, graph.user_batch, errors)
    sizes = per_instance.new_tensor([graph.num_instances, label.numel(), label.numel() * detector.qam.num_bits])
    return torch.cat([sizes, per_instance.sum(1), per_instance.square().sum(1), sizes.new_tensor([nanoseconds]),
                      sizes.new_tensor(list(vars(coded).values())),
                      F.pad(per_instance[0], (0, width - graph.num_instances), value=-1)])


class _Counter:
    """Running error counts of one detector at one point."""

    def __init__(self):
        self.symbols = self.symbol_errors = self.bits = self.bit_errors = 0
        self.instances = self.symbol_error_squares = self.bit_error_squares = 0
        self.seconds = 0.0
        self.errors_by_batch: list[Tensor] = []  # symbol errors per instance, for paired comparisons
        self.coded = CodedCounts()                 # a coded run's blocks (gnnmimo.link)

    def add_tally(self, tally: Tensor) -> None:
        """Add one batch's :func:`_tally`."""
        *counts, nanoseconds = tally[:len(TALLY_COUNTS) + 1].tolist()
        for name, count in zip(TALLY_COUNTS, counts):
            setattr(self, name, getattr(self, name) + count)
        self.seconds += nanoseconds * 1e-9
        self.coded += CodedCounts(*tally[len(TALLY_COUNTS) + 1:_HEAD].tolist())
        errors = tally[_HEAD:]
        self.errors_by_batch.append(errors[errors >= 0])

    def done(self, target_errors: int, max_symbols: int, target_block_errors: int | None = None) -> bool:
        """The stopping rule: ``max_symbols``, or ``target_block_errors`` block errors when given,
        else ``target_errors`` symbol errors."""
        if self.symbols >= max_symbols:
            return True
        if target_block_errors is not None:
            return self.coded.block_errors >= target_block_errors
        return self.symbol_errors >= target_errors

    def errors_per_instance(self) -> Tensor:
        return torch.cat(self.errors_by_batch)


def _count_round(counters: dict[str, _Counter], running: list[str], detectors: Mapping[str, Detector],
                 batch: Callable[[int], tuple], round_index: int, finished: Callable[[str], bool], width: int,
                 link: CodedLink | None) -> bool:
    """Round ``round_index`` of a point (module doc): this rank detects batch ``round_index · N + rank``
    (``batch(k)``: the graph, ``None`` past the end, and its information bits) with the ``running``
    detectors, the ranks exchange their tallies, and each counter adds them in stream order until it
    is ``finished``. One process: the next batch, added to every running counter. Returns whether
    the batches go on (no rank was past their end)."""
    graph, info_bits = batch(round_index * distributed.world_size() + distributed.rank())
    tallies = torch.stack([_tally(detectors[name], graph, width, link, info_bits) for name in running])
    for batch_tallies in distributed.gather_rows(tallies):   # in stream order
        if batch_tallies[0, 0] == 0:   # no instances: the stream ended, and so do the later batches
            return False
        for name, tally in zip(running, batch_tallies):
            if not finished(name):
                counters[name].add_tally(tally)
    return True


class OutsideTrainedSystemWarning(UserWarning):
    """A checkpoint's detector is evaluated outside the system it was trained on (module doc)."""


def outside_trained_system(system: dict, sampler: MIMOSampler | BatchSource,
                           nts: list[int]) -> list[str]:
    """How evaluating the system of ``sampler`` (or of a batch source) at the user counts ``nts``
    leaves a trained ``system`` (``{"nr", "nt": [low, high], "channel": {...}}``, as checkpoints store
    it; absent keys are not compared, nor is the channel of data whose channel law is not given),
    one ``"Nr 16 (trained 8)"`` line per difference; empty inside it."""
    found = []
    if "nr" in system and sampler.nr_range != (system["nr"], system["nr"]):
        found.append(f"Nr {_span(*sampler.nr_range)} (trained {system['nr']})")
    if "nt" in system and (min(nts) < system["nt"][0] or max(nts) > system["nt"][1]):
        found.append(f"Nt {_span(min(nts), max(nts))} (trained {_span(*system['nt'])})")
    channel = sampler.channel
    if "channel" in system and isinstance(channel, (ChannelModel, TR38901Channel)):
        trained = channel_from_fields(system["channel"])
        if isinstance(trained, ChannelModel) and isinstance(channel, ChannelModel):
            (low, high), (evaluated_low, evaluated_high) = trained.rho_range, channel.rho_range
            outside = (channel.kind != trained.kind or evaluated_low < low or evaluated_high > high
                       or channel.csi_error != trained.csi_error)
        else:   # a 3GPP law on either side: the same law or not
            outside = channel != trained
        if outside:
            found.append(f"channel {channel.describe()} (trained {trained.describe()})")
    return found


def _span(low: int, high: int) -> str:
    return f"{low}" if low == high else f"{low}…{high}"


def warn_outside_trained_systems(detectors: Mapping[str, Detector],
                                 sampler: MIMOSampler | BatchSource, nts: list[int]) -> None:
    """One :class:`OutsideTrainedSystemWarning` per detector from a checkpoint evaluated outside its
    trained system (:func:`outside_trained_system`)."""
    for name, detector in detectors.items():
        found = outside_trained_system((detector.checkpoint or {}).get("system") or {}, sampler, nts)
        if found:
            warnings.warn(f"{name!r} is evaluated outside the system its checkpoint was trained on: "
                          f"{'; '.join(found)}; its numbers there are extrapolation",
                          OutsideTrainedSystemWarning, stacklevel=3)


def evaluate(detectors: Mapping[str, Detector], sampler: MIMOSampler | BatchSource | Iterable[MIMOGraph],
             nts: Iterable[int] | None = None, snrs_db: Iterable[float] | None = None,
             target_errors: int = 1000, max_symbols: int = 1_000_000,
             batch_size: int = 4096, seed: int = 0, previous: Iterable[PointResult] = (),
             on_point: Callable[[list[PointResult]], None] = lambda results: None,
             progress: bool = True, reference: str | None = None, code: LDPC5GCode | None = None,
             target_block_errors: int | None = None, ebno: bool = False) -> list[PointResult]:
    """Measure SER/BER of ``detectors`` for every ``Nt`` in ``nts`` and SNR in ``snrs_db``.

    Args:
        detectors: name → detector; all must use the constellation of the batches.
        sampler: where the batches come from (:func:`~gnnmimo.batch_sources.batch_source`): a
            :class:`MIMOSampler` (its ``nt``/``snr_db`` ranges are overridden per point), stored
            instances (:class:`~gnnmimo.instances.InstanceSet`, e.g. read by
            :func:`~gnnmimo.instances.load_instances`), or an iterable of :class:`MIMOGraph`
            batches carrying labels, ``snr_db`` and ``qam`` (grouped into points by Nt and SNR).
        nts, snrs_db: user counts (integers >= 1) and SNRs (finite, dB): every pair is a point. For
            stored instances they select among the points the instances hold (default: all).
        target_errors: a detector stops at a point after this many symbol errors …
        max_symbols: … or after this many symbols (or when stored instances run out).
        batch_size: instances per batch (stored instances are cut into batches of this size; the
            chunk of the stream that a rank takes in a sharded run).
        seed: base seed of the sample streams (a sampler) and of a coded run's information bits.
        previous: records of an earlier run (to resume it): a point whose record is there with this
            run's provenance is not run again; one with another provenance, or none, raises
            :class:`ResumeMismatch` before any work (:func:`reusable_keys`).
        on_point: called with the results of each finished point (e.g. to
            save them), so an interruption loses at most the current point.
        reference: the name of one of ``detectors``; every other detector's
            records then carry a :class:`PairedComparison` with it, on the
            instances both saw (points where it ran).
        code: a channel code: the records then carry the coded BER and BLER
            (:class:`~gnnmimo.link.CodedResult`; layout, scrambling and LLRs: :mod:`gnnmimo.link`).
        target_block_errors: in a coded run, stop a detector at a point after this many block
            errors (or ``max_symbols``) instead of ``target_errors`` symbol errors.
        ebno: read ``snrs_db`` as Eb/N0 values (dB) and convert them per ``Nt``
            (:func:`~gnnmimo.link.snr_db_of_ebno_db`, the code's rate or 1 uncoded).

    Returns:
        One :class:`PointResult` per detector and point that was run.

    Raises:
        ValueError: for an argument out of range (named in the message), before any work.

    Warns:
        OutsideTrainedSystemWarning: once per detector from a checkpoint whose trained system
            the evaluated one leaves (module doc).
    """
    source = batch_source(sampler, seed)
    if ebno and source.points() is not None:
        raise ValueError("ebno=True needs a sampler: stored instances are at fixed SNRs (select them by snrs_db)")
    if target_block_errors is not None and (code is None or not isinstance(target_block_errors, int)
                                            or target_block_errors < 1):
        raise ValueError(f"target_block_errors must be an integer >= 1 with a code, got {target_block_errors!r} "
                         f"(code {code})")
    axes = planned_points(source, nts, snrs_db, target_errors=target_errors, max_symbols=max_symbols,
                          batch_size=batch_size)
    rate = 1.0 if code is None else code.rate
    points = [(nt, snr_db_of_ebno_db(axis, nt, source.qam, rate) if ebno else axis, axis) for nt, axis in axes]
    link = None if code is None else CodedLink(code, source.qam, source.device)
    for name, detector in detectors.items():
        if detector.qam != source.qam:
            raise ValueError(f"detector {name!r} decides on {detector.qam} but samples are {source.qam}")
    if reference is not None and reference not in detectors:
        raise ValueError(f"the paired reference {reference!r} is not among the detectors {list(detectors)}")
    warn_outside_trained_systems(detectors, source, sorted({nt for nt, _ in axes}))
    nr = source.nr_range[1]
    channel = source.channel_name

    def key(name: str, nt: int, snr: float) -> tuple:
        return point_key(name, nr, nt, source.qam.order, channel, snr)

    provenance = {name: record_provenance(detector, source, target_errors=target_errors, max_symbols=max_symbols,
                                          batch_size=batch_size, reference=reference, code=code,
                                          target_block_errors=target_block_errors, seed=seed)
                  for name, detector in detectors.items()}
    done = reusable_keys(previous, {key(name, nt, snr): name for name in detectors for nt, snr, _ in points},
                         provenance)
    results = []
    for nt, snr, axis in points:
        names = [n for n in detectors if key(n, nt, snr) not in done]
        if not names:
            continue
        counters = {name: _Counter() for name in names}
        bit_stream = point_seed(seed + 1, nt, snr)

        def batch(k: int) -> tuple[MIMOGraph | None, Tensor | None]:
            """Batch ``k`` and, in a coded run, its information bits (seeded by ``k`` too)."""
            graph = source.batch(nt, snr, batch_size, k)
            if link is None or graph is None:
                return graph, None
            bits = torch.Generator().manual_seed(distributed.derived_seed(bit_stream, k))
            return graph, link.draw_info_bits(graph, bits)

        def finished(name: str) -> bool:
            return counters[name].done(target_errors, max_symbols, target_block_errors)
        bar = progress_bar(enabled=progress, total=max_symbols, desc=f"Nt={nt} SNR={snr:g} dB", unit="sym",
                           leave=False)
        with bar:
            for round_index in itertools.count():
                running = [n for n in names if not finished(n)]
                if not running or not _count_round(counters, running, detectors, batch, round_index, finished,
                                                   batch_size, link):
                    break   # every detector stopped, or stored instances ran out
                bar.update(max(c.symbols for c in counters.values()) - bar.n)   # the detectors still running
                bar.set_postfix(errors=min(c.symbol_errors for c in counters.values()))
        point = [_result(name, counters[name], nr, nt, source.qam.order, channel, snr, provenance[name])
                 for name in names]
        for record in point:
            record.ebno_db = float(axis) if ebno else None
            if link is not None:
                record.coded = _coded_result(code, detectors[record.detector], counters[record.detector].coded)
        if reference in counters:
            reference_errors = counters[reference].errors_per_instance()
            for record in point:
                if record.detector != reference:
                    errors = counters[record.detector].errors_per_instance()
                    common = min(errors.numel(), reference_errors.numel())
                    record.paired = paired_comparison(errors[:common], reference_errors[:common], nt,
                                                      reference)
        results += point
        on_point(point)
    return results


def _coded_result(code: LDPC5GCode, detector: Detector, c: CodedCounts) -> CodedResult:
    """The coded record: Clopper–Pearson on the blocks, the clustered interval (blocks as
    clusters) on the information bits."""
    ber_low, ber_high = clustered_interval(c.bit_errors, c.bits, c.blocks, c.bit_error_squares)
    bler_low, bler_high = clopper_pearson(c.block_errors, c.blocks)
    return CodedResult(code.spec, detector.soft_output, c.bits, c.bit_errors, c.bit_errors / max(c.bits, 1),
                       ber_low, ber_high, c.blocks, c.block_errors, c.block_errors / max(c.blocks, 1),
                       bler_low, bler_high)


def _result(name: str, c: _Counter, nr: int, nt: int, qam: int, channel: str, snr: float,
            provenance: dict) -> PointResult:
    ser_low, ser_high = clustered_interval(c.symbol_errors, c.symbols, c.instances, c.symbol_error_squares)
    ber_low, ber_high = clustered_interval(c.bit_errors, c.bits, c.instances, c.bit_error_squares)
    return PointResult(name, nr, nt, qam, channel, float(snr), c.symbols, c.symbol_errors,
                       c.symbol_errors / c.symbols, ser_low, ser_high, c.bits, c.bit_errors,
                       c.bit_errors / c.bits, ber_low, ber_high, round(c.seconds, 4),
                       c.instances, c.symbol_error_squares, c.bit_error_squares, provenance=provenance)
