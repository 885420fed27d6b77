"""Timing: the best time of callables, a detector's time per instance against ``Nt``, and the
least-squares line through such a sweep (RE-MIMO's Fig. 13: its cost grows linearly in ``Nt``).

Used by the benchmark scripts (``benchmarks/``) and the paper reproduction
(``examples/remimo_paper/fig13_timing.py``). The best of several calls after a warm-up is the
least disturbed figure on a shared machine; ``clock=time.process_time`` counts only this
process's CPU time, steadier still when other jobs share the cores (with one torch thread it is
the compute time of the call).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch

from gnnmimo.graph import MIMOGraph


def best_time(fn, repeat: int = 3, warmup: int = 1, clock=time.perf_counter) -> float:
    """Best time of ``repeat`` calls of ``fn`` after ``warmup`` calls (seconds)."""
    return best_times({"fn": fn}, repeat, warmup, clock)["fn"]


def best_times(functions: dict, repeat: int = 3, warmup: int = 1, clock=time.perf_counter) -> dict:
    """Best time of each of ``functions`` (a dict of callables), calling them in turn,
    ``warmup`` rounds and then ``repeat`` timed ones, so that a change in the machine's load hits
    all of them alike (seconds, by the same keys). ``clock``: wall time by default;
    ``time.process_time`` counts only this process's CPU time, steadier on a shared machine."""
    for _ in range(warmup):
        for fn in functions.values():
            fn()
    times = dict.fromkeys(functions, float("inf"))
    for _ in range(repeat):
        for key, fn in functions.items():
            start = clock()
            fn()
            times[key] = min(times[key], clock() - start)
    return times


def seconds_per_instance(detector: Callable[[MIMOGraph], object], graphs: Mapping[int, MIMOGraph],
                         repeat: int = 2, clock=time.perf_counter) -> dict[int, float]:
    """``{nt: seconds per instance}``: the best time of ``detector(graph)`` (under
    ``torch.inference_mode``) divided by the batch's instances, for each ``nt → graph``."""
    def call(graph):
        with torch.inference_mode():
            detector(graph)
    return {nt: best_time(lambda g=graph: call(g), repeat, clock=clock) / graph.num_graphs
            for nt, graph in graphs.items()}


@dataclass(frozen=True)
class LinearFit:
    """``y ≈ slope · x + intercept`` by least squares; ``r2`` the coefficient of determination,
    ``residuals`` ``y − fit`` at each ``x`` (the units of ``y``), ``relative_residuals`` the same
    divided by the fit."""

    slope: float
    intercept: float
    r2: float
    residuals: tuple[float, ...]
    relative_residuals: tuple[float, ...]


def linear_fit(x, y) -> LinearFit:
    """The least-squares line through the points ``(x, y)`` (at least two distinct ``x``)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(np.unique(x)) < 2:
        raise ValueError(f"need matching 1-d x and y with two distinct x, got shapes {x.shape}, {y.shape}")
    slope, intercept = np.polyfit(x, y, 1)
    fitted = slope * x + intercept
    spread = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - ((y - fitted) ** 2).sum() / spread if spread > 0 else 1.0
    return LinearFit(float(slope), float(intercept), float(r2), tuple((y - fitted).tolist()),
                     tuple(((y - fitted) / fitted).tolist()))
