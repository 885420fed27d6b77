r"""Reduced-precision compute for the learned parts of detectors (bf16 / fp16 autocast).

A detector's *precision* names the dtype its **learned** matrix products run
in; everything else keeps the batch's dtype:

=========  ==========================================================================
``fp32``   no autocast: every op in the batch's / parameters' dtype (the default)
``bf16``   ``torch.autocast(dtype=torch.bfloat16)`` around the learned blocks, CPU or CUDA
``fp16``   ``torch.autocast(dtype=torch.float16)``, CUDA only (CPU fp16 matmuls are emulated)
=========  ==========================================================================

**Where reduced precision is allowed.** Autocast lowers only the matrix
products (``linear``, ``matmul``, ``bmm``, ``gru_cell``, …); element-wise
ops follow ordinary type promotion, so a bf16 network output added to a
float32 log-likelihood gives float32. The numerically delicate parts —
the LMMSE / EP solves, the cavity and posterior computations, the
soft-max over the constellation, the loss — are classical blocks, which
declare ``Block.autocast = False`` (the default): :class:`~gnnmimo.blocks.base.Block`
runs them with autocast switched off and their floating inputs cast back up
to the batch's dtype (:func:`upcast`). Learned blocks (MLPs, attention,
embeddings, GNN messages) declare ``autocast = True``.
:meth:`Detector.forward <gnnmimo.detector.Detector.forward>` returns logits in
the batch's dtype, and the losses are computed from those.

**When it pays.** bf16 matmuls are fast on CUDA and on CPUs with AVX-512
BF16 or AMX; on other CPUs (AVX2 only, e.g. many AMD EPYC) PyTorch runs them
in software, several times *slower* than fp32 (measured in docs/speed.md),
so :func:`check_precision` warns (:class:`SlowPrecisionWarning`) there.
"""
from __future__ import annotations

import contextlib
import warnings

import torch
from torch import Tensor

#: precision name → autocast dtype (``None``: no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class SlowPrecisionWarning(UserWarning):
    """A reduced precision was asked for on hardware without fast kernels for it."""


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX-512 BF16 or AMX tiles)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def check_precision(precision: str, device: str | torch.device | None = None) -> None:
    """Validate ``precision`` (one of :data:`PRECISIONS`) for ``device``.

    Raises:
        ValueError: for an unknown name, or ``fp16`` on a CPU.

    Warns:
        SlowPrecisionWarning: ``bf16`` on a CPU without bf16 matrix instructions.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if device is None:
        return
    kind = torch.device(device).type
    if kind == "cpu" and precision == "fp16":
        raise ValueError("precision 'fp16' is for CUDA devices; on a CPU use 'bf16' or 'fp32'")
    if kind == "cpu" and precision == "bf16" and not cpu_has_fast_bf16():
        warnings.warn("this CPU has no AVX-512 BF16 or AMX instructions: bf16 matrix products run in "
                      "software, several times slower than fp32 (use precision 'fp32' here)",
                      SlowPrecisionWarning, stacklevel=2)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (a no-op for ``fp32``)."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


#: the device types autocast regions are looked for on
AUTOCAST_DEVICE_TYPES = ("cpu", "cuda")


def active_autocast() -> tuple[str, ...]:
    """The device types with an autocast region active (empty outside any)."""
    return tuple(kind for kind in AUTOCAST_DEVICE_TYPES if torch.is_autocast_enabled(kind))


def autocast_input(x: Tensor) -> Tensor:
    """``x`` in the autocast dtype of its device when a region is active there, else as it is.

    Autocast casts a product's input at every product and caches only the casts of parameters: an
    activation that feeds several products (attention's query, key and value) is cast once here
    instead of once per product.
    """
    kind = x.device.type
    if not torch.is_autocast_enabled(kind) or not x.is_floating_point():
        return x
    return x.to(torch.get_autocast_dtype(kind))


def full_precision(device_types: tuple[str, ...]) -> contextlib.AbstractContextManager:
    """Switch autocast off on ``device_types`` (for the numerically delicate parts)."""
    stack = contextlib.ExitStack()
    for kind in device_types:
        stack.enter_context(torch.autocast(kind, enabled=False))
    return stack


def upcast(tensors: dict[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    """``tensors`` with every lower-precision floating tensor (bf16, fp16) cast to ``dtype``."""
    return {key: value.to(dtype) if value.is_floating_point() and value.dtype in (torch.bfloat16, torch.float16)
            else value for key, value in tensors.items()}
