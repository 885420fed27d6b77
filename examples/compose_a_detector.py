"""Compose detectors from blocks, prove their symmetries, train one, compare them.

The detectors are in ``examples/my_detectors.py``, a plugin module: a damped AMP (classical) and
``my-hybrid``, EP whose tilted posterior comes from a small MRF GNN (learned). This script

1. checks both on a mixed 8×(2…8) batch: permutation equivariance, batch independence;
2. trains ``my-hybrid`` briefly through the Python API (:class:`gnnmimo.train.Trainer`);
3. trains it again through the command line, ``gnnmimo --plugin my_detectors train …``, and
   evaluates the checkpoint with ``gnnmimo evaluate`` (paired with EP);
4. evaluates everything side by side in Python.

Run: ``python examples/compose_a_detector.py [--quick] [--out-dir DIR]`` (``--quick``: a few
training steps and small evaluations, well under a minute; outputs go to ``DIR``, default
``example-output/``).
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch

import zoo
from gnnmimo.evaluation import evaluate
from gnnmimo.report import markdown_table
from gnnmimo.sampling import MIMOSampler
from gnnmimo.testing import assert_batch_independent, assert_permutation_equivariant
from gnnmimo.train import TrainConfig, Trainer
from my_detectors import DampedAMP, MyHybrid   # the plugin module, beside this script

HERE = Path(__file__).resolve().parent


def gnnmimo_cli(*args: str) -> None:
    """Run ``gnnmimo ARGS`` in a fresh process that finds the plugin module through PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "gnnmimo", *args], check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few steps and small evaluations (CI)")
    parser.add_argument("--out-dir", default="example-output", help="where checkpoints and results go")
    args = parser.parse_args()
    out = Path(args.out_dir)
    steps, max_symbols = (10, 4_000) if args.quick else (600, 100_000)
    torch.set_num_threads(1)

    # 1. symmetries: a detector that looked at the user index or mixed instances would fail here
    sampler = MIMOSampler(nr=8, nt=(2, 8), qam=16, snr_db=(10.0, 25.0))
    graph = sampler.sample(64, sampler.generator(0))
    for detector in (DampedAMP(16), MyHybrid(16)):
        assert_permutation_equivariant(detector, graph)   # raises with a diagnosis if not
        assert_batch_independent(detector, graph)
    print("DampedAMP and MyHybrid are permutation equivariant and batch independent on 8×(2..8)\n")

    # 2. training through the API: the config records what is trained; the trainer gets the detector
    config = TrainConfig(detector="my-hybrid", options={"width": 16}, qam=16, nr=8, nt=(4, 8), snr=(12.0, 25.0),
                         steps=steps, batch_size=64, lr=3e-3, eval_every=max(steps // 2, 1), val_size=100)
    trainer = Trainer(config, lambda: MyHybrid(16, width=16), out=out / "my-hybrid-api.pt", progress=False,
                      overwrite=True)
    trainer.run()
    print(f"API: trained my-hybrid for {trainer.step} steps; validation loss {trainer.history[-1]['val_loss']:.4f}\n")

    # 3. the same through the command line: --plugin imports my_detectors, which registers my-hybrid
    gnnmimo_cli("--plugin", "my_detectors", "train", "--detector", "my-hybrid:width=16", "--nr", "8", "--nt", "4:8",
                "--qam", "16", "--snr", "12:25", "--steps", str(steps), "--batch-size", "64", "--lr", "3e-3",
                "--eval-every", str(max(steps // 2, 1)), "--val-size", "100", "--threads", "1", "--no-progress",
                "--out", str(out / "my-hybrid-cli.pt"), "--overwrite")
    gnnmimo_cli("--plugin", "my_detectors", "evaluate", "--checkpoint", str(out / "my-hybrid-cli.pt"), "--detector", "ep",
                "--nr", "8", "--nt", "8", "--qam", "16", "--snr", "18,22", "--paired-with", "ep",
                "--target-errors", "100000", "--max-symbols", str(max_symbols), "--batch-size", "500",
                "--threads", "1", "--no-progress", "--json", str(out / "my-hybrid-cli.json"), "--overwrite")

    # 4. side by side in Python, on the same samples (the trained hybrid, reloaded from its checkpoint)
    detectors = {"mmse": zoo.create("mmse", 16), "amp": zoo.create("amp", 16), "damped-amp": DampedAMP(16),
                 "ep": zoo.create("ep", 16), "my-hybrid": zoo.load(out / "my-hybrid-api.pt").eval()}
    results = evaluate(detectors, sampler, nts=[4, 8], snrs_db=[14.0, 20.0], target_errors=200,
                       max_symbols=max_symbols, batch_size=500, progress=False)
    print(markdown_table(results))


if __name__ == "__main__":
    main()
