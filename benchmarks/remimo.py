"""RE-MIMO throughput: training and inference, small and paper configurations.

Prints, side by side in one run:

1. the small configuration (default: Nr = 16, Nt = 8, 4-QAM, d_s = 128,
   4 heads, 6 blocks): training samples/s (forward + eq. 13 loss + backward
   + Adam, batch 256) and inference samples/s (batch 1000), with the dense
   attention fast path and the ``MessagePassing`` path (and their ratio);
2. the paper configuration (Nr = 64, d_s = 512, 8 heads, 12 blocks,
   16-QAM): inference on a batch of 1000 instances with Nt = 32;
3. the paper configuration's per-sample inference cost against Nt = 8 … 32
   (the paper, Fig. 13, expects roughly linear growth: the ``Nr² Nt`` term
   dominates at these sizes).

Run: ``python benchmarks/remimo.py [--threads N] [--paper-batch 1000]
[--sweep-batch 100] [--skip-paper]``. The paper-configuration runs take
several minutes on two CPU cores.
"""
from __future__ import annotations

import argparse

import torch

import zoo
from gnnmimo.sampling import MIMOSampler
from gnnmimo.losses import detection_loss
from gnnmimo.timing import best_time


def batch(nr: int, nt: int, qam: int, size: int, seed: int = 0):
    sampler = MIMOSampler(nr, nt, qam, snr_db=(5.0, 15.0))
    return sampler.sample(size, sampler.generator(seed))


def small_config(args) -> None:
    options = dict(nr=args.nr, d_model=args.d_model, heads=args.heads, blocks=args.blocks)
    print(f"small: Nr={args.nr}, Nt={args.nt}, {args.qam}-QAM, d_s={args.d_model}, "
          f"{args.heads} heads, {args.blocks} blocks")
    train_graph = batch(args.nr, args.nt, args.qam, args.train_batch)
    infer_graph = batch(args.nr, args.nt, args.qam, args.infer_batch, seed=1)
    results = {}
    for attention in ("dense", "graph"):
        torch.manual_seed(0)
        detector = zoo.create("remimo", args.qam, attention=attention, **options)
        optimizer = torch.optim.Adam(detector.parameters(), lr=1e-4)

        def train_step():
            loss = detection_loss(detector(train_graph).logits, train_graph)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        train = best_time(train_step)
        with torch.inference_mode():
            infer = best_time(lambda: detector(infer_graph))
        results[attention] = (train, infer)
        print(f"  {attention:5s} attention: training {args.train_batch / train:9,.0f} samples/s "
              f"({train * 1e3:7.1f} ms/step of {args.train_batch}) | inference "
              f"{args.infer_batch / infer:9,.0f} samples/s")
    (dense_train, dense_infer), (graph_train, graph_infer) = results["dense"], results["graph"]
    print(f"  ratio graph/dense time: training {graph_train / dense_train:.2f} x, "
          f"inference {graph_infer / dense_infer:.2f} x\n")


def paper_config(args) -> None:
    torch.manual_seed(0)
    detector = zoo.create("remimo", 16, config="paper").eval()
    params = sum(p.numel() for p in detector.parameters())
    print(f"paper: Nr=64, 16-QAM, d_s=512, 8 heads, 12 blocks ({params / 1e6:.1f} M parameters)")
    with torch.inference_mode():
        graph = batch(64, 32, 16, args.paper_batch)
        seconds = best_time(lambda: detector(graph), repeat=1, warmup=0)
        print(f"  inference, batch {args.paper_batch}, Nt=32: {seconds:.2f} s, "
              f"{args.paper_batch / seconds:,.0f} samples/s, {seconds / args.paper_batch * 1e3:.2f} ms/sample")
        print(f"  per-sample cost vs Nt (batch {args.sweep_batch}):")
        base = None
        for nt in (8, 16, 24, 32):
            graph = batch(64, nt, 16, args.sweep_batch, seed=nt)
            per_sample = best_time(lambda: detector(graph), repeat=1, warmup=0) / args.sweep_batch
            base = base or per_sample
            print(f"    Nt={nt:2d}: {per_sample * 1e3:7.2f} ms/sample  ({per_sample / base:.2f} x Nt=8)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--nr", type=int, default=16)
    parser.add_argument("--nt", type=int, default=8)
    parser.add_argument("--qam", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--train-batch", type=int, default=256)
    parser.add_argument("--infer-batch", type=int, default=1000)
    parser.add_argument("--paper-batch", type=int, default=1000)
    parser.add_argument("--sweep-batch", type=int, default=100)
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    small_config(args)
    if not args.skip_paper:
        paper_config(args)


if __name__ == "__main__":
    main()
