"""Saving and showing evaluation results: JSON, markdown tables, a plot."""
from __future__ import annotations

import json
import math
import os
from collections import defaultdict

from gnnmimo.evaluation import PairedComparison, PointResult, sign_test
from gnnmimo.files import atomic_write


def save_json(results: list[PointResult], path: str | os.PathLike) -> None:
    """Save records as a JSON list (atomically), strict JSON: a NaN or infinity raises ``ValueError``
    instead of being written as the ``NaN``/``Infinity`` that JSON parsers other than Python's refuse."""
    payload = json.dumps([r.to_dict() for r in results], indent=1, allow_nan=False).encode()
    atomic_write(path, lambda handle: handle.write(payload))


def load_json(path: str | os.PathLike) -> list[PointResult]:
    """Load records written by :func:`save_json`."""
    with open(path) as handle:
        return [PointResult(**record) for record in json.load(handle)]


def markdown_table(results: list[PointResult]) -> str:
    """One row per (Nt, SNR), one column per detector: ``SER [95 % CI] (errors/symbols)``."""
    detectors = list(dict.fromkeys(r.detector for r in results))
    rows = defaultdict(dict)
    for r in results:
        rows[(r.nr, r.nt, r.qam, r.channel, r.snr_db)][r.detector] = r
    lines = ["| Nr | Nt | QAM | channel | SNR (dB) | " + " | ".join(detectors) + " |",
             "|---" * (5 + len(detectors)) + "|"]
    for (nr, nt, qam, channel, snr), by_detector in sorted(rows.items()):
        cells = []
        for name in detectors:
            r = by_detector.get(name)
            cells.append("—" if r is None else
                         f"{r.ser:.3g} [{r.ser_ci_low:.2g}, {r.ser_ci_high:.2g}] ({r.symbol_errors}/{r.symbols})")
        lines.append(f"| {nr} | {nt} | {qam} | {channel} | {snr:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ser_crossing(results: list[PointResult], target: float = 1e-2,
                 rate=lambda r: r.ser) -> tuple[float, PointResult, PointResult] | None:
    """Where one curve's ``rate(record)`` (default the SER; e.g. ``lambda r: r.ser_ci_high`` for
    its upper 95 % bound) crosses ``target``: ``(snr, above, below)``, with ``snr`` interpolated
    linearly in ``log10 rate`` between the first pair of neighbouring points (by SNR) such that
    ``rate(above) >= target > rate(below) > 0``, the two records being that pair.

    ``results``: the points of one detector and one Nt. ``None`` when the curve does not cross
    ``target`` (or the point below it has no errors).
    """
    points = sorted(results, key=lambda r: r.snr_db)
    for above, below in zip(points, points[1:]):
        high, low = rate(above), rate(below)
        if high >= target > low > 0:
            fraction = (math.log10(high) - math.log10(target)) / (math.log10(high) - math.log10(low))
            return above.snr_db + fraction * (below.snr_db - above.snr_db), above, below
    return None


def snr_at_ser(results: list[PointResult], target: float = 1e-2) -> float | None:
    """SNR (dB) at which SER crosses ``target`` (:func:`ser_crossing`); ``None`` when it does not."""
    crossing = ser_crossing(results, target)
    return None if crossing is None else crossing[0]


def snr_at_ser_table(results: list[PointResult], target: float = 1e-2) -> str:
    """Markdown: one row per (Nr, Nt, QAM, channel), one column per detector,
    the SNR (dB) at SER ``target`` (see :func:`snr_at_ser`)."""
    detectors = list(dict.fromkeys(r.detector for r in results))
    curves = defaultdict(lambda: defaultdict(list))
    for r in results:
        curves[(r.nr, r.nt, r.qam, r.channel)][r.detector].append(r)
    lines = ["| Nr | Nt | QAM | channel | " + " | ".join(f"{d} (dB @ SER {target:g})" for d in detectors) + " |",
             "|---" * (4 + len(detectors)) + "|"]
    for (nr, nt, qam, channel), by_detector in sorted(curves.items()):
        cells = []
        for name in detectors:
            snr = snr_at_ser(by_detector.get(name, []), target)
            cells.append("—" if snr is None else f"{snr:.2f}")
        lines.append(f"| {nr} | {nt} | {qam} | {channel} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_table(results: list[PointResult]) -> str:
    """Markdown: each paired comparison (:class:`~gnnmimo.evaluation.PairedComparison`), one row
    per detector and point, then one row per detector pooling the sign test over all its points."""
    paired = [r for r in results if r.paired is not None]
    if not paired:
        return ""
    lines = ["| Nr | Nt | QAM | channel | SNR (dB) | detector | reference | instances | errors (detector / reference) "
             "| SER difference [95 % CI] | instances better / worse | sign-test p |",
             "|---" * 12 + "|"]
    pooled = defaultdict(lambda: [0, 0, 0, 0, 0])  # instances, errors, reference errors, better, worse
    for r in sorted(paired, key=lambda r: (r.detector, r.nr, r.nt, r.qam, r.channel, r.snr_db)):
        c = r.paired
        lines.append(f"| {r.nr} | {r.nt} | {r.qam} | {r.channel} | {r.snr_db:g} | {r.detector} | {c.reference} "
                     f"| {c.instances} | {c.symbol_errors} / {c.reference_symbol_errors} "
                     f"| {c.ser_difference:.3g} {_interval(c)} | {c.better} / {c.worse} "
                     f"| {_p_value(c.p_value)} |")
        totals = pooled[(r.detector, c.reference)]
        for k, value in enumerate((c.instances, c.symbol_errors, c.reference_symbol_errors, c.better, c.worse)):
            totals[k] += value
    for (detector, reference), (instances, errors, reference_errors, better, worse) in pooled.items():
        lines.append(f"| all | all | | | all | {detector} | {reference} | {instances} | {errors} / {reference_errors} "
                     f"| | {better} / {worse} | {_p_value(sign_test(better, worse))} |")
    return "\n".join(lines) + "\n"


def _interval(c: PairedComparison) -> str:
    return "[undefined: 1 instance]" if c.ci_low is None else f"[{c.ci_low:.2g}, {c.ci_high:.2g}]"


def _p_value(p: float) -> str:
    return f"{p:.2g}" if p > 0 else "< 1e-300"  # below double precision


def coded_table(results: list[PointResult]) -> str:
    """One row per coded record: ``BLER [95 % CI] (block errors/blocks)``, coded BER, the soft output."""
    lines = ["| detector | Nr | Nt | QAM | channel | SNR (dB) | Eb/N0 (dB) | code | BLER [95 % CI] (errors/blocks) | "
             "coded BER [95 % CI] | soft output |", "|---" * 11 + "|"]
    for r in sorted((r for r in results if r.coded is not None), key=lambda r: (r.nt, r.snr_db, r.detector)):
        c = r.coded
        ebno = "" if r.ebno_db is None else f"{r.ebno_db:g}"
        lines.append(f"| {r.detector} | {r.nr} | {r.nt} | {r.qam} | {r.channel} | {r.snr_db:.4g} | {ebno} | {c.code} | "
                     f"{c.bler:.3g} [{c.bler_ci_low:.2g}, {c.bler_ci_high:.2g}] ({c.block_errors}/{c.blocks}) | "
                     f"{c.coded_ber:.3g} [{c.coded_ber_ci_low:.2g}, {c.coded_ber_ci_high:.2g}] | {c.soft_output} |")
    return "\n".join(lines) + "\n"


def plot_ser(results: list[PointResult], path: str | os.PathLike) -> None:
    """Log-SER versus SNR, one panel per Nt, one curve per detector, 95 % CI bars."""
    _plot_rates(results, path, "SER", lambda r: (r.ser, r.ser_ci_low, r.ser_ci_high) if r.symbol_errors else None,
                lambda r: r.snr_db, "SNR (dB)")


def plot_bler(results: list[PointResult], path: str | os.PathLike) -> None:
    """Log-BLER of coded records versus Eb/N0 (SNR for records without it), as :func:`plot_ser`."""
    ebno = all(r.ebno_db is not None for r in results)
    _plot_rates(results, path, "BLER",
                lambda r: (r.coded.bler, r.coded.bler_ci_low, r.coded.bler_ci_high)
                if r.coded is not None and r.coded.block_errors else None,
                (lambda r: r.ebno_db) if ebno else (lambda r: r.snr_db), "Eb/N0 (dB)" if ebno else "SNR (dB)")


def _plot_rates(results: list[PointResult], path: str | os.PathLike, name: str, rate, axis, xlabel: str) -> None:
    """One panel per Nt, one curve per detector of ``rate(record)`` = ``(value, low, high)`` (or
    ``None``: not plotted, e.g. no errors) against ``axis(record)``, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nts = sorted({r.nt for r in results})
    fig, axes = plt.subplots(1, len(nts), figsize=(5 * len(nts), 4), squeeze=False, sharey=True)
    for ax, nt in zip(axes[0], nts):
        by_detector = defaultdict(list)
        for r in results:
            if r.nt == nt and rate(r) is not None:
                by_detector[r.detector].append(r)
        for label, points in by_detector.items():
            points.sort(key=axis)
            value, low, high = zip(*map(rate, points))
            yerr = [[v - lo for v, lo in zip(value, low)], [hi - v for v, hi in zip(value, high)]]
            ax.errorbar([axis(r) for r in points], value, yerr=yerr, marker="o", capsize=2, label=label)
        first = results[0]
        ax.set(yscale="log", xlabel=xlabel, title=f"{first.nr}×{nt}, {first.qam}-QAM, {first.channel}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel(name)
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
    plt.close(fig)
