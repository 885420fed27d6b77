"""The ``gnnmimo`` command line: the composition root that knows both the library and the zoo.

* ``gnnmimo evaluate`` (:mod:`gnnmimo.cli.evaluate`): SER/BER of detectors on the same samples;
* ``gnnmimo train`` (:mod:`gnnmimo.cli.train`): train a learned detector;
* ``gnnmimo sample`` (:mod:`gnnmimo.cli.sample`): write the instances ``evaluate`` would draw to a file;
* ``gnnmimo leaderboard`` (:mod:`gnnmimo.cli.leaderboard`): docs/leaderboard.{md,json} from the shipped checkpoints;
* ``gnnmimo list``: the registered detectors.

``gnnmimo --plugin MODULE COMMAND …`` (repeatable) imports a module that
registers detectors of its own first, as do the modules named in
``$GNNMIMO_PLUGINS`` and the ``gnnmimo.detectors`` entry points of installed
packages (:func:`gnnmimo.registry.import_plugins`).
"""
from __future__ import annotations

import argparse

import torch

import zoo  # noqa: F401  (registers the zoo's detectors before any command looks one up)
from gnnmimo import distributed
from gnnmimo.allocator import keep_freed_memory
from gnnmimo.cli.evaluate import add_evaluate_parser
from gnnmimo.cli.leaderboard import add_leaderboard_parser
from gnnmimo.cli.sample import add_sample_parser
from gnnmimo.cli.train import add_train_parser
from gnnmimo.registry import import_plugins, list_detectors


def list_main(args: argparse.Namespace) -> int:
    print("\n".join(list_detectors()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gnnmimo", description="MIMO detection on graphs")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import this module first: it registers detectors of its own (repeatable)")
    subparsers = parser.add_subparsers(required=True, metavar="COMMAND")
    add_evaluate_parser(subparsers)
    add_train_parser(subparsers)
    add_sample_parser(subparsers)
    add_leaderboard_parser(subparsers)
    subparsers.add_parser("list", help="registered detectors").set_defaults(main=list_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command. Subnormal floats (the probabilities of far constellation points, tiny
    variances) are flushed to zero meanwhile: on CPU they slow training and detection
    markedly (docs/training.md §6) and carry no information. Freed memory stays in the process
    (:func:`gnnmimo.allocator.keep_freed_memory`)."""
    args = build_parser().parse_args(argv)
    try:
        import_plugins(args.plugin)
    except ModuleNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    if getattr(args, "device", None):  # under torchrun: join the process group (gnnmimo.distributed)
        distributed.init_from_env(args.device)
    torch.set_flush_denormal(True)
    try:
        return args.main(args)
    finally:
        torch.set_flush_denormal(False)
        distributed.shutdown()


__all__ = ["build_parser", "main"]
