"""``gnnmimo evaluate``: SER/BER of detectors on the same samples.

    gnnmimo evaluate --detector mmse --detector zf --nr 8 --nt 4 --qam 16 \\
        --channel iid --snr 8,11,14 --target-errors 1000 --max-symbols 1000000 \\
        --seed 0 --json out.json --plot out.png

Value syntax: ``--nt 4``, ``4:8`` (every Nt from 4 to 8) or ``4,8``; ``--snr
8,11,14`` or ``start:step:stop`` (stop included); ``--rho 0.6`` or
``0.55:0.75`` (triangular per instance, mode at the upper end); detectors
take options as ``--detector kbest:k=32``; ``--checkpoint`` takes a file or
the name of a pretrained checkpoint of the zoo, with options that keep its
weights in the same syntax (``--checkpoint NAME:double=True``).

Every argument is checked before any work, and so is the work itself: a
detector whose cost explodes at the requested size (``ml`` beyond ``2^36``
candidates per instance, ``sdr`` beyond 16 users; :meth:`Detector.excessive_work
<gnnmimo.detector.Detector.excessive_work>`) is refused with an estimate unless
``--allow-slow``. ``--resume`` reuses a stored record only when everything that
determined it (seed, stopping rule, batch size, precision, detector options,
checkpoint content, …; :func:`gnnmimo.evaluation.record_provenance`) matches.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import zoo
from gnnmimo import distributed
from gnnmimo.cli.arguments import (PRECISION_CHOICES, add_channel_arguments, apply_compute_arguments,
                                   channel_from_args, fraction, parse_int_list, parse_snr_list, positive_int)
from gnnmimo.detector import Detector
from gnnmimo.evaluation import ResumeMismatch, evaluate
from gnnmimo.files import atomic_write, check_writable
from gnnmimo.registry import create_from_spec, parse_options
from gnnmimo.report import load_json, markdown_table, paired_table, plot_ser, save_json, snr_at_ser_table
from gnnmimo.sampling import MIMOSampler


def add_evaluate_parser(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="SER/BER of detectors vs SNR on the same samples",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", action="append", default=[], metavar="NAME[:opt=val,…]",
                        help="a registered detector (repeatable); see `gnnmimo list`")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="PATH_OR_NAME[:opt=val,…]",
                        help="a trained detector checkpoint, or the name of a pretrained one (repeatable); "
                             "options that keep its weights, e.g. NAME:double=True")
    parser.add_argument("--nr", type=positive_int, required=True, help="receive antennas")
    parser.add_argument("--nt", type=parse_int_list, required=True, help="users: N, LOW:HIGH or N1,N2")
    parser.add_argument("--snr", type=parse_snr_list, required=True, help="SNRs in dB")
    add_channel_arguments(parser)
    parser.add_argument("--target-errors", type=positive_int, default=1000)
    parser.add_argument("--max-symbols", type=positive_int, default=1_000_000)
    parser.add_argument("--batch-size", type=positive_int, default=2048, help="instances per batch")
    parser.add_argument("--json", help="write the records here (updated after every point)")
    parser.add_argument("--markdown", help="write a markdown table here")
    parser.add_argument("--plot", help="write a PNG plot (log SER vs SNR) here")
    parser.add_argument("--resume", action="store_true",
                        help="keep the points already in --json and run only the missing ones (refused when "
                             "a stored record was made with other settings, e.g. another seed or checkpoint)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json")
    parser.add_argument("--paired-with", metavar="NAME",
                        help="compare every detector with this one on the instances both saw (paired test)")
    parser.add_argument("--ser-target", type=fraction, default=1e-2,
                        help="also tabulate the SNR (interpolated) at which each curve reaches this SER")
    parser.add_argument("--allow-slow", action="store_true",
                        help="run even where a detector estimates far too much work (ml, sdr at large Nt)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(main=evaluate_main)


def load_checkpoint_spec(spec: str) -> tuple[str, Detector]:
    """``PATH_OR_NAME[:opt=val,…]`` → ``(label, detector)``: the checkpoint loaded with those options
    (:func:`zoo.load`: only options that keep its weights), labelled by its stem and the options.

    The options follow the last ``:``; a spec that names an existing file, or whose last ``:`` is
    followed by a path (``C:\\runs\\my.pt``), is a path alone.
    """
    path, sep, options = spec.rpartition(":")
    if not sep or os.path.exists(spec) or "/" in options or "\\" in options:
        path, options = spec, ""
    detector = zoo.load(path, **parse_options(options, spec))
    return detector.checkpoint_label + (f":{options}" if options else ""), detector


def build_detectors(args: argparse.Namespace) -> dict:
    """The detectors of ``--detector`` specs and ``--checkpoint`` files, by label."""
    detectors = {}
    try:
        for spec in args.detector:
            detectors[spec] = create_from_spec(spec, args.qam)
        for spec in args.checkpoint:
            label, detector = load_checkpoint_spec(spec)
            label = label if label not in detectors else spec
            if label in detectors:
                raise ValueError(f"two detectors would be labelled {label!r}; give each checkpoint once")
            detectors[label] = detector
    except (ValueError, TypeError, FileNotFoundError, ModuleNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    if not detectors:
        raise SystemExit("error: give at least one --detector or --checkpoint")
    return {name: d.to(args.device).eval() for name, d in detectors.items()}


def check_outputs(args: argparse.Namespace) -> None:
    """Fail before any work when an output cannot be written, or when ``--json`` holds records that
    the first point would replace (without ``--resume`` to keep them or ``--overwrite``)."""
    for path in (args.json, args.markdown, args.plot):
        if path:
            try:
                check_writable(path)
            except OSError as error:
                raise SystemExit(f"error: {error}") from None
    if args.resume and not args.json:
        raise SystemExit("error: --resume continues the records of --json; give the file")
    if args.json and os.path.exists(args.json) and not (args.resume or args.overwrite):
        raise SystemExit(f"error: {args.json} exists: use --resume to keep its points and run the missing "
                         "ones, or --overwrite to replace it")


def previous_records(args: argparse.Namespace) -> list:
    """The records of ``--json`` to resume from (none without ``--resume`` or a file)."""
    if not (args.resume and os.path.exists(args.json)):
        return []
    try:
        return load_json(args.json)
    except (ValueError, TypeError) as error:  # not JSON, or not records
        raise SystemExit(f"error: cannot resume from {args.json}: it holds no evaluation records ({error})") from None


def check_work(detectors: dict, nr: int, nts: list[int], allow_slow: bool) -> None:
    """Refuse, before any work, a run in which a detector estimates far too much work at some Nt
    (:meth:`Detector.excessive_work <gnnmimo.detector.Detector.excessive_work>`), unless ``--allow-slow``."""
    reasons = []
    for name, detector in detectors.items():
        slow = {nt: reason for nt in nts if (reason := detector.excessive_work(nr, nt))}
        if slow:
            first, *others = sorted(slow)
            also = f" (and at Nt {', '.join(map(str, others))})" if others else ""
            reasons.append(f"{name}: {slow[first]}{also}")
    if reasons and not allow_slow:
        raise SystemExit("error: this run would take far longer than one can expect:\n  " + "\n  ".join(reasons)
                         + "\nreduce --nt, drop the detector, or add --allow-slow to run it anyway")


def print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as ``warning: …`` on stderr, without the source line (a user's view)."""
    print(f"warning: {message}", file=sys.stderr)


def kept(results: list, args: argparse.Namespace) -> str:
    """What an interrupted run leaves: its records, in ``--json`` if given."""
    return f"{len(results)} records kept" + (f" in {args.json} (rerun with --resume to continue)" if args.json else "")


def evaluate_main(args: argparse.Namespace) -> int:
    """Under torchrun the ranks share the batches of every point (:func:`gnnmimo.evaluation.evaluate`);
    rank 0 checks and reads the outputs, writes them and prints the tables."""
    def open_outputs() -> list:
        check_outputs(args)
        return previous_records(args)

    previous = distributed.from_main(open_outputs)
    args.device = str(distributed.rank_device(args.device))
    detectors = build_detectors(args)
    if args.paired_with is not None and args.paired_with not in detectors:
        raise SystemExit(f"error: --paired-with {args.paired_with!r} names none of the detectors {list(detectors)}")
    check_work(detectors, args.nr, args.nt, args.allow_slow)
    apply_compute_arguments(args, detectors.values())
    sampler = MIMOSampler(args.nr, max(args.nt), args.qam, channel=channel_from_args(args),
                          precision=PRECISION_CHOICES[args.precision][0], device=args.device)
    results = list(previous)

    def save(point):
        results.extend(point)
        if args.json and distributed.is_main():
            save_json(results, args.json)

    try:
        with warnings.catch_warnings(), distributed.ends_if_a_rank_dies(lambda: kept(results, args)):
            warnings.showwarning = print_warning   # e.g. a checkpoint outside its trained system, before any point
            evaluate(detectors, sampler, args.nt, args.snr, args.target_errors, args.max_symbols,
                     args.batch_size, args.seed, previous=previous, on_point=save,
                     progress=not args.no_progress and distributed.is_main(), reference=args.paired_with)
    except ResumeMismatch as error:
        raise SystemExit(f"error: cannot resume from {args.json}: {error}\n"
                         "Use another --json for this run, or --overwrite to replace the file.") from None
    except KeyboardInterrupt:
        print(f"\ninterrupted; {kept(results, args)}", file=sys.stderr)
        return 130
    if not distributed.is_main():
        return 0
    table = markdown_table(results) + "\n" + snr_at_ser_table(results, args.ser_target)
    if args.paired_with:
        table += "\n" + paired_table(results)
    print(table)
    if args.markdown:
        atomic_write(args.markdown, lambda handle: handle.write(table.encode()))
    if args.plot:
        plot_ser(results, args.plot)
    return 0
