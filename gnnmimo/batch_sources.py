"""Where the evaluator's batches come from: a sampler's seeded stream, or stored instances.

:func:`gnnmimo.evaluation.evaluate` counts errors point by point, ``(Nt, SNR)``, on the batches
of a *batch source*, and stops a point by its rule (``target_errors`` / ``max_symbols``) or when
the source's batches of that point end. A source has

* ``qam`` (:class:`~gnnmimo.constellation.QAM`), ``device`` (where its batches are), ``nr_range``
  (smallest, largest Nr),
  ``channel`` (a :class:`~gnnmimo.channels.ChannelModel` to compare with a checkpoint's trained
  system, or ``None``/a label when unknown) and ``channel_name`` (what records call it);
* ``points()``: the points it holds, or ``None`` when it can draw any;
* ``batches(nt, snr_db, batch_size)``: an iterator over the point's batches, the same ones on
  every call (a resumed or repeated run measures the same instances), and ``batch(nt, snr_db,
  batch_size, k)``: batch ``k`` of them on its own (``None`` past the end), so that the ranks of a
  sharded evaluation (:mod:`gnnmimo.distributed`) each draw only their batches;
* ``provenance()``: plain data that identifies the batches, stored in every record
  (:func:`gnnmimo.evaluation.record_provenance`), so that ``--resume`` reuses a record only for
  the same data.

Two sources exist: :class:`SampledBatches`, a :class:`~gnnmimo.sampling.MIMOSampler`'s endless
stream per point (batch ``k`` seeded by ``derived_seed(point_seed(seed, Nt, SNR), k)``), and
:class:`~gnnmimo.instances.InstanceSet`, stored instances (your tensors, graphs, a file). Writing
the first ``stream_length`` batches of a sampled point into an instance set (``gnnmimo sample``)
gives a file on which the evaluator counts exactly the errors of the sampled run.
"""
from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import asdict
from typing import Iterable, Iterator, Protocol

import torch

from gnnmimo.channels import ChannelModel
from gnnmimo.constellation import QAM
from gnnmimo.distributed import derived_seed
from gnnmimo.graph import MIMOGraph
from gnnmimo.instances import InstanceSet
from gnnmimo.sampling import MIMOSampler


class BatchSource(Protocol):
    """What the evaluator needs of a source of batches (module doc)."""

    qam: QAM
    device: torch.device
    nr_range: tuple[int, int]
    channel: ChannelModel | str | None
    channel_name: str

    def points(self) -> list[tuple[int, float]] | None: ...

    def batches(self, nt: int, snr_db: float, batch_size: int) -> Iterator[MIMOGraph]: ...

    def batch(self, nt: int, snr_db: float, batch_size: int, k: int) -> MIMOGraph | None: ...

    def provenance(self) -> dict: ...


def point_seed(seed: int, nt: int, snr_db: float) -> int:
    """A stable per-point seed, independent of which other points run."""
    return zlib.crc32(f"{seed}:{nt}:{snr_db:.6f}".encode())


class SampledBatches:
    """``sampler``'s batches at each point, batch ``k`` from the seed ``derived_seed(point_seed(seed,
    Nt, SNR), k)`` (the sampler's own ``nt`` and ``snr_db`` ranges are overridden per point): any
    batch is drawn without the ones before it, the same on every rank."""

    def __init__(self, sampler: MIMOSampler, seed: int = 0):
        self.sampler, self.seed = sampler, seed
        self.qam, self.nr_range, self.channel = sampler.qam, sampler.nr_range, sampler.channel
        self.device = sampler.device
        self.channel_name = sampler.channel.describe()

    def points(self) -> None:
        return None

    def batches(self, nt: int, snr_db: float, batch_size: int) -> Iterator[MIMOGraph]:
        return (self.batch(nt, snr_db, batch_size, k) for k in itertools.count())

    def batch(self, nt: int, snr_db: float, batch_size: int, k: int) -> MIMOGraph:
        generator = self.sampler.generator(derived_seed(point_seed(self.seed, nt, snr_db), k))
        return self.sampler.sample(batch_size, generator, snr_db=snr_db, nt=nt)

    def provenance(self) -> dict:
        """The stream: ``seed`` and how batches are seeded (``stream``); the sampler's ``precision``,
        antenna range ``nr`` and exact ``channel``; the ``device`` *type*, since a CUDA generator draws
        another stream than the CPU one (which GPU, how many CPU threads and how many ranks share the
        work do not change the numbers: seeded runs are bit-identical across them)."""
        sampler = self.sampler
        return {"seed": self.seed, "stream": "one seed per batch", "precision": sampler.precision,
                "nr": sampler.nr_range, "channel": asdict(sampler.channel), "device": sampler.device.type}


def stream_length(max_symbols: int, batch_size: int, nt: int) -> int:
    """The most batches of ``batch_size`` instances of ``nt`` users the evaluator takes at a point: it
    checks its stopping rule after every batch, so it stops after the one that reaches ``max_symbols``."""
    return math.ceil(max_symbols / (batch_size * nt))


def batch_source(data: MIMOSampler | BatchSource | Iterable[MIMOGraph], seed: int = 0) -> BatchSource:
    """``data`` as a batch source (module doc): a sampler's stream seeded by ``seed``, a source as it
    is, or an iterable of :class:`MIMOGraph` batches gathered into an :class:`InstanceSet`."""
    if isinstance(data, MIMOSampler):
        return SampledBatches(data, seed)
    if all(hasattr(data, name) for name in ("batches", "points", "provenance")):
        return data
    if isinstance(data, MIMOGraph):
        data = [data]
    try:
        graphs = list(data)
    except TypeError:
        raise TypeError(f"evaluate takes a MIMOSampler, a batch source or an iterable of MIMOGraph batches, "
                        f"got {type(data).__name__}") from None
    wrong = {type(g).__name__ for g in graphs if not isinstance(g, MIMOGraph)}
    if wrong:
        raise TypeError(f"the batches must be MIMOGraph, got {sorted(wrong)}")
    return InstanceSet.from_graphs(graphs)
