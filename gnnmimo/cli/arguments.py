"""Argument types and option groups shared by the ``gnnmimo`` commands.

Value syntax: ``--nt 4``, ``4:8`` (every Nt from 4 to 8) or ``4,8``; ``--snr
8,11,14`` or ``start:step:stop`` (stop included); ``--rho 0.6`` or
``0.55:0.75`` (triangular per instance, mode at the upper end); detectors
take options as ``--detector kbest:k=32``.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from gnnmimo.channels import CHANNEL_KINDS, ChannelModel


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
    """``"8,11,14"`` or ``"start:step:stop"`` (stop included) → SNRs in dB, each once (a repeated
    SNR would give two records of the same point)."""
    try:
        if ":" in text:
            start, step, stop = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            values = [round(v, 6) for v in np.arange(start, stop + step / 2, step)]
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SNR1,SNR2,… or START:STEP:STOP in dB; got {text!r}") from None
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"SNR {', '.join(f'{v:g}' for v in repeated)} dB given more than once "
                                         f"in {text!r}")
    return values


def positive_float(text: str) -> float:
    """A number > 0 (e.g. ``--time-limit`` minutes: 0 or less would stop a run after its first step)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


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


def parse_snr_option(text: str) -> tuple[str | tuple | dict, tuple[float, float] | None]:
    """``"auto"``, ``"auto:1e-1:1e-3"`` (LMMSE SER targets), ``"LOW:HIGH"`` dB, or per Nt
    ``"4=8:23.5,8=10:30.5"`` → ``(snr, targets)``."""
    def bounds(item: str) -> tuple[float, float]:
        low, high = (float(v) for v in item.split(":"))
        if low > high:
            raise ValueError(item)
        return low, high

    parts = text.split(":")
    try:
        if parts[0] == "auto" and len(parts) in (1, 3):
            return "auto", (tuple(float(v) for v in parts[1:]) or None)
        if "=" in text:
            return {int(nt): bounds(item) for nt, item in (part.split("=") for part in text.split(","))}, None
        return bounds(text), None
    except ValueError:
        pass
    raise argparse.ArgumentTypeError("expected auto, auto:SER_LOW_END:SER_HIGH_END, LOW:HIGH dB or "
                                     f"NT=LOW:HIGH,NT=LOW:HIGH; got {text!r}")
