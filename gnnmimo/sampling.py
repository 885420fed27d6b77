"""Vectorised sampling of mixed-size MIMO batches.

:class:`MIMOSampler` draws, per instance, the user count ``Nt_b``, the
antenna count ``Nr_b``, the SNR, the channel, the symbols and the noise, all
as padded tensors on the target device, then wraps them with
:meth:`MIMOGraph.from_dense`. There is no Python loop over instances or
users, so thousands of instances are built in milliseconds.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gnnmimo.channels import ChannelModel, noise_variance
from gnnmimo.constellation import QAM, complex_dtype
from gnnmimo.graph import MIMOGraph

COUNT_DISTRIBUTIONS = ("uniform", "triangular")


def as_range(value: int | float | tuple, name: str, kind: type = numbers.Real) -> tuple:
    """``4`` → ``(4, 4)``; ``(4, 8)`` stays; anything else (not numbers of ``kind``, not a pair,
    an empty range) raises ``TypeError`` or ``ValueError`` naming ``name``."""
    pair = (value, value) if isinstance(value, numbers.Number) else value
    noun = "an integer" if kind is numbers.Integral else "a number"
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2
            and all(isinstance(v, kind) and not isinstance(v, bool) for v in pair)):
        raise TypeError(f"{name} must be {noun} or a (low, high) pair of them, got {value!r}")
    low, high = pair
    if low > high:
        raise ValueError(f"{name}: empty range {low}..{high}")
    return low, high


def sample_counts(low: int, high: int, size: int, distribution: str,
                  generator: torch.Generator | None, device) -> Tensor:
    """Integers in ``[low, high]``: ``"uniform"``, or ``"triangular"`` with
    ``P(n) ∝ n − low + 1`` (mode at ``high``, as RE-MIMO's training draws Nt)."""
    if distribution not in COUNT_DISTRIBUTIONS:
        raise ValueError(f"unknown count distribution {distribution!r}; use {COUNT_DISTRIBUTIONS}")
    weights = torch.ones(high - low + 1, device=device)
    if distribution == "triangular":
        weights = torch.arange(1, high - low + 2, device=device, dtype=torch.float)
    return low + torch.multinomial(weights, size, replacement=True, generator=generator)


def usable_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`, checked by creating an empty tensor there.

    Raises:
        ValueError: when ``device`` names no torch device (``"foo"``) or one this torch build or
            machine cannot use (``"cuda"`` on a CPU-only build, ``"cuda:3"`` on a one-GPU machine),
            so that a run fails before any work instead of at its first random draw.
    """
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except Exception as error:  # torch raises RuntimeError, AssertionError or NotImplementedError here
        raise ValueError(f"device {str(device)!r} cannot be used here: {error}") from None
    return device


@dataclass
class MIMOSampler:
    """Draws batches of ``y = H x + n`` as :class:`MIMOGraph`.

    Args:
        nr: receive antennas, ``16`` or a range ``(12, 16)`` (uniform per instance).
        nt: users, ``4`` or a range ``(4, 8)``.
        qam: constellation order or :class:`QAM`.
        snr_db: per-instance SNR in dB (docs/conventions.md §3), a value or a range
            ``(low, high)`` drawn uniformly per instance.
        channel: the :class:`ChannelModel`, or a 3GPP :class:`~gnnmimo.tr38901.TR38901Channel`.
        nt_distribution: ``"uniform"`` or ``"triangular"`` (mode at the upper end).
        precision: ``"single"`` (complex64) or ``"double"`` (complex128).
        device: where the tensors are built.
    """

    nr: int | tuple[int, int]
    nt: int | tuple[int, int]
    qam: QAM | int = 16
    snr_db: float | tuple[float, float] = 10.0
    channel: ChannelModel = field(default_factory=ChannelModel)
    nt_distribution: str = "uniform"
    precision: str = "single"
    device: str | torch.device = "cpu"

    def __post_init__(self):
        self.qam = self.qam if isinstance(self.qam, QAM) else QAM(self.qam)
        self.nr_range = as_range(self.nr, "nr", numbers.Integral)
        self.nt_range = as_range(self.nt, "nt", numbers.Integral)
        self.snr_range = as_range(self.snr_db, "snr_db")
        for name, (low, _) in (("nr", self.nr_range), ("nt", self.nt_range)):
            if low < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not all(math.isfinite(v) for v in self.snr_range):
            raise ValueError(f"snr_db must be finite (dB), got {self.snr_db!r}")
        if self.precision not in ("single", "double"):
            raise ValueError(f"precision must be 'single' or 'double', got {self.precision!r}")
        self.dtype = complex_dtype(torch.float64 if self.precision == "double" else torch.float32)
        self.device = usable_device(self.device)

    def generator(self, seed: int) -> torch.Generator:
        """A seeded random stream on the sampler's device."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def sample(self, batch_size: int, generator: torch.Generator | None = None,
               snr_db: Tensor | float | None = None, nt: int | None = None) -> MIMOGraph:
        """Draw ``batch_size`` instances.

        Args:
            batch_size: instances, ``>= 1``.
            generator: the random stream (see :meth:`generator`).
            snr_db: overrides the SNR range (a finite value or ``[batch_size]``).
            nt: overrides the user range with a fixed count ``>= 1``.

        Raises:
            TypeError, ValueError: naming the argument that is outside the ranges above.
        """
        device, gen, real = self.device, generator, self.dtype.to_real()
        _check_count(batch_size, "batch_size")
        if nt is not None:
            _check_count(nt, "nt")
        if snr_db is not None:
            snr_db = torch.as_tensor(snr_db, dtype=real, device=device)
            if snr_db.shape not in ((), (1,), (batch_size,)):
                raise ValueError(f"snr_db must be a value or [batch_size={batch_size}], got shape "
                                 f"{tuple(snr_db.shape)}")
            if not torch.isfinite(snr_db).all():  # NaN/Inf would only show as a NaN batch
                raise ValueError(f"snr_db must be finite (dB), got {snr_db.flatten()[:5].tolist()}")
        nt_low, nt_high = (nt, nt) if nt is not None else self.nt_range
        num_users = sample_counts(nt_low, nt_high, batch_size, self.nt_distribution, gen, device)
        num_antennas = sample_counts(*self.nr_range, batch_size, "uniform", gen, device)
        if snr_db is None:
            low, high = self.snr_range
            snr_db = low + (high - low) * torch.rand(batch_size, generator=gen, device=device, dtype=real)
        snr_db = snr_db.expand(batch_size)
        noise_var = noise_variance(snr_db, num_antennas.to(real), num_users.to(real))

        H, H_seen, err_var = self.channel.sample(num_antennas, num_users, gen, self.dtype, noise_var=noise_var)
        nr_max, nt_max = H.shape[1:]
        label = torch.randint(self.qam.order, (batch_size, nt_max), generator=gen, device=device)
        user_mask = torch.arange(nt_max, device=device) < num_users[:, None]
        x = self.qam.symbols(label, self.dtype) * user_mask
        noise = torch.randn(batch_size, nr_max, generator=gen, device=device, dtype=self.dtype)
        antenna_mask = torch.arange(nr_max, device=device) < num_antennas[:, None]
        y = (H @ x[..., None])[..., 0] + noise * noise_var.sqrt()[:, None] * antenna_mask
        return MIMOGraph.from_dense(y, H_seen, noise_var, num_users, num_antennas,
                                    label=label, snr_db=snr_db, qam=self.qam.order, err_var=err_var)



def _check_count(value, name: str) -> None:
    """A count argument of :meth:`MIMOSampler.sample` is an integer ``>= 1`` (torch would reject
    anything else far away, with a message about ``multinomial``)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
