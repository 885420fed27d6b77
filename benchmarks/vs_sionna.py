"""Throughput against Sionna 2.x on identical inputs, side by side in one run.

For each pair, the same ``(y, H, S = σ² I)`` (complex64) go to our detector
(as a :class:`~gnnmimo.graph.MIMOGraph` built beforehand from those tensors, a
fresh one for every timed call, so that nothing the detector memoises on a
batch carries over; building it is timed separately) and to Sionna's block;
the table gives instances/s of each and the ratio ours / Sionna (> 1: we are
faster):

* ZF, LMMSE and EP, 64×32 16-QAM, batch 4096 (EP: 10 iterations each), each
  in our default precision (float64 solves) and in Sionna's (``double=False``,
  float32 throughout);
* K-best (K = 32) at 8×4 16-QAM, with the share of equal decisions;
* exact ML at 8×4 16-QAM: our sphere decoder against Sionna's exhaustive
  search over all 16⁴ candidates, on a smaller batch because Sionna
  materialises every candidate;
* then instances/s of every registered detector at 64×32 16-QAM on
  ``--table-batch`` instances, one timed call each after a warm-up (ML and
  SDR are skipped there: exponential / one SDP per instance), and SDR at
  8×4 16-QAM on a few instances.

Each figure is the best of ``--repeat`` timed calls after one warm-up, ours and
Sionna's calls alternating (:func:`gnnmimo.timing.best_times`) and timed by this
process's CPU clock, so that other load on a shared machine hits both alike; the
calls (not the inputs) run under ``torch.inference_mode``. Run:
``python benchmarks/vs_sionna.py [--batch 4096] [--snr 14] [--repeat 3] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import math
import time

import torch

import zoo
from gnnmimo.allocator import keep_freed_memory
from gnnmimo.graph import MIMOGraph
from gnnmimo.sampling import MIMOSampler
from gnnmimo.timing import best_time as _best_time, best_times


def best_time(fn, repeat: int) -> float:
    """:func:`gnnmimo.timing.best_time` of ``fn`` run under ``torch.inference_mode``."""
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
        "zf": lambda: mimo.LinearDetector("zf", "symbol", "app", **options),
        "mmse": lambda: mimo.LinearDetector("lmmse", "symbol", "app", **options),
        "ep": lambda: mimo.EPDetector("symbol", int(math.log2(qam)), l=10, precision="single"),
        "kbest": lambda: mimo.KBestDetector("symbol", nt, k, hard_out=True, **options),
        "ml": lambda: mimo.MaximumLikelihoodDetector("symbol", "maxlog", nt, hard_out=True, **options),
    }


#: the side-by-side cases: (case, our detector, its option sets keyed by label, Nr, Nt)
CASES = [
    ("ZF 64x32 16-QAM", "zf", {"float64 solves": {}, "float32": {"double": False}}, 64, 32),
    ("LMMSE 64x32 16-QAM", "mmse", {"float64 solves": {}, "float32": {"double": False}}, 64, 32),
    ("EP 64x32 16-QAM", "ep", {"float64": {}, "float32": {"double": False}}, 64, 32),
    ("K-best 8x4 16-QAM", "kbest", {"": {}}, 8, 4),
    ("ML 8x4 16-QAM", "ml", {"": {}}, 8, 4),
]


def measure(batch: int = 4096, repeat: int = 3, *, ml_batch: int = 128, k: int = 32, snr_db: float = 14.0,
            verbose: bool = True) -> list[dict]:
    """Every case of :data:`CASES`, ours and Sionna's calls alternating; one dict per variant of ours:
    ``case``, ``variant``, ``batch``, ``seconds`` (ours), ``peer_seconds`` (Sionna's), and for
    K-best and ML ``agreement``, the share of equal symbol decisions."""
    rows = []
    for case, name, variants, nr, nt in CASES:
        if name not in zoo.list():
            print(f"{case:<34} skipped: '{name}' is not registered")
            continue
        size = ml_batch if name == "ml" else batch
        graph, sionna_inputs = inputs(nr, nt, 16, size, 20.0 if nt == 32 else snr_db)
        y, H, _ = sionna_inputs
        theirs = sionna_blocks(16, nt, k)[name]()
        functions = {"sionna": lambda: theirs(*sionna_inputs)}
        detectors = {label: zoo.create(name, 16, **({"k": k} if name == "kbest" else {}), **options)
                     for label, options in variants.items()}
        with torch.inference_mode():  # the batches too: what a detector memoises on them is keyed by the mode
            graphs = {label: [MIMOGraph.from_dense(y, H, graph.noise_var, qam=16) for _ in range(repeat + 1)]
                      for label in variants}
            for label, detector in detectors.items():
                functions[label] = lambda d=detector, g=graphs[label]: d(g.pop())
            seconds = best_times(functions, repeat, clock=time.process_time)
            agreement = None
            if name in ("kbest", "ml"):
                ours = next(iter(detectors.values()))(graph).hard
                agreement = (ours == theirs(*sionna_inputs).reshape(-1).long()).double().mean().item()
        for label in variants:
            row = {"case": case, "variant": label, "batch": size, "seconds": seconds[label],
                   "peer_seconds": seconds["sionna"], "agreement": agreement}
            rows.append(row)
            if verbose:
                print_row(row)
    return rows


def print_row(row: dict) -> None:
    label = f"{row['case']} {row['variant']}".strip() + f" (B={row['batch']})"
    ours, theirs = row["batch"] / row["seconds"], row["batch"] / row["peer_seconds"]
    agreement = "" if row["agreement"] is None else f"   {100 * row['agreement']:.2f} % equal decisions"
    print(f"{label:<46} {ours:>12,.0f} {theirs:>12,.0f} {row['peer_seconds'] / row['seconds']:>7.2f}x{agreement}",
          flush=True)


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
    keep_freed_memory()  # as the command line does; ours and the peers alike
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; instances/s, best of "
          f"{args.repeat} after a warm-up")
    print(f"\n{'detector':<46} {'gnnmimo':>12} {'sionna':>12} {'ratio':>8}")
    measure(args.batch, args.repeat, ml_batch=args.ml_batch, k=args.k, snr_db=args.snr)

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
