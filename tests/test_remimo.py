"""RE-MIMO and its blocks: equations, sparse = dense attention, symmetries, configuration."""
import math

import pytest
import torch
from hypothesis import given

import zoo
from gnnmimo.blocks.attention import DenseSelfAttention, GraphSelfAttention
from gnnmimo.blocks.embedding import transmitter_encoding
from gnnmimo.blocks.likelihood import LikelihoodFeatures
from gnnmimo.blocks.transformer import TransformerEncoderLayer
from gnnmimo.constellation import QAM
from gnnmimo.equalization import lmmse_equalize
from gnnmimo.graph import USER
from gnnmimo.sampling import MIMOSampler
from gnnmimo.testing import (assert_batch_independent, assert_generalises_over_user_counts,
                             assert_permutation_equivariant, mimo_batches, permute_users)
from zoo.remimo import REMIMO
from helpers import sample_batch

NR = 6


def mixed_batch(qam=16, batch=12, nt=(1, 5), seed=0, precision="single"):
    return sample_batch(NR, nt, qam, batch, seed, snr_db=(0.0, 20.0), precision=precision)


def small_remimo(qam=16, **options):
    torch.manual_seed(0)
    return zoo.create("remimo", qam, **{"nr": NR, "d_model": 16, "heads": 2, "blocks": 3, **options})


# ------------------------------------------------------------------ blocks
def test_likelihood_features_match_the_paper_normalisations():
    graph = mixed_batch()
    view = graph.dense()
    qam = QAM(16)
    logits = torch.randn(graph[USER].num_nodes, 16, generator=torch.Generator().manual_seed(1))
    state = LikelihoodFeatures(qam)(graph, {"logits": logits})

    z = logits.softmax(-1).to(torch.complex64) @ qam.points_as(view.y)                  # eq. 18
    z_dense = graph.users_to_dense(z)
    delta = view.y - (view.H @ z_dense[..., None])[..., 0]
    scale = (2.0 * graph.num_users.float()).rsqrt()[:, None]
    expected_residual = (torch.cat([delta.real, delta.imag], -1) * scale)[graph.user_batch]
    h = view.H.transpose(1, 2)                                                         # [B, Nt, Nr]
    expected_channel = graph.users_from_dense(torch.cat([h.real, h.imag], -1))
    expected_noise = (view.noise_var.sqrt()[:, None] * scale)[graph.user_batch]
    step = z_dense + (h.conj() @ delta[..., None])[..., 0] / h.abs().square().sum(-1).clamp_min(1e-30)
    expected_step = graph.users_from_dense(torch.stack([step.real, step.imag], -1))

    torch.testing.assert_close(state["mean"], torch.stack([z.real, z.imag], -1))
    torch.testing.assert_close(state["residual"], expected_residual, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state["channel"], expected_channel)
    torch.testing.assert_close(state["noise"], expected_noise)
    torch.testing.assert_close(state["obs_mean"], expected_step, rtol=1e-4, atol=1e-5)


def test_zero_logits_give_the_embedding_input_y_over_sqrt_2nt():
    graph = mixed_batch()
    state = LikelihoodFeatures(16)(graph, {"logits": torch.zeros(graph[USER].num_nodes, 16)})
    y = graph.dense().y
    expected = (torch.cat([y.real, y.imag], -1) / (2.0 * graph.num_users[:, None]).sqrt())[graph.user_batch]
    torch.testing.assert_close(state["residual"], expected, rtol=1e-5, atol=1e-6)


def test_transmitter_encoding_is_eq_25_26():
    nr, dim, d_model = 8, 8, 16
    te = transmitter_encoding(torch.tensor([3, 7]), nr, dim, d_model)
    for row, nt in enumerate((3, 7)):
        for i in range(dim // 2):
            angle = nt / (2 * nr) ** (2 * i / dim)
            assert te[row, 2 * i].item() == pytest.approx(math.sin(angle) / math.sqrt(d_model), abs=1e-6)
            assert te[row, 2 * i + 1].item() == pytest.approx(math.cos(angle) / math.sqrt(d_model), abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_graph_and_dense_attention_agree_on_mixed_batches(seed):
    graph = mixed_batch(seed=seed, nt=(1, 6))
    torch.manual_seed(seed)
    dense = DenseSelfAttention(11, 8, heads=3)
    sparse = GraphSelfAttention(11, 8, heads=3)
    sparse.load_state_dict(dense.state_dict())
    x = torch.randn(graph[USER].num_nodes, 11)
    out_dense, att_dense = dense(graph, x)
    out_sparse, att_sparse = sparse(graph, x)
    torch.testing.assert_close(out_sparse, out_dense, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(att_sparse, att_dense, rtol=1e-5, atol=1e-6)
    # rows are distributions over the user's own instance, zero on padding
    torch.testing.assert_close(att_dense.sum(-1), torch.ones(graph[USER].num_nodes, 3))
    padded = torch.arange(att_dense.shape[-1]) >= graph.num_users[graph.user_batch][:, None]
    assert (att_dense.transpose(1, 2)[padded] == 0).all()


def test_encoder_layer_implementations_agree_and_the_paper_widths():
    graph = mixed_batch()
    n = graph[USER].num_nodes
    state = {"hidden": torch.randn(n, 16), "logits": torch.randn(n, 16),
             "residual": torch.randn(n, 2 * NR), "channel": torch.randn(n, 2 * NR)}
    width = 16 + 16 + 4 * NR
    dense = TransformerEncoderLayer(width, 16, heads=4)
    sparse = TransformerEncoderLayer(width, 16, heads=4, attention="graph")
    sparse.load_state_dict(dense.state_dict())
    assert dense.ffn[0].out_features == 4 * 16
    assert dense.attention.head_channels == math.ceil(width / 4)
    a, b = dense(graph, state), sparse(graph, state)
    torch.testing.assert_close(a["hidden"], b["hidden"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a["attention"], b["attention"], rtol=1e-5, atol=1e-6)


def test_blocks_name_missing_state_keys():
    graph = mixed_batch()
    layer = TransformerEncoderLayer(16 + 16 + 4 * NR, 16, heads=2)
    with pytest.raises(KeyError, match="TransformerEncoderLayer reads"):
        layer(graph, {"hidden": torch.zeros(graph[USER].num_nodes, 16)})


# ---------------------------------------------------------------- detector
def test_remimo_graph_and_dense_paths_agree():
    graph = mixed_batch(nt=(1, 6))
    dense = small_remimo()
    sparse = small_remimo(attention="graph")
    sparse.load_state_dict(dense.state_dict())
    with torch.no_grad():
        states_dense, states_sparse = list(dense.states(graph)), list(sparse.states(graph))
    assert len(states_dense) == 3
    for a, b in zip(states_dense, states_sparse):
        torch.testing.assert_close(a["logits"], b["logits"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a["attention"], b["attention"], rtol=1e-4, atol=1e-6)


def test_attention_maps_are_per_instance_stochastic_matrices_that_follow_the_users():
    """``attention_maps``: ``[T, B, H, Nt_max, Nt_max]``, rows summing to 1 over each instance's users
    with zeros on padding, the per-user weights of ``states``; relabelling the users permutes rows
    and columns alike (``α'_{ij} = α_{π(i) π(j)}``)."""
    graph = mixed_batch(nt=(1, 6))
    detector = small_remimo().eval()
    maps = detector.attention_maps(graph)
    nt_max = int(graph.num_users.max())
    assert maps.shape == (3, graph.num_graphs, 2, nt_max, nt_max)
    real = torch.arange(nt_max)[None, :] < graph.num_users[:, None]                    # [B, Nt_max]
    rows = maps.sum(-1)
    torch.testing.assert_close(rows, real[None, :, None, :].expand_as(rows).to(rows.dtype))
    assert torch.all(maps >= 0)
    padded = ~(real[:, :, None] & real[:, None, :])                                   # [B, Nt_max, Nt_max]
    assert torch.count_nonzero(maps.permute(1, 3, 4, 0, 2)[padded]) == 0
    with torch.no_grad():
        second = list(detector.states(graph))[1]["attention"]
    torch.testing.assert_close(maps[1][graph.user_batch, :, graph.user_index], second)
    permuted, perm, _ = permute_users(graph, seed=3)
    moved = detector.attention_maps(permuted)
    index = perm[None, :, None, :, None].expand_as(maps)
    expected = maps.gather(3, index).gather(4, perm[None, :, None, None, :].expand_as(maps))
    torch.testing.assert_close(moved, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("gradient", [False, True])
@given(graph=mimo_batches(nr=NR, nt=(1, 7), qam=4, batch_size=(1, 9), channels=None))
def test_remimo_paths_agree_and_are_equivariant_on_random_batches(gradient, graph):
    dense = small_remimo(qam=4, gradient=gradient).eval()
    sparse = small_remimo(qam=4, gradient=gradient, attention="graph").eval()
    sparse.load_state_dict(dense.state_dict())
    torch.testing.assert_close(sparse.detect(graph).logits, dense.detect(graph).logits, rtol=1e-4, atol=1e-5)
    assert_permutation_equivariant(dense, graph, atol=1e-5)


def test_remimo_returns_per_iteration_logits_with_per_block_parameters():
    graph = mixed_batch()
    detector = small_remimo()
    logits = detector(graph).logits
    assert logits.shape == (3, graph[USER].num_nodes, 16)
    first, second = detector.encoders[0], detector.encoders[1]
    assert first.attention.query.weight.data_ptr() != second.attention.query.weight.data_ptr()
    assert detector.predictors[0].net[0].in_features == 16 + 16 + 4 * NR + 1                 # d_ψ
    with_gradient = small_remimo(gradient=True)
    assert with_gradient.encoders[0].reads[-1] == "obs_mean"
    assert with_gradient.predictors[0].net[0].in_features == 16 + 16 + 4 * NR + 3


def test_remimo_is_permutation_equivariant_and_batch_independent():
    graph = mixed_batch(batch=10, nt=(1, 6), seed=3)
    detector = small_remimo().eval()
    assert_permutation_equivariant(detector, graph, atol=1e-5)
    assert_batch_independent(detector, graph, atol=1e-5)


def test_lmmse_start_feeds_the_lmmse_scores_to_the_first_block_and_keeps_the_symmetries():
    """``start="lmmse"``: the first encoder reads LMMSE's Gaussian scores as ``logits`` (and the
    residual at their posterior mean), not zeros; the detector stays equivariant and batch independent."""
    graph = mixed_batch(nt=(1, 6))
    detector = small_remimo(start="lmmse").eval()
    seen = {}
    detector.encoders[0].register_forward_pre_hook(lambda module, inputs: seen.update(inputs[1]))
    with torch.no_grad():
        detector(graph)
    torch.testing.assert_close(seen["logits"], QAM(16).gaussian_logits(*lmmse_equalize(graph)).float())
    z = seen["logits"].softmax(-1).to(torch.complex64) @ QAM(16).points_as(graph.dense().y)
    view = graph.dense()
    residual = view.y - (view.H @ graph.users_to_dense(z)[..., None])[..., 0]
    expected = torch.cat([residual.real, residual.imag], -1) * (2.0 * graph.num_users.float()).rsqrt()[:, None]
    torch.testing.assert_close(seen["residual"], expected[graph.user_batch], rtol=1e-4, atol=1e-5)
    assert_permutation_equivariant(detector, graph)
    assert_batch_independent(detector, graph)
    zero = small_remimo()
    assert zero.hparams["start"] == "zero"
    with pytest.raises(ValueError, match="start must be one of"):
        small_remimo(start="zf")


def test_remimo_generalises_over_user_counts():
    assert_generalises_over_user_counts(small_remimo(qam=4).eval(), NR, (1, 8), batch_size=4)


def test_paper_configuration_by_name():
    detector = zoo.create("remimo", 16, config="paper")
    assert detector.hparams == {"nr": 64, "d_model": 512, "heads": 8, "blocks": 12, "te_dim": None,
                                "attention": "dense", "gradient": False, "start": "zero"}
    assert len(detector.encoders) == 12 and detector.encoders[0].attention.heads == 8
    assert REMIMO.paper(16, blocks=16).hparams["blocks"] == 16
    graph = MIMOSampler(64, 32, 16, snr_db=15.0).sample(2, torch.Generator().manual_seed(0))
    assert detector.detect(graph).logits.shape == (12, 64, 16)


def test_configuration_errors_are_clear():
    with pytest.raises(ValueError, match="needs nr"):
        zoo.create("remimo", 16)
    with pytest.raises(ValueError, match="unknown RE-MIMO config"):
        zoo.create("remimo", 16, config="huge")
    with pytest.raises(ValueError, match="unknown attention implementation"):
        zoo.create("remimo", 16, nr=4, attention="sparse-ish")
    graph = MIMOSampler(8, 2, 16).sample(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"built for Nr=6 .* Nr in \[8\]"):
        small_remimo()(graph)


@pytest.mark.parametrize("name", [name for name in zoo.list_pretrained() if name.startswith("remimo")])
def test_pretrained_attention_paths_agree(name):
    """A shipped checkpoint gives the same probabilities with either attention implementation."""
    detector = zoo.load(name)
    system = detector.checkpoint["system"]
    sampler = MIMOSampler(system["nr"], tuple(system["nt"]), system["qam"], snr_db=(0.0, 20.0))
    graph = sampler.sample(24, sampler.generator(3))
    graph_path = zoo.load(name, attention="graph")
    assert torch.allclose(graph_path(graph).probs, detector(graph).probs, atol=1e-4)


def test_pretrained_4qam_model_beats_lmmse_on_fresh_samples():
    """A quick guard that the shipped weights are the trained ones (its card has the full table)."""
    detector = zoo.load("remimo-nr16-nt4-8-qam4")
    sampler = MIMOSampler(16, 8, 4, snr_db=6.0)
    graph = sampler.sample(1000, sampler.generator(7))
    label = graph[USER].y
    with torch.no_grad():
        ours = int((detector(graph).hard != label).sum())
    mmse = int((zoo.create("mmse", 4)(graph).hard != label).sum())
    assert ours < mmse, (ours, mmse)
