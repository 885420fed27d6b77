"""The ``gnnmimo`` command line.

``gnnmimo evaluate`` measures SER/BER of detectors on the same samples::

    gnnmimo evaluate --detector mmse --detector zf --nr 8 --nt 4 --qam 16 \\
        --channel iid --snr 8,11,14 --target-errors 1000 --max-symbols 1000000 \\
        --seed 0 --json out.json --plot out.png

Value syntax: ``--nt 4``, ``4:8`` (every Nt from 4 to 8) or ``4,8``; ``--snr
8,11,14`` or ``start:step:stop`` (stop included); ``--rho 0.6`` or
``0.55:0.75`` (triangular per instance, mode at the upper end); detectors
take options as ``--detector kbest:k=32``.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

from gnnmimo.channels import CHANNEL_KINDS, ChannelModel


# ------------------------------------------------------------------ parsing
def parse_int_list(text: str) -> list[int]:
    """``"4"`` → [4]; ``"4:8"`` → [4, 5, 6, 7, 8]; ``"4,8"`` → [4, 8]."""
    try:
        if ":" in text:
            low, high = (int(v) for v in text.split(":"))
            if low > high:
                raise ValueError
            return list(range(low, high + 1))
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N, LOW:HIGH or N1,N2,…; got {text!r}") from None


def parse_int_range(text: str) -> tuple[int, int]:
    """``"4"`` → (4, 4); ``"4:8"`` → (4, 8) — for ranges drawn per instance."""
    values = parse_int_list(text)
    if ":" not in text and len(values) > 1:
        raise argparse.ArgumentTypeError(f"expected N or LOW:HIGH, got {text!r}")
    return values[0], values[-1]


def parse_snr_list(text: str) -> list[float]:
    """``"8,11,14"`` or ``"start:step:stop"`` (stop included) → SNRs in dB."""
    try:
        if ":" in text:
            start, step, stop = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            return [round(v, 6) for v in np.arange(start, stop + step / 2, step)]
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SNR1,SNR2,… or START:STEP:STOP in dB; got {text!r}") from None


def parse_rho(text: str) -> float | tuple[float, float]:
    """``"0.6"`` → 0.6; ``"0.55:0.75"`` → (0.55, 0.75)."""
    try:
        values = tuple(float(v) for v in text.split(":"))
    except ValueError:
        values = ()
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected RHO or LOW:HIGH, got {text!r}")
    return values[0] if len(values) == 1 else values


def add_channel_arguments(parser: argparse.ArgumentParser) -> None:
    """The system and channel options shared by ``evaluate`` and ``train``."""
    group = parser.add_argument_group("system and channel")
    group.add_argument("--qam", type=int, default=16, help="constellation order (4, 16, 64, 256)")
    group.add_argument("--channel", choices=CHANNEL_KINDS, default="iid")
    group.add_argument("--rho", type=parse_rho, default=None,
                       help="exponential correlation, RHO or LOW:HIGH (kronecker channels)")
    group.add_argument("--csi-error", type=float, default=0.0, metavar="EPS2",
                       help="relative channel-estimation error power ε² (detector sees H + E)")
    group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    group.add_argument("--precision", choices=("single", "double"), default="single")
    group.add_argument("--seed", type=int, default=0)


def channel_from_args(args: argparse.Namespace) -> ChannelModel:
    """Build the channel model, with a clear message for inconsistent options."""
    if args.channel == "iid" and args.rho is not None:
        raise SystemExit("error: --rho only applies to --channel kronecker or kronecker-rx")
    if args.channel != "iid" and args.rho is None:
        raise SystemExit(f"error: --channel {args.channel} needs --rho")
    try:
        return ChannelModel(args.channel, args.rho or 0.0, args.csi_error)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


# ----------------------------------------------------------------- evaluate
def add_evaluate_parser(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="SER/BER of detectors vs SNR on the same samples",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", action="append", default=[], metavar="NAME[:opt=val,…]",
                        help="a registered detector (repeatable); see `gnnmimo list`")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="PATH_OR_NAME",
                        help="a trained detector checkpoint, or the name of a pretrained one (repeatable)")
    parser.add_argument("--nr", type=int, required=True, help="receive antennas")
    parser.add_argument("--nt", type=parse_int_list, required=True, help="users: N, LOW:HIGH or N1,N2")
    parser.add_argument("--snr", type=parse_snr_list, required=True, help="SNRs in dB")
    add_channel_arguments(parser)
    parser.add_argument("--target-errors", type=int, default=1000)
    parser.add_argument("--max-symbols", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=2048, help="instances per batch")
    parser.add_argument("--json", help="write the records here (updated after every point)")
    parser.add_argument("--markdown", help="write a markdown table here")
    parser.add_argument("--plot", help="write a PNG plot (log SER vs SNR) here")
    parser.add_argument("--resume", action="store_true",
                        help="keep the points already in --json and run only the missing ones")
    parser.add_argument("--paired-with", metavar="NAME",
                        help="compare every detector with this one on the instances both saw (paired test)")
    parser.add_argument("--ser-target", type=float, default=1e-2,
                        help="also tabulate the SNR (interpolated) at which each curve reaches this SER")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(main=evaluate_main)


def build_detectors(args: argparse.Namespace) -> dict:
    import zoo

    detectors = {}
    try:
        for spec in args.detector:
            detectors[spec] = zoo.create_from_spec(spec, args.qam)
        if args.checkpoint:
            from gnnmimo.checkpoint import load_checkpoint

            for path in args.checkpoint:
                detector = load_checkpoint(path)
                label = detector.checkpoint_label if detector.checkpoint_label not in detectors else str(path)
                if label in detectors:
                    raise ValueError(f"two detectors would be labelled {label!r}; give each checkpoint once")
                detectors[label] = detector
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    if not detectors:
        raise SystemExit("error: give at least one --detector or --checkpoint")
    return {name: d.to(args.device).eval() for name, d in detectors.items()}


def evaluate_main(args: argparse.Namespace) -> int:
    from gnnmimo.evaluation import evaluate
    from gnnmimo.report import (atomic_write, load_json, markdown_table, paired_table, plot_ser, save_json,
                                snr_at_ser_table)
    from gnnmimo.sampling import MIMOSampler

    detectors = build_detectors(args)
    if args.paired_with is not None and args.paired_with not in detectors:
        raise SystemExit(f"error: --paired-with {args.paired_with!r} names none of the detectors {list(detectors)}")
    sampler = MIMOSampler(args.nr, max(args.nt), args.qam, channel=channel_from_args(args),
                          precision=args.precision, device=args.device)
    previous = load_json(args.json) if args.resume and args.json and os.path.exists(args.json) else []
    done = {r.key for r in previous}
    results = list(previous)

    def save(point):
        results.extend(point)
        if args.json:
            save_json(results, args.json)

    try:
        evaluate(detectors, sampler, args.nt, args.snr, args.target_errors, args.max_symbols,
                 args.batch_size, args.seed, skip=done.__contains__, on_point=save,
                 progress=not args.no_progress, reference=args.paired_with)
    except KeyboardInterrupt:
        print(f"\ninterrupted; {len(results)} records kept"
              + (f" in {args.json} (rerun with --resume to continue)" if args.json else ""), file=sys.stderr)
        return 130
    table = markdown_table(results) + "\n" + snr_at_ser_table(results, args.ser_target)
    if args.paired_with:
        table += "\n" + paired_table(results)
    print(table)
    if args.markdown:
        atomic_write(args.markdown, lambda handle: handle.write(table.encode()))
    if args.plot:
        plot_ser(results, args.plot)
    return 0


# -------------------------------------------------------------------- train
def add_train_parser(subparsers) -> None:
    from gnnmimo.training import __doc__ as doc, add_train_arguments, train_main

    parser = subparsers.add_parser("train", help="train a learned detector, with checkpoints and --resume",
                                   description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    parser.set_defaults(main=train_main)


# --------------------------------------------------------------------- list
def list_main(args: argparse.Namespace) -> int:
    import zoo

    print("\n".join(zoo.list()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gnnmimo", description="MIMO detection on graphs")
    subparsers = parser.add_subparsers(required=True, metavar="COMMAND")
    add_evaluate_parser(subparsers)
    add_train_parser(subparsers)
    subparsers.add_parser("list", help="registered detectors").set_defaults(main=list_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command. Subnormal floats (the probabilities of far constellation points, tiny
    variances) are flushed to zero meanwhile: on CPU they slow training and detection
    markedly (docs/training.md §6) and carry no information."""
    args = build_parser().parse_args(argv)
    torch.set_flush_denormal(True)
    try:
        return args.main(args)
    finally:
        torch.set_flush_denormal(False)


if __name__ == "__main__":
    sys.exit(main())
