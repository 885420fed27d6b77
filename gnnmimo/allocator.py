"""Keep freed memory in the process instead of returning it to the system (glibc).

glibc's ``malloc`` serves blocks above its mmap threshold (128 KiB, raised adaptively up to 32 MiB)
with fresh ``mmap`` pages and returns them to the system on ``free``. A detector or a training step
allocates and frees the same large temporaries (activations ``[tokens, 4 d_s]``, pair tensors,
batched matrices) at every call, so every call faults those pages in again, one 4 KiB page at a
time, and zeroes them. Measured on this project's machine (docs/speed.md §8), that costs RE-MIMO's
bf16 inference a fifth of its time and made the batched linear algebra of LMMSE and EP up to 1.5×
slower. Raising the mmap threshold and the trim threshold keeps those blocks in the heap for the
next call.

The price is a resident size that does not shrink after a peak, which is what a long evaluation or
training job wants. The command line does it for every command (:func:`gnnmimo.cli.main`); library
users call :func:`keep_freed_memory` themselves.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: ``mallopt`` parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: blocks up to this size come from the heap; free memory above the top of the heap up to
#: ``TRIM_THRESHOLD`` is kept
MMAP_THRESHOLD, TRIM_THRESHOLD = 1 << 30, (1 << 31) - 1


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (module doc), once per process; whether it took effect
    (false without glibc, e.g. on macOS or with musl, where nothing changes)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
