"""Data-parallel throughput on this machine: 2 ranks × 1 thread against 1 process × 2 threads
(and 1 process × 1 thread, the speed of one rank alone).

Measures, side by side in one run,

* training samples/s of a small RE-MIMO (d_model 64, 4 heads, 3 blocks; Nr 16, Nt 4…8, 16-QAM,
  global batch 128), the run's own loop (:class:`gnnmimo.train.Trainer`, DDP on the ranks);
* evaluation instances/s of that RE-MIMO (untrained: the work does not depend on the weights)
  and of EP, through :func:`gnnmimo.evaluation.evaluate` (sharded on the ranks), on a fixed
  number of batches (a symbol cap that no error target pre-empts);
* the communication of a training step: the gradient's size, the time of one gloo all-reduce of
  that many float32 (DDP's buckets, here one) and of one scalar all-reduce (the loop's stop
  consensus and loss mean: two per step), against the step's time;

and prints the communication an ``N``-GPU step would need for these bytes (docs/distributed.md).
Run: ``python benchmarks/distributed.py [--steps 20] [--repeats 2]``; it starts
``torchrun`` itself (``--worker`` is the part each rank runs).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

import zoo
from gnnmimo import distributed
from gnnmimo.evaluation import evaluate
from gnnmimo.registry import create
from gnnmimo.sampling import MIMOSampler
from gnnmimo.train import TrainConfig, Trainer

REMIMO = dict(nr=16, d_model=64, heads=4, blocks=3)
BATCH = 128
EVAL_BATCH, EVAL_BATCHES, NT = 256, 8, 8


def training(steps: int) -> dict:
    config = TrainConfig(detector="remimo", options=REMIMO, qam=16, nr=16, nt=(4, 8), snr=(8.0, 20.0),
                         steps=2, batch_size=BATCH, eval_every=10**6, val_size=8, schedule="constant", lr=1e-4)
    trainer = Trainer(config, lambda: create("remimo", 16, **REMIMO), progress=False, log=lambda message: None)
    trainer.run()  # warm-up
    config.steps += steps
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    return {"train_samples_per_s": steps * BATCH / seconds, "step_ms": 1e3 * seconds / steps,
            "parameters": sum(p.numel() for p in trainer.detector.parameters()), "detector": trainer.detector}


def evaluation(detector, name: str) -> float:
    """Instances/s of ``detector`` on ``EVAL_BATCHES`` batches of one point."""
    sampler = MIMOSampler(16, NT, 16)
    cap = EVAL_BATCHES * EVAL_BATCH * NT
    evaluate({name: detector}, sampler, [NT], [12.0], target_errors=10**9, max_symbols=EVAL_BATCH * NT,
             batch_size=EVAL_BATCH, progress=False)  # warm-up
    start = time.perf_counter()
    evaluate({name: detector}, sampler, [NT], [12.0], target_errors=10**9, max_symbols=cap,
             batch_size=EVAL_BATCH, progress=False)
    return EVAL_BATCHES * EVAL_BATCH / (time.perf_counter() - start)


def communication(parameters: int, repeats: int = 20) -> dict:
    """The time of one all-reduce of ``parameters`` float32 and of one scalar, on the active group."""
    def timed(tensor: torch.Tensor) -> float:
        for _ in range(3):
            dist.all_reduce(tensor)
        dist.barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            dist.all_reduce(tensor)
        return (time.perf_counter() - start) / repeats
    return {"gradient_all_reduce_ms": 1e3 * timed(torch.zeros(parameters)),
            "scalar_all_reduce_ms": 1e3 * timed(torch.zeros(1))}


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    distributed.init_from_env("cpu")
    report = {"ranks": distributed.world_size(), "threads": args.threads}
    found = training(args.steps)
    detector = found.pop("detector").eval()
    report.update(found)
    report["eval_remimo_instances_per_s"] = evaluation(detector, "remimo")
    report["eval_ep_instances_per_s"] = evaluation(zoo.create("ep", 16), "ep")
    if distributed.active():
        report.update(communication(report["parameters"]))
    if distributed.is_main():
        print(json.dumps(report))
    distributed.shutdown()


def best(reports: list[dict]) -> dict:
    """The fastest of each figure over repeated reports (times: the least; rates: the most)."""
    return {key: (min if key.endswith("_ms") else max)(r[key] for r in reports) for key in reports[0]}


def measure(command: list[str], env: dict) -> dict:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


#: (link, NCCL all-reduce bus bandwidth GB/s, latency of one collective µs): typical figures, not measured here
LINKS = (("NVLink/NVSwitch (H100, H200)", 300.0, 30.0), ("PCIe 4 x16", 20.0, 50.0))


def scaling(sizes: dict[str, int]) -> str:
    """The communication an N-GPU step needs for gradients of ``sizes`` (name → parameters): a ring
    all-reduce moves ``2(N − 1)/N`` of the gradient through each GPU's link, plus the latencies of
    the step's three collectives (DDP's buckets counted as one)."""
    lines = []
    for name, parameters in sizes.items():
        megabytes = 4 * parameters / 1e6
        lines.append(f"{name}: {parameters:,} parameters = {megabytes:.2f} MB of float32 gradient per step")
        for link, gigabytes_per_s, latency_us in LINKS:
            times = [2 * (n - 1) / n * megabytes / gigabytes_per_s + 3 * latency_us / 1e3 for n in (2, 4, 8)]
            lines.append(f"  {link}: " + ", ".join(f"N={n} ~{ms:.2f} ms" for n, ms in zip((2, 4, 8), times)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help="the part each rank runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each configuration")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    script = [str(Path(__file__).resolve()), "--worker", "--steps", str(args.steps)]
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    commands = {"alone": [sys.executable, *script, "--threads", "1"],
                "single": [sys.executable, *script, "--threads", "2"],
                "ranks": [torchrun, "--nproc-per-node", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                          "localhost:0", *script, "--threads", "1"]}
    # interleaved repeats, the best of each: other jobs' load comes and goes
    found = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            found[name].append(measure(command, env))
    alone, single, ranks = (best(found[name]) for name in commands)
    print(f"{'':32} {'1 x 1 thr':>10} {'1 x 2 thr':>10} {'2 ranks x 1':>12} {'2x1 / 1x2':>10} {'2x1 / 1x1':>10}")
    for key, label in (("train_samples_per_s", "RE-MIMO training samples/s"),
                       ("eval_remimo_instances_per_s", "RE-MIMO evaluation instances/s"),
                       ("eval_ep_instances_per_s", "EP evaluation instances/s")):
        print(f"{label:32} {alone[key]:10.0f} {single[key]:10.0f} {ranks[key]:12.0f} "
              f"{ranks[key] / single[key]:10.2f} {ranks[key] / alone[key]:10.2f}")
    print(f"training step: {alone['step_ms']:.1f} ms (1 x 1), {single['step_ms']:.1f} ms (1 x 2), "
          f"{ranks['step_ms']:.1f} ms (2 x 1); per step the ranks "
          f"all-reduce the gradient ({ranks['gradient_all_reduce_ms']:.2f} ms alone, gloo) and two scalars "
          f"({ranks['scalar_all_reduce_ms']:.3f} ms each): "
          f"{(ranks['gradient_all_reduce_ms'] + 2 * ranks['scalar_all_reduce_ms']) / ranks['step_ms']:.1%} of the step")
    paper = sum(p.numel() for p in create("remimo", 16, config="paper").parameters())
    print(scaling({"RE-MIMO small": ranks["parameters"], "RE-MIMO paper (Nr 64, d 512, 12 blocks)": paper}))


if __name__ == "__main__":
    main()
