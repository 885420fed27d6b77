"""Argument types and option groups shared by the ``gnnmimo`` commands.

Value syntax: ``--nt 4``, ``4:8`` (every Nt from 4 to 8) or ``4,8``; ``--snr
8,11,14`` or ``start:step:stop`` (stop included); ``--rho 0.6`` or
``0.55:0.75`` (triangular per instance, mode at the upper end); detectors
take options as ``--detector kbest:k=32``.
"""
from __future__ import annotations

import argparse
import math
import os
from typing import Callable

import numpy as np
import torch

from gnnmimo.channels import CHANNEL_KINDS, ChannelModel
from gnnmimo.constellation import SUPPORTED_ORDERS
from gnnmimo.sampling import usable_device
from gnnmimo.tr38901 import ESTIMATORS, SCENARIOS, TR38901Channel

#: the most values one ``--nt`` or ``--snr`` list may hold: a slip such as ``--snr 0:1e-9:1``
#: (10⁹ points) is refused before the list is built
MAX_LIST_VALUES = 10_000


def number_type(convert: Callable[[str], float], description: str,
                accept: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse ``type``: ``convert(text)``, refused unless ``accept(value)`` with the message
    ``expected DESCRIPTION, got 'TEXT'`` (argparse names the option)."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = math.nan
        if not accept(value):   # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}")
        return value
    return parse


positive_int = number_type(int, "an integer >= 1", lambda value: value >= 1)
non_negative_int = number_type(int, "an integer >= 0", lambda value: value >= 0)
#: > 0 (e.g. ``--time-limit`` minutes: 0 or less would stop a run after its first step); inf allowed
positive_float = number_type(float, "a number > 0", lambda value: value > 0)
non_negative_float = number_type(float, "a finite number >= 0", lambda value: 0 <= value < math.inf)
fraction = number_type(float, "a number between 0 and 1 (both excluded)", lambda value: 0 < value < 1)


def _check_length(count: float, text: str) -> None:
    if not count <= MAX_LIST_VALUES:
        raise argparse.ArgumentTypeError(f"{text!r} gives {count:.3g} values, more than the {MAX_LIST_VALUES} "
                                         "one list may hold (is the step right?)")


def parse_int_list(text: str) -> list[int]:
    """User counts: ``"4"`` → [4]; ``"4:8"`` → [4, 5, 6, 7, 8]; ``"4,8"`` → [4, 8]; every count >= 1."""
    try:
        if ":" in text:
            low, high = (int(v) for v in text.split(":"))
            if low > high:
                raise ValueError
            _check_length(high - low + 1, text)
            values = list(range(low, high + 1))
        else:
            values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N, LOW:HIGH or N1,N2,…; got {text!r}") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"user counts must be >= 1, got {text!r}")
    return values


def parse_int_range(text: str) -> tuple[int, int]:
    """``"4"`` → (4, 4); ``"4:8"`` → (4, 8) — for ranges drawn per instance."""
    values = parse_int_list(text)
    if ":" not in text and len(values) > 1:
        raise argparse.ArgumentTypeError(f"expected N or LOW:HIGH, got {text!r}")
    return values[0], values[-1]


def parse_snr_list(text: str) -> list[float]:
    """``"8,11,14"`` or ``"start:step:stop"`` (stop included) → SNRs in dB, finite, each once (a repeated
    SNR would give two records of the same point)."""
    try:
        numbers = [float(v) for v in text.split(":" if ":" in text else ",")]
        if not all(map(math.isfinite, numbers)):
            raise ValueError
        if ":" in text:
            start, step, stop = numbers
            if step <= 0 or stop < start:
                raise ValueError
            _check_length((stop - start) / step + 1, text)   # before np.arange builds it
            values = [round(v, 6) for v in np.arange(start, stop + step / 2, step)]
        else:
            values = numbers
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected finite SNR1,SNR2,… or START:STEP:STOP (STEP > 0) in dB; got {text!r}") from None
    _check_length(len(values), text)
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"SNR {', '.join(f'{v:g}' for v in repeated)} dB given more than once "
                                         f"in {text!r}")
    return values


def parse_device(text: str) -> str:
    """A torch device this machine can use (``cpu``, ``cuda``, ``cuda:1``, …), checked before any work."""
    try:
        usable_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def parse_rho(text: str) -> float | tuple[float, float]:
    """``"0.6"`` → 0.6; ``"0.55:0.75"`` → (0.55, 0.75), with ``0 <= LOW <= HIGH < 1``."""
    try:
        values = tuple(float(v) for v in text.split(":"))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or not 0 <= values[0] <= values[-1] < 1:
        raise argparse.ArgumentTypeError(f"expected RHO or LOW:HIGH with 0 <= LOW <= HIGH < 1, got {text!r}")
    return values[0] if len(values) == 1 else values


def add_channel_arguments(parser: argparse.ArgumentParser) -> None:
    """The system and channel options shared by ``evaluate`` and ``train``."""
    group = parser.add_argument_group("system and channel")
    group.add_argument("--qam", type=int, choices=SUPPORTED_ORDERS, default=16, help="constellation order")
    group.add_argument("--channel", choices=CHANNEL_KINDS + SCENARIOS, default="iid",
                       help="i.i.d., Kronecker, or a 3GPP TR 38.901 model through Sionna (umi, uma, rma, cdl-a…e, "
                            "tdl-a…e: one OFDM resource element per instance, gnnmimo/tr38901.py)")
    group.add_argument("--speed", type=non_negative_float, default=None, help="3GPP channels: user speed, m/s (3)")
    group.add_argument("--carrier-frequency", type=non_negative_float, default=None, metavar="HZ",
                       help="3GPP channels: carrier frequency in Hz (3.5e9)")
    group.add_argument("--delay-spread", type=non_negative_float, default=None, metavar="SECONDS",
                       help="CDL and TDL channels: the delay spread, s (100e-9)")
    group.add_argument("--channel-estimation", choices=[e for e in ESTIMATORS if e], default=None,
                       help="3GPP channels: the detectors see Sionna's LS or LMMSE estimate from pilots "
                            "(gnnmimo/tr38901.py)")
    group.add_argument("--rho", type=parse_rho, default=None,
                       help="exponential correlation, RHO or LOW:HIGH in [0, 1) (kronecker channels; within a set for "
                            "orthogonal-sets, whose sets are 4 users)")
    group.add_argument("--csi-error", type=non_negative_float, default=0.0, metavar="EPS2",
                       help="relative channel-estimation error power ε² >= 0 (detector sees H + E)")
    group.add_argument("--seed", type=int, default=0)
    add_compute_arguments(parser)


#: ``--precision`` → (the sampled batches' precision, the learned blocks' compute precision)
PRECISION_CHOICES = {"fp64": ("double", "fp32"), "fp32": ("single", "fp32"), "bf16": ("single", "bf16"),
                     "fp16": ("single", "fp16"), "double": ("double", "fp32"), "single": ("single", "fp32")}


def default_threads() -> int:
    """One CPU fewer than this process may use (at least 1, at most torch's own default): torch's
    default takes every core, and on a shared machine a second busy process then slows every step
    many times over (measured up to 25x on two cores, docs/speed.md). Under ``torchrun`` the ranks
    of a node share its CPUs: each takes its part (``LOCAL_WORLD_SIZE`` ranks per node)."""
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    cpus = len(os.sched_getaffinity(0))
    return max(1, min(torch.get_num_threads(), cpus // ranks if ranks > 1 else cpus - 1))


def add_compute_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how the work runs: device, precision, threads, compilation (every command)."""
    group = parser.add_argument_group("compute")
    group.add_argument("--device", type=parse_device, default="cuda" if torch.cuda.is_available() else "cpu")
    group.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32",
                       help="fp64: double-precision batches; fp32 (default); bf16 / fp16: float32 batches, "
                            "the learned blocks' matrix products under autocast (fp16: CUDA only); "
                            "single / double: fp32 / fp64")
    group.add_argument("--threads", type=positive_int, default=default_threads(),
                       help="torch CPU threads (default: one fewer than the CPUs available, at least 1)")
    group.add_argument("--compile", action="store_true",
                       help="torch.compile the detectors (dynamic shapes; the first batch compiles)")


def apply_compute_arguments(args: argparse.Namespace, detectors) -> None:
    """Set the learned ``detectors``' compute precision and compile them, as the arguments ask;
    a precision the device cannot use is an ``error:``."""
    compute = PRECISION_CHOICES[args.precision][1]
    try:
        for detector in detectors:
            if compute != "fp32" and any(True for _ in detector.parameters()):
                detector.set_precision(compute)
            if args.compile:
                detector.compile()
    except ValueError as error:
        raise SystemExit(f"error: --precision {args.precision}: {error}") from None


def channel_from_args(args: argparse.Namespace) -> ChannelModel | TR38901Channel:
    """Build the channel model, with a clear message for inconsistent options."""
    scenario = {key: value for key, value in (("speed", args.speed), ("carrier_frequency", args.carrier_frequency),
                                              ("estimation", args.channel_estimation),
                                              ("delay_spread", args.delay_spread)) if value is not None}
    if args.channel in SCENARIOS:
        if args.rho is not None:
            raise SystemExit(f"error: --rho does not apply to the 3GPP channel {args.channel}")
        try:
            return TR38901Channel(args.channel, csi_error=args.csi_error, **scenario)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
    if scenario:
        option = {"estimation": "channel-estimation"}.get(next(iter(scenario)), next(iter(scenario)).replace("_", "-"))
        raise SystemExit(f"error: --{option} only applies to the 3GPP channels "
                         f"{', '.join(SCENARIOS)}")
    if args.channel == "iid" and args.rho is not None:
        raise SystemExit("error: --rho only applies to --channel kronecker, kronecker-rx or orthogonal-sets")
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
        if not -math.inf < low <= high < math.inf:
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
                                     f"NT=LOW:HIGH,NT=LOW:HIGH (finite, LOW <= HIGH); got {text!r}")
