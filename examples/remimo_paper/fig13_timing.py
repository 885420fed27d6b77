"""RE-MIMO paper, Fig. 13: mean computation time per instance against Nt, RE-MIMO and OAMPNet, Nr = 64.

RE-MIMO in the paper's configuration (``zoo.create("remimo", 16, config="paper")``: d_s 512,
8 heads, 12 EP blocks) and OAMPNet (10 layers), 16-QAM, Nt = 8, 12, …, 32, in fp32 and bf16
(``Detector.set_precision``), each figure the best of ``--repeat`` timed calls on a batch of
``--batch`` instances after a warm-up, timed by this process's CPU clock with one torch thread
(steady on a shared machine). Timing does not depend on the weights, so no checkpoint is needed.
Writes ``timing.json``, ``timing.md`` (per-Nt times, least-squares lines ms = a·Nt + b with R² and
residuals) and ``timing.png`` (the times with their lines, and the ratio OAMPNet / RE-MIMO).

**What the paper reports** (§V-E, GPU): RE-MIMO's cost O(Nr² Nt + Nr Nt²) per block "increases
linearly with Nt" and is lower than OAMPNet's at small Nt; OAMPNet's, dominated by an Nr × Nr
inverse per layer (O(Nr³)), "does not vary much with Nt". No numbers in its text.

**What we get** (examples/remimo_paper/results/fig13/timing.md: this 2-core CPU shared with other
jobs, 1 thread, batch 50, best of 3, process CPU clock, 2026-12-03): RE-MIMO grows linearly,
**0.830 ms per user + 0.24 ms in fp32 (R² 0.999, largest residual 1.8 %)** and **0.248 ms per user
+ 1.43 ms in bf16 (R² 0.986, 4.6 %)**; 7.1 → 26.6 ms (fp32) and 3.4 → 9.4 ms (bf16) from Nt 8 to
32. OAMPNet is **not** flat here and is 8–30× *cheaper* than RE-MIMO: 0.24 → 1.11 ms (fp32),
because the zoo's OAMP computes its LMMSE matrix with the push-through identity, an ``Nt × Nt``
solve per layer (O(Nt³ + Nr Nt²)), not the ``Nr × Nr`` inverse behind the paper's O(Nr³); and
on a CPU the paper-size transformer's 12 blocks of d_s 512 cost far more than 10 small solves.
The paper's linear growth of RE-MIMO reproduces; its "OAMPNet stays high and flat" does not.

    python examples/remimo_paper/fig13_timing.py [--quick] [--out DIR] [--batch 50] [--repeat 3]
"""
import argparse
import time
from pathlib import Path

import torch

import paper
import zoo
from gnnmimo.precision import cpu_has_fast_bf16
from gnnmimo.sampling import MIMOSampler
from gnnmimo.timing import linear_fit, seconds_per_instance

#: the paper's Fig. 13 range of Nt (Nr 64)
NTS = (8, 12, 16, 20, 24, 28, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Nt 8 and 32, 2 instances, one timed call")
    parser.add_argument("--out", default="results/remimo_paper/fig13")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nts, batch, repeat = ((8, 32), 2, 1) if args.quick else (NTS, args.batch, args.repeat)
    precisions = ["fp32"] + (["bf16"] if cpu_has_fast_bf16() else [])
    torch.manual_seed(0)
    models = {"RE-MIMO (paper config)": zoo.create("remimo", 16, config="paper").eval(),
              "OAMPNet": zoo.create("oampnet", 16).eval()}
    graphs = {nt: MIMOSampler(paper.NR, nt, 16, snr_db=(10.0, 15.0)).sample(batch, torch.Generator().manual_seed(nt))
              for nt in nts}
    rows = []
    for precision in precisions:
        for name, model in models.items():
            model.set_precision(precision)
            seconds = seconds_per_instance(model, graphs, repeat, clock=time.process_time)
            fit = linear_fit(nts, [seconds[nt] * 1e3 for nt in nts])
            rows.append({"detector": name, "precision": precision, "ms_per_instance": {nt: s * 1e3 for nt, s in
                                                                                       seconds.items()},
                         "fit_ms_per_user": fit.slope, "fit_ms": fit.intercept, "r2": fit.r2,
                         "residuals_ms": fit.residuals, "relative_residuals": fit.relative_residuals})
            print(f"{name:<24} {precision}: {fit.slope:.4f} ms/user + {fit.intercept:.3f} ms (R² {fit.r2:.4f})",
                  flush=True)
    out = Path(args.out)
    setup = {"nr": paper.NR, "qam": 16, "nts": list(nts), "batch": batch, "repeat": repeat,
             "threads": torch.get_num_threads(), "clock": "process_time", "torch": torch.__version__,
             "quick": args.quick}
    paper.write_json({"setup": setup, "rows": rows}, out / "timing.json")
    (out / "timing.md").write_text(markdown(rows, nts, setup))
    plot(rows, nts, out / "timing.png")
    print(f"wrote {out / 'timing.json'}, {out / 'timing.md'} and {out / 'timing.png'}")


def markdown(rows: list[dict], nts, setup: dict) -> str:
    head = (f"# RE-MIMO Fig. 13: mean time per instance (ms), Nr {setup['nr']}, 16-QAM\n\n"
            f"Batch {setup['batch']}, best of {setup['repeat']} calls after a warm-up, process CPU clock, "
            f"{setup['threads']} thread(s), torch {setup['torch']}"
            f"{' (--quick: a smoke test, not a result)' if setup['quick'] else ''}.\n\n")
    lines = ["| detector | precision | " + " | ".join(f"Nt {nt}" for nt in nts) +
             " | fit (ms) | R² | max abs. residual |", "|---" * (len(nts) + 5) + "|"]
    for r in rows:
        times = " | ".join(f"{r['ms_per_instance'][nt]:.3f}" for nt in nts)
        worst = max(range(len(nts)), key=lambda i: abs(r["residuals_ms"][i]))
        lines.append(f"| {r['detector']} | {r['precision']} | {times} | {r['fit_ms_per_user']:.4f}·Nt + "
                     f"{r['fit_ms']:.3f} | {r['r2']:.4f} | {abs(r['residuals_ms'][worst]):.3f} ms "
                     f"({100 * abs(r['relative_residuals'][worst]):.1f} %, Nt {nts[worst]}) |")
    return head + "\n".join(lines) + "\n"


def plot(rows: list[dict], nts, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (times, ratio) = plt.subplots(1, 2, figsize=(10, 4))
    by_key = {(r["detector"], r["precision"]): r for r in rows}
    for r in rows:
        measured = [r["ms_per_instance"][nt] for nt in nts]
        line = times.plot(nts, measured, "o", label=f"{r['detector']}, {r['precision']}")[0]
        times.plot(nts, [r["fit_ms_per_user"] * nt + r["fit_ms"] for nt in nts], "-", color=line.get_color())
    for precision in dict.fromkeys(r["precision"] for r in rows):
        remimo, oampnet = by_key[("RE-MIMO (paper config)", precision)], by_key[("OAMPNet", precision)]
        ratio.plot(nts, [oampnet["ms_per_instance"][nt] / remimo["ms_per_instance"][nt] for nt in nts], "o-",
                   label=precision)
    times.set(xlabel="Nt", ylabel="ms per instance", title="mean computation time (dots) and linear fits")
    ratio.set(xlabel="Nt", ylabel="τ_OAMPNet / τ_RE-MIMO", title="ratio")
    for ax in (times, ratio):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
