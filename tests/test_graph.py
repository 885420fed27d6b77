"""MIMOGraph: graph ops = dense ops, dense/select round trips, Sionna layout, input errors."""
import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given

import zoo
from gnnmimo import ops
from gnnmimo.graph import ANTENNA, CHANNEL, INTERFERENCE, USER, MIMOGraph
from gnnmimo.sampling import MIMOSampler
from gnnmimo.testing import mimo_batches

MIXED = mimo_batches(nr=(1, 10), nt=(1, 10), mixed_nt=True, mixed_nr=True, batch_size=(1, 12),
                     precision=["single", "double"])


def tolerance(graph):
    return dict(rtol=1e-5, atol=1e-5) if graph[CHANNEL].h.dtype == torch.complex64 else \
        dict(rtol=1e-12, atol=1e-12)


def random_complex(n, like, seed=0):
    return torch.randn(n, dtype=like.dtype, generator=torch.Generator().manual_seed(seed))


@given(MIXED)
def test_graph_ops_equal_dense_ops(graph):
    view = graph.dense()
    x = random_complex(graph[USER].num_nodes, view.H, 1)
    r = random_complex(graph[ANTENNA].received.numel(), view.H, 2)
    antennas = view.antenna_mask
    # residual y − Hx
    dense = ops.dense_residual(view.H, view.y, graph.users_to_dense(x))
    torch.testing.assert_close(ops.residual(graph, x), dense[antennas], **tolerance(graph))
    # matched filter Hᴴr
    r_dense = torch.zeros_like(view.y)
    r_dense[antennas] = r
    dense = ops.dense_matched_filter(view.H, r_dense)
    torch.testing.assert_close(ops.matched_filter(graph, r), graph.users_from_dense(dense), **tolerance(graph))
    # column energy ‖h_i‖²
    dense = view.H.abs().square().sum(1)
    torch.testing.assert_close(ops.column_energy(graph), graph.users_from_dense(dense), **tolerance(graph))
    # Gram entries on the user graph: edge j → i carries (HᴴH)_ij
    graph.add_user_edges()
    source, target = graph[INTERFERENCE].edge_index
    gram = ops.dense_gram(view.H)[graph.user_batch[target], graph.user_index[target], graph.user_index[source]]
    torch.testing.assert_close(graph[INTERFERENCE].gram, gram, **tolerance(graph))
    torch.testing.assert_close(ops.gram_on_edges(graph, graph[INTERFERENCE].edge_index), gram,
                               **tolerance(graph))


@given(MIXED)
def test_user_edges(graph):
    graph.add_user_edges()
    source, target = graph[INTERFERENCE].edge_index
    counts = graph.num_users
    assert source.numel() == int((counts * (counts - 1)).sum())
    assert torch.equal(graph.user_batch[source], graph.user_batch[target])  # within instances
    assert (source != target).all()
    pairs = torch.stack([source, target]).T.unique(dim=0)
    assert pairs.shape[0] == source.numel()  # each ordered pair once
    edges = graph[INTERFERENCE].edge_index.clone()
    graph.add_user_edges()  # idempotent
    assert torch.equal(graph[INTERFERENCE].edge_index, edges)


@given(MIXED)
def test_dense_round_trip(graph):
    view = graph.dense()
    assert view.H.shape == (graph.num_instances, int(graph.num_antennas.max()), int(graph.num_users.max()))
    again = MIMOGraph.from_dense(view.y, view.H, view.noise_var, graph.num_users, graph.num_antennas,
                                 label=graph.dense_labels(0), snr_db=graph.snr_db, qam=graph.qam)
    for key in ("num_users", "num_antennas", "noise_var", "snr_db"):
        assert torch.equal(again[key], graph[key])
    assert torch.equal(again[CHANNEL].edge_index, graph[CHANNEL].edge_index)
    assert torch.equal(again[CHANNEL].h, graph[CHANNEL].h)
    assert torch.equal(again[ANTENNA].received, graph[ANTENNA].received)
    assert torch.equal(again[USER].y, graph[USER].y)
    # padding is zero in the dense view
    assert torch.count_nonzero(view.H * ~(view.antenna_mask[:, :, None] & view.user_mask[:, None, :])) == 0
    assert torch.count_nonzero(view.y * ~view.antenna_mask) == 0
    assert torch.equal(graph.users_from_dense(graph.users_to_dense(graph[USER].y)), graph[USER].y)


def test_from_dense_ignores_padding():
    """Entries beyond ``Nt_b``/``Nr_b`` are ignored, even NaN; the dense view zeroes them."""
    sampler = MIMOSampler(nr=(2, 6), nt=(1, 5))
    graph = sampler.sample(16, sampler.generator(0))
    view = graph.dense()
    block = view.antenna_mask[:, :, None] & view.user_mask[:, None, :]
    H = torch.where(block, view.H, torch.full_like(view.H, float("nan")))
    y = torch.where(view.antenna_mask, view.y, torch.full_like(view.y, 7.0))
    again = MIMOGraph.from_dense(y, H, view.noise_var, graph.num_users, graph.num_antennas)
    torch.testing.assert_close(again.dense().H, view.H, rtol=0, atol=0)
    torch.testing.assert_close(again.dense().y, view.y, rtol=0, atol=0)


def test_edge_layout_is_row_major():
    """Instance ``b``'s edge ``(a, i)`` sits at ``edge_ptr[b] + a·Nt_b + i`` (documented layout)."""
    sampler = MIMOSampler(nr=(1, 5), nt=(1, 5))
    graph = sampler.sample(20, sampler.generator(1))
    antenna, user = graph[CHANNEL].edge_index
    b = graph.user_batch[user]
    sizes = graph.num_users * graph.num_antennas
    edge_ptr = torch.cumsum(sizes, 0) - sizes
    position = edge_ptr[b] + graph.antenna_index[antenna] * graph.num_users[b] + graph.user_index[user]
    assert torch.equal(position, torch.arange(antenna.numel()))
    assert torch.equal(graph.antenna_batch[antenna], b)


@given(MIXED)
def test_select(graph):
    generator = torch.Generator().manual_seed(0)
    instances = torch.randint(0, graph.num_instances, (5,), generator=generator)  # repeats allowed
    chosen = graph.select(instances)
    view, sub = graph.dense(), chosen.dense()
    nr, nt = sub.H.shape[1:]
    assert nr == int(graph.num_antennas[instances].max()) and nt == int(graph.num_users[instances].max())
    assert torch.equal(sub.H, view.H[instances, :nr, :nt])
    assert torch.equal(sub.y, view.y[instances, :nr])
    assert torch.equal(chosen.dense_labels(), graph.dense_labels()[instances, :nt])
    for key in ("num_users", "num_antennas", "noise_var", "snr_db"):
        assert torch.equal(chosen[key], graph[key][instances])
    assert chosen.qam == graph.qam


# ------------------------------------------------------------------- Sionna
def test_from_sionna_layout():
    generator = torch.Generator().manual_seed(3)
    y = torch.randn(2, 3, 4, dtype=torch.complex64, generator=generator)
    h = torch.randn(2, 3, 4, 2, dtype=torch.complex64, generator=generator)
    graph = MIMOGraph.from_sionna(y, h, 0.1, qam=16)
    assert graph.num_instances == 6 and graph.qam == 16
    torch.testing.assert_close(graph.dense().H, h.reshape(6, 4, 2))
    torch.testing.assert_close(graph.noise_var, torch.full((6,), 0.1))
    s = torch.rand(2, 3, generator=generator) + 0.1
    torch.testing.assert_close(MIMOGraph.from_sionna(y, h, s).noise_var, s.reshape(6))
    with pytest.raises(ValueError, match="expected y"):
        MIMOGraph.from_sionna(y[..., :3], h, 0.1)
    # one covariance broadcast to every instance, as Sionna allows
    S = 0.3 * torch.eye(4, dtype=torch.complex64)
    whitened = MIMOGraph.from_sionna(y, h, S)
    torch.testing.assert_close(whitened.dense().H, h.reshape(6, 4, 2) / 0.3 ** 0.5)
    torch.testing.assert_close(whitened.noise_var, torch.ones(6))
    with pytest.raises(ValueError, match=r"s must be a noise variance broadcastable to \(2, 3\)"):
        MIMOGraph.from_sionna(y, h, torch.ones(3, 2))
    with pytest.raises(ValueError, match="not positive definite"):
        MIMOGraph.from_sionna(y, h, -S)


def test_from_sionna_whitens_a_noise_covariance():
    """With a non-diagonal covariance ``S``, mmse on ``from_sionna(y, H, S)`` equals mmse on data
    pre-whitened by ``S^{-1/2}`` (a different whitening matrix than the Cholesky factor used inside:
    the LMMSE outputs do not depend on which one), and the direct coloured-noise LMMSE formula."""
    rng = np.random.default_rng(4)
    batch, nr, nt = 5, 6, 3
    cn = lambda *shape: (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    A = cn(batch, nr, nr)
    S = A @ A.conj().transpose(0, 2, 1) / nr + 0.05 * np.eye(nr)
    H, x = cn(batch, nr, nt) / np.sqrt(nr), cn(batch, nt)
    y = (H @ x[..., None])[..., 0] + (np.linalg.cholesky(S) @ cn(batch, nr, 1))[..., 0]
    detector = zoo.create("mmse", qam=16)
    t = lambda a: torch.tensor(a, dtype=torch.complex128)
    colored = detector.detect(MIMOGraph.from_sionna(t(y), t(H), t(S)))
    W = np.stack([np.linalg.inv(scipy.linalg.sqrtm(s)) for s in S])
    whitened = detector.detect(MIMOGraph.from_dense(t((W @ y[..., None])[..., 0]), t(W @ H), 1.0))
    torch.testing.assert_close(colored.logits, whitened.logits, rtol=1e-9, atol=1e-9)
    # direct formula: x̂ = (Hᴴ S⁻¹ H + I)⁻¹ Hᴴ S⁻¹ y, unbiased by μ_i = [(HᴴS⁻¹H + I)⁻¹ HᴴS⁻¹H]_ii
    Si = np.linalg.inv(S)
    G = H.conj().transpose(0, 2, 1) @ Si @ H
    inverse = np.linalg.inv(G + np.eye(nt))
    estimate = (inverse @ H.conj().transpose(0, 2, 1) @ Si @ y[..., None])[..., 0]
    mu = np.real(np.diagonal(inverse @ G, axis1=1, axis2=2))
    z, nu = estimate / mu, (1 - mu) / mu
    points = detector.qam.points.numpy()
    logits = -np.abs(z[..., None] - points) ** 2 / nu[..., None]
    np.testing.assert_allclose(colored.final_logits.numpy(), logits.reshape(-1, 16), rtol=1e-8, atol=1e-8)


# ------------------------------------------------------------------- errors
def valid(batch=3, nr=4, nt=2, dtype=torch.complex64):
    generator = torch.Generator().manual_seed(5)
    return (torch.randn(batch, nr, dtype=dtype, generator=generator),
            torch.randn(batch, nr, nt, dtype=dtype, generator=generator))


@pytest.mark.parametrize("make, message", [
    (lambda y, H: (y.real, H, 0.1), "must be complex"),
    (lambda y, H: (y, H.real, 0.1), "must be complex"),
    (lambda y, H: (y, H[0], 0.1), r"expected y \[B, Nr\] and H \[B, Nr, Nt\]"),
    (lambda y, H: (y[:, :3], H, 0.1), r"expected y \[B, Nr\] and H \[B, Nr, Nt\]"),
    (lambda y, H: (y[:2], H, 0.1), r"expected y \[B, Nr\] and H \[B, Nr, Nt\]"),
    (lambda y, H: (y, H, torch.ones(2)), r"noise_var must be a scalar or \[B=3\]"),
    (lambda y, H: (y, H, 0.0), "noise_var must be > 0"),
    (lambda y, H: (y, H, torch.tensor([0.1, -1.0, 0.1])), r"noise_var must be > 0 \(instances \[1\]"),
    (lambda y, H: (y, H, float("nan")), "noise_var holds NaN/Inf"),
    (lambda y, H: (y, H, torch.tensor([0.1, float("inf"), 0.1])), "noise_var holds NaN/Inf"),
    (lambda y, H: (y, H.index_put((torch.tensor(2), torch.tensor(1), torch.tensor(0)),
                                  torch.tensor(float("nan"), dtype=H.dtype)), 0.1),
     r"H holds NaN/Inf \(instances \[2\]\)"),
    (lambda y, H: (y.index_put((torch.tensor(1), torch.tensor(3)), torch.tensor(complex(0, float("inf")))),
                   H, 0.1), r"y holds NaN/Inf \(instances \[1\]\)"),
])
def test_from_dense_errors(make, message):
    with pytest.raises(ValueError, match=message):
        MIMOGraph.from_dense(*make(*valid()))


@pytest.mark.parametrize("counts, message", [
    (dict(num_users=torch.tensor([1, 0, 2])), r"num_users must lie in \[1, 2\]"),
    (dict(num_users=torch.tensor([1, 3, 2])), r"num_users must lie in \[1, 2\]"),
    (dict(num_antennas=torch.tensor([4, 5, 1])), r"num_antennas must lie in \[1, 4\]"),
    (dict(num_antennas=torch.tensor([4, 4])), r"num_antennas must be \[B=3\]"),
    (dict(label=torch.zeros(3, 3, dtype=torch.long)), r"label must be \[B, Nt\]"),
])
def test_from_dense_count_errors(counts, message):
    y, H = valid()
    with pytest.raises(ValueError, match=message):
        MIMOGraph.from_dense(y, H, 0.1, **counts)


def test_validate_catches_later_corruption():
    y, H = valid()
    graph = MIMOGraph.from_dense(y, H, 0.1)
    assert graph.validate()
    graph[CHANNEL].h[0] = float("nan")
    assert not graph.validate(raise_on_error=False)
    with pytest.raises(ValueError, match="H holds NaN/Inf"):
        graph.validate()


def test_all_zero_channel_column_is_rejected():
    H = torch.randn(3, 4, 2, dtype=torch.complex64)
    H[1, :, 0] = 0
    with pytest.raises(ValueError, match="all-zero channel column.*\\[1\\]"):
        MIMOGraph.from_dense(torch.randn(3, 4, dtype=torch.complex64), H, 0.1)


def test_memoised_values_are_rebuilt_when_the_batch_data_change():
    sampler = MIMOSampler(4, (2, 3), 4, snr_db=10.0)
    graph = sampler.sample(3, sampler.generator(0))
    builds = []
    build = lambda: builds.append(1) or len(builds)
    assert graph.memoised("slot", build) == graph.memoised("slot", build) == 1
    assert graph.memoised("other", build) == 2                 # one value per slot
    graph[ANTENNA].received.mul_(2)                                    # edited in place
    assert graph.memoised("slot", build) == 3
    graph[CHANNEL].h = graph[CHANNEL].h.clone()                 # replaced
    assert graph.memoised("slot", build) == 4
    with torch.no_grad():                     # data without gradients: the same value either way
        assert graph.memoised("slot", build) == 4
    with torch.inference_mode():                                # inference tensors are another kind
        assert graph.memoised("slot", build) == 5
    assert graph.memoised("plain", build, autograd=False) == 6
    with torch.inference_mode():
        assert graph.memoised("plain", build, autograd=False) == 6
    graph[CHANNEL].h = graph[CHANNEL].h.clone().requires_grad_()
    assert graph.memoised("slot", build) == 7
    with torch.no_grad():                      # data with gradients: a value without history differs
        assert graph.memoised("slot", build) == 8


def test_the_dense_view_of_a_batch_built_from_dense_tensors_is_its_own_copy():
    H = torch.randn(3, 4, 2, dtype=torch.complex64)
    y = torch.randn(3, 4, dtype=torch.complex64)
    for users in (None, torch.tensor([2, 1, 2])):
        graph = MIMOGraph.from_dense(y, H, 0.1, num_users=users)
        expected = graph._build_dense()
        H.mul_(2), y.mul_(2)                                    # the caller's tensors change
        view = graph.dense()
        torch.testing.assert_close(view.H, expected.H, rtol=0, atol=0)
        torch.testing.assert_close(view.y, expected.y, rtol=0, atol=0)
        assert torch.equal(view.user_mask, expected.user_mask)
        assert torch.equal(view.antenna_mask, expected.antenna_mask)


# ------------------------------------------------ channel-estimation error variance
def test_err_var_is_stored_per_entry_and_survives_batching_and_selection():
    y, H = torch.randn(3, 4, dtype=torch.complex128), torch.randn(3, 4, 2, dtype=torch.complex128)
    counts = dict(num_users=torch.tensor([2, 1, 2]), num_antennas=torch.tensor([4, 3, 2]))
    per_entry = torch.rand(3, 4, 2, dtype=torch.float64)
    graph = MIMOGraph.from_dense(y, H, 0.1, err_var=per_entry, **counts)
    mask = graph.dense().H != 0
    assert torch.equal(graph.dense_err_var(), torch.where(mask, per_entry, 0))
    per_instance = MIMOGraph.from_dense(y, H, 0.1, err_var=torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64),
                                        **counts)
    assert torch.equal(per_instance.dense_err_var()[1][mask[1]], torch.full((3,), 0.2, dtype=torch.float64))
    assert MIMOGraph.from_dense(y, H, 0.1, **counts).dense_err_var() is None
    collated = MIMOGraph.from_data_list([graph[2], graph[0]])
    assert torch.equal(collated.dense_err_var()[:, :2], graph.dense_err_var()[[2, 0], :2])
    assert torch.equal(graph.select(torch.tensor([1, 1])).dense_err_var()[0], graph.dense_err_var()[1, :3, :1])


@pytest.mark.parametrize("err_var, error, message", [(-0.1, ValueError, "err_var must be finite and >= 0"),
                                                     (float("nan"), ValueError, "err_var must be finite"),
                                                     (torch.ones(3, 1), ValueError, "err_var must be a float"),
                                                     (1j, TypeError, "err_var must be real")])
def test_bad_err_var_is_refused(err_var, error, message):
    with pytest.raises(error, match=message):
        MIMOGraph.from_dense(torch.randn(3, 4, dtype=torch.complex64), torch.randn(3, 4, 2, dtype=torch.complex64),
                             0.1, err_var=err_var)


def test_error_in_noise_whitens_the_rows_by_their_effective_noise():
    """Row ``a`` scaled by ``√(d̄/d_a)``, ``d_a = σ² + Σ_j v_aj``; σ² becomes ``d̄``."""
    y, H = torch.randn(1, 3, dtype=torch.complex128), torch.randn(1, 3, 2, dtype=torch.complex128)
    err_var = torch.tensor([[[0.1, 0.1], [0.0, 0.0], [0.5, 0.3]]], dtype=torch.float64)
    folded = MIMOGraph.from_dense(y, H, 0.2, err_var=err_var).error_in_noise()
    d = torch.tensor([0.4, 0.2, 1.0], dtype=torch.float64)
    assert float(folded.noise_var) == pytest.approx(float(d.mean()))
    torch.testing.assert_close(folded.dense().H[0], H[0] * (d.mean() / d).sqrt()[:, None])
    torch.testing.assert_close(folded.dense().y[0], y[0] * (d.mean() / d).sqrt())
    assert folded.dense_err_var() is None
