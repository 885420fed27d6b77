"""Evaluate detectors on your own tensors: channels drawn by Sionna, then the same data from a file.

The evaluator takes any iterable of :class:`MIMOGraph` batches, not only gnnmimo's sampler, with
the same stopping rules, intervals and paired tests. Here

1. Sionna draws 8×4 16-QAM Rayleigh channels, symbols and noise at three SNRs (its layout:
   ``y [..., Nr]``, ``h [..., Nr, Nt]``, a noise variance), wrapped by ``MIMOGraph.from_sionna``;
2. ``evaluate`` measures LMMSE, K-best and EP on them, every detector paired with EP;
3. the instances are written as an instances file (docs/instances.md) and evaluated again by
   ``gnnmimo evaluate --data`` (the same counts; the records carry the file content's SHA-256).

Run: ``python examples/evaluate_own_data.py [--quick] [--out-dir DIR]`` (needs the ``sionna``
extra; ``--quick``: fewer instances; outputs go to ``DIR``, default ``example-output/``).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from sionna.phy.channel import FlatFadingChannel
from sionna.phy.mapping import QAMSource

import zoo
from gnnmimo.evaluation import evaluate
from gnnmimo.graph import MIMOGraph
from gnnmimo.instances import InstanceSet
from gnnmimo.report import markdown_table, paired_table

NR, NT, QAM = 8, 4, 16


def sionna_batch(snr_db: float, instances: int) -> MIMOGraph:
    """``instances`` channel uses drawn by Sionna at ``snr_db``, as one graph batch.

    Sionna's flat-fading channel has ``H`` entries ``CN(0, 1)``, so the SNR ``E‖Hx‖²/E‖n‖²`` of
    docs/conventions.md gives ``σ² = Nt / 10^(SNR/10)`` (gnnmimo's own ``CN(0, 1/Nr)`` channels
    give ``Nt / (Nr·10^(SNR/10))``; only the ratio matters to a detector)."""
    symbols, labels = QAMSource(4, return_indices=True)([instances, NT])   # 4 bits: 16-QAM, TS 38.211
    noise_var = NT / 10 ** (snr_db / 10)
    y, h = FlatFadingChannel(NT, NR, return_channel=True)(symbols, noise_var)
    return MIMOGraph.from_sionna(y, h, torch.tensor(noise_var), label=labels.long(),
                                 snr_db=torch.full((instances,), snr_db), qam=QAM)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer instances (CI)")
    parser.add_argument("--out-dir", default="example-output", help="where the file and results go")
    args = parser.parse_args()
    out = Path(args.out_dir)
    torch.set_num_threads(1)
    torch.manual_seed(0)   # Sionna draws from torch's global generator
    per_snr = 400 if args.quick else 5000

    # 1. your own batches: any MIMOGraph with labels, snr_db and qam (grouped into (Nt, SNR) points)
    graphs = [sionna_batch(snr, per_snr) for snr in (10.0, 14.0, 18.0)]

    # 2. the evaluator on them: intervals per point, and each detector against EP on the same instances
    detectors = {"mmse": zoo.create("mmse", QAM), "kbest:k=16": zoo.create("kbest", QAM, k=16),
                 "ep": zoo.create("ep", QAM)}
    results = evaluate(detectors, graphs, target_errors=10**9, max_symbols=10**9, batch_size=1000,
                       reference="ep", progress=False)
    print(markdown_table(results))
    print(paired_table(results))

    # 3. the same instances as a file, evaluated by the command line
    data = out / "sionna-8x4.pt"
    InstanceSet.from_graphs(graphs, channel="sionna-rayleigh").save(data)
    subprocess.run([sys.executable, "-m", "gnnmimo", "evaluate", "--data", str(data), "--detector", "mmse",
                    "--detector", "ep", "--paired-with", "ep", "--target-errors", "1000000000",
                    "--max-symbols", "1000000000", "--batch-size", "1000", "--threads", "1", "--no-progress",
                    "--json", str(out / "sionna-8x4.json"), "--plot", str(out / "sionna-8x4.png"), "--overwrite"],
                   check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    from_file = {(r["detector"], r["snr_db"]): r["symbol_errors"] for r in json.loads((out / "sionna-8x4.json").read_text())}
    in_memory = {(r.detector, r.snr_db): r.symbol_errors for r in results if r.detector in ("mmse", "ep")}
    assert from_file == in_memory, (from_file, in_memory)
    print(f"gnnmimo evaluate --data {data}: the same error counts; plot in {out / 'sionna-8x4.png'}")


if __name__ == "__main__":
    main()
