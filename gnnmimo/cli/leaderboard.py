"""``gnnmimo leaderboard``: docs/leaderboard.md and docs/leaderboard.json from the shipped checkpoints.

    gnnmimo leaderboard --threads 1            # re-measure the rows of checkpoints that changed or were added
    gnnmimo leaderboard --threads 1 --all      # re-measure everything (about 15 min of CPU, one thread)
    gnnmimo leaderboard --check                # is the board in sync with the checkpoints? (no evaluation)
    gnnmimo leaderboard --quick --out-dir /tmp/board   # tiny samples, for a functional test

What is measured and how: :mod:`gnnmimo.leaderboard`. The board is written after every configuration,
so an interrupted run keeps the finished ones (and the next run measures only the rest).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gnnmimo import leaderboard
from gnnmimo.cli.arguments import positive_int

ROOT = Path(__file__).resolve().parents[2]


def add_leaderboard_parser(subparsers) -> None:
    parser = subparsers.add_parser("leaderboard", help="the shipped checkpoints beside the classical detectors",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained-dir", type=Path, default=None,
                        help="the checkpoints (*.pt) and their cards (*.md); default: the zoo's zoo/pretrained")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs",
                        help="where leaderboard.json and leaderboard.md go (default: docs/ of this checkout)")
    parser.add_argument("--all", action="store_true", help="re-measure every configuration")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny samples ({leaderboard.QUICK}), for a functional test; not for docs/")
    parser.add_argument("--check", action="store_true",
                        help="only compare the board with the checkpoints and cards (exit 1 when out of sync)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no line per swept detector")
    parser.set_defaults(main=leaderboard_main)


def leaderboard_main(args: argparse.Namespace) -> int:
    import zoo.weights  # the composition root: the zoo's detectors and its pretrained directory

    directory = args.pretrained_dir or zoo.weights.PRETRAINED_DIR
    json_path, markdown_path = args.out_dir / "leaderboard.json", args.out_dir / "leaderboard.md"
    try:
        previous = leaderboard.load(json_path)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.check:
        problems = ["no board: " + str(json_path)] if previous is None else leaderboard.out_of_sync(previous, directory)
        if previous is not None and markdown_path.is_file() and markdown_path.read_text() != leaderboard.render(previous):
            problems.append(f"{markdown_path} is not the rendering of {json_path}")
        print("\n".join(problems) or "in sync")
        return 1 if problems else 0
    if not list(Path(directory).glob("*.pt")):
        raise SystemExit(f"error: no checkpoints (*.pt) in {directory}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    settings = leaderboard.QUICK if args.quick else leaderboard.Settings()
    log = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    board = leaderboard.build(directory, previous, settings, redo_all=args.all,
                              on_entry=lambda board: leaderboard.save(board, json_path, markdown_path), log=log)
    leaderboard.save(board, json_path, markdown_path)
    print(f"wrote {json_path} and {markdown_path}")
    return 0
