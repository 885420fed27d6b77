"""Throughput against Sionna 2.x on identical inputs, side by side in one run.

For each pair, the same ``(y, H, S = σ² I)`` (complex64) go to our detector
(as a :class:`~gnnmimo.graph.MIMOGraph` built beforehand; building it is timed
separately) and to Sionna's block; the table gives instances/s of each and
the ratio ours / Sionna (> 1: we are faster):

* LMMSE and EP, 64×32 16-QAM, batch 4096 (EP: ``zoo.create("ep", 16)`` vs
  ``EPDetector``, 10 iterations each; skipped if ``ep`` is not registered);
* K-best (K = 32) and exact ML, 8×4 16-QAM (ML: our sphere decoder vs
  Sionna's exhaustive search over all 16⁴ candidates, on a smaller batch
  because Sionna materialises every candidate);
* then instances/s of every registered detector at 64×32 16-QAM on
  ``--table-batch`` instances, one timed call each after a warm-up (ML and
  SDR are skipped there: exponential / one SDP per instance), and SDR at
  8×4 16-QAM on a few instances.

Each figure is the best of ``--repeat`` timed calls after one warm-up call,
the calls (not the inputs) under ``torch.inference_mode``. Run:
``python benchmarks/vs_sionna.py [--batch 4096] [--snr 14] [--repeat 3] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import math
import time

import torch

import zoo
from gnnmimo.graph import MIMOGraph
from gnnmimo.sampling import MIMOSampler
from timing import best_time as _best_time


def best_time(fn, repeat: int) -> float:
    """:func:`timing.best_time` of ``fn`` run under ``torch.inference_mode``."""
    def run():
        with torch.inference_mode():
            fn()
    return _best_time(run, repeat)


#: options some detectors need at 64x32 (RE-MIMO's input width is 2·Nr)
PER_DETECTOR_OPTIONS = {"remimo": {"nr": 64}, "detnet": {"nr": 64, "nt": 32}}


def inputs(nr: int, nt: int, qam: int, batch: int, snr_db: float, seed: int = 0):
    """A graph batch and the same instances in Sionna's layout ``(y, h, s)``."""
    sampler = MIMOSampler(nr=nr, nt=nt, qam=qam, snr_db=snr_db)
    graph = sampler.sample(batch, sampler.generator(seed))
    view = graph.dense()
    s = view.noise_var[:, None, None] * torch.eye(nr, dtype=view.H.dtype)
    return graph, (view.y, view.H, s)


def sionna_blocks(qam: int, nt: int, k: int) -> dict:
    """Sionna detectors taking symbol decisions, keyed by our registry names."""
    from sionna.phy import mimo
    options = dict(constellation_type="qam", num_bits_per_symbol=int(math.log2(qam)), precision="single")
    return {
        "mmse": lambda: mimo.LinearDetector("lmmse", "symbol", "app", **options),
        "ep": lambda: mimo.EPDetector("symbol", int(math.log2(qam)), l=10, precision="single"),
        "kbest": lambda: mimo.KBestDetector("symbol", nt, k, hard_out=True, **options),
        "ml": lambda: mimo.MaximumLikelihoodDetector("symbol", "maxlog", nt, hard_out=True, **options),
    }


def row(label: str, batch: int, ours: float, theirs: float | None) -> None:
    rate = batch / ours
    if theirs is None:
        print(f"{label:<34} {rate:>12,.0f} {'-':>12} {'-':>8}")
    else:
        print(f"{label:<34} {rate:>12,.0f} {batch / theirs:>12,.0f} {theirs / ours:>7.2f}x")


def compare(name: str, label: str, nr: int, nt: int, batch: int, snr: float, repeat: int,
            sionna_k: int, **options) -> None:
    if name not in zoo.list():
        print(f"{label:<34} skipped: '{name}' is not registered")
        return
    graph, sionna_inputs = inputs(nr, nt, 16, batch, snr)
    ours = zoo.create(name, 16, **options)
    theirs = sionna_blocks(16, nt, sionna_k)[name]()
    try:
        ours_time = best_time(lambda: ours(graph), repeat)
    except Exception as error:  # report and go on with the other rows
        print(f"{label:<34} failed: {type(error).__name__}: {error}")
        return
    theirs_time = best_time(lambda: theirs(*sionna_inputs), repeat)
    row(f"{label} (B={batch})", batch, ours_time, theirs_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--ml-batch", type=int, default=128)
    parser.add_argument("--table-batch", type=int, default=1024, help="batch of the per-detector table")
    parser.add_argument("--snr", type=float, default=14.0, help="SNR in dB of the 8x4 cases")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (on a busy shared machine, 1 avoids OpenMP oversubscription)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; instances/s, best of "
          f"{args.repeat} after a warm-up")
    # inputs are built outside inference mode, the timed calls run inside it (best_time)
    print(f"\n{'detector':<34} {'gnnmimo':>12} {'sionna':>12} {'ratio':>8}")
    compare("mmse", "LMMSE 64x32 16-QAM", 64, 32, args.batch, 20.0, args.repeat, args.k)
    compare("ep", "EP 64x32 16-QAM", 64, 32, args.batch, 20.0, args.repeat, args.k)
    compare("kbest", f"K-best K={args.k} 8x4 16-QAM", 8, 4, args.batch, args.snr, args.repeat, args.k,
            k=args.k)
    compare("ml", f"ML 8x4 16-QAM {args.snr:g} dB", 8, 4, args.ml_batch, args.snr, args.repeat, args.k)

    graph, (y, H, _) = inputs(64, 32, 16, args.batch, 20.0)
    build = best_time(lambda: MIMOGraph.from_dense(y, H, graph.noise_var, qam=16), args.repeat)
    print(f"\nbuilding the 64x32 graph batch (from_dense): {args.batch / build:,.0f} instances/s "
          "(not included above)")
    table = graph.select(torch.arange(args.table_batch))
    print(f"\nevery registered detector, 64x32 16-QAM 20 dB, B={args.table_batch}, one timed call")
    for name in zoo.list():
        if name in ("ml", "sdr"):
            continue
        try:
            detector = zoo.create(name, 16, **PER_DETECTOR_OPTIONS.get(name, {}))
            seconds = best_time(lambda: detector(table), 1)
        except Exception as error:  # e.g. a learned detector needing another configuration
            print(f"  {name:<10} failed: {type(error).__name__}: {error}")
            continue
        print(f"  {name:<10} {args.table_batch / seconds:>12,.0f} instances/s")
    if "sdr" in zoo.list():
        small, _ = inputs(8, 4, 16, 20, args.snr)
        try:
            detector = zoo.create("sdr", 16)
        except ImportError as error:
            print(f"  sdr        skipped: {error}")
        else:
            detector(small.select(torch.tensor([0])))       # builds the parametrised problem
            start = time.perf_counter()
            detector(small)
            print(f"  sdr        {20 / (time.perf_counter() - start):>12,.1f} instances/s "
                  "(8x4 16-QAM, one SDP per instance, 20 instances)")


if __name__ == "__main__":
    main()
