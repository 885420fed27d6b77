"""What the RE-MIMO reproduction scripts share (Pratik, Rao, Welling, IEEE TSP 2021, section V).

* :func:`arguments`: the common options (``--quick``, ``--out``, sample sizes, ``--threads``);
* :func:`classical`: the paper's classical line-up at one ``Nt`` (MMSE, AMP with 50 iterations,
  ZF-PIC — what the paper's "V-BLAST" computed, :class:`zoo.sic.ZFPIC` — and ordered MMSE-SIC);
* :func:`learned`: a shipped checkpoint by name, or, when it is missing, a loud
  "not trained yet" (and with ``--quick`` a tiny *untrained* stand-in, labelled as such, so the
  pipeline still runs);
* :func:`measure` / :func:`write`: the library's evaluation API (:func:`gnnmimo.evaluation.evaluate`)
  over the paper's SNR grid, then JSON, a markdown table (SER with 95 % intervals and error
  counts, SNR at SER 1e-2 and 1e-3, paired comparisons) and a PNG (:mod:`gnnmimo.report`).

Every script runs as ``python examples/remimo_paper/<figure>.py [--quick] [--out DIR]``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import torch

import zoo
from gnnmimo.channels import ChannelModel
from gnnmimo.detector import Detector
from gnnmimo.evaluation import PointResult, evaluate
from gnnmimo.report import markdown_table, paired_table, plot_ser, save_json, snr_at_ser_table
from gnnmimo.sampling import MIMOSampler

#: receive antennas of the paper's experiments (all but Fig. 12)
NR = 64
#: the untrained stand-ins of ``--quick`` are labelled with this
UNTRAINED = "untrained, --quick stand-in"


def arguments(doc: str, out: str, extra: Callable[[argparse.ArgumentParser], None] = lambda parser: None
              ) -> argparse.Namespace:
    """Parse the common options and those ``extra`` adds; ``out`` is the default output folder name."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    extra(parser)
    parser.add_argument("--quick", action="store_true",
                        help="seconds: two SNR points, a few hundred instances (a smoke test, not a result)")
    parser.add_argument("--out", default=f"results/remimo_paper/{out}", help="folder for JSON, markdown and PNG")
    parser.add_argument("--target-errors", type=int, default=1000, help="stop a point after this many errors")
    parser.add_argument("--max-symbols", type=int, default=1_000_000, help="… or after this many symbols")
    parser.add_argument("--sdr-symbols", type=int, default=2000, help="SDR's symbol budget per point (slow)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.target_errors, args.max_symbols, args.sdr_symbols = 100, 2000, 1
    return args


def classical(qam: int) -> dict[str, Detector]:
    """The paper's classical baselines (SDR apart: :func:`sdr`)."""
    return {"MMSE": zoo.create("mmse", qam), "AMP (50 it.)": zoo.create("amp", qam, iterations=50),
            "ZF-PIC (paper's V-BLAST)": zoo.create("zf-pic", qam), "MMSE-SIC (V-BLAST)": zoo.create("vblast", qam)}


def learned(label: str, name: str, quick: bool, stand_in: Callable[[], Detector]) -> dict[str, Detector]:
    """``{label: zoo.load(name)}`` if the checkpoint ships; otherwise say so on stdout and return
    ``{label + " (untrained, --quick stand-in)": stand_in()}`` with ``--quick`` or ``{}`` without."""
    if name in zoo.list_pretrained():
        return {label: zoo.load(name)}
    print(f"NOT TRAINED YET: {label} needs zoo/pretrained/{name}.pt, which does not exist"
          + (f"; --quick runs an {UNTRAINED}" if quick else "; its curve is left out"), flush=True)
    if not quick:
        return {}
    torch.manual_seed(0)
    return {f"{label} ({UNTRAINED})": stand_in().eval()}


def tiny_remimo(qam: int, nr: int = NR) -> Detector:
    """The smallest RE-MIMO, the ``--quick`` stand-in for a missing RE-MIMO checkpoint."""
    return zoo.create("remimo", qam, nr=nr, d_model=8, heads=1, blocks=2)


def grid(snrs: list[float], quick: bool) -> list[float]:
    """The SNR grid, or its two ends with ``--quick``."""
    return [snrs[0], snrs[-1]] if quick else list(snrs)


def measure(detectors: dict[str, Detector], nt: int, snrs: list[float], args: argparse.Namespace, qam: int = 16,
            channel: ChannelModel = ChannelModel(), nr: int = NR, reference: str | None = None,
            max_symbols: int | None = None, batch_size: int | None = None) -> list[PointResult]:
    """SER of ``detectors`` at ``Nr × nt`` on ``channel`` at each SNR, fresh samples from
    ``args.seed``: the same instances for every detector of one call, paired with ``reference``
    when given."""
    if not detectors:
        return []
    sampler = MIMOSampler(nr, nt, qam, channel=channel)
    return evaluate(detectors, sampler, [nt], snrs, target_errors=args.target_errors,
                    max_symbols=max_symbols or args.max_symbols,
                    batch_size=batch_size or (256 if args.quick else 4096),
                    seed=args.seed, progress=False, reference=reference)


def sdr(qam: int, nt: int, snrs: list[float], args: argparse.Namespace, **system) -> list[PointResult]:
    """SDR on ``args.sdr_symbols`` symbols per point (one cvxpy solve per instance, so batches
    of just those instances; other instances than :func:`measure`'s, hence no pairing)."""
    return measure({"SDR": zoo.create("sdr", qam)}, nt, snrs, args, qam, max_symbols=args.sdr_symbols,
                   batch_size=max(1, args.sdr_symbols // nt), **system)


def write(results: list[PointResult], args: argparse.Namespace, title: str, notes: list[str]) -> Path:
    """``results.json``, ``results.md`` and ``ser.png`` in ``args.out``; returns the markdown path."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_json(results, out / "results.json")
    text = [f"# {title}", "", *[f"- {note}" for note in notes],
            f"- sample sizes: each point stops at {args.target_errors} symbol errors or {args.max_symbols} "
            f"symbols (SDR: {args.sdr_symbols} symbols){' (--quick: a smoke test, not a result)' if args.quick else ''}",
            "", "## SER [95 % interval] (errors/symbols)", "", markdown_table(results),
            "## SNR (dB) at SER 1e-2", "", snr_at_ser_table(results, 1e-2),
            "## SNR (dB) at SER 1e-3", "", snr_at_ser_table(results, 1e-3)]
    if any(r.paired is not None for r in results):
        text += ["## Paired comparisons (same instances)", "", paired_table(results)]
    (out / "results.md").write_text("\n".join(text))
    plot_ser(results, out / "ser.png")
    print(f"wrote {out / 'results.json'}, {out / 'results.md'} and {out / 'ser.png'}")
    return out / "results.md"


def write_json(payload: dict, path: Path) -> None:
    """A plain JSON file (measurements that are not SER records), strict JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, allow_nan=False))


def per_nt_checkpoints(family: str, nt: int, qam: int, suffix: str = "") -> str:
    """The zoo name of a detector trained for one ``Nt`` at ``Nr = 64``, e.g. ``oampnet-nr64-nt16-qam16``."""
    return f"{family}-nr{NR}-nt{nt}-qam{qam}{suffix}"


def compare(args: argparse.Namespace, qam: int, grids: dict[int, list[float]], remimo: str,
            channel: ChannelModel = ChannelModel(), suffix: str = "", detnet: bool = True,
            with_sdr: bool = True) -> list[PointResult]:
    """The line-up of Figs. 7–10 at each ``Nt`` of ``grids`` (``Nt → SNRs``): the classical
    baselines, SDR on fewer symbols, OAMPNet and DetNet trained for that ``Nt`` (checkpoints
    :func:`per_nt_checkpoints` with ``suffix``), and the single RE-MIMO checkpoint ``remimo``,
    all paired with OAMPNet on the same instances."""
    results = []
    for nt, snrs in grids.items():
        snrs = grid(snrs, args.quick)
        detectors = {**classical(qam),
                     **learned("OAMPNet", per_nt_checkpoints("oampnet", nt, qam, suffix), args.quick,
                               lambda: zoo.create("oampnet", qam))}
        if detnet:
            detectors.update(learned("DetNet", per_nt_checkpoints("detnet", nt, qam, suffix), args.quick,
                                     lambda: zoo.create("detnet", qam, nr=NR, nt=nt, iterations=2, hidden=8,
                                                        v_size=4)))
        detectors.update(learned("RE-MIMO", remimo, args.quick, lambda: tiny_remimo(qam)))
        reference = next(name for name in detectors if name.startswith("OAMPNet"))
        results += measure(detectors, nt, snrs, args, qam, channel, reference=reference)
        if with_sdr:
            results += sdr(qam, nt, snrs, args, channel=channel)
    return results


def iid_figure(doc: str, out: str, qam: int, grids: dict[int, list[float]], remimo: str) -> None:
    """Figs. 7 and 8: :func:`compare` on i.i.d. Rayleigh at ``qam``, written by :func:`write`."""
    args = arguments(doc, out)
    write(compare(args, qam, grids, remimo), args, f"RE-MIMO {out}: i.i.d. Rayleigh, {qam}-QAM, Nr {NR}",
          ["paired comparisons against OAMPNet trained for the same Nt, on the same instances"])
