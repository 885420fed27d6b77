"""A PyG prototype: stock ``torch_geometric.nn`` layers on MIMO graphs, trained, next to LMMSE.

The MIMO batch is an ordinary PyG heterogeneous batch. ``graph.add_features(reverse=True)``
stores real-valued features that stock layers take as they are (table in the README):

* ``x_dict``: users ``[Re hᵢᴴy, Im hᵢᴴy, ‖hᵢ‖², σ²]``, antennas ``[Re yₐ, Im yₐ, σ²]``;
* ``edge_attr_dict``: ``[Re, Im]`` of ``Hₐᵢ`` on antenna → user and user → antenna edges,
  of ``hᵢᴴhⱼ`` on the user → user interference edges.

The model is a small *homogeneous* GNN (two ``GATv2Conv``, ``TransformerConv`` or
``GINEConv`` layers with edge features) turned into a heterogeneous one by
``torch_geometric.nn.to_hetero``, a linear read-out to the symbol logits, registered as a
detector so that the library's trainer, evaluator and property checks take it. Message
passing with sum/attention aggregation treats users (and antennas) alike, so the model is
permutation equivariant and batch independent by construction; the checks confirm it, on
the model as initialised and with randomised parameters. After its short training the
prototype still trails LMMSE by far: it is a starting point for a PyG model, not a detector.

Run: ``python examples/pyg_prototype.py`` (``--quick``: a few training steps, for CI).
"""
from __future__ import annotations

import argparse
import copy

import torch
from torch import nn
from torch_geometric.nn import MLP, GATv2Conv, GINEConv, TransformerConv, to_hetero

from gnnmimo.detector import Detector
from gnnmimo.evaluation import evaluate
from gnnmimo.graph import ANTENNA, CHANNEL, FEATURES, INTERFERENCE, REVERSE_CHANNEL, USER, MIMOGraph
from gnnmimo.registry import create, register
from gnnmimo.report import markdown_table
from gnnmimo.sampling import MIMOSampler
from gnnmimo.testing import assert_batch_independent, assert_permutation_equivariant
from gnnmimo.train import TrainConfig, Trainer

import zoo  # registers the zoo's detectors (LMMSE here)

#: node and edge types of the featured batch, as ``to_hetero`` wants them
METADATA = ([USER, ANTENNA], [CHANNEL, INTERFERENCE, REVERSE_CHANNEL])
LAYERS = ("gatv2", "transformer", "gine")


def conv(layer: str, hidden: int) -> nn.Module:
    """One stock PyG layer ``hidden → hidden`` reading 2-dimensional edge features."""
    edge_dim = len(FEATURES[CHANNEL])
    if layer == "gatv2":  # bipartite relations: no self loops
        return GATv2Conv(hidden, hidden, heads=1, edge_dim=edge_dim, add_self_loops=False)
    if layer == "transformer":
        return TransformerConv(hidden, hidden // 2, heads=2, edge_dim=edge_dim)
    if layer == "gine":
        return GINEConv(MLP([hidden, hidden, hidden]), train_eps=True, edge_dim=edge_dim)
    raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")


class Homogeneous(nn.Module):
    """Two message-passing layers with a residual ReLU, written for one node and edge type."""

    def __init__(self, layer: str, hidden: int):
        super().__init__()
        self.first, self.second = conv(layer, hidden), conv(layer, hidden)

    def forward(self, x, edge_index, edge_attr):
        x = x + self.first(x, edge_index, edge_attr).relu()
        return x + self.second(x, edge_index, edge_attr).relu()


@register("pyg-prototype")
class PyGPrototype(Detector):
    """Per-type input encoders, ``to_hetero(Homogeneous)`` on the featured batch, a read-out.

    Args:
        qam: the constellation.
        layer: ``"gatv2"``, ``"transformer"`` or ``"gine"``.
        hidden: the width of every node state.
    """

    def __init__(self, qam, layer: str = "gatv2", hidden: int = 32):
        super().__init__(qam)
        self.encoders = nn.ModuleDict({node: nn.Linear(len(FEATURES[node]), hidden) for node in METADATA[0]})
        self.gnn = to_hetero(Homogeneous(layer, hidden), METADATA, aggr="sum")
        self.readout = nn.Linear(hidden, self.qam.order)

    def iterate(self, graph: MIMOGraph) -> torch.Tensor:
        featured = copy.copy(graph).add_features(reverse=True)  # a copy: detectors leave the batch alone
        dtype = self.readout.weight.dtype
        x = {node: self.encoders[node](featured[node].x.to(dtype)) for node in METADATA[0]}
        edge_attr = {edge: value.to(dtype) for edge, value in featured.edge_attr_dict.items()}
        states = self.gnn(x, featured.edge_index_dict, edge_attr)
        return self.readout(states[USER])[None]  # [T = 1, N_u, M]


def train(layer: str, steps: int, seed: int = 0) -> Detector:
    """Train a prototype briefly through the library's trainer (4-QAM, 8 antennas, 2–4 users)."""
    config = TrainConfig(detector="pyg-prototype", options={"layer": layer, "hidden": 32}, qam=4, nr=8,
                         nt=(2, 4), nt_mode="mixed", snr=(4.0, 12.0), steps=steps, batch_size=128,
                         lr=3e-3, schedule="constant", eval_every=max(1, steps // 2), val_size=256, seed=seed)
    trainer = Trainer(config, lambda: create("pyg-prototype", 4, **config.options), progress=False,
                      log=lambda line: None)
    trainer.run()
    return trainer.detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few training steps (CI)")
    parser.add_argument("--layer", choices=LAYERS, default="gatv2")
    args = parser.parse_args()
    torch.set_num_threads(1)

    sampler = MIMOSampler(nr=8, nt=(2, 4), qam=4, snr_db=(4.0, 12.0))
    graph = sampler.sample(16, sampler.generator(0))
    featured = copy.copy(graph).add_features(reverse=True)
    print("x_dict:", {node: tuple(x.shape) for node, x in featured.x_dict.items()})
    print("edge_attr_dict:", {edge[1]: tuple(a.shape) for edge, a in featured.edge_attr_dict.items()})

    detector = train(args.layer, steps=20 if args.quick else 600)
    assert_permutation_equivariant(detector, graph)  # as trained and with randomised parameters
    assert_batch_independent(detector, graph)
    print(f"trained PyGPrototype({args.layer!r}) is permutation equivariant and batch independent\n")

    results = evaluate({"lmmse": zoo.create("mmse", 4), f"pyg-{args.layer}": detector}, sampler, nts=[2, 4],
                       snrs_db=[8.0], target_errors=50 if args.quick else 500,
                       max_symbols=20_000 if args.quick else 400_000, batch_size=2000)
    print(markdown_table(results))


if __name__ == "__main__":
    main()
