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

``--data FILE`` evaluates on stored instances instead of sampled ones (an instances file,
docs/instances.md, e.g. written by ``gnnmimo sample``): the file gives the system (Nr, Nt, SNR,
constellation, channel), ``--nt``/``--snr`` select among its points (default: all), and records
carry the SHA-256 of its content, so ``--resume`` never mixes data sets.

Coded link (:mod:`gnnmimo.link`): ``--code ldpc5g:k=512,n=1024[,iterations=20]`` puts Sionna's 5G
LDPC code blocks on every user's stream and adds coded BER and BLER to the records;
``--target-block-errors N`` stops a point on block errors; ``--ebno 0:1:6`` replaces ``--snr`` by
Eb/N0 values (dB), converted per ``Nt`` with the code rate. ``--code`` works on ``--data`` too (the
stored symbols are scrambled codewords, :mod:`gnnmimo.link`); ``--ebno`` does not, the file's SNRs
being fixed.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import zoo
from gnnmimo import distributed
from gnnmimo.batch_sources import batch_source
from gnnmimo.cli.arguments import (PRECISION_CHOICES, add_channel_arguments, apply_compute_arguments,
                                   channel_from_args, fraction, parse_int_list, parse_snr_list, positive_int)
from gnnmimo.detector import Detector
from gnnmimo.evaluation import ResumeMismatch, evaluate, planned_points
from gnnmimo.files import atomic_write, check_writable
from gnnmimo.instances import InstancesFileError, load_instances
from gnnmimo.link import parse_code
from gnnmimo.registry import create_from_spec, parse_options
from gnnmimo.report import coded_table, load_json, markdown_table, paired_table, plot_ser, save_json, snr_at_ser_table
from gnnmimo.sampling import MIMOSampler


def add_evaluate_parser(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="SER/BER of detectors vs SNR on the same samples",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", action="append", default=[], metavar="NAME[:opt=val,…]",
                        help="a registered detector (repeatable); see `gnnmimo list`")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="PATH_OR_NAME[:opt=val,…]",
                        help="a trained detector checkpoint, or the name of a pretrained one (repeatable); "
                             "options that keep its weights, e.g. NAME:double=True")
    parser.add_argument("--data", metavar="FILE",
                        help="evaluate on the instances of this file (docs/instances.md) instead of sampled ones")
    add_stream_arguments(parser, "(with --data: select among the file's points)")
    add_code_arguments(parser)
    parser.add_argument("--target-errors", type=positive_int, default=1000)
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


def add_stream_arguments(parser: argparse.ArgumentParser, selection: str = "") -> None:
    """The options that define a sampled stream, shared by ``evaluate`` and ``sample``: the system,
    the points, the per-point budget and the batch size (which together fix the batches drawn)."""
    parser.add_argument("--nr", type=positive_int, help="receive antennas")
    parser.add_argument("--nt", type=parse_int_list, help=f"users: N, LOW:HIGH or N1,N2 {selection}")
    parser.add_argument("--snr", type=parse_snr_list, help=f"SNRs in dB {selection}")
    add_channel_arguments(parser)
    parser.set_defaults(qam=None)  # 16 for sampled data; with --data, the file's
    parser.add_argument("--max-symbols", type=positive_int, default=1_000_000)
    parser.add_argument("--batch-size", type=positive_int, default=2048, help="instances per batch")


def sampler_from_args(args: argparse.Namespace) -> MIMOSampler:
    """The sampler of ``--nr``, ``--nt``, ``--snr`` and the channel options (``error:`` when one of the
    first three is missing)."""
    given = {"nr": args.nr, "nt": args.nt, "snr": args.snr if getattr(args, "ebno", None) is None else args.ebno}
    missing = [f"--{name}" for name, value in given.items() if value is None]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} required (or --data FILE for stored instances)"
                         if hasattr(args, "data") else f"error: {', '.join(missing)} required")
    args.qam = args.qam or 16
    return MIMOSampler(args.nr, max(args.nt), args.qam, channel=channel_from_args(args),
                       precision=PRECISION_CHOICES[args.precision][0], device=args.device)


def instances_from_args(args: argparse.Namespace):
    """The instances of ``--data`` on ``--device``; ``error:`` for a bad file or for options that
    describe sampled data (the file gives the system)."""
    sampled_only = [option for option, given in (("--nr", args.nr is not None), ("--channel", args.channel != "iid"),
                                                 ("--rho", args.rho is not None), ("--csi-error", args.csi_error != 0))
                    if given]
    if sampled_only:
        raise SystemExit(f"error: {', '.join(sampled_only)} describe sampled data; with --data the file gives "
                         "the system (select its points with --nt and --snr)")
    try:
        data = load_instances(args.data, device=args.device)
    except (InstancesFileError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    if args.qam not in (None, data.qam.order):
        raise SystemExit(f"error: --qam {args.qam}, but the instances of {args.data} are {data.qam.order}-QAM")
    args.qam = data.qam.order
    return data


def add_code_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ebno``, ``--code``, ``--target-block-errors`` (module doc)."""
    def code(text: str):
        try:
            return parse_code(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    group = parser.add_argument_group("coded link")
    group.add_argument("--ebno", type=parse_snr_list, help="Eb/N0 values in dB, instead of --snr")
    group.add_argument("--code", type=code, metavar="ldpc5g:k=K,n=N[,iterations=I]",
                       help="5G LDPC code blocks per user stream (Sionna); adds coded BER and BLER")
    group.add_argument("--target-block-errors", type=positive_int,
                       help="with --code: stop a point after this many block errors (or --max-symbols)")


def check_code_arguments(args: argparse.Namespace) -> None:
    """Exactly one of ``--snr`` and ``--ebno`` for sampled data; no ``--ebno`` with ``--data`` (stored
    instances are at fixed SNRs); ``--target-block-errors`` only with ``--code``."""
    if not args.data and (args.snr is None) == (args.ebno is None):
        raise SystemExit("error: give the x-axis as exactly one of --snr and --ebno")
    if args.data and args.ebno is not None:
        raise SystemExit(f"error: --ebno needs sampled data: the instances of {args.data} are at fixed SNRs "
                         "(select them with --snr)")
    if args.target_block_errors is not None and args.code is None:
        raise SystemExit("error: --target-block-errors needs --code")


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
    check_code_arguments(args)

    def open_outputs() -> list:
        check_outputs(args)
        return previous_records(args)

    previous = distributed.from_main(open_outputs)
    args.device = str(distributed.rank_device(args.device))
    source = instances_from_args(args) if args.data else sampler_from_args(args)
    axis = args.snr if args.ebno is None else args.ebno
    detectors = build_detectors(args)
    if args.paired_with is not None and args.paired_with not in detectors:
        raise SystemExit(f"error: --paired-with {args.paired_with!r} names none of the detectors {list(detectors)}")
    try:
        points = planned_points(batch_source(source), args.nt, axis)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    check_work(detectors, source.nr_range[1], sorted({nt for nt, _ in points}), args.allow_slow)
    apply_compute_arguments(args, detectors.values())
    results = list(previous)

    def save(point):
        results.extend(point)
        if args.json and distributed.is_main():
            save_json(results, args.json)

    try:
        with warnings.catch_warnings(), distributed.ends_if_a_rank_dies(lambda: kept(results, args)):
            warnings.showwarning = print_warning   # e.g. a checkpoint outside its trained system, before any point
            evaluate(detectors, source, args.nt, axis, args.target_errors, args.max_symbols,
                     args.batch_size, args.seed, previous=previous, on_point=save,
                     progress=not args.no_progress and distributed.is_main(), reference=args.paired_with,
                     code=args.code, target_block_errors=args.target_block_errors, ebno=args.ebno is not None)
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
    if args.code:
        table += "\n" + coded_table(results)
    print(table)
    if args.markdown:
        atomic_write(args.markdown, lambda handle: handle.write(table.encode()))
    if args.plot:
        plot_ser(results, args.plot)
    return 0
