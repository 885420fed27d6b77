"""The speed harness: instances/s of the detectors against their peers, measured side by side in one run.

Sections (``--sections``, default all):

* ``peak``: the machine's matrix-product rate, fp32 and bf16, at RE-MIMO's largest layer shape
  (tokens × d_φ × d_φ); the fractions of peak below are against these figures, measured in the
  same run.
* ``remimo``: RE-MIMO in the paper's configuration (Nr 64, 16-QAM, d_s 512, 8 heads, 12 blocks),
  inference and a training step (forward, eq. 13 over all blocks, backward, Adam) at Nt 32 and 16,
  against the authors' official code (``--official-remimo PATH`` to its
  ``iid_channels/qam_16/re-mimo/`` directory of the public krpratik/RE-MIMO repository; the
  harness copies its files to a temporary directory and replaces ``np.int`` / ``np.float``, which
  NumPy removed). Both get inputs of the same shapes from their own samplers; neither has
  data-dependent control flow. FLOPs are counted with ``torch.utils.flop_counter``.
* ``sweep``: the paper configuration's per-instance inference time against Nt (8 … 32) with a
  least-squares line (the paper's Fig. 13).
* ``small``: training throughput of a smaller Nr 64 RE-MIMO (d_s 256, 8 blocks, gradient input).
* ``compile``: eager against ``Detector.compile()`` (``torch.compile``, dynamic shapes) on mixed-Nt
  batches, with the one-off compile time.
* ``classical``: LMMSE, ZF, EP, K-best and the sphere decoder against Sionna 2.x
  (:mod:`vs_sionna`), on identical inputs.

Precisions: ``--precisions fp32,bf16`` (default fp32, plus bf16 where it has fast kernels: CUDA, or
a CPU with AVX-512 BF16 / AMX). Each figure is the best of ``--repeat`` timed calls after a warm-up.
Writes ``--json`` and ``--markdown`` (default ``results/speed.json`` / ``.md``).

Run: ``python benchmarks/speed.py --threads 1 [--official-remimo PATH] [--sections remimo,sweep]``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import zoo
from gnnmimo.allocator import keep_freed_memory
from gnnmimo.losses import detection_loss
from gnnmimo.precision import autocast, cpu_has_fast_bf16
from gnnmimo.sampling import MIMOSampler
from gnnmimo.timing import best_time, linear_fit, seconds_per_instance

SECTIONS = ("peak", "remimo", "sweep", "small", "compile", "classical")
#: the user counts of the sweep (the paper's Fig. 13 range at Nr 64)
SWEEP_NTS = (8, 12, 16, 20, 24, 28, 32)


@dataclass
class Row:
    """One measured case: ``rate`` instances/s of ``implementation``; ``peer_rate`` the peer's,
    ``ratio`` ours / peer; ``tflops``: achieved rate, ``peak_fraction`` against the measured peak."""

    section: str
    case: str
    implementation: str
    precision: str
    batch: int
    seconds: float
    rate: float
    peer: str | None = None
    peer_rate: float | None = None
    ratio: float | None = None
    gflops: float | None = None
    peak_fraction: float | None = None


class Harness:
    def __init__(self, args):
        self.args, self.rows, self.peak = args, [], {}
        self.device = torch.device(args.device)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        peer = f" | {row.peer}: {row.peer_rate:,.1f}/s, ratio {row.ratio:.2f}x" if row.peer else ""
        flops = (f" | {row.gflops:,.0f} GFLOP/s, {100 * row.peak_fraction:.0f} % of peak"
                 if row.peak_fraction is not None else "")
        print(f"  {row.case:<42} {row.implementation:<10} {row.precision:<5} {row.rate:>10,.1f}/s{peer}{flops}",
              flush=True)
        return row

    def time(self, fn, repeat: int | None = None) -> float:
        return best_time(fn, repeat or self.args.repeat)

    # ------------------------------------------------------------------ peak
    def section_peak(self) -> None:
        print("matrix-product peak (one GEMM of RE-MIMO's widest layer shape)")
        m, k = 6400, 784
        for precision in self.args.precisions:
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
            a = torch.randn(m, k, dtype=dtype, device=self.device)
            b = torch.randn(k, k, dtype=dtype, device=self.device)
            seconds = self.time(lambda: a @ b)
            self.peak[precision] = 2 * m * k * k / seconds
            self.add(Row("peak", f"GEMM {m}x{k}x{k}", "torch", precision, m, seconds, m / seconds,
                         gflops=self.peak[precision] / 1e9, peak_fraction=1.0))

    def _flop_fields(self, flops: float, seconds: float, precision: str) -> dict:
        rate = flops / seconds
        peak = self.peak.get(precision)
        return {"gflops": rate / 1e9, "peak_fraction": rate / peak if peak else None}

    # ---------------------------------------------------------------- remimo
    def paper_model(self):
        torch.manual_seed(0)
        return zoo.create("remimo", 16, config="paper").to(self.device)

    def batch(self, nt, size, nr=64, seed=0):
        sampler = MIMOSampler(nr, nt, 16, snr_db=(10.0, 15.0), device=self.device)
        return sampler.sample(size, sampler.generator(seed))

    def section_remimo(self) -> None:
        print(f"RE-MIMO paper configuration, batch {self.args.paper_batch}")
        ours = self.paper_model()
        official = load_official_remimo(self.args.official_remimo) if self.args.official_remimo else None
        for nt in (32, 16):
            graph = self.batch(nt, self.args.paper_batch)
            peer_inputs = official.inputs(nt, self.args.paper_batch) if official else None
            with FlopCounterMode(display=False) as counter, torch.inference_mode():
                ours.eval()(graph)
            inference_flops = counter.get_total_flops()
            for precision in self.args.precisions:
                ours.set_precision(precision)
                ours.eval()
                with torch.inference_mode():
                    mine = self.time(lambda: ours(graph), self.args.paper_repeat)
                    theirs = (self.time(lambda: official.infer(peer_inputs, precision, self.device),
                                        self.args.paper_repeat) if official else None)
                self._pair(f"inference Nt={nt}", precision, mine, theirs, inference_flops)
                optimizer = torch.optim.Adam(ours.parameters(), lr=1e-5)
                ours.train()

                def step():
                    loss = detection_loss(ours(graph).logits, graph)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

                mine = self.time(step, self.args.paper_repeat)
                theirs = (self.time(lambda: official.train_step(peer_inputs, precision, self.device),
                                    self.args.paper_repeat) if official else None)
                self._pair(f"training step Nt={nt}", precision, mine, theirs, 3 * inference_flops)
            ours.set_precision("fp32")

    def _pair(self, case, precision, mine, theirs, flops) -> None:
        batch = self.args.paper_batch
        peer = dict(peer="official", peer_rate=batch / theirs, ratio=theirs / mine) if theirs else {}
        self.add(Row("remimo", case, "gnnmimo", precision, batch, mine, batch / mine, **peer,
                     **self._flop_fields(flops, mine, precision)))

    def section_sweep(self) -> None:
        size = self.args.sweep_batch
        print(f"RE-MIMO paper configuration, per-instance inference time vs Nt (batch {size})")
        ours = self.paper_model().eval()
        graphs = {nt: self.batch(nt, size, seed=nt) for nt in SWEEP_NTS}
        for precision in self.args.precisions:
            ours.set_precision(precision)
            per_instance = seconds_per_instance(ours, graphs, self.args.paper_repeat)
            for nt, seconds in per_instance.items():
                self.add(Row("sweep", f"inference Nt={nt}", "gnnmimo", precision, size, seconds * size, 1 / seconds))
            fit = linear_fit(SWEEP_NTS, [per_instance[nt] * 1e3 for nt in SWEEP_NTS])
            print(f"    linear fit ({precision}): {fit.slope:.3f} ms per user + {fit.intercept:.3f} ms, "
                  f"R² = {fit.r2:.4f}")
            self.rows.append(Row("sweep", f"linear fit: {fit.slope:.4f} ms/user + {fit.intercept:.4f} ms "
                                 f"(R² {fit.r2:.4f})", "gnnmimo", precision, size, float("nan"), float("nan")))
        ours.set_precision("fp32")

    def section_small(self) -> None:
        size = self.args.small_batch
        print(f"small Nr 64 RE-MIMO (d_s 256, 8 blocks, gradient input), training, batch {size}, Nt 16..32")
        torch.manual_seed(0)
        detector = zoo.create("remimo", 16, nr=64, d_model=256, blocks=8, gradient=True).to(self.device).train()
        graph = MIMOSampler(64, (16, 32), 16, snr_db=(10.0, 15.0), device=self.device).sample(size)
        optimizer = torch.optim.Adam(detector.parameters(), lr=1e-4)
        for precision in self.args.precisions:
            detector.set_precision(precision)

            def step():
                loss = detection_loss(detector(graph).logits, graph)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            seconds = self.time(step)
            self.add(Row("small", "training step, mixed Nt 16..32", "gnnmimo", precision, size, seconds,
                         size / seconds))

    # --------------------------------------------------------------- compile
    def section_compile(self) -> None:
        print("torch.compile (dynamic shapes) against eager, mixed-Nt batches (second batch: other Nt mix)")
        cases = [("remimo", dict(nr=16), 16, (4, 8)), ("ep", {}, 16, (4, 8)), ("mmse", {}, 64, (16, 32)),
                 ("oampnet", {}, 16, (4, 8))]
        for name, options, nr, nts in cases:
            torch.manual_seed(0)
            detector = zoo.create(name, 16, **options).to(self.device).eval()
            sampler = MIMOSampler(nr, nts, 16, snr_db=(10.0, 15.0), device=self.device)
            first, second = (sampler.sample(self.args.compile_batch, sampler.generator(s)) for s in (0, 1))
            with torch.inference_mode():
                eager = self.time(lambda: detector(second))
                compiled = zoo.create(name, 16, **options).to(self.device).eval()
                compiled.load_state_dict(detector.state_dict())
                t0 = time.perf_counter()
                compiled.compile()
                compiled(first)
                compile_seconds = time.perf_counter() - t0
                fast = self.time(lambda: compiled(second))
            batch = self.args.compile_batch
            self.add(Row("compile", f"{name} {nr}x{nts[0]}-{nts[1]} (compile {compile_seconds:.0f} s)",
                         "compiled", "fp32", batch, fast, batch / fast, peer="eager", peer_rate=batch / eager,
                         ratio=eager / fast))

    # ------------------------------------------------------------- classical
    def section_classical(self) -> None:
        import vs_sionna
        print("classical detectors against Sionna (identical inputs)")
        for row in vs_sionna.measure(self.args.classical_batch, self.args.repeat, verbose=False):
            precision = "fp32" if row["variant"] == "float32" else ("fp64" if row["variant"] else "fp32")
            self.add(Row("classical", f"{row['case']} {row['variant']}".strip(), "gnnmimo", precision,
                         row["batch"], row["seconds"],
                         row["batch"] / row["seconds"], peer="sionna",
                         peer_rate=row["batch"] / row["peer_seconds"], ratio=row["peer_seconds"] / row["seconds"]))


class OfficialREMIMO:
    """The authors' RE-MIMO model (paper configuration), built from their code."""

    def __init__(self, modules: dict):
        self.generator = modules["sample_generator"].sample_generator(1, 16, 64)
        torch.manual_seed(0)
        g = self.generator
        self.model = modules["iterative_classifier"].iterative_classifier(
            512, 8, 2048, 12, 16, 64, 64, g.real_QAM_const, g.imag_QAM_const, g.constellation, "cpu", 0.0)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-5)

    def inputs(self, nt: int, batch: int):
        return self.generator.give_batch_data(nt, snr_db_min=10.0, snr_db_max=15.0, batch_size=batch)

    def infer(self, inputs, precision: str, device: torch.device):
        H, y, _, sigma = inputs
        self.model.eval()
        with autocast(precision, device):
            return self.model(H, y, sigma)

    def train_step(self, inputs, precision: str, device: torch.device) -> None:
        H, y, labels, sigma = inputs
        self.model.train()
        with autocast(precision, device):
            out = self.model(H, y, sigma)
        logits = torch.cat(out, dim=1).permute(1, 2, 0).float()          # the authors' loss_function
        loss = torch.nn.functional.cross_entropy(logits, labels.repeat(len(out), 1))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def load_official_remimo(path: str) -> OfficialREMIMO:
    """Import the official code from a patched temporary copy of ``path`` (module doc)."""
    source = Path(path)
    if not (source / "iterative_classifier.py").is_file():
        raise SystemExit(f"error: {source} has no iterative_classifier.py (expected the repository's "
                         "iid_channels/qam_16/re-mimo/ directory)")
    copy = Path(tempfile.mkdtemp(prefix="official-remimo-"))
    for file in source.glob("*.py"):
        text = file.read_text().replace("np.int(", "int(").replace("np.float(", "float(")
        (copy / file.name).write_text(text)
    sys.path.insert(0, str(copy))
    try:
        modules = {name: importlib.import_module(name) for name in ("sample_generator", "iterative_classifier")}
    finally:
        sys.path.remove(str(copy))
        shutil.rmtree(copy, ignore_errors=True)
    return OfficialREMIMO(modules)


def markdown(rows: list[Row]) -> str:
    lines = ["| section | case | implementation | precision | batch | instances/s | peer | peer /s | ratio | "
             "GFLOP/s | % of peak |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    number = lambda v, f: "" if v is None or v != v else format(v, f)  # noqa: E731  (None and NaN blank)
    for r in rows:
        lines.append(f"| {r.section} | {r.case} | {r.implementation} | {r.precision} | {r.batch} | "
                     f"{number(r.rate, ',.1f')} | {r.peer or ''} | {number(r.peer_rate, ',.1f')} | "
                     f"{number(r.ratio, '.2f')} | {number(r.gflops, ',.0f')} | "
                     f"{number(None if r.peak_fraction is None else 100 * r.peak_fraction, '.0f')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {SECTIONS}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", default=None, help="comma-separated (default: fp32, plus bf16 where fast)")
    parser.add_argument("--official-remimo", metavar="PATH")
    parser.add_argument("--paper-batch", type=int, default=200)
    parser.add_argument("--paper-repeat", type=int, default=2)
    parser.add_argument("--sweep-batch", type=int, default=100)
    parser.add_argument("--small-batch", type=int, default=128)
    parser.add_argument("--compile-batch", type=int, default=1024)
    parser.add_argument("--classical-batch", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default="results/speed.json")
    parser.add_argument("--markdown", default="results/speed.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the command line does; ours and the peers alike
    fast_bf16 = args.device.startswith("cuda") or cpu_has_fast_bf16()
    args.precisions = args.precisions.split(",") if args.precisions else ["fp32"] + (["bf16"] if fast_bf16 else [])
    sections = args.sections.split(",")
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, precisions "
          f"{args.precisions} (CPU bf16 matrix instructions: {cpu_has_fast_bf16()})")
    harness = Harness(args)
    if "peak" not in sections and {"remimo"} & set(sections):
        sections.insert(0, "peak")  # the fractions of peak need it
    for name in SECTIONS:
        if name in sections:
            getattr(harness, f"section_{name}")()
    records = [{k: None if isinstance(v, float) and v != v else v for k, v in asdict(r).items()}
               for r in harness.rows]                                   # NaN is not JSON
    for path, text in ((args.json, json.dumps(records, indent=1)), (args.markdown, markdown(harness.rows))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    print(f"\nwrote {args.json} and {args.markdown}")


if __name__ == "__main__":
    main()
