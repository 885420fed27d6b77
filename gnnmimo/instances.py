r"""A set of MIMO instances held as dense tensors, grouped into (Nt, SNR) points, and its file format.

:class:`InstanceSet` is what the evaluator reads when the instances are not drawn by a
:class:`~gnnmimo.sampling.MIMOSampler`: your own channels (measured, ray-traced, Sionna's), a
dataset on disk, or a sampler's stream written once by ``gnnmimo sample``. ``M`` instances of up
to ``Nr`` antennas and ``Nt`` users are

* ``y [M, Nr]`` complex received samples, ``H [M, Nr, Nt]`` complex channels as the detector sees
  them, ``noise_var [M]`` real σ² > 0 (``y = H x + n``, ``n ~ CN(0, σ² I)``; docs/conventions.md);
* ``label [M, Nt]`` the transmitted symbol indices in ``[0, qam)`` (Gray, TS 38.211);
* ``num_users [M]``, ``num_antennas [M]`` the actual ``Nt_m ≤ Nt`` and ``Nr_m ≤ Nr`` (entries
  beyond them are padding and ignored);
* ``snr_db [M]`` the SNR that names the instance's point.

**Points.** The evaluator counts errors per point ``(Nt, SNR)``: instance ``m`` belongs to the
point ``(num_users[m], snr_db[m])`` (the SNR rounded to 10⁻⁶ dB, as record keys are), and a
point's instances are taken in the order they are stored. Give the instances of one operating
point the same nominal ``snr_db``.

**The file** (docs/instances.md) is a ``torch.save`` of a dict with the tensors above and
``format = "gnnmimo-instances"``, ``version = 1``, ``qam`` and ``channel``; :func:`load_instances`
reads it with ``weights_only=True`` (no code runs) and checks everything before returning, so a
bad file fails at once with :class:`InstancesFileError` naming it, never in the middle of a run.

**Identity.** :attr:`InstanceSet.digest` is a SHA-256 of the content (every tensor's dtype, shape
and bytes, the constellation and the channel): the same instances give the same digest whether
they come from a file, from graphs in memory or from a copy of the file elsewhere, and any change
to them gives another. Evaluation records store it, so ``--resume`` never mixes data sets.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from gnnmimo.channels import ChannelModel
from gnnmimo.constellation import QAM
from gnnmimo.files import atomic_write
from gnnmimo.graph import MIMOGraph

#: the ``format`` entry of an instances file, and the newest ``version`` this library reads
FORMAT, VERSION = "gnnmimo-instances", 1
#: the tensors of an instance set, in the order the digest reads them
TENSORS = ("y", "H", "noise_var", "label", "num_users", "num_antennas", "snr_db")
#: instances per graph built when the set is checked (bounds the memory of the check)
CHECK_CHUNK = 8192
#: the decimals of an SNR that tell points apart (as :func:`gnnmimo.evaluation.point_key`)
SNR_DECIMALS = 6


class InstancesFileError(ValueError):
    """A file that is not a readable instances file; the message names the file and what is wrong."""


@dataclass
class InstanceSet:
    """``M`` MIMO instances as dense tensors (module doc), checked when built.

    Args:
        y, H, noise_var, label, num_users, num_antennas, snr_db: as in the module doc.
        qam: the constellation order the labels index.
        channel: the channel law the instances follow (a :class:`ChannelModel`, compared with a
            checkpoint's trained system), or a free label of your data (``"measured-office"``),
            or ``None`` (records then say ``"own-data"``).

    Raises:
        ValueError: naming the tensor (and, for numbers a graph refuses, the instances) when
            shapes disagree, a count leaves its range, a label leaves ``[0, qam)``, an SNR is not
            finite, or ``y``, ``H``, σ² are refused by :meth:`MIMOGraph.from_dense`.
        TypeError: for tensors of the wrong kind (real ``H``, float labels).
    """

    y: Tensor
    H: Tensor
    noise_var: Tensor
    label: Tensor
    num_users: Tensor
    num_antennas: Tensor
    snr_db: Tensor
    qam: QAM | int
    channel: ChannelModel | str | None = None

    def __post_init__(self):
        self.qam = self.qam if isinstance(self.qam, QAM) else QAM(self.qam)
        if isinstance(self.channel, dict):  # read back from a file
            self.channel = ChannelModel(**self.channel)
        for name in TENSORS:
            if not isinstance(getattr(self, name), Tensor):
                raise TypeError(f"{name} must be a tensor, got {type(getattr(self, name)).__name__}")
        if self.H.dim() != 3:
            raise ValueError(f"H must be [M, Nr, Nt], got shape {tuple(self.H.shape)}")
        count, nr, nt = self.H.shape
        expected = {"y": (count, nr), "noise_var": (count,), "label": (count, nt), "num_users": (count,),
                    "num_antennas": (count,), "snr_db": (count,)}
        wrong = [f"{name} {tuple(getattr(self, name).shape)} (expected {shape})"
                 for name, shape in expected.items() if tuple(getattr(self, name).shape) != shape]
        if wrong:
            raise ValueError(f"with H [M, Nr, Nt] = {tuple(self.H.shape)}, got " + ", ".join(wrong))
        if self.snr_db.dtype.is_complex or not torch.isfinite(self.snr_db).all():
            raise ValueError("snr_db must be finite real numbers (dB)")
        for start in range(0, count, CHECK_CHUNK):  # MIMOGraph.from_dense checks the rest
            try:
                self.graph(torch.arange(start, min(start + CHECK_CHUNK, count), device=self.H.device))
            except (ValueError, TypeError) as error:
                raise type(error)(f"instances {start}…{min(start + CHECK_CHUNK, count) - 1}: {error}") from None

    # ------------------------------------------------------------ building
    @classmethod
    def from_graphs(cls, graphs: Iterable[MIMOGraph], channel: ChannelModel | str | None = None) -> "InstanceSet":
        """The instances of ``graphs`` (e.g. built with :meth:`MIMOGraph.from_dense` or
        :meth:`~MIMOGraph.from_sionna`, or drawn by a sampler), in order.

        Every graph must carry ``label``, ``snr_db`` and ``qam`` (the same in all); padding to the
        largest ``Nr`` and ``Nt`` is added where graphs differ.
        """
        graphs = list(graphs)
        if not graphs:
            raise ValueError("graphs is empty: give at least one MIMOGraph")
        orders = {getattr(g, "qam", None) for g in graphs}
        missing = [name for name, absent in (("label", any("y" not in g["user"] for g in graphs)),
                                             ("snr_db", any("snr_db" not in g for g in graphs)),
                                             ("qam", None in orders)) if absent]
        if missing:
            raise ValueError(f"every graph needs {', '.join(missing)} to be evaluated: pass them to "
                             "MIMOGraph.from_dense / from_sionna (label=, snr_db=, qam=)")
        if len(orders) > 1:
            raise ValueError(f"the graphs use different constellations {sorted(orders)}")
        views = [g.dense() for g in graphs]
        nr, nt = max(v.H.shape[1] for v in views), max(v.H.shape[2] for v in views)
        return cls(y=torch.cat([F.pad(v.y, (0, nr - v.y.shape[1])) for v in views]),
                   H=torch.cat([F.pad(v.H, (0, nt - v.H.shape[2], 0, nr - v.H.shape[1])) for v in views]),
                   noise_var=torch.cat([g.noise_var for g in graphs]),
                   label=torch.cat([F.pad(g.dense_labels(0), (0, nt - v.H.shape[2])) for g, v in zip(graphs, views)]),
                   num_users=torch.cat([g.num_users for g in graphs]),
                   num_antennas=torch.cat([g.num_antennas for g in graphs]),
                   snr_db=torch.cat([g.snr_db for g in graphs]), qam=orders.pop(), channel=channel)

    # ------------------------------------------------------------- reading
    @property
    def num_instances(self) -> int:
        return self.H.shape[0]

    @property
    def device(self) -> torch.device:
        """Where the instances are (and a coded link decodes them)."""
        return self.H.device

    @property
    def nr_range(self) -> tuple[int, int]:
        """The smallest and largest antenna count."""
        return int(self.num_antennas.min()), int(self.num_antennas.max())

    @property
    def channel_name(self) -> str:
        """The channel as evaluation records name it."""
        if isinstance(self.channel, ChannelModel):
            return self.channel.describe()
        return self.channel or "own-data"

    def _point_snr(self) -> Tensor:
        return torch.round(self.snr_db.double(), decimals=SNR_DECIMALS)

    def points(self) -> list[tuple[int, float]]:
        """The ``(Nt, SNR)`` points the instances belong to, sorted."""
        pairs = torch.stack([self.num_users.double(), self._point_snr()], 1).unique(dim=0)
        return [(int(nt), float(snr)) for nt, snr in pairs.tolist()]

    def point_instances(self, nt: int, snr_db: float) -> Tensor:
        """The indices ``[K]`` of the instances of point ``(nt, snr_db)``, in stored order."""
        match = (self.num_users == nt) & (self._point_snr() == round(float(snr_db), SNR_DECIMALS))
        return match.nonzero()[:, 0]

    def graph(self, instances: Tensor) -> MIMOGraph:
        """The instances ``[K]`` as one batch, with padding trimmed to their largest ``Nr`` and ``Nt``."""
        nr, nt = int(self.num_antennas[instances].max()), int(self.num_users[instances].max())
        return MIMOGraph.from_dense(self.y[instances, :nr], self.H[instances, :nr, :nt], self.noise_var[instances],
                                    self.num_users[instances], self.num_antennas[instances],
                                    label=self.label[instances, :nt], snr_db=self.snr_db[instances],
                                    qam=self.qam.order)

    def batch(self, nt: int, snr_db: float, batch_size: int, k: int) -> MIMOGraph | None:
        """Batch ``k`` of :meth:`batches` (``None`` past the last), without the ones before it (the
        ranks of a sharded evaluation each take their own)."""
        chunk = self.point_instances(nt, snr_db)[k * batch_size:(k + 1) * batch_size]
        return self.graph(chunk) if chunk.numel() else None

    def batches(self, nt: int, snr_db: float, batch_size: int) -> Iterator[MIMOGraph]:
        """The instances of point ``(nt, snr_db)`` in batches of ``batch_size`` (the last one
        smaller), in stored order; the stream ends with them."""
        for chunk in self.point_instances(nt, snr_db).split(batch_size):
            yield self.graph(chunk)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the content (module doc), hexadecimal; computed once (a set's tensors are not
        meant to change after it is built)."""
        digest = hashlib.sha256(json.dumps({"qam": self.qam.order, "channel": _channel_entry(self.channel)},
                                           sort_keys=True).encode())
        for name in TENSORS:
            tensor = getattr(self, name).detach().contiguous().cpu()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        return digest.hexdigest()

    def provenance(self) -> dict:
        """What identifies these instances in an evaluation record (module doc)."""
        return {"data": {"sha256": self.digest, "instances": self.num_instances}}

    def to(self, device: str | torch.device) -> "InstanceSet":
        """The same instances on ``device``."""
        moved = {name: getattr(self, name).to(device) for name in TENSORS}
        return InstanceSet(**moved, qam=self.qam, channel=self.channel)

    # ------------------------------------------------------------- the file
    def save(self, path: str | os.PathLike) -> None:
        """Write the set as an instances file (module doc), atomically."""
        payload = {"format": FORMAT, "version": VERSION, "qam": self.qam.order, "channel": _channel_entry(self.channel),
                   **{name: getattr(self, name).detach().cpu() for name in TENSORS}}
        atomic_write(path, lambda handle: torch.save(payload, handle))


def _channel_entry(channel: ChannelModel | str | None):
    """The channel as plain data: a :class:`ChannelModel`'s fields, a label, or ``None``."""
    return asdict(channel) if isinstance(channel, ChannelModel) else channel


def load_instances(path: str | os.PathLike, device: str | torch.device = "cpu") -> InstanceSet:
    """Read an instances file written by :meth:`InstanceSet.save` (or by hand, docs/instances.md).

    Raises:
        InstancesFileError: naming ``path`` and what is wrong (not a torch file, another format, a
            newer version, a missing entry, any check of :class:`InstanceSet`).
        FileNotFoundError: when ``path`` does not exist.
    """
    def fail(reason: str):
        return InstancesFileError(f"{path}: {reason}")

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no instances file {path}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises several kinds for files it cannot read
        raise fail(f"not a readable torch file ({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise fail(f"not a gnnmimo instances file (format {found!r}, expected {FORMAT!r})")
    version = payload.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise fail(f"version {version!r} is not one this gnnmimo reads (1…{VERSION}); a newer gnnmimo wrote it?")
    missing = [name for name in (*TENSORS, "qam") if name not in payload]
    if missing:
        raise fail(f"missing entries {missing}")
    if not isinstance(payload["qam"], int) or isinstance(payload["qam"], bool):
        raise fail(f"qam must be an integer, got {payload['qam']!r}")
    channel = payload.get("channel")
    if not (channel is None or isinstance(channel, str) or isinstance(channel, dict)):
        raise fail(f"channel must be None, a label or a channel model's fields, got {channel!r}")
    try:
        return InstanceSet(**{name: payload[name] for name in TENSORS}, qam=payload["qam"], channel=channel)
    except (ValueError, TypeError) as error:
        raise fail(str(error)) from None

