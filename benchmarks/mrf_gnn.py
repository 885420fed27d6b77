"""The pairwise-MRF GNN detectors: dense messages against the edge list, side by side in one run.

EP-GNN and AMP-GNN (the shipped checkpoints' options, untrained weights with
the readout's last layer drawn at random, so the GNN is not skipped) with
``messages="graph"`` (the ``MessagePassing`` edge list, the old path) and
``messages="dense"`` (the default), timed alternately, best of ``--repeat``:

1. inference instances/s at 64×32 16-QAM (batch ``--massive-batch``,
   default 256: the edge list needs ~1 GB per intermediate at 1024) and at
   the shipped sizes Nr 8 / Nr 16, Nt 8 (batch 2048); every call gets a fresh
   batch (nothing memoised), so building the MRF counts;
2. training steps/s with the shipped recipes (batch 128, soft SER + 0.1 CE
   on the last logits, gradient clipping at 1, Adam): EP-GNN at Nr 8, Nt 4 or
   8, AMP-GNN at Nr 16, Nt 4…8, one Nt per minibatch drawn from the
   trainer's triangular law (the step time is its expectation over ``Nt``).

The ratio column is dense / graph. Run with one thread on a shared machine
(default ``--threads 1``): ``python benchmarks/mrf_gnn.py [--massive-batch 1024]
[--repeat 3] [--skip-massive]``. The edge list at 64×32 takes about a
minute per call on one thread.
"""
from __future__ import annotations

import argparse
import itertools

import torch

import zoo
from gnnmimo.allocator import keep_freed_memory
from gnnmimo.blocks.gnn import MESSAGES, PairwiseMRFGNN
from gnnmimo.graph import MIMOGraph
from gnnmimo.losses import detection_loss
from gnnmimo.sampling import MIMOSampler
from gnnmimo.timing import best_times

#: the shipped checkpoints' options (zoo/pretrained/*.md)
SHIPPED = {"epgnn": dict(refine=True, report=True), "ampgnn": dict(refine=True, report=True, divergence=True)}
#: the training systems of the shipped recipes: (Nr, trained Nt values)
RECIPES = {"epgnn": (8, (4, 8)), "ampgnn": (16, (4, 5, 6, 7, 8))}


def detectors(name: str) -> dict[str, torch.nn.Module]:
    """The two implementations of one detector, with the same (perturbed) weights."""
    torch.manual_seed(0)
    built = {messages: zoo.create(name, 16, messages=messages, **SHIPPED[name]) for messages in MESSAGES}
    gnn = next(module for module in built["dense"].modules() if isinstance(module, PairwiseMRFGNN))
    torch.nn.init.normal_(gnn.readout[-1].weight, std=0.05)
    for detector in built.values():
        detector.load_state_dict(built["dense"].state_dict())
    return built


def fresh_batches(nr: int, nt: int, size: int, seed: int = 0):
    """An endless cycle of distinct batch objects holding the same instances (nothing memoised on them)."""
    sampler = MIMOSampler(nr, nt, 16, snr_db=(10.0, 25.0))
    graph = sampler.sample(size, sampler.generator(seed))
    view = graph.dense()
    copies = [MIMOGraph.from_dense(view.y.clone(), view.H.clone(), view.noise_var.clone(), qam=16)
              for _ in range(3)]
    return itertools.cycle(copies)


def inference(nr: int, nt: int, size: int, repeat: int) -> None:
    batches = fresh_batches(nr, nt, size)
    for name in SHIPPED:
        built = detectors(name)
        with torch.inference_mode():
            times = best_times({messages: (lambda d=detector: d(next(batches))) for messages, detector in built.items()},
                               repeat=repeat)
        report(f"{name} inference {nr}x{nt}, batch {size}", size, times, "instances/s")


def training(repeat: int) -> None:
    for name, (nr, nts) in RECIPES.items():
        built = detectors(name)
        optimisers = {messages: torch.optim.Adam(detector.parameters(), lr=1e-3) for messages, detector in built.items()}
        weights = torch.arange(1, len(nts) + 1, dtype=torch.float64)
        weights /= weights.sum()              # the trainer's triangular law over the trained Nt
        expected = dict.fromkeys(built, 0.0)
        for nt, weight in zip(nts, weights.tolist()):
            sampler = MIMOSampler(nr, nt, 16, snr_db=(10.0, 25.0))
            graph = sampler.sample(128, sampler.generator(nt))

            def step(messages):
                detector, optimiser = built[messages], optimisers[messages]
                loss = detection_loss(detector(graph).logits, graph, "last", "soft-ser", 0.1)
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(detector.parameters(), 1.0)
                optimiser.step()

            times = best_times({messages: (lambda m=messages: step(m)) for messages in built}, repeat=repeat)
            for messages, seconds in times.items():
                expected[messages] += weight * seconds
        report(f"{name} training Nr {nr}, Nt {nts}, batch 128", 1, expected, "steps/s")


def report(what: str, size: int, times: dict[str, float], unit: str) -> None:
    rates = {messages: size / seconds for messages, seconds in times.items()}
    print(f"{what:<48} graph {rates['graph']:9,.1f}  dense {rates['dense']:9,.1f} {unit:<12} "
          f"dense/graph {rates['dense'] / rates['graph']:5.2f}×", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--massive-batch", type=int, default=256)
    parser.add_argument("--shipped-batch", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-massive", action="store_true", help="leave out 64×32 (the slow part)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the command line does; ours and the peers alike
    torch.set_flush_denormal(True)            # as the CLI does (docs/training.md §6)
    print(f"{torch.get_num_threads()} thread(s), 16-QAM, best of {args.repeat} alternating calls\n")
    if not args.skip_massive:
        inference(64, 32, args.massive_batch, args.repeat)
    for nr in (8, 16):
        inference(nr, 8, args.shipped_batch, args.repeat)
    training(args.repeat)


if __name__ == "__main__":
    main()
