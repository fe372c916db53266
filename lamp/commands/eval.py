"""`lamp eval`: score a saved adapter on a task split."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lamp.checks import POSITIVE_INT, SEED
from lamp.scoring import SCORER_HELP, SCORERS

SPLITS = ("train", "validation", "test")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("eval", help="score a saved adapter on a task", description=__doc__)
    parser.add_argument("--adapter", required=True, help="adapter folder (from lamp train: OUT/adapter)")
    parser.add_argument(
        "--task",
        help="task name or task YAML file (default: the adapter's own task; a user task is rebuilt from its adapter)",
    )
    parser.add_argument("--split", default="test", choices=SPLITS, help="split to score (default: test)")
    parser.add_argument("--data-dir", help="folder with the official task files")
    parser.add_argument(
        "--seed",
        type=SEED,
        help="split seed (default: the one the adapter was trained with, on its own task; else 42). Another seed "
        "can put the adapter's training rows in the split",
    )
    parser.add_argument("--scorer", default="auto", choices=SCORERS, help=SCORER_HELP)
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=32, help="examples per batch (default: 32)")
    parser.add_argument(
        "--max-length",
        type=POSITIVE_INT,
        help="maximum source tokens (default: the adapter's training --max-length on its own task; else 256)",
    )
    parser.add_argument("--model", help="backbone (default: the one named in the adapter)")
    parser.add_argument(
        "--format",
        choices=("auto", "t5", "natural"),
        help="input format (default: the one the adapter was trained in; t5 for adapters saved before formats)",
    )
    parser.add_argument(
        "--chat-template",
        action=argparse.BooleanOptionalAction,
        help="put inputs in the model's chat template (default: as the adapter was trained)",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lamp.adapter import read_adapter_config
    from lamp.evaluation import evaluate_adapter

    metrics = evaluate_adapter(
        args.adapter,
        args.task,
        args.split,
        args.data_dir,
        args.seed,
        args.scorer,
        args.batch_size,
        args.max_length,
        model=args.model,
        format=args.format,
        chat_template=args.chat_template,
    )
    if args.json:
        print(json.dumps(metrics))
    else:
        task = args.task or read_adapter_config(args.adapter).get("task")
        print(f"{task} {args.split}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    return 0
