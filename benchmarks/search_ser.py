"""Symbol error rates of the classical detectors on the same samples.

Prints, for 8×4 16-QAM at 14 dB and 8×8 16-QAM at 20 dB (i.i.d. Rayleigh,
design-notes SNR), the SER of every classical detector with its error count
and a 95 % Wilson interval, all on one set of instances per point, plus the
run time and, for ML, the sphere decoder's visited nodes.

Run: ``python benchmarks/search_ser.py [--instances 5000] [--instances-8x8 2000] [--sdr 200]``
(SDR runs on the first ``--sdr`` instances only: one SDP per instance).
"""
from __future__ import annotations

import argparse
import math
import time

import torch

import zoo
from gnnmimo.sampling import MIMOSampler
from gnnmimo.tree_search import sphere_decode, triangularize

DETECTORS = [("zf", {}), ("mmse", {}), ("zf-pic", {}), ("vblast", {}), ("ep", {}), ("kbest", {"k": 32}),
             ("kbest", {"k": 256}), ("ml", {}), ("sdr", {})]


def wilson(errors: int, total: int, z: float = 1.96) -> tuple[float, float]:
    p = errors / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), centre + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--instances-8x8", type=int, default=2000)
    parser.add_argument("--sdr", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    for (nr, nt, snr), size in zip([(8, 4, 14.0), (8, 8, 20.0)], (args.instances, args.instances_8x8)):
        sampler = MIMOSampler(nr=nr, nt=nt, qam=16, snr_db=snr)
        graph = sampler.sample(size, sampler.generator(args.seed))
        print(f"\n{nr}x{nt} 16-QAM {snr:g} dB, {size} instances ({size * nt} symbols), "
              "same samples for every detector")
        for name, options in DETECTORS:
            if name not in zoo.list():
                continue
            part = graph if name != "sdr" else graph.select(torch.arange(min(args.sdr, size)))
            label = part["user"].y
            detector = zoo.create(name, 16, **options)
            start = time.perf_counter()
            if name == "ml":  # the sphere decoder itself, to report its visited nodes too
                model = triangularize(graph.dense())
                result = sphere_decode(model, detector.qam)
                hard = graph.users_from_dense(model.symbol_indices(result.best, detector.qam))
                visited = result.visited.float()
            else:
                hard = detector.detect(part).hard
            seconds = time.perf_counter() - start
            errors, total = int((hard != label).sum()), label.numel()
            low, high = wilson(errors, total)
            spec = name + "".join(f":{key}={value}" for key, value in options.items())
            print(f"  {spec:<12} SER {errors / total:.5f}  ({errors:>5} / {total}, 95% CI "
                  f"[{low:.5f}, {high:.5f}])  {seconds:7.2f} s")
        print(f"  sphere decoder visited nodes: mean {visited.mean():.1f}, median {visited.median():.0f}, "
              f"99% {visited.quantile(0.99):.0f}, max {visited.max():.0f} (a full path is {2 * nt})")


if __name__ == "__main__":
    main()
