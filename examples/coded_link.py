"""Coded block error rate behind 5G LDPC on a 3GPP UMi channel: classical, sampling and learned detectors.

Nr 16 base-station antennas, Nt 4 single-antenna users, 16-QAM, LDPC (k, n) = (512, 1024) from
Sionna (one code block over 256 resource elements of one user, :mod:`gnnmimo.link`), on UMi drops
from Sionna's TR 38.901 model cut into per-resource-element instances (:mod:`gnnmimo.tr38901`):
LMMSE, EP, K-best, the annealed Langevin detector and the zoo's i.i.d.-trained AMP-GNN (the
UMi-trained ``oampnet-nr16-nt4-qam16-umi`` is not better than its i.i.d. twin: its card), all on
the same instances. The detectors see Sionna's LMMSE channel estimate from pilots
(``--estimation lmmse``, the default; ``ls`` for the LS estimate, ``none`` for perfect CSI), and
LMMSE, EP and K-best fold the estimator's error variance into their noise (docs/conventions.md §2.4).

Run: ``python examples/coded_link.py [--quick] [--out results/coded_link]``; it writes
``coded_link.json``, ``coded_link.md`` and ``coded_link.png`` (BLER vs Eb/N0). ``--quick`` (the
test-suite runs it) takes two Eb/N0 points and a few blocks each, so its curves say little.
"""
import argparse
from pathlib import Path

import torch

import zoo
from gnnmimo.evaluation import evaluate
from gnnmimo.link import LDPC5GCode
from gnnmimo.report import coded_table, plot_bler, save_json
from gnnmimo.sampling import MIMOSampler
from gnnmimo.tr38901 import TR38901Channel

NR, NT, QAM = 16, 4, 16
CODE = LDPC5GCode(k=512, n=1024)


def detectors(quick: bool) -> dict:
    langevin = dict(steps=5, trajectories=8) if quick else dict(steps=10)   # 200 steps: ML-like at 8×4
    return {"mmse": zoo.create("mmse", QAM), "ep": zoo.create("ep", QAM), "kbest": zoo.create("kbest", QAM),
            "langevin": zoo.create("langevin", QAM, seed=0, **langevin),
            "ampgnn": zoo.load("ampgnn-nr16-nt4-8-qam16").eval()}


def main(argv: list[str] | None = None) -> list:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two points, a few blocks each (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("results/coded_link"))
    parser.add_argument("--estimation", choices=["lmmse", "ls", "none"], default="lmmse")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    channel = TR38901Channel("umi", estimation=None if args.estimation == "none" else args.estimation)
    sampler = MIMOSampler(NR, NT, QAM, channel=channel)
    ebno_db = [-8.0, -6.0] if args.quick else [-7.0, -6.0, -5.0, -4.0, -3.0, -2.0]
    budget = dict(target_block_errors=2, max_symbols=3 * 256 * NT) if args.quick else \
        dict(target_block_errors=50, max_symbols=100 * 256 * NT)
    results = evaluate(detectors(args.quick), sampler, [NT], ebno_db, target_errors=10 ** 12, batch_size=1344,
                       seed=args.seed, code=CODE, ebno=True, progress=not args.quick, **budget)
    args.out.mkdir(parents=True, exist_ok=True)
    save_json(results, args.out / "coded_link.json")
    table = coded_table(results)
    (args.out / "coded_link.md").write_text(table)
    plot_bler(results, args.out / "coded_link.png")
    print(table)
    return results


if __name__ == "__main__":
    main()
