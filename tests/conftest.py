"""Test configuration: Hypothesis profile ``ci`` by default.

Override with ``HYPOTHESIS_PROFILE=dev pytest`` for a thorough run (the
profiles are defined in :mod:`gnnmimo.testing.profiles`).
"""
import os

import pytest
import torch
from hypothesis import settings

import gnnmimo.testing  # noqa: F401  (registers the profiles)
from gnnmimo.graph import USER

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def ser():
    """``ser(detector, graph)``: the detector's symbol error rate on a labelled batch."""
    def symbol_error_rate(detector, graph):
        return float((detector.detect(graph).hard != graph[USER].y).float().mean())
    return symbol_error_rate


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny models (a second thread only adds contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: the devices the device-parametrised tests run on: the CPU always, CUDA when present
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each available device in turn (``benchmarks/gpu_check.sh`` runs these tests on a GPU)."""
    return torch.device(request.param)
