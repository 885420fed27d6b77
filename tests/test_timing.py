"""gnnmimo.timing: the best of timed calls, seconds per instance, the least-squares line."""
import itertools

import pytest
import torch

from gnnmimo.sampling import MIMOSampler
from gnnmimo.timing import best_times, linear_fit, seconds_per_instance


def test_linear_fit_recovers_a_line_and_reports_residuals():
    fit = linear_fit([8, 16, 24, 32], [2.0 * x + 1.0 for x in (8, 16, 24, 32)])
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(1.0) and fit.r2 == pytest.approx(1.0)
    assert max(map(abs, fit.residuals)) < 1e-9
    bent = linear_fit([0, 1, 2], [0.0, 2.0, 2.0])          # fit y = x + 1/3: residuals -1/3, 2/3, -1/3
    assert bent.residuals == pytest.approx((-1 / 3, 2 / 3, -1 / 3))
    assert bent.relative_residuals == pytest.approx((-1.0, 2 / 4, -1 / 7))
    assert bent.r2 == pytest.approx(0.75)
    with pytest.raises(ValueError, match="two distinct x"):
        linear_fit([3, 3], [1.0, 2.0])


def test_best_times_take_the_minimum_after_warm_up():
    ticks = itertools.count()
    clock = lambda: next(ticks) ** 2  # noqa: E731  (each interval longer than the one before)
    calls = []
    times = best_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeat=2, warmup=1,
                       clock=clock)
    assert calls == ["a", "b"] * 3
    assert times == {"a": 1, "b": 5}   # intervals 0→1 (a), 2→3 (b) in the first timed round


def test_seconds_per_instance_divides_by_the_batch():
    sampler = MIMOSampler(8, 4, 16, snr_db=10.0)
    graphs = {4: sampler.sample(10, sampler.generator(0)), 2: MIMOSampler(8, 2, 16).sample(5)}
    seen = []

    def detector(graph):
        seen.append(torch.is_inference_mode_enabled())

    ticks = itertools.count()
    per_instance = seconds_per_instance(detector, graphs, repeat=1, clock=lambda: float(next(ticks)))
    assert per_instance == {4: pytest.approx(1 / 10), 2: pytest.approx(1 / 5)} and all(seen)
