"""``gnnmimo sample``: write the instances that ``gnnmimo evaluate`` would draw, as an instances file.

    gnnmimo sample --nr 8 --nt 4,8 --qam 16 --snr 8:3:26 --max-symbols 200000 \\
        --batch-size 2048 --seed 0 --out instances.pt

The options are ``evaluate``'s sampler options. Each point ``(Nt, SNR)`` gets the batches its
seeded stream gives ``evaluate`` up to ``--max-symbols`` (``ceil(max_symbols / (batch_size·Nt))``
batches of ``--batch-size``), so ``gnnmimo evaluate --data instances.pt`` with the same
``--max-symbols`` and ``--batch-size`` counts exactly the errors of the sampled run, whatever
``--target-errors`` (the file holds the longest prefix the sampled run could use). The file is
written atomically; the format is in docs/instances.md.
"""
from __future__ import annotations

import argparse
import itertools
import os

from gnnmimo.batch_sources import SampledBatches, stream_length
from gnnmimo.cli.evaluate import add_stream_arguments, sampler_from_args
from gnnmimo.files import check_writable
from gnnmimo.instances import InstanceSet


def add_sample_parser(subparsers) -> None:
    parser = subparsers.add_parser("sample", help="write the instances evaluate would draw to a file",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stream_arguments(parser)
    parser.add_argument("--out", required=True, help="the instances file to write (docs/instances.md)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(main=sample_main)


def sample_main(args: argparse.Namespace) -> int:
    if os.path.exists(args.out) and not args.overwrite:
        raise SystemExit(f"error: {args.out} exists: use --overwrite to replace it")
    try:
        check_writable(args.out)
    except OSError as error:
        raise SystemExit(f"error: {error}") from None
    sampler = sampler_from_args(args)
    stream = SampledBatches(sampler, args.seed)
    graphs = [graph for nt in args.nt for snr in args.snr
              for graph in itertools.islice(stream.batches(nt, snr, args.batch_size),
                                            stream_length(args.max_symbols, args.batch_size, nt))]
    instances = InstanceSet.from_graphs(graphs, channel=sampler.channel)
    instances.save(args.out)
    print(f"wrote {instances.num_instances} instances at {len(instances.points())} points to {args.out} "
          f"(sha256 of the content {instances.digest})")
    return 0
