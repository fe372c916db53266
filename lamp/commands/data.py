"""`lamp data`: load a task under the evaluation protocol and print its split sizes or a few formatted examples."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lamp.checks import POSITIVE_INT, SEED

SPLITS = ("train", "validation", "test")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("data", help="show a task's splits and formatted examples", description=__doc__)
    parser.add_argument("task", help="task name, e.g. rte, sst2, cb, polarity, or a task YAML file (docs/tasks.md)")
    parser.add_argument("--data-dir", help="folder with the official task files (default: $LAMP_DATA_DIR, else hub)")
    parser.add_argument("--seed", type=SEED, default=42, help="split seed (default: 42)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help='print {"train": N, "validation": N, "test": N}')
    output.add_argument("--show", type=POSITIVE_INT, metavar="N", help="print N formatted examples (source, target)")
    parser.add_argument("--split", choices=SPLITS, help="split --show reads (default: train)")
    parser.add_argument(
        "--format",
        choices=("t5", "natural"),
        help="input format --show renders (default: t5; natural, the template, for a task YAML file)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lamp.errors import ConfigError
    from lamp.tasks import load_splits, task_of

    given = [flag for flag, value in (("--split", args.split), ("--format", args.format)) if value is not None]
    if given and not args.show:  # the sizes are the same in every format, and every split's is printed
        named = " and ".join(given)
        raise ConfigError(
            f"{named} {'apply' if len(given) > 1 else 'applies'} to --show only: add --show N, or drop {named}"
        )
    split = args.split or "train"
    splits = load_splits(task_of(args.task), args.data_dir, args.seed, format=args.format)
    sizes = {name: len(splits[name]) for name in SPLITS}
    if args.json:
        print(json.dumps(sizes))
        return 0
    print(f"{args.task}: " + ", ".join(f"{name} {size:,}" for name, size in sizes.items()))
    for i, example in enumerate(splits[split][: args.show or 0]):
        tag = f"[{split} {i}]"
        print(f"\n{tag} source: {example.source}\n{' ' * len(tag)} target: {example.target}")
    return 0
