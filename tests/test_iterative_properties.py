"""AMP, OAMP and EP through gnnmimo.testing: permutation equivariance (users and
antennas), batch independence on mixed Nt/Nr batches, every user count."""
import pytest
from hypothesis import given

import zoo
from gnnmimo.testing import (assert_batch_independent, assert_generalises_over_user_counts,
                             assert_permutation_equivariant, mimo_batches)

ITERATIVE = ("amp", "oamp", "ep")


@pytest.mark.parametrize("name", ITERATIVE)
@given(graph=mimo_batches(nr=(2, 8), qam=[4, 16], mixed_nr=True, batch_size=(1, 6), precision="double"))
def test_properties(name, graph):
    detector = zoo.create(name, qam=graph.qam)
    assert_permutation_equivariant(detector, graph, permute_antennas=True)
    assert_batch_independent(detector, graph)


@pytest.mark.parametrize("name", ITERATIVE)
def test_generalises_over_user_counts(name):
    assert_generalises_over_user_counts(zoo.create(name, qam=16), nr=(4, 8), nt_range=(1, 10))
