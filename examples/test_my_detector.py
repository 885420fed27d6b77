"""Property-test your own detector: copy this file next to your code and run ``python -m pytest test_my_detector.py``.

Replace :class:`MyDetector` with your detector (import it instead). The tests check, on batches
Hypothesis draws (mixed user counts, SNRs, channels; each failure is shrunk to a small
reproducible example and printed with the sampler and seed that rebuild it), that it

* is **permutation equivariant**: relabelling the users (and antennas) of an instance
  relabels its outputs the same way — every user of every instance with ``Nt ≥ 2`` is moved;
* is **batch independent**: an instance's output does not depend on the other instances of
  its batch, their sizes or their order;
* **handles every user count** of a range, alone and mixed, with well-formed outputs.

Each check runs on the detector as given *and* with its parameters randomised
(``gnnmimo.testing.randomised_parameters``), because a learned part that starts at zero (as
the correction head below does) is invisible until its weights move. The last test shows
the checks catching a detector whose learned part reads the user's position.

``settings.load_profile("ci")`` runs few, reproducible examples; ``HYPOTHESIS_PROFILE=dev``
(see the ``conftest.py`` idiom in ``gnnmimo.testing.profiles``) runs many.
"""
import os

import pytest
import torch
from hypothesis import given, settings

from gnnmimo import ops
from gnnmimo.detector import Detector
from gnnmimo.graph import ANTENNA
from gnnmimo.testing import (assert_batch_independent, assert_generalises_over_user_counts,
                             assert_permutation_equivariant, mimo_batches)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class MyDetector(Detector):
    """A matched filter ``zᵢ = hᵢᴴy / ‖hᵢ‖²`` with a learned correction of its logits.

    The correction reads per-user features ``[Re zᵢ, Im zᵢ, log(σ²/‖hᵢ‖²)]`` through a small
    MLP whose last layer starts at zero, as learned hybrids do: untrained, the detector *is*
    the matched filter.
    """

    def __init__(self, qam, hidden: int = 16):
        super().__init__(qam)
        self.correction = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.Tanh(),
                                              torch.nn.Linear(hidden, self.qam.order))
        torch.nn.init.zeros_(self.correction[-1].weight)
        torch.nn.init.zeros_(self.correction[-1].bias)

    def features(self, graph, z, noise):
        return torch.stack([z.real, z.imag, noise.log()], -1).float()

    def iterate(self, graph):
        energy = ops.column_energy(graph)
        z = ops.matched_filter(graph, graph[ANTENNA].received) / energy
        noise = graph.user_noise_var / energy  # the effective noise of zᵢ
        logits = self.qam.gaussian_logits(z, noise)
        return (logits + self.correction(self.features(graph, z, noise)))[None]  # [T = 1, N_u, M]


class ReadsUserPosition(MyDetector):
    """Deliberately broken: the learned part also reads each user's index in its instance."""

    def features(self, graph, z, noise):
        position = graph.user_index.to(z.real.dtype)
        return torch.stack([z.real, z.imag, noise.log() + position], -1).float()


BATCHES = mimo_batches(nr=(2, 8), qam=16, batch_size=(1, 6), mixed_nr=True, precision="double")


@given(BATCHES)
def test_permutation_equivariant(graph):
    assert_permutation_equivariant(MyDetector(16), graph, permute_antennas=True)


@given(BATCHES)
def test_batch_independent(graph):
    assert_batch_independent(MyDetector(16), graph)


def test_every_user_count():
    assert_generalises_over_user_counts(MyDetector(16), nr=8, nt_range=(1, 8))


@given(mimo_batches(nr=8, nt=(2, 4), qam=16, batch_size=(1, 4), precision="double"))
def test_the_checks_catch_a_learned_part_that_reads_the_user_position(graph):
    broken = ReadsUserPosition(16)
    assert_permutation_equivariant(broken, graph, randomise=False)  # as given, its head is zero: it passes
    with pytest.raises(AssertionError, match=r"\[parameters randomised.*\] is not permutation equivariant"):
        assert_permutation_equivariant(broken, graph)
