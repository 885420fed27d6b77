"""The annealed Langevin detector: it decides like exact ML on a small system, its deterministic limit
is permutation equivariant and batch independent, its stochastic runs are reproducible by seed and
well formed on mixed user counts, and bad options are refused."""
import pytest
import torch

import zoo
from gnnmimo.evaluation import paired_comparison
from gnnmimo.graph import USER
from gnnmimo.testing import assert_batch_independent, assert_permutation_equivariant, assert_well_formed
from helpers import sample_batch
from zoo.langevin import AnnealedLangevin

pytestmark = pytest.mark.usefixtures("one_thread")

#: the paper's schedule with fewer steps per level: enough on 8×4 4-QAM, and fast
SHORT = dict(steps=10)


def instance_errors(detector, graph):
    """``[B]`` symbol errors per instance."""
    wrong = (detector.detect(graph).hard != graph[USER].y).long()
    return torch.zeros(graph.num_instances, dtype=torch.long).index_add_(0, graph.user_batch, wrong)


def test_it_equals_exact_ml_in_ser_on_8x4_4qam():
    graph = sample_batch(nr=8, nt=4, qam=4, size=1500, seed=3, snr_db=4.0)
    ml = instance_errors(zoo.create("ml", 4), graph)
    langevin = paired_comparison(instance_errors(zoo.create("langevin", 4, seed=0, **SHORT), graph), ml, 4, "ml")
    lmmse = paired_comparison(instance_errors(zoo.create("mmse", 4), graph), ml, 4, "ml")
    assert ml.sum() > 200  # a non-trivial sample: ML makes errors
    assert langevin.ci_low <= 0 <= langevin.ci_high, langevin
    # the interval is tight enough to tell a sub-optimal detector from ML
    assert lmmse.ci_low > 0, lmmse


@pytest.mark.parametrize("precision", ["single", "double"])
def test_its_deterministic_limit_is_permutation_equivariant_and_batch_independent(precision):
    detector = zoo.create("langevin", 16, temperature=0.0, start="zero", **SHORT)
    graph = sample_batch(nr=8, nt=(2, 6), qam=16, size=12, seed=1, snr_db=(5.0, 20.0), precision=precision)
    # rounding may move a sample across a decision boundary: a few users may disagree
    assert_permutation_equivariant(detector, graph, max_mismatch=0.02)
    assert_batch_independent(detector, graph, max_mismatch=0.02)


def test_a_seed_makes_it_reproducible_and_different_seeds_sample_differently():
    graph = sample_batch(nr=8, nt=(1, 8), qam=16, size=40, seed=2, snr_db=(0.0, 10.0))
    first = zoo.create("langevin", 16, seed=5, **SHORT).detect(graph)
    assert_well_formed(first, graph)
    torch.testing.assert_close(zoo.create("langevin", 16, seed=5, **SHORT).detect(graph).logits, first.logits,
                               rtol=0, atol=0)
    other = zoo.create("langevin", 16, seed=6, **SHORT).detect(graph)
    assert not torch.equal(other.logits, first.logits)


def test_the_soft_output_is_max_log_over_the_trajectories():
    graph = sample_batch(nr=8, nt=4, qam=16, size=30, seed=4, snr_db=8.0)
    single = zoo.create("langevin", 16, seed=0, trajectories=1, **SHORT).detect(graph)
    # one trajectory: its symbols at logit 0, every other symbol at the clip
    assert set(single.final_logits.unique().tolist()) == {-20.0, 0.0}
    many = zoo.create("langevin", 16, seed=0, trajectories=8, **SHORT).detect(graph)
    assert (many.final_logits.amax(-1) == 0).all() and (many.final_logits > -20).sum() > graph[USER].num_nodes


def test_more_users_than_antennas_run():
    graph = sample_batch(nr=4, nt=(3, 8), qam=4, size=16, seed=5, snr_db=10.0)
    assert_well_formed(zoo.create("langevin", 4, seed=0, **SHORT).detect(graph), graph)


@pytest.mark.parametrize("options, message", [
    (dict(levels=0), "levels must be a positive integer"),
    (dict(steps=2.5), "steps must be a positive integer"),
    (dict(trajectories=0), "trajectories must be a positive integer"),
    (dict(sigma_first=0.01, sigma_last=1.0), "need 0 < sigma_last <= sigma_first"),
    (dict(step_size=0.0), "step_size must be > 0"),
    (dict(temperature=-1.0), "temperature must be >= 0"),
    (dict(start="lmmse"), "unknown start 'lmmse'"),
    (dict(seed=1.5), "seed must be an integer or None"),
    (dict(clip=0.0), "clip must be > 0"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        AnnealedLangevin(16, **options)
