"""AMP, OAMP and EP: permutation equivariance (users and antennas) and batch
independence on mixed Nt/Nr batches through gnnmimo.testing, every user count,
and finite outputs from 0 to 60 dB on i.i.d. and strongly correlated channels."""
import pytest
import torch
from hypothesis import given

import zoo
from gnnmimo.channels import ChannelModel
from gnnmimo.sampling import MIMOSampler
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


@pytest.mark.parametrize("name, options", [("amp", {}), ("oamp", {"double": False}), ("oamp", {"double": True}),
                                           ("ep", {"double": False}), ("ep", {"double": True})])
@pytest.mark.parametrize("channel", [ChannelModel(), ChannelModel("kronecker", 0.95)],
                         ids=["iid", "kronecker-0.95"])
def test_finite_at_high_snr_and_strong_correlation(name, options, channel):
    sampler = MIMOSampler(nr=(4, 12), nt=(2, 8), qam=16, channel=channel)
    graph = sampler.sample(200, sampler.generator(7), snr_db=torch.linspace(0, 60, 200))
    assert torch.isfinite(zoo.create(name, qam=16, **options).detect(graph).logits).all()
