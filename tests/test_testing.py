"""gnnmimo.testing: the property checkers catch violations, the strategies honour their arguments."""
import copy
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnmimo import ops
from gnnmimo.channels import ChannelModel
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detector
from gnnmimo.graph import ANTENNA, CHANNEL, INTERFERENCE, REVERSE_CHANNEL, USER
from gnnmimo.sampling import MIMOSampler
from gnnmimo.testing import (PROFILES, assert_batch_independent, assert_generalises_over_user_counts,
                             assert_permutation_equivariant, assert_well_formed, channel_models,
                             mimo_batches, mimo_configs, permute_users, randomised_parameters)
from gnnmimo.testing.properties import within_instance_cycle
from helpers import sample_batch


# ------------------------------------------------------------ toy detectors
class ToyMF(Detector):
    """Matched filter with unit-variance logits ``−|z_i − s|²`` (soft, never saturated): equivariant
    and batch independent. The subclasses below break one property each."""

    def equalize(self, graph):
        return ops.matched_filter(graph, graph[ANTENNA].received) / ops.column_energy(graph)

    def iterate(self, graph):
        z = self.equalize(graph)
        return self.qam.gaussian_logits(z, torch.ones_like(z.real))[None]


class PositionBias(ToyMF):
    """Favours symbol 0 more for later users: depends on the user order."""

    def iterate(self, graph):
        logits = super().iterate(graph)
        return logits + torch.nn.functional.one_hot(torch.zeros_like(graph.user_index), self.qam.order) \
            * graph.user_index[:, None].to(logits.dtype)


class AntennaWeighted(ToyMF):
    """Weights received samples by antenna position: user-equivariant, not antenna-equivariant."""

    def equalize(self, graph):
        weight = 1.0 + graph.antenna_index.to(graph[ANTENNA].received.real.dtype)
        return ops.matched_filter(graph, graph[ANTENNA].received * weight) / ops.column_energy(graph)


class FirstNodeBias(ToyMF):
    """Biases only node 0 of the batch: breaks equivariance for at most two users."""

    def iterate(self, graph):
        logits = super().iterate(graph).clone()
        logits[:, 0, 0] += 5.0
        return logits


class EarlyIterationBias(PositionBias):
    """Two iterations: the first depends on the user order, the last does not."""

    def iterate(self, graph):
        return torch.cat([super().iterate(graph), ToyMF.iterate(self, graph)])


class BatchMixer(ToyMF):
    """Leaks a batch-wide statistic (mean received power) into every user's logits."""

    def iterate(self, graph):
        logits = super().iterate(graph)
        return logits + graph[ANTENNA].received.abs().square().mean() * torch.arange(self.qam.order)


class PaddingLeak(ToyMF):
    """Depends on the padded size ``Nt_max`` of the batch."""

    def iterate(self, graph):
        logits = super().iterate(graph)
        return logits + 0.2 * int(graph.num_users.max()) * torch.arange(self.qam.order)


class FailsAboveFour(ToyMF):
    """Returns NaN for instances with more than four users."""

    def iterate(self, graph):
        logits = super().iterate(graph)
        large = graph.num_users[graph.user_batch] > 4
        return logits.masked_fill(large[None, :, None], float("nan"))


class Flat(ToyMF):
    """Forgets the iteration dimension: logits ``[N_u, M]``."""

    def iterate(self, graph):
        return super().iterate(graph)[0]


class ModeRecorder(ToyMF):
    def __init__(self, qam):
        super().__init__(qam)
        self.modes = []

    def iterate(self, graph):
        self.modes.append(self.training)
        return super().iterate(graph)


def batch(nr=(4, 8), nt=(1, 4), qam=16, size=16, seed=0, **options):
    return sample_batch(nr, nt, qam, size, seed, snr_db=(0, 20), **options)


# --------------------------------------------------------------- checkers
def test_correct_detector_passes_every_check():
    detector = ToyMF(16)
    graph = batch()
    assert_permutation_equivariant(detector, graph)
    assert_permutation_equivariant(detector, graph, permute_antennas=True)
    assert_batch_independent(detector, graph)
    assert_generalises_over_user_counts(detector, nr=(4, 8), nt_range=(1, 4))


def test_equivariance_checker_catches_position_bias():
    with pytest.raises(AssertionError, match=r"PositionBias is not permutation equivariant \(permuting "
                                             r"users, seed=0\): \d+ of \d+ users differ") as failure:
        assert_permutation_equivariant(PositionBias(16), batch())
    message = str(failure.value)
    assert "instance" in message and "Nt=" in message and "SNR=" in message and "max |Δp|" in message
    # a detector that is not equivariant may still be batch independent
    assert_batch_independent(PositionBias(16), batch())


def test_antenna_permutation_is_optional():
    detector = AntennaWeighted(16)
    assert_permutation_equivariant(detector, batch())
    with pytest.raises(AssertionError, match=r"permuting users and antennas"):
        assert_permutation_equivariant(detector, batch(), permute_antennas=True)


def test_mismatch_fraction_tolerates_isolated_ties():
    detector, graph = FirstNodeBias(16), batch(nt=4, size=16)
    seed = next(s for s in range(10) if permute_users(graph, s)[1][0, 0] != 0)  # moves user 0
    with pytest.raises(AssertionError, match=r"2 of 64 users differ"):
        assert_permutation_equivariant(detector, graph, seed=seed)
    assert_permutation_equivariant(detector, graph, seed=seed, max_mismatch=0.05)


def test_iterations_are_checked_unless_disabled():
    with pytest.raises(AssertionError, match="not permutation equivariant"):
        assert_permutation_equivariant(EarlyIterationBias(16), batch())
    assert_permutation_equivariant(EarlyIterationBias(16), batch(), check_iterations=False)


@pytest.mark.parametrize("toy", [BatchMixer, PaddingLeak])
def test_batch_independence_checker_catches_leaks(toy):
    with pytest.raises(AssertionError, match=rf"{toy.__name__} is not batch independent"):
        assert_batch_independent(toy(16), batch())
    assert_permutation_equivariant(toy(16), batch())  # both leaks are order-free


def test_batch_independence_checker_varies_sizes_even_for_uniform_batches():
    """With one Nt in the batch, the shuffled batch still gets smaller batch-mates (truncated copies)."""
    graph = batch(nt=4, size=1)
    with pytest.raises(AssertionError, match="in a shuffled batch"):
        assert_batch_independent(PaddingLeak(16), graph, num_instances=0)


def test_batch_independence_checker_respects_fixed_antenna_counts():
    """Detectors that need one Nr per batch get no block-diagonal (larger-Nr) batch-mates."""
    class FixedNr(ToyMF):
        supports_mixed_antennas = False

    assert_batch_independent(FixedNr(16), batch(nr=6))
    with pytest.raises(ValueError, match="needs the same Nr"):
        FixedNr(16)(batch(nr=(4, 8)))


def test_generalisation_checker_names_the_failing_user_count():
    with pytest.raises(AssertionError, match=r"malformed detection \(FailsAboveFour with Nt=5, Nr=8\):"
                                             r"\n  logits hold NaN/Inf for 40 users"):
        assert_generalises_over_user_counts(FailsAboveFour(16), nr=8, nt_range=(1, 8))
    assert_generalises_over_user_counts(FailsAboveFour(16), nr=8, nt_range=(1, 4))


def test_well_formed_checks_shapes():
    graph = batch()
    with pytest.raises(AssertionError, match=r"logits have shape \(\d+, 16\), expected \[T >= 1"):
        assert_well_formed(Flat(16).detect(graph), graph)
    detection = ToyMF(16).detect(graph)
    assert_well_formed(detection, graph)
    detection.qam = QAM(4)  # claims another constellation than its logits
    with pytest.raises(AssertionError, match="expected"):
        assert_well_formed(detection, graph)


def test_helpers_run_in_eval_mode_and_restore_it():
    detector = ModeRecorder(16).train()
    assert_permutation_equivariant(detector, batch())
    assert_batch_independent(detector, batch())
    assert detector.modes and not any(detector.modes)
    assert detector.training


def test_permute_users_keeps_the_model():
    """``y' = P_a y``, ``H' = P_a H P_u``, labels permuted with the columns: ``y' − H'x'`` is a
    permutation of ``y − Hx``, and each ``user_perm`` row permutes ``0 … Nt_b − 1``."""
    graph = batch(channel=ChannelModel("kronecker", rho=0.5))
    permuted, user_perm, antenna_perm = permute_users(graph, seed=3, antennas=True)
    qam = QAM(16)

    def noise(g):
        view = g.dense()
        x = qam.symbols(g.dense_labels(0), view.H.dtype) * view.user_mask
        return view.y - (view.H @ x[..., None])[..., 0]

    torch.testing.assert_close(noise(permuted), noise(graph).gather(1, antenna_perm))
    mask = graph.user_mask()
    assert torch.equal(user_perm.masked_fill(~mask, mask.shape[1]).sort(1).values[mask],
                       torch.arange(mask.shape[1]).expand_as(mask)[mask])
    assert not torch.equal(permuted[CHANNEL].h, graph[CHANNEL].h)
    for key in ("noise_var", "num_users", "num_antennas", "snr_db"):
        assert torch.equal(permuted[key], graph[key])


def test_block_diagonal_batch_mates_are_consistent_instances():
    """The larger batch-mates of the batch-independence check, ``[[H_a, 0], [0, H_b]]``, keep
    ``y − Hx = [n_a; n_b]`` with the merged labels, and their counts add."""
    from gnnmimo.testing.properties import _Instances

    graph = batch(nr=(2, 6), nt=(1, 2), size=12, precision="double")
    parts = _Instances.of(graph)
    first, second = torch.arange(6), torch.arange(6, 12)
    merged = _Instances.block_diagonal(parts.take(first), parts.take(second)).graph(graph)
    assert torch.equal(merged.num_users, graph.num_users[first] + graph.num_users[second])
    assert torch.equal(merged.num_antennas, graph.num_antennas[first] + graph.num_antennas[second])
    qam = QAM(16)

    def noise(g):
        view = g.dense()
        x = qam.symbols(g.dense_labels(0), view.H.dtype) * view.user_mask
        return (view.y - (view.H @ x[..., None])[..., 0])[view.antenna_mask]

    n = noise(graph)
    antenna_ptr = graph["antenna"].ptr
    expected = torch.cat([torch.cat([n[antenna_ptr[a]:antenna_ptr[a + 1]], n[antenna_ptr[b]:antenna_ptr[b + 1]]])
                          for a, b in zip(first.tolist(), second.tolist())])
    torch.testing.assert_close(noise(merged), expected)


# ------------------------------------------------------------- strategies
@given(mimo_batches(nr=6, nt=3, qam=64, channels="iid", snr_db=12.0, batch_size=5, precision="double"))
def test_fixed_arguments_are_honoured(graph):
    assert graph.num_instances == 5 and graph.qam == 64
    assert (graph.num_antennas == 6).all() and (graph.num_users == 3).all()
    assert torch.allclose(graph.snr_db, torch.tensor(12.0, dtype=torch.float64))
    assert graph[CHANNEL].h.dtype == torch.complex128


@given(mimo_batches(nr=(4, 9), nt=(2, 5), qam=[4, 16], batch_size=(3, 6), snr_db=(5.0, 10.0),
                    mixed_nt=False, mixed_nr=True))
def test_ranges_and_mixing_flags(graph):
    assert 3 <= graph.num_instances <= 6 and graph.qam in (4, 16)
    assert ((4 <= graph.num_antennas) & (graph.num_antennas <= 9)).all()
    assert (graph.num_users == graph.num_users[0]).all() and 2 <= int(graph.num_users[0]) <= 5
    assert ((5 <= graph.snr_db) & (graph.snr_db <= 10)).all()
    assert graph[CHANNEL].h.dtype == torch.complex64


@given(mimo_batches(nr=(3, 6), mixed_nr=True))
def test_default_user_counts_never_overload(graph):
    assert (graph.num_users <= graph.num_antennas.min()).all()


@given(mimo_configs(nr=st.just(4), nt=st.just((1, 4)), channels=channel_models(kinds=["kronecker"],
                                                                                 rho=(0.2, 0.6), mixed_rho=True)))
def test_configs_and_channel_models(config):
    assert isinstance(config, MIMOSampler)
    assert config.nr_range == (4, 4) and config.nt_range == (1, 4)
    low, high = config.channel.rho_range
    assert config.channel.kind == "kronecker" and 0.2 <= low <= high <= 0.6


def test_mixed_batches_are_drawn():
    """Across the examples of one run, the default strategy draws mixed Nt and all channel kinds."""
    seen = {"mixed": False, "kinds": set()}

    @settings(max_examples=30, derandomize=True, database=None)
    @given(mimo_configs())
    def explore(config):
        seen["kinds"].add(config.channel.kind)
        seen["mixed"] |= config.nt_range[0] < config.nt_range[1]

    explore()
    assert seen["mixed"] and seen["kinds"] == {"iid", "kronecker", "kronecker-rx"}


def test_bad_arguments_raise_when_the_strategy_is_built():
    with pytest.raises(TypeError, match=r"nr must be a number, a \(low, high\) range or a strategy"):
        mimo_configs(nr="eight")
    with pytest.raises(ValueError, match="empty range"):
        mimo_batches(nr=(8, 4))
    with pytest.raises(TypeError, match="channels must be"):
        mimo_batches(channels=3)
    with pytest.raises(ValueError, match="no choices"):
        mimo_batches(qam=[])


def test_profiles():
    assert set(PROFILES) == {"ci", "dev"}
    ci = settings.get_profile("ci")
    assert ci.deadline is None and ci.derandomize and ci.max_examples <= 10
    assert settings.get_profile("dev").max_examples >= 100
    if "HYPOTHESIS_PROFILE" not in os.environ:  # tests/conftest.py loads "ci" by default
        assert settings.default.max_examples == ci.max_examples and settings.default.derandomize


# ------------------------------------------------------- checks with teeth
class UserIndexLeak(ToyMF):
    """Adds ``0.5 · (user index)`` to symbol 0's logit: depends on the user order."""

    def iterate(self, graph):
        logits = super().iterate(graph)
        return logits + 0.5 * graph.user_index[:, None] * torch.nn.functional.one_hot(
            torch.zeros_like(graph.user_index), self.qam.order)


class ZeroHeadLeak(ToyMF):
    """A learned correction that reads the user index, behind a zero-initialised head: untrained,
    it is exactly its matched-filter parent."""

    def __init__(self, qam):
        super().__init__(qam)
        self.hidden = torch.nn.Linear(2, 8)
        self.head = torch.nn.Linear(8, self.qam.order)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def iterate(self, graph):
        logits = super().iterate(graph)
        features = torch.stack([graph.user_index.float(), ops.column_energy(graph).float()], -1)
        return logits + self.head(self.hidden(features).tanh())


def test_the_nt2_counterexample_is_caught():
    """Hypothesis's counterexample of the old checker (a random permutation of 2 users is the identity
    half the time; this seed drew it): one instance, Nt = 2, 0 dB."""
    sampler = MIMOSampler(nr=8, nt=(2, 2), snr_db=(0.0, 0.0))
    graph = sampler.sample(1, sampler.generator(0))
    with pytest.raises(AssertionError, match=r"(?s)UserIndexLeak is not permutation equivariant .*instance 0 user"):
        assert_permutation_equivariant(UserIndexLeak(16), graph)


@given(st.lists(st.integers(1, 9), min_size=1, max_size=12), st.integers(0, 1000))
def test_every_user_of_an_instance_moves(counts, seed):
    """The within-instance permutations are derangements for Nt ≥ 2, whatever the seed."""
    graph = sample_batch(nr=9, nt=(1, 9), qam=4, size=len(counts), seed=seed % 7)
    counts = torch.tensor(counts)
    perm = within_instance_cycle(counts, 9, torch.Generator().manual_seed(seed))
    real = torch.arange(9) < counts[:, None]
    assert torch.equal(perm.masked_fill(~real, 9).sort(1).values.masked_fill(~real, 0),
                       torch.arange(9).expand(len(counts), 9).masked_fill(~real, 0))  # a permutation per row
    moved = perm != torch.arange(9)
    assert torch.equal(moved, real & (counts[:, None] >= 2))
    _, user_perm, _ = permute_users(graph, seed)
    assert (user_perm != torch.arange(user_perm.shape[1]))[graph.user_mask() & (graph.num_users[:, None] >= 2)].all()


def test_a_leak_behind_a_zero_initialised_head_is_caught():
    graph = batch(nt=(2, 4), size=8)
    detector = ZeroHeadLeak(16)
    assert_permutation_equivariant(detector, graph, randomise=False)  # as given it is its parent
    with pytest.raises(AssertionError, match=r"ZeroHeadLeak \[parameters randomised: randomised_parameters\("
                                             r"detector, seed=0\)\] is not permutation equivariant"):
        assert_permutation_equivariant(detector, graph)
    assert torch.count_nonzero(detector.head.weight) == 0  # the detector itself is not changed


def test_the_variant_that_fails_is_named():
    graph = batch(nt=(2, 4), size=8)
    with pytest.raises(AssertionError, match=r"ZeroHeadLeak \[parameters as given\] is not permutation"):
        detector = ZeroHeadLeak(16)
        torch.nn.init.normal_(detector.head.weight)
        assert_permutation_equivariant(detector, graph)


def test_randomised_parameters():
    detector = ZeroHeadLeak(16)
    hidden = detector.hidden.weight.detach().clone()
    randomised = randomised_parameters(detector, scale=0.1, seed=3)
    assert randomised is not detector and torch.equal(detector.hidden.weight, hidden)
    for before, after in zip(detector.parameters(), randomised.parameters()):
        assert (before != after).all()  # every entry moves, zeros included
    relative = (randomised.hidden.weight.detach() - hidden).abs() / (hidden.abs() + hidden.square().mean().sqrt())
    assert 0.05 < float(relative.mean()) < 0.12  # E|ε|·scale = 0.08
    assert torch.equal(randomised_parameters(detector, seed=3).head.weight, randomised.head.weight)
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        randomised_parameters(detector, scale=0.0)


class RaisesAboveThreeUsers(ToyMF):
    def iterate(self, graph):
        if int(graph.num_users.max()) > 3:
            torch.zeros(3)[4]  # an IndexError deep inside
        return super().iterate(graph)


def test_an_exception_inside_the_detector_names_its_instances():
    with pytest.raises(AssertionError, match=r"RaisesAboveThreeUsers with Nt=4, Nr=8 raised IndexError: index 4 "
                                             r"is out of bounds") as failure:
        assert_generalises_over_user_counts(RaisesAboveThreeUsers(16), nr=8, nt_range=(1, 5))
    assert isinstance(failure.value.__cause__, IndexError)
    assert "instance 0 (Nt=4, Nr=8, SNR=" in str(failure.value)
    graph = batch(nt=(1, 4), size=12)
    with pytest.raises(AssertionError, match=r"raised IndexError") as failure:
        assert_permutation_equivariant(RaisesAboveThreeUsers(16), graph)
    message = str(failure.value)
    culprits = (graph.num_users > 3).nonzero()[:, 0].tolist()
    assert f"run alone, {len(culprits)} instances raise: instance {culprits[0]} (Nt=4," in message


class ReadsAttachedAttributes(ToyMF):
    """Scales each user's statistic by a per-user weight and a per-instance gain the caller attached:
    equivariant and batch independent only if the weights follow their users and instances."""

    def equalize(self, graph):
        gain = graph.gain[graph.user_batch]
        return super().equalize(graph) * graph[USER].weight * gain + graph[CHANNEL].tag[:1].sum() * 0


def test_attached_attributes_survive_the_rebuilt_batches():
    graph = batch(nt=(2, 4), size=10)
    generator = torch.Generator().manual_seed(1)
    graph[USER].weight = 0.5 + torch.rand(graph[USER].num_nodes, generator=generator)
    graph.gain = 0.5 + torch.rand(graph.num_instances, generator=generator)
    graph[CHANNEL].tag = torch.arange(graph[CHANNEL].num_edges)
    detector = ReadsAttachedAttributes(16)
    assert_permutation_equivariant(detector, graph, permute_antennas=True)
    assert_batch_independent(detector, graph)
    permuted, user_perm, antenna_perm = permute_users(graph, seed=2, antennas=True)
    ptr = graph[USER].ptr
    source = (ptr[:-1, None] + user_perm)[graph.user_mask()]
    assert torch.equal(permuted[USER].weight, graph[USER].weight[source])
    assert torch.equal(permuted.gain, graph.gain)
    # channel-edge attributes follow their (antenna, user) pair: the tag of h follows h
    assert torch.equal(permuted[CHANNEL].h, graph[CHANNEL].h[permuted[CHANNEL].tag])
    graph[("user", "likes", "user")].edge_index = torch.zeros(2, 0, dtype=torch.long)
    with pytest.raises(ValueError, match=r"cannot carry the edge types \[\('user', 'likes', 'user'\)\]"):
        permute_users(graph)


def test_features_are_derived_again_on_rebuilt_batches():
    graph = batch(nt=(2, 4), size=6).add_features(reverse=True)
    permuted, _, _ = permute_users(graph, seed=1, antennas=True)
    expected = copy.copy(permuted)
    for store in (expected[USER], expected[ANTENNA], expected[CHANNEL]):
        del store["x" if "x" in store else "edge_attr"]
    for edge in (INTERFERENCE, REVERSE_CHANNEL):
        del expected[edge]
    expected.add_features(reverse=True)
    for key, value in expected.x_dict.items():
        torch.testing.assert_close(permuted[key].x, value)
    for key, value in expected.edge_attr_dict.items():
        torch.testing.assert_close(permuted[key].edge_attr, value)
