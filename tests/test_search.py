"""Search and cancellation detectors: exact ML, K-best, V-BLAST, ZF-PIC, SDR."""
import pytest
import torch
from hypothesis import given

import zoo
from gnnmimo.channels import ChannelModel
from gnnmimo.constellation import QAM
from gnnmimo.graph import MIMOGraph
from gnnmimo.testing import (assert_batch_independent, assert_generalises_over_user_counts,
                             assert_permutation_equivariant, assert_well_formed, mimo_batches)
from gnnmimo.tree_search import sphere_decode, triangularize
from helpers import requires_cvxpy, sample_batch as batch

SEARCH = ("vblast", "zf-pic", "kbest", "ml")


def brute_force(graph: MIMOGraph, qam: QAM) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances of all ``M^Nt_max`` candidates ``[B, C]`` and the candidates ``[C, Nt_max]``.

    Padded users take every value too (their columns are zero), so each
    instance's candidates repeat; the minimum is unaffected.
    """
    view = graph.dense()
    nt = view.H.shape[-1]
    candidates = torch.cartesian_prod(*[torch.arange(qam.order)] * nt).reshape(-1, nt)
    x = qam.points_as(view.H)[candidates]                                      # [C, Nt]
    dist = (view.y[:, None, :] - x @ view.H.transpose(1, 2)).abs().square().sum(-1)  # [B, C]
    return dist, candidates


def brute_force_maxlog(graph: MIMOGraph, qam: QAM) -> torch.Tensor:
    """Exact max-log logits ``[N_u, M]``: ``−(min_{x: x_i = s} d(x) − min_x d(x)) / σ²``."""
    dist, candidates = brute_force(graph, qam)
    nt = candidates.shape[1]
    per_symbol = dist.new_full((dist.shape[0], nt, qam.order), float("inf"))
    per_symbol.scatter_reduce_(2, candidates.T[None].expand(dist.shape[0], -1, -1),
                               dist[:, None, :].expand(-1, nt, -1), "amin")
    logits = -(per_symbol - dist.amin(1)[:, None, None]) / graph.noise_var[:, None, None]
    return graph.users_from_dense(logits)


def assert_ml(graph: MIMOGraph, qam: QAM, hard: torch.Tensor, what: str) -> None:
    """``hard`` is an ML decision: its distance equals the brute-force minimum (ties allowed)."""
    dist, _ = brute_force(graph, qam)
    chosen = graph.users_to_dense(hard)                                        # [B, Nt_max], 0 on padding
    x = qam.points_as(graph.dense().H)[chosen] * graph.user_mask()
    view = graph.dense()
    achieved = (view.y - (view.H @ x[..., None])[..., 0]).abs().square().sum(-1)
    best = dist.amin(1)
    assert torch.allclose(achieved, best, rtol=1e-9, atol=1e-12), \
        f"{what} is not ML: distances {achieved.tolist()} vs brute force {best.tolist()}"


# ------------------------------------------------------------- exactness
@given(graph=mimo_batches(nr=(3, 5), nt=(1, 3), qam=[4, 16], snr_db=(-5.0, 30.0),
                          batch_size=(1, 6), precision="double"))
def test_ml_and_full_kbest_equal_brute_force(graph):
    qam = QAM(graph.qam)
    model = graph.error_in_noise()    # what the searches solve: any CSI error folded into the noise
    ml = zoo.create("ml", qam.order).detect(graph)
    assert_ml(model, qam, ml.hard, "the sphere decoder")
    full = qam.order ** int(graph.num_users.max())
    kbest = zoo.create("kbest", qam.order, k=full, clip=1e9).detect(graph)
    assert_ml(model, qam, kbest.hard, f"K-best with k={full}")
    # with every leaf in the list, the soft output is exact max-log
    torch.testing.assert_close(kbest.final_logits, brute_force_maxlog(model, qam), rtol=1e-7, atol=1e-6)


@pytest.mark.parametrize("ordering", ["sorted", "natural"])
def test_orderings_reach_ml_on_mixed_batches(ordering):
    graph = batch(nr=(3, 4), nt=(1, 3), qam=4, size=64, seed=4, snr_db=(0.0, 20.0), precision="double")
    qam = QAM(4)
    assert_ml(graph, qam, zoo.create("ml", 4, ordering=ordering).detect(graph).hard, f"ml ({ordering})")
    assert_ml(graph, qam, zoo.create("kbest", 4, k=64, ordering=ordering).detect(graph).hard,
              f"kbest ({ordering})")


def test_sphere_decoder_visits_few_nodes_at_high_snr():
    graph = batch(nr=8, nt=4, size=64, snr_db=40.0, precision="double")
    result = sphere_decode(triangularize(graph.dense()), QAM(16))
    assert (result.visited == 8).all()      # straight down the tree: the Babai point is ML


def test_padded_users_are_a_single_branch():
    graph = batch(nr=6, nt=(1, 3), size=32, seed=2, precision="double")
    model = triangularize(graph.dense())
    n = model.num_levels
    assert (model.active.sum(1) == 2 * graph.num_users).all()
    # padded users sit at the root levels, decoupled: unit diagonal, zero couplings and observation
    root = torch.arange(n) >= 2 * graph.num_users[:, None]
    assert torch.equal(model.active, ~root)
    eye = torch.eye(n, dtype=torch.float64).expand_as(model.R)
    pad_rows = root[:, :, None] | root[:, None, :]
    assert torch.equal(torch.where(pad_rows, model.R, 0.0), torch.where(pad_rows, eye, 0.0))
    assert (model.z[root] == 0).all()


# ------------------------------------------------------------- SER ordering
def symbol_errors(graph, name, **options):
    return int((zoo.create(name, 16, **options).detect(graph).hard != graph["user"].y).sum())


def test_ser_ordering_8x4_16qam_14db():
    graph = batch(nr=8, nt=4, size=2000, seed=11, snr_db=14.0)
    errors = {name: symbol_errors(graph, name) for name in ("zf", "mmse", "vblast", "zf-pic", "ml")}
    errors["kbest64"] = symbol_errors(graph, "kbest", k=64)
    slack = lambda n: 3 * n ** 0.5 + 3
    # the same samples: ML ≤ K-best ≤ MMSE ≤ ZF, V-BLAST ≤ ZF (with statistical slack)
    assert errors["ml"] <= errors["kbest64"] + slack(errors["kbest64"]), errors
    assert errors["kbest64"] <= errors["ml"] + slack(errors["ml"]), errors     # near-ML at k = 64
    assert errors["kbest64"] < errors["mmse"] - slack(errors["mmse"]), errors
    assert errors["mmse"] <= errors["zf"] + slack(errors["zf"]), errors
    assert errors["vblast"] < errors["zf"] - slack(errors["zf"]), errors
    assert errors["zf-pic"] < errors["zf"], errors


def test_ser_ordering_8x8_16qam_20db():
    graph = batch(nr=8, nt=8, size=500, seed=12, snr_db=20.0)
    errors = {name: symbol_errors(graph, name) for name in ("zf", "mmse", "vblast")}
    errors["kbest"] = symbol_errors(graph, "kbest", k=32)
    slack = lambda n: 3 * n ** 0.5 + 3
    assert errors["kbest"] < errors["vblast"] - slack(errors["vblast"]), errors
    assert errors["vblast"] < errors["mmse"] - slack(errors["mmse"]), errors
    assert errors["mmse"] < errors["zf"] - slack(errors["zf"]), errors


# ------------------------------------------------------------- robustness
@pytest.mark.parametrize("name", SEARCH)
@pytest.mark.parametrize("precision", ["single", "double"])
def test_finite_at_high_snr_and_correlation(name, precision):
    graph = batch(nr=8, nt=(1, 4), size=256, snr_db=(40.0, 60.0), precision=precision,
                  channel=ChannelModel("kronecker", 0.95))
    detection = zoo.create(name, 16).detect(graph)
    assert_well_formed(detection, graph, context=f"{name}, {precision}")


@requires_cvxpy
def test_sdr_finite_at_high_snr_and_correlation():
    graph = batch(nr=4, nt=(1, 2), size=4, snr_db=60.0, channel=ChannelModel("kronecker", 0.95))
    assert_well_formed(zoo.create("sdr", 16).detect(graph), graph)


def test_vblast_handles_overloaded_instances():
    graph = batch(nr=(2, 4), nt=(1, 6), size=64, snr_db=20.0)
    assert_well_formed(zoo.create("vblast", 16).detect(graph), graph)


@pytest.mark.parametrize("name", ["kbest", "ml", "zf-pic"])
def test_tree_search_needs_as_many_antennas_as_users(name):
    graph = batch(nr=(2, 4), nt=(1, 6), size=32)
    with pytest.raises(ValueError, match=r"needs Nt <= Nr.*instance \d+ has Nt=\d+ > Nr=\d+"):
        zoo.create(name, 16)(graph)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="k must be a positive integer"):
        zoo.create("kbest", 16, k=0)
    with pytest.raises(ValueError, match="unknown ordering 'best'"):
        zoo.create("ml", 16, ordering="best")
    with pytest.raises(ValueError, match="clip must be > 0"):
        zoo.create("kbest", 16, clip=0.0)
    assert zoo.create_from_spec("kbest:k=8,ordering='natural'", 16).k == 8


# ------------------------------------------------------------- properties
GENERIC = dict(nr=(4, 6), nt=(1, 4), qam=16, snr_db=(5.0, 25.0), channels="iid", batch_size=(2, 6),
               precision="double")


@pytest.mark.parametrize("name", SEARCH)
@given(graph=mimo_batches(**GENERIC))
def test_permutation_equivariant_and_batch_independent(name, graph):
    options = {"k": 256} if name == "kbest" else {}
    detector = zoo.create(name, 16, **options)
    assert_permutation_equivariant(detector, graph)
    assert_batch_independent(detector, graph)


@pytest.mark.parametrize("name", SEARCH)
def test_generalises_over_user_counts_and_mixed_antennas(name):
    assert_generalises_over_user_counts(zoo.create(name, 16), nr=(6, 8), nt_range=(1, 6))


@requires_cvxpy
@given(graph=mimo_batches(nr=(2, 3), nt=(1, 2), qam=4, snr_db=(10.0, 25.0), channels="iid",
                          batch_size=(1, 3), precision="double"))
def test_sdr_permutation_equivariant_and_batch_independent(graph):
    detector = zoo.create("sdr", 4, randomizations=8)
    assert_permutation_equivariant(detector, graph, atol=1e-5)
    assert_batch_independent(detector, graph, num_instances=1, atol=1e-5)


@requires_cvxpy
def test_sdr_is_ml_on_4qam_at_high_snr():
    graph = batch(nr=4, nt=(2, 3), qam=4, size=8, seed=3, snr_db=25.0, precision="double")
    assert_ml(graph, QAM(4), zoo.create("sdr", 4).detect(graph).hard, "SDR")


def test_zf_pic_formula():
    graph = batch(nr=6, nt=(2, 4), size=8, seed=5, precision="double")
    qam = QAM(16)
    view = graph.dense()
    zf = zoo.create("zf", 16).detect(graph).hard
    decided = qam.points_as(view.H)[graph.users_to_dense(zf)] * view.user_mask
    energy = view.H.abs().square().sum(1)
    residual = view.y - (view.H @ decided[..., None])[..., 0]
    z = decided + (view.H.conj() * residual[..., None]).sum(1) / energy
    expected = qam.gaussian_logits(graph.users_from_dense(z),
                                   graph.users_from_dense(view.noise_var[:, None] / energy))
    torch.testing.assert_close(zoo.create("zf-pic", 16).detect(graph).final_logits, expected)
