"""Shared timing helpers of the benchmark scripts."""
from __future__ import annotations

import time


def best_time(fn, repeat: int = 3, warmup: int = 1) -> float:
    """Best wall time of ``repeat`` calls of ``fn`` after ``warmup`` calls (seconds)."""
    return best_times({"fn": fn}, repeat, warmup)["fn"]


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
