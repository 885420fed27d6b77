"""Detectors with randomised parameters, so that property checks exercise every learned part.

Learned hybrids start from their classical parent: their correction heads are initialised to
zero (a zero last layer, a zero gate), so an untrained model computes exactly what its parent
does and a check run on it never sees the learned part — a learned part that reads the user
index, say, passes. :func:`randomised_parameters` perturbs every parameter of a copy, zeros
included, and the checks of :mod:`gnnmimo.testing.properties` run on it as well as on the
detector as given.
"""
from __future__ import annotations

import copy

import torch

from gnnmimo.detector import Detector

#: the default relative size of the perturbation
SCALE = 0.1


@torch.no_grad()
def randomised_parameters(detector: Detector, scale: float = SCALE, seed: int = 0) -> Detector:
    """A deep copy of ``detector`` with every parameter perturbed.

    Each parameter tensor ``p`` becomes ``p + scale · ε · (|p| + rms(p))`` with ``ε ~ N(0, 1)``
    elementwise and ``rms(p)`` the root mean square of the tensor, or 1 for an all-zero
    tensor. The perturbation is relative, so a scalar parameter (a step size, a damping
    factor) stays near its value — it changes sign only when ``ε < −1/(2·scale)``, 3 draws in
    10⁷ at the default scale — while zero-initialised heads get entries of size ``scale`` and
    start to act. The copy has the same training mode; ``detector`` is not changed.

    Args:
        detector: any :class:`~gnnmimo.detector.Detector` (or ``torch.nn.Module``).
        scale: the relative size of the perturbation, ``> 0``.
        seed: seeds the perturbation (a CPU stream, so results do not depend on the device).

    Raises:
        ValueError: if ``scale`` is not a positive finite number.
    """
    if not (isinstance(scale, (int, float)) and 0 < scale < float("inf")):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    randomised = copy.deepcopy(detector)
    generator = torch.Generator().manual_seed(seed)
    for parameter in randomised.parameters():
        rms = float(parameter.detach().abs().square().mean().sqrt()) if parameter.numel() else 0.0
        noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype).to(parameter.device)
        parameter.add_(scale * noise * (parameter.abs() + (rms if rms > 0 else 1.0)))
    return randomised


def has_parameters(detector: Detector) -> bool:
    """Whether randomising ``detector``'s parameters can change it."""
    return any(parameter.numel() for parameter in detector.parameters())
