"""``gnnmimo train``: train a learned detector, with checkpoints and ``--resume``.

    gnnmimo train --detector epgnn:refine=True,report=True --nr 8 --nt 4:8 --qam 16 \\
        --snr auto --steps 4000 --batch-size 128 --lr 1e-3 --out runs/epgnn.pt --time-limit 50

The run is :class:`gnnmimo.train.Trainer`'s (checkpoints, exact resume,
``OUT_STEM.best.pt``); the data and the SNR ranges are described in
:mod:`gnnmimo.train.config` and :mod:`gnnmimo.train.snr`, the losses in
:mod:`gnnmimo.losses`.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys

import zoo
from gnnmimo import distributed
from gnnmimo.cli.arguments import (PRECISION_CHOICES, add_channel_arguments, channel_from_args, fraction,
                                   non_negative_float, non_negative_int, parse_int_range, parse_snr_option,
                                   positive_float, positive_int)
from gnnmimo.losses import LOSS_WEIGHTS, LOSSES
from gnnmimo.registry import create, detector_class, parse_spec
from gnnmimo.checkpoint import read_checkpoint
from gnnmimo.train.config import FIELDS_ADDED_LATER, NT_MODES, SCHEDULES, TrainConfig
from gnnmimo.train.recipes import RECIPE_FIELDS, RECIPES, recipe
from gnnmimo.tr38901 import channel_fields
from gnnmimo.train.trainer import Trainer, deadline

#: classical detectors whose validation SER is logged at the start, for comparison
REFERENCES = ("mmse", "ep")


def add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a learned detector, with checkpoints and --resume",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    parser.set_defaults(main=train_main)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gnnmimo train`` (see :func:`train_main`)."""
    parser.add_argument("--detector", default="remimo", metavar="NAME[:opt=val,…]",
                        help="a registered learned detector with options, e.g. remimo:config=paper")
    parser.add_argument("--nr", type=positive_int, required=True, help="receive antennas")
    parser.add_argument("--nt", type=parse_int_range, required=True, help="users, N or LOW:HIGH")
    parser.add_argument("--nt-step", type=positive_int, default=1,
                        help="train on LOW, LOW+STEP, …, HIGH users only (e.g. 2 for even Nt)")
    parser.add_argument("--snr", type=parse_snr_option, default=("auto", None),
                        help="training SNR per Nt: auto (LMMSE SER 1e-1…1e-3), auto:1e-1:1e-3, LOW:HIGH dB, "
                             "or per Nt, e.g. 4=8:23.5,8=10:30.5")
    add_channel_arguments(parser)
    model = parser.add_argument_group("model size (detector options)")
    model.add_argument("--d-model", type=positive_int, help="state width d_s")
    model.add_argument("--heads", type=positive_int, help="attention heads")
    model.add_argument("--blocks", type=positive_int, help="iterations / EP blocks T (the detector's `blocks` "
                       "or `iterations` option)")
    run = parser.add_argument_group("optimisation (defaults: the detector family's recipe, then TrainConfig's)")
    run.add_argument("--recipe", choices=list(RECIPES),
                     help="the defaults of the options below (default: the detector's own, "
                          "gnnmimo.train.recipes); options given here override it")
    run.add_argument("--steps", type=positive_int, default=TrainConfig.steps)
    run.add_argument("--batch-size", type=positive_int, default=None)
    run.add_argument("--lr", type=positive_float, default=None)
    run.add_argument("--clip-grad-norm", type=positive_float, metavar="NORM",
                     help="clip the gradient norm (default: off)")
    run.add_argument("--schedule", choices=SCHEDULES, default=None)
    run.add_argument("--warmup", type=non_negative_int, default=None, metavar="STEPS",
                     help="linear learning-rate warm-up over the first STEPS steps (default: none)")
    run.add_argument("--init", metavar="CHECKPOINT",
                     help="start from these weights (a file or a pretrained name: fine-tuning) instead of "
                          "the detector's initialisation; the detector and its options must match")
    run.add_argument("--plateau-factor", type=fraction, default=None)
    run.add_argument("--plateau-patience", type=non_negative_int, default=None)
    run.add_argument("--nt-mode", choices=NT_MODES, default=TrainConfig.nt_mode,
                     help="one Nt per minibatch (batch, the paper) or per instance (mixed)")
    run.add_argument("--loss-weights", choices=LOSS_WEIGHTS, default=None)
    run.add_argument("--loss", choices=LOSSES, default=None,
                     help="per-symbol loss: cross-entropy (eq. 13) or soft-ser (1 - p(true symbol))")
    run.add_argument("--ce-weight", type=non_negative_float, default=None,
                     help="add this times the cross-entropy to the soft-ser loss")
    run.add_argument("--eval-every", type=positive_int, default=None)
    run.add_argument("--checkpoint-every", type=positive_int, help="default: --eval-every")
    run.add_argument("--val-size", type=positive_int, default=None)
    run.add_argument("--val-seed", type=int, default=TrainConfig.val_seed)
    parser.add_argument("--out", required=True,
                        help="checkpoint file (written atomically); OUT_STEM.best.pt keeps the lowest validation loss")
    parser.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run even if --out or OUT_STEM.best.pt exists (both are replaced)")
    parser.add_argument("--time-limit", type=positive_float, metavar="MINUTES",
                        help="stop cleanly (checkpoint saved, resumable) after this much wall time")
    parser.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A :class:`TrainConfig` from parsed ``gnnmimo train`` arguments."""
    name, options = parse_spec(args.detector)
    accepted = detector_class(name).option_names()
    for key in ("d_model", "heads", "blocks"):
        if getattr(args, key) is not None:   # --blocks sets `iterations` of unrolled detectors
            options[key if key in accepted or key != "blocks" else "iterations"] = getattr(args, key)
    if "nr" in accepted:
        options.setdefault("nr", args.nr)
    snr, targets = args.snr
    defaults = resumed_fields(args) or {key: recipe(recipe_name(args)).get(key, TrainConfig.default(key))
                                        for key in RECIPE_FIELDS}
    chosen = {key: getattr(args, key) if getattr(args, key) is not None else defaults[key] for key in RECIPE_FIELDS}
    return TrainConfig(
        detector=name, options=options, qam=args.qam, nr=args.nr, nt=args.nt, nt_step=args.nt_step,
        channel=channel_fields(channel_from_args(args)),
        snr=snr, snr_targets=targets or TrainConfig.snr_targets, nt_mode=args.nt_mode, steps=args.steps,
        **chosen, checkpoint_every=args.checkpoint_every, val_seed=args.val_seed,
        init=str(zoo.resolve(args.init)) if args.init else None,
        seed=args.seed, precision=PRECISION_CHOICES[args.precision][0],
        compute_precision=PRECISION_CHOICES[args.precision][1], device=args.device)


def resumed_fields(args: argparse.Namespace) -> dict | None:
    """With ``--resume`` and an existing ``--out``: the recipe fields of the run it holds, the defaults of
    a resumed run (a recipe may have changed since it started, or the run may predate recipes)."""
    if not (args.resume and os.path.isfile(args.out)):
        return None
    training = read_checkpoint(args.out)["training"]
    return {key: training.get(key, FIELDS_ADDED_LATER.get(key, TrainConfig.default(key))) for key in RECIPE_FIELDS}


def recipe_name(args: argparse.Namespace) -> str:
    """``--recipe``, or the one the detector's family names."""
    return args.recipe or detector_class(parse_spec(args.detector)[0]).training_recipe


def train_main(args: argparse.Namespace) -> int:
    """``gnnmimo train``: train a detector and write checkpoints to ``--out``."""
    trainer = None
    try:
        with distributed.ends_if_a_rank_dies(lambda: f"{aborted(trainer, args.out)}, with any number of ranks"):
            trainer = start_trainer(args)
            if args.compile:
                trainer.detector.compile()
            trainer.log_references({name: zoo.create(name, trainer.config.qam) for name in REFERENCES})
            trainer.run(on_step=deadline(args.time_limit))
    except KeyboardInterrupt:  # during start-up, or the second Ctrl-C: abort mid-step
        print(f"\n{aborted(trainer, args.out)}", file=sys.stderr)
        return 130
    return 130 if trainer.step < trainer.config.steps else 0


def start_trainer(args: argparse.Namespace) -> Trainer:
    """The :class:`Trainer` of the arguments (resumed from ``--out`` with ``--resume``), its SNR ranges told."""
    try:
        config = config_from_args(args)
        factory = functools.partial(create, config.detector, config.qam, **config.options)
        trainer = Trainer(config, factory, args.out, resume=args.resume, progress=not args.no_progress,
                          overwrite=args.overwrite)
    except FileExistsError as error:
        raise SystemExit(f"error: {error.filename} exists and holds another run: use --resume to continue it "
                         "or --overwrite to replace it") from None
    except (ValueError, TypeError, OSError) as error:
        raise SystemExit(f"error: {error}") from None
    if not distributed.is_main():
        return trainer
    if trainer.step:
        print(f"resuming {args.out} at step {trainer.step}", file=sys.stderr)
    ranges = ", ".join(f"{nt}: {low:g}..{high:g}" for nt, (low, high) in trainer.snr_ranges.items())
    print(f"SNR ranges (dB) by Nt: {ranges}", file=sys.stderr)
    c = trainer.config
    resumed = trainer.saved_step is not None
    print(f"recipe {'of the resumed run' if resumed else recipe_name(args)}: batch {c.batch_size}, lr {c.lr:g} ({c.schedule}, warm-up {c.warmup}), "
          f"loss {c.loss} (+{c.ce_weight:g} CE, {c.loss_weights}), clip {c.clip_grad_norm}", file=sys.stderr)
    return trainer


def aborted(trainer: Trainer | None, out: str) -> str:
    """What an aborted run leaves in ``out``: the checkpoint of some step, or none of this run yet
    (``trainer`` is ``None`` when the abort came while it was being built)."""
    when = f"at step {trainer.step}" if trainer is not None else "during start-up"
    if trainer is not None and trainer.saved_step is not None:
        return f"aborted {when}; {out} holds the checkpoint of step {trainer.saved_step} (continue with --resume)"
    unchanged = f" ({out} is unchanged)" if os.path.exists(out) else ""
    return f"aborted {when}; no checkpoint of this run was written{unchanged}"
