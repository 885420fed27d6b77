"""MIMO batches as ordinary PyG data: collation equals the sampler's batch, feature views, stock layers."""
import copy
import importlib.util
import pickle
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

import zoo
from gnnmimo.graph import ANTENNA, CHANNEL, FEATURES, INTERFERENCE, REVERSE_CHANNEL, USER, MIMOGraph
from gnnmimo.testing import assert_well_formed
from gnnmimo.train import TrainConfig, Trainer
from helpers import sample_batch

ROOT = Path(__file__).resolve().parent.parent
DETECTORS = ["mf", "mmse", "ep", "amp", "vblast", "gnn", "epgnn"]  # classical and (untrained) learned


def prototype_module():
    """examples/pyg_prototype.py, imported (it registers ``pyg-prototype``)."""
    spec = importlib.util.spec_from_file_location("pyg_prototype", ROOT / "examples" / "pyg_prototype.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mixed(size=9, seed=0, nr=(4, 8)):
    return sample_batch(nr=nr, nt=(1, 4), qam=16, size=size, seed=seed, snr_db=(0.0, 20.0))


def assert_same_batch(actual: MIMOGraph, expected: MIMOGraph, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Every store of ``expected`` has the same keys and tensors (within ``rtol``, ``atol``) in ``actual``,
    and the derived views agree."""
    assert type(actual) is MIMOGraph
    assert set(actual.node_types) == set(expected.node_types)
    assert set(actual.edge_types) == set(expected.edge_types)
    for store in expected.stores:
        other = actual[store._key] if store._key is not None else actual._global_store
        assert set(other.keys()) == set(store.keys()), store._key
        for key, value in store.items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(other[key], value, rtol=rtol, atol=atol, msg=lambda m: f"{key}: {m}")
            else:
                assert other[key] == value, key
    for node in (USER, ANTENNA):
        assert torch.equal(actual[node].ptr, expected[node].ptr)
    assert actual.qam == expected.qam and actual.num_graphs == expected.num_graphs


# ------------------------------------------------------------------ collation
def test_loader_over_single_instances_gives_the_sampler_batch():
    graph = mixed()
    singles = graph.to_data_list()
    assert len(singles) == graph.num_instances and all(g.num_graphs == 1 for g in singles)
    loaded = next(iter(DataLoader(singles, batch_size=len(singles))))
    assert_same_batch(loaded, graph)
    assert_same_batch(Batch.from_data_list(singles), graph)


def test_loader_over_multi_instance_graphs_gives_the_sampler_batch():
    graph = mixed(size=10)
    parts = [graph.select(torch.arange(a, b)) for a, b in ((0, 3), (3, 4), (4, 10))]
    assert_same_batch(next(iter(DataLoader(parts, batch_size=3))), graph)
    halves = list(DataLoader(parts, batch_size=2))  # batches of batches, in order
    assert [h.num_graphs for h in halves] == [4, 6]
    assert_same_batch(Batch.from_data_list(halves), graph)


@pytest.mark.parametrize("name", DETECTORS)
def test_detections_on_collated_batches_equal_the_direct_batch(name):
    graph = mixed(size=10)
    detector = zoo.create(name, 16)
    expected = detector.detect(graph).logits
    singles = next(iter(DataLoader(graph.to_data_list(), batch_size=10)))
    parts = Batch.from_data_list([graph.select(torch.arange(0, 4)), graph.select(torch.arange(4, 10))])
    for collated in (singles, parts):
        torch.testing.assert_close(detector.detect(collated).logits, expected, rtol=0, atol=0)


def test_batch_api():
    graph = mixed(size=5)
    assert graph.num_graphs == graph.batch_size == len(graph) == 5
    last = graph.get_example(-1)
    assert_same_batch(last, graph.select(torch.tensor([4])))
    assert_same_batch(graph[1], graph.select(torch.tensor([1])))
    with pytest.raises(IndexError, match="instance 5 out of range for a batch of 5"):
        graph.get_example(5)
    again = pickle.loads(pickle.dumps(graph))
    assert_same_batch(again, graph)


def test_graph_level_scalars_collate_and_constellations_do_not_mix():
    four, sixteen = (sample_batch(nr=4, nt=2, qam=q, size=2) for q in (4, 16))
    assert Batch.from_data_list([four, four]).qam == 4 and four["qam"].tolist() == [4, 4]
    with pytest.raises(ValueError, match=r"mixes constellations \(\[4, 16\]-QAM\)"):
        Batch.from_data_list([four, sixteen]).qam


def test_renamed_attributes_warn_and_still_work():
    graph = mixed(size=3)
    received, labels = graph[ANTENNA].received, graph[USER].y
    with pytest.warns(DeprecationWarning, match=r"graph\['antenna'\]\.y is deprecated .* graph\['antenna'\]\.received"):
        assert graph[ANTENNA].y is received
    with pytest.warns(DeprecationWarning, match=r"graph\['user'\]\.label is deprecated .* graph\['user'\]\.y"):
        assert graph[USER].label is labels
    with pytest.warns(DeprecationWarning):
        graph[USER].label = labels.flip(0)
    assert torch.equal(graph[USER].y, labels.flip(0)) and "label" not in graph[USER]
    assert list(graph.y_dict) == [USER]  # y is the target, as in PyG


# ------------------------------------------------------------------- features
def test_features_against_dense_reference():
    graph = mixed(size=6).add_features(reverse=True)
    view = graph.dense()
    matched = (view.H.mH @ view.y[..., None])[..., 0]
    expected_user = torch.stack([matched.real, matched.imag, view.H.abs().square().sum(1),
                                 view.noise_var[:, None].expand_as(matched.real)], -1)
    torch.testing.assert_close(graph[USER].x, graph.users_from_dense(expected_user))
    expected_antenna = torch.stack([view.y.real, view.y.imag, view.noise_var[:, None].expand_as(view.y.real)], -1)
    torch.testing.assert_close(graph[ANTENNA].x, expected_antenna[view.antenna_mask])
    torch.testing.assert_close(graph[CHANNEL].edge_attr, torch.view_as_real(graph[CHANNEL].h))
    source, target = graph[INTERFERENCE].edge_index
    gram = (view.H.mH @ view.H)[graph.user_batch[target], graph.user_index[target], graph.user_index[source]]
    torch.testing.assert_close(graph[INTERFERENCE].edge_attr, torch.view_as_real(gram))
    assert torch.equal(graph[REVERSE_CHANNEL].edge_index, graph[CHANNEL].edge_index.flip(0))
    assert {key: value.shape[1] for key, value in graph.x_dict.items()} == {n: len(FEATURES[n]) for n in (USER, ANTENNA)}
    assert set(graph.edge_attr_dict) == {CHANNEL, INTERFERENCE, REVERSE_CHANNEL}
    assert all(not value.is_complex() for value in [*graph.x_dict.values(), *graph.edge_attr_dict.values()])


def test_features_collate_like_the_batch():
    graph = mixed(size=6)
    loaded = Batch.from_data_list([g.add_features(reverse=True) for g in graph.to_data_list()])
    # the features equal up to rounding: the matched filter sums in another order on another batch
    assert_same_batch(loaded, copy.copy(graph).add_features(reverse=True), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------- stock PyG layers
@pytest.fixture(scope="module")
def prototype():
    return prototype_module()


@pytest.mark.parametrize("layer", ["gatv2", "transformer", "gine"])
def test_stock_layers_run_untrained_and_after_training(prototype, layer):
    """to_hetero(GATv2Conv / TransformerConv / GINEConv) on x_dict/edge_attr_dict of a mixed-Nt
    batch, as initialised and after a few steps of the library's trainer (which changes them)."""
    graph = sample_batch(nr=(4, 6), nt=(1, 4), qam=4, size=12, seed=3, snr_db=(5.0, 15.0))
    config = TrainConfig(detector="pyg-prototype", options={"layer": layer, "hidden": 8}, qam=4, nr=6,
                         nt=(1, 4), nt_mode="mixed", snr=(5.0, 15.0), steps=3, batch_size=16, eval_every=3,
                         val_size=16, schedule="constant", lr=1e-2)
    trainer = Trainer(config, lambda: zoo.create("pyg-prototype", 4, **config.options), progress=False,
                      log=lambda line: None)
    untrained = copy.deepcopy(trainer.detector)
    assert_well_formed(untrained.detect(graph), graph)
    assert set(graph.node_types) == {USER, ANTENNA} and CHANNEL in graph.edge_types  # the caller's batch is untouched
    assert INTERFERENCE not in graph.edge_types and "x" not in graph[USER]
    trainer.run()
    assert trainer.step == 3
    trained = trainer.detector
    assert_well_formed(trained.detect(graph), graph)
    unchanged = [name for (name, a), b in zip(untrained.named_parameters(), trained.parameters())
                 if torch.equal(a, b)]
    # only the last layer's messages to the antennas do not reach the user read-out
    assert unchanged and all("second" in name and "rev_channel" in name for name in unchanged), unchanged
    assert not torch.allclose(trained.detect(graph).logits, untrained.detect(graph).logits)
