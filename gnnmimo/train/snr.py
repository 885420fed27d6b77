r"""Training SNR ranges calibrated on LMMSE (``snr="auto"``).

For each ``Nt`` the range runs from the SNR where LMMSE detection has SER
``1e-1`` to the SNR where it has SER ``1e-3`` (``targets``), on the training
channel. The LMMSE SER curve is computed on a 0.5 dB grid as the *expected*
SER given each user's post-equalisation SINR ``γ_i``
(:func:`gnnmimo.equalization.lmmse_equalize`),
``SER(γ) = 1 − (1 − 2(1 − 1/√M) Q(√(3γ/(M−1))))²`` averaged over channel
draws — a conditional expectation, so a few hundred channels per point give
a smooth curve down to 1e-4 — and the range is rounded outwards to 0.5 dB.

Why these targets: a near-ML detector is 1–4 dB better than LMMSE, so its
own SER over that range spans roughly 1e-1 … 1e-4, the region an
error-correcting code operates in, from where learning is easy to where it
matters. The RE-MIMO paper's hand-set 16-QAM rule at ``Nr = 64``,
``[Nt/8 + 6, Nt/8 + 13]`` dB, sits at about the same LMMSE SERs.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from gnnmimo.equalization import lmmse_equalize
from gnnmimo.sampling import MIMOSampler


def qam_ser(sinr: Tensor, order: int) -> Tensor:
    """SER of unit-energy square ``order``-QAM in complex Gaussian noise at SINR ``γ`` (float64)."""
    pam = 2.0 * (1.0 - order ** -0.5) * 0.5 * torch.erfc(torch.sqrt(1.5 * sinr / (order - 1)))
    return 1.0 - (1.0 - pam) ** 2


@torch.no_grad()
def mmse_ser_curve(sampler: MIMOSampler, nt: int, snr_grid: Tensor, instances: int,
                   generator: torch.Generator) -> Tensor:
    """Expected LMMSE SER ``[len(snr_grid)]`` at ``nt`` users (see module doc)."""
    snr = snr_grid.to(sampler.device).repeat_interleave(instances)
    graph = sampler.sample(snr.numel(), generator, snr_db=snr, nt=nt)
    _, nu = lmmse_equalize(graph)
    ser = qam_ser(1.0 / nu.double(), sampler.qam.order)
    return ser.view(len(snr_grid), instances * nt).mean(1).cpu()


def snr_at(curve: Tensor, snr_grid: Tensor, target: float) -> float:
    """Where a decreasing SER curve crosses ``target`` (log-linear interpolation)."""
    log_ser = curve.clamp_min(1e-300).log10().cummin(0).values
    log_target = math.log10(target)
    below = (log_ser <= log_target).nonzero()
    if below.numel() == 0:
        return float(snr_grid[-1])
    k = int(below[0])
    if k == 0:
        return float(snr_grid[0])
    a, b = float(log_ser[k - 1]), float(log_ser[k])
    fraction = (a - log_target) / (a - b) if a != b else 1.0
    return float(snr_grid[k - 1] + fraction * (snr_grid[k] - snr_grid[k - 1]))


def auto_snr_ranges(sampler: MIMOSampler, nts, targets: tuple[float, float] = (1e-1, 1e-3),
                    instances: int = 128, seed: int = 0,
                    grid: tuple[float, float, float] = (-10.0, 60.0, 0.5)) -> dict[int, tuple[float, float]]:
    """``{Nt: (low, high)}``: the SNRs where LMMSE reaches ``targets`` SER, rounded out to 0.5 dB."""
    start, stop, step = grid
    snr_grid = torch.arange(start, stop + step / 2, step, dtype=sampler.dtype.to_real())
    generator = sampler.generator(seed)
    ranges = {}
    for nt in nts:  # a handful of user counts; each is one vectorised batch
        curve = mmse_ser_curve(sampler, nt, snr_grid, instances, generator)
        low, high = (snr_at(curve, snr_grid, target) for target in targets)
        ranges[int(nt)] = (math.floor(low * 2) / 2, max(math.ceil(high * 2) / 2, math.floor(low * 2) / 2 + 0.5))
    return ranges
