"""Vectorised sampling of mixed-size MIMO batches.

:class:`MIMOSampler` draws, per instance, the user count ``Nt_b``, the
antenna count ``Nr_b``, the SNR, the channel, the symbols and the noise, all
as padded tensors on the target device, then wraps them with
:meth:`MIMOGraph.from_dense`. There is no Python loop over instances or
users, so thousands of instances are built in milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from gnnmimo.channels import ChannelModel, noise_variance
from gnnmimo.constellation import QAM, complex_dtype
from gnnmimo.graph import MIMOGraph

COUNT_DISTRIBUTIONS = ("uniform", "triangular")


def as_range(value: int | float | tuple, name: str) -> tuple:
    """``4`` → ``(4, 4)``; ``(4, 8)`` stays; anything else raises."""
    low, high = (value, value) if isinstance(value, (int, float)) else tuple(value)
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
        channel: the :class:`ChannelModel`.
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
        self.nr_range = as_range(self.nr, "nr")
        self.nt_range = as_range(self.nt, "nt")
        self.snr_range = as_range(self.snr_db, "snr_db")
        if self.nr_range[0] < 1 or self.nt_range[0] < 1:
            raise ValueError(f"nr and nt must be >= 1, got nr={self.nr}, nt={self.nt}")
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
            generator: the random stream (see :meth:`generator`).
            snr_db: overrides the SNR range (a value or ``[batch_size]``).
            nt: overrides the user range with a fixed count.
        """
        device, gen = self.device, generator
        nt_low, nt_high = (nt, nt) if nt is not None else self.nt_range
        num_users = sample_counts(nt_low, nt_high, batch_size, self.nt_distribution, gen, device)
        num_antennas = sample_counts(*self.nr_range, batch_size, "uniform", gen, device)
        real = self.dtype.to_real()
        if snr_db is None:
            low, high = self.snr_range
            snr_db = low + (high - low) * torch.rand(batch_size, generator=gen, device=device, dtype=real)
        snr_db = torch.as_tensor(snr_db, dtype=real, device=device).expand(batch_size)
        noise_var = noise_variance(snr_db, num_antennas.to(real), num_users.to(real))

        H, H_seen = self.channel.sample(num_antennas, num_users, gen, self.dtype)
        nr_max, nt_max = H.shape[1:]
        label = torch.randint(self.qam.order, (batch_size, nt_max), generator=gen, device=device)
        user_mask = torch.arange(nt_max, device=device) < num_users[:, None]
        x = self.qam.symbols(label, self.dtype) * user_mask
        noise = torch.randn(batch_size, nr_max, generator=gen, device=device, dtype=self.dtype)
        antenna_mask = torch.arange(nr_max, device=device) < num_antennas[:, None]
        y = (H @ x[..., None])[..., 0] + noise * noise_var.sqrt()[:, None] * antenna_mask
        return MIMOGraph.from_dense(y, H_seen, noise_var, num_users, num_antennas,
                                    label=label, snr_db=snr_db, qam=self.qam.order)
