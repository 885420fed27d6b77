"""Learned detectors side by side: training and inference throughput in one run.

For every learned detector of the zoo (default sizes; RE-MIMO small, DetNet for
the fixed Nt) on the same batches, Nr = 16, Nt = 8, 16-QAM: training
samples/s (forward, the detector's own loss or eq. 13, backward, Adam step;
batch 128, the GEPNet batch) and inference samples/s (batch 1000), with the
ratio of each to EP's inference throughput (a classical reference).

Run: ``python benchmarks/learned.py [--threads N] [--nr 16] [--nt 8]``.
"""
from __future__ import annotations

import argparse

import torch

import zoo
from gnnmimo.sampling import MIMOSampler
from gnnmimo.losses import training_loss
from gnnmimo.timing import best_time

LEARNED = ("gnn", "epgnn", "ampgnn", "oampnet", "oampnet2", "mmnet", "detnet", "ep-transformer", "oamp-gnn",
           "remimo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nr", type=int, default=16)
    parser.add_argument("--nt", type=int, default=8)
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--infer-batch", type=int, default=1000)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sampler = MIMOSampler(args.nr, args.nt, 16, snr_db=(10.0, 20.0))
    train_graph = sampler.sample(args.train_batch, sampler.generator(0))
    infer_graph = sampler.sample(args.infer_batch, sampler.generator(1))
    options = {"remimo": dict(nr=args.nr, d_model=128, heads=4, blocks=6), "detnet": dict(nr=args.nr, nt=args.nt)}
    with torch.inference_mode():
        reference = best_time(lambda d=zoo.create("ep", 16): d(infer_graph))
    print(f"Nr={args.nr}, Nt={args.nt}, 16-QAM, {torch.get_num_threads()} threads; EP inference "
          f"{args.infer_batch / reference:,.0f} samples/s\n")
    print(f"{'detector':<16}{'parameters':>11}{'train samples/s':>17}{'infer samples/s':>17}{'infer vs EP':>13}")
    for name in LEARNED:
        torch.manual_seed(0)
        detector = zoo.create(name, 16, **options.get(name, {}))
        optimizer = torch.optim.Adam(detector.parameters(), lr=1e-4)

        def train_step():
            loss = training_loss(detector, train_graph)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        train = best_time(train_step, repeat=2)
        with torch.inference_mode():
            infer = best_time(lambda: detector(infer_graph), repeat=2)
        size = sum(p.numel() for p in detector.parameters())
        print(f"{name:<16}{size:>11,}{args.train_batch / train:>17,.0f}{args.infer_batch / infer:>17,.0f}"
              f"{reference / infer:>12.2f}×")


if __name__ == "__main__":
    main()
