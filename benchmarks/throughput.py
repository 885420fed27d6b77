"""Foundation throughput: building mixed-size batches and running LMMSE.

Prints, for 4096 instances of 16 antennas and 4…8 users (16-QAM), side by side
in one run:

* our vectorised sampler (draw + build the graph batch) against building the
  same batch with PyG's ``Batch.from_data_list`` from per-instance graphs;
* graph batch → dense view, and adding the complete user graph;
* LMMSE, MF and ZF detection throughput (instances/s).

Run: ``python benchmarks/throughput.py [--device cuda] [--batch 4096]``.
"""
from __future__ import annotations

import argparse

import torch
from torch_geometric.data import Batch, HeteroData

import zoo
from gnnmimo.graph import ANTENNA, CHANNEL, INTERFERENCE, USER
from gnnmimo.ops import gram_on_edges
from gnnmimo.sampling import MIMOSampler
from gnnmimo.timing import best_time


def per_instance_graphs(graph) -> list[HeteroData]:
    """The same instances as separate HeteroData objects (the slow baseline's input)."""
    view, labels = graph.dense(), graph.dense_labels()
    graphs = []
    for b in range(graph.num_instances):
        nr, nt = int(graph.num_antennas[b]), int(graph.num_users[b])
        data = HeteroData()
        data[USER].y = labels[b, :nt]
        data[USER].num_nodes = nt
        data[ANTENNA].received = view.y[b, :nr]
        data[ANTENNA].num_nodes = nr
        a, i = torch.meshgrid(torch.arange(nr), torch.arange(nt), indexing="ij")
        data[CHANNEL].edge_index = torch.stack([a.flatten(), i.flatten()])
        data[CHANNEL].h = view.H[b, :nr, :nt].flatten()
        data.noise_var = graph.noise_var[b:b + 1]
        graphs.append(data)
    return graphs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4096)
    args = parser.parse_args()
    sampler = MIMOSampler(16, (4, 8), 16, (5.0, 20.0), device=args.device)
    generator = sampler.generator(0)
    graph = sampler.sample(args.batch, generator)
    n = args.batch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"{n} instances of 16×(4..8), 16-QAM\n")

    ours = best_time(lambda: sampler.sample(n, generator))
    data_list = per_instance_graphs(graph)
    pyg = best_time(lambda: Batch.from_data_list(data_list), repeat=2)
    print(f"{'sample + build batch (ours, vectorised)':45s} {ours * 1e3:9.1f} ms  {n / ours:12,.0f} inst/s")
    print(f"{'Batch.from_data_list (prebuilt graphs)':45s} {pyg * 1e3:9.1f} ms  {n / pyg:12,.0f} inst/s")
    print(f"{'  ratio (from_data_list / ours)':45s} {pyg / ours:9.1f} x\n")

    dense = best_time(graph.dense)
    def rebuild_user_graph():
        if INTERFERENCE in graph.edge_types:
            del graph[INTERFERENCE]
        graph.add_user_edges()

    edges = best_time(rebuild_user_graph)
    edge_index = graph[INTERFERENCE].edge_index
    gram_graph_form = best_time(lambda: gram_on_edges(graph, edge_index))
    print(f"{'dense view':45s} {dense * 1e3:9.1f} ms")
    print(f"{'complete user graph + Gram (dense product)':45s} {edges * 1e3:9.1f} ms")
    print(f"{'Gram on user edges (graph form, 2-hop paths)':45s} {gram_graph_form * 1e3:9.1f} ms\n")

    with torch.inference_mode():
        timings = {name: best_time(lambda d=zoo.create(name, 16): d(graph)) for name in ("mmse", "zf", "mf")}
    for name, seconds in timings.items():
        print(f"{name + ' detection':45s} {seconds * 1e3:9.1f} ms  {n / seconds:12,.0f} inst/s")
    print(f"{'  ratio (mmse time / batch build time)':45s} {timings['mmse'] / ours:9.2f} x")


if __name__ == "__main__":
    main()
