"""The dense messages of the pairwise-MRF GNN (``messages="dense"``) give the numbers of the
edge list (``messages="graph"``): the padded MRF is the edge list's, the messages, every MRF-GNN
detector of the zoo and their gradients agree in float64 on mixed-Nt batches, split into
blocks of instances or not, and a batch with its own user graph runs on it."""
import pytest
import torch

import zoo
from gnnmimo.blocks import gnn as gnn_module
from gnnmimo.blocks.gnn import (MESSAGES, MRFMessages, PairwiseMRFGNN, dense_real_components,
                                real_component_graph)
from gnnmimo.graph import INTERFERENCE
from helpers import sample_batch

pytestmark = pytest.mark.usefixtures("one_thread")

#: every zoo detector built on the pairwise-MRF GNN, with the shipped checkpoints' options
MRF_DETECTORS = ("gnn", "epgnn", "epgnn:skip=False", "epgnn:refine=True,report=True", "ampgnn",
                 "ampgnn:refine=True,report=True,divergence=True", "oamp-gnn", "oamp-gnn:refine=True,report=True")


def mixed_batch(size=7, seed=0):
    """float64 instances mixing Nt 1…5 and Nr 4…8."""
    return sample_batch(nr=(4, 8), nt=(1, 5), size=size, seed=seed, snr_db=(5.0, 25.0), precision="double")


@pytest.fixture(params=[None, 40], ids=["one-block", "blocks-of-40-pairs"])
def pairs_per_block(request, monkeypatch):
    """Run the dense path on the whole batch, or split into blocks of one or a few instances."""
    if request.param is not None:
        monkeypatch.setattr(gnn_module, "PAIRS_PER_BLOCK", request.param)
    return request.param


def test_the_padded_mrf_is_the_edge_lists():
    """Every edge l → k of the edge list is a masked-in pair of the padded layout with the same
    h_kᵀh_l, and nothing else is; the node inputs and degrees agree."""
    graph = mixed_batch()
    edges, dense = real_component_graph(graph, torch.float64), dense_real_components(graph, torch.float64)
    n = dense.gram.shape[-1]
    source, target = edges.edge_index
    instance, row, column = (dense.position[target] // n, dense.position[target] % n, dense.position[source] % n)
    assert torch.equal(dense.position[source] // n, instance)
    assert torch.equal(dense.gram[instance, row, column], -edges.edge_input[:, 0])
    assert torch.equal(dense.noise_var[instance], edges.edge_input[:, 1])
    assert dense.pair_mask[instance, row, column].eq(1).all() and dense.pair_mask.sum() == source.numel()
    assert torch.equal(dense.node_input, edges.node_input)
    assert torch.equal(dense.degree[:, 0], torch.bincount(target, minlength=target.max() + 1).double())


@pytest.mark.parametrize("hidden", [(64, 32), (16,), ()], ids=["two-hidden", "one-hidden", "linear"])
def test_dense_messages_equal_the_edge_lists_with_gradients(hidden, pairs_per_block):
    graph = mixed_batch()
    torch.manual_seed(0)
    messages = MRFMessages(8, 2, hidden, 8).double()
    u = torch.randn(2 * graph.user_batch.numel(), 8, dtype=torch.float64, requires_grad=True)
    edges, dense = real_component_graph(graph, torch.float64), dense_real_components(graph, torch.float64)
    blocks = list(dense.blocks(pairs_per_block))
    assert len(blocks) == (1 if pairs_per_block is None else graph.num_instances)
    results = []
    for forward in (lambda: messages(u, edges.edge_index, edges.edge_input),
                    lambda: torch.cat([messages.dense(u[nodes], block) for nodes, block in blocks])):
        out = forward()
        weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)
        grads = torch.autograd.grad((out * weights).sum(), [u, *messages.parameters()])
        results.append((out, grads))
    (graph_out, graph_grads), (dense_out, dense_grads) = results
    torch.testing.assert_close(dense_out, graph_out, rtol=1e-12, atol=1e-12)
    for dense_grad, graph_grad in zip(dense_grads, graph_grads):
        torch.testing.assert_close(dense_grad, graph_grad, rtol=1e-11, atol=1e-11)


def both_implementations(spec: str, **options):
    """The detector with each message implementation and the same weights; the readout's
    zero-initialised last layer (the observation skip) drawn at random, so the GNN counts."""
    torch.manual_seed(0)
    name, spec_options = zoo.parse_spec(spec)
    built = {messages: zoo.create(name, 16, messages=messages, **spec_options, **options).double()
             for messages in MESSAGES}
    gnn = next(module for module in built["dense"].modules() if isinstance(module, PairwiseMRFGNN))
    torch.nn.init.normal_(gnn.readout[-1].weight, std=0.1)
    built["graph"].load_state_dict(built["dense"].state_dict())
    return built


@pytest.mark.parametrize("spec", MRF_DETECTORS)
def test_every_mrf_gnn_detector_gives_the_same_outputs_and_gradients(spec, pairs_per_block):
    """Three iterations: EP's site update amplifies rounding differences (1e-16) by orders of
    magnitude per iteration where the tilted variances are tiny, whichever path made them (the
    block itself is compared to 1e-12 above), hence the looser tolerances here."""
    graph = mixed_batch(size=6, seed=1)
    results = {}
    for messages, detector in both_implementations(spec, iterations=3).items():
        logits = detector(graph).logits
        loss = logits.log_softmax(-1)[..., 0].sum()
        results[messages] = (logits, torch.autograd.grad(loss, list(detector.parameters())))
    (graph_logits, graph_grads), (dense_logits, dense_grads) = results["graph"], results["dense"]
    torch.testing.assert_close(dense_logits, graph_logits, rtol=1e-5, atol=1e-4)
    for dense_grad, graph_grad in zip(dense_grads, graph_grads):
        torch.testing.assert_close(dense_grad, graph_grad, rtol=1e-4, atol=1e-6)


def test_a_batch_with_its_own_user_graph_runs_on_it():
    """The dense path is the complete graph; a batch that brings its own user edges (here the
    complete graph less one edge per instance) gets the edge list, whatever the option."""
    graph = mixed_batch(size=5, seed=2)
    edge_index, gram = graph.user_edges()
    first_of_instance = torch.ones_like(edge_index[0], dtype=torch.bool)
    first_of_instance[1:] = graph.user_batch[edge_index[1, 1:]] != graph.user_batch[edge_index[1, :-1]]
    graph[INTERFERENCE].edge_index, graph[INTERFERENCE].gram = edge_index[:, ~first_of_instance], gram[~first_of_instance]
    built = both_implementations("epgnn")
    complete = built["dense"](mixed_batch(size=5, seed=2)).logits
    torch.testing.assert_close(built["dense"](graph).logits, built["graph"](graph).logits, rtol=0, atol=0)
    assert not torch.allclose(built["dense"](graph).logits, complete)


def test_the_message_implementation_is_checked():
    with pytest.raises(ValueError, match=r"messages must be one of \('dense', 'graph'\), got 'sparse'"):
        PairwiseMRFGNN(16, messages="sparse")
    with pytest.raises(ValueError, match="messages must be one of"):
        zoo.create("ampgnn", 16, messages="edges")
    assert PairwiseMRFGNN(16).message_implementation == "dense"
