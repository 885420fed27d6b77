"""Every shipped checkpoint loads by name, has a card, and keeps the symmetries after
training: permutation equivariance, batch independence, every user count of its range."""
from pathlib import Path

import pytest

import zoo
from gnnmimo.sampling import MIMOSampler
from gnnmimo.tr38901 import channel_from_fields
from gnnmimo.testing import assert_batch_independent, assert_generalises_over_user_counts, assert_permutation_equivariant

PRETRAINED = Path(zoo.__file__).parent / "pretrained"


@pytest.mark.parametrize("name", zoo.list_pretrained())
def test_pretrained_models_keep_the_symmetries(name):
    detector = zoo.load(name)
    assert (PRETRAINED / f"{name}.md").is_file(), f"{name} has no model card"
    system = detector.checkpoint["system"]
    nt = tuple(system["nt"])
    sampler = MIMOSampler(system["nr"], nt, system["qam"], channel=channel_from_fields(system["channel"]),
                          snr_db=(0.0, 30.0))
    graph = sampler.sample(24, sampler.generator(3))
    assert_permutation_equivariant(detector, graph)
    assert_batch_independent(detector, graph)
    assert_generalises_over_user_counts(detector, system["nr"], nt, system["qam"])
