"""`lamp compare`: train every method of a grid under one harness and write the paper-style comparison table."""

from __future__ import annotations

import argparse
from typing import Any

from lamp.checks import POSITIVE_INT
from lamp.cli_options import key_value


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare methods on tasks over seeds and learning rates (table, JSON, chart)",
        description=(
            "Run a grid of `lamp train` cells (task x method x lr x seed), select each method's learning rate per "
            "task on mean validation score, and report the test score at that rate as mean +- std over seeds in "
            "OUT/comparison.md, OUT/comparison.json and OUT/comparison.png. Rerunning the same command resumes: "
            "finished cells are read back, interrupted ones continue from their checkpoint. Flags override the "
            "--config recipe (see benchmarks/quality.yaml)."
        ),
    )
    parser.add_argument("--config", help="recipe YAML (keys: model, tasks, methods, seeds, max_steps, lrs, train, ...)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="tasks, e.g. sst2 rte (default: polarity)")
    parser.add_argument(
        "--methods", nargs="+", metavar="METHOD", help="registered methods or recipe labels (default: lamp pt)"
    )
    parser.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="seeds (default: 0)")
    parser.add_argument(
        "--sweep-seeds",
        type=int,
        metavar="N",
        help="run the learning-rate sweep on the first N seeds only; the other seeds run the selected rate "
        "(default: all seeds)",
    )
    parser.add_argument(
        "--sweep-tasks",
        nargs="+",
        metavar="TASK",
        help="run the learning-rate sweep on these tasks only and use each method's selected rate on every task "
        "(default: select per task)",
    )
    parser.add_argument("--model", help="backbone for every cell (default: smollm2-135m)")
    parser.add_argument("--max-steps", type=int, metavar="N", help="optimizer steps of every cell (default: 150)")
    parser.add_argument(
        "--lrs",
        nargs="+",
        metavar="METHOD=LR[,LR...]",
        help="learning-rate sweep per method, e.g. lamp=0.01,0.03 lora=3e-4,1e-3 (default: 0.03)",
    )
    parser.add_argument("--data-dir", help="folder with the official task files, e.g. ../shared/data")
    parser.add_argument(
        "--train",
        type=key_value,
        action="append",
        metavar="KEY=VALUE",
        help="a `lamp train` option shared by every cell, e.g. --train batch_size=8 (repeatable)",
    )
    parser.add_argument("--out", help="output folder (default: the recipe's out, else runs/compare)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the recipe's quick version (its `quick:` entry; without one: first seed, first lr per method, "
        "at most 20 steps and 64 validation examples)",
    )
    parser.add_argument(
        "--workers",
        type=POSITIVE_INT,
        default=1,
        metavar="N",
        help="cells trained at once, each in its own process (default 1; a GPU fits many small cells at once)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: write the report from the cells finished so far (a running or stopped grid)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lamp.compare import compare, load_recipe, make_grid, parse_lrs

    recipe = load_recipe(args.config) if args.config else {}
    grid = make_grid(
        recipe,
        quick=args.quick,
        tasks=args.tasks,
        methods=args.methods,
        seeds=args.seeds,
        sweep_seeds=args.sweep_seeds,
        sweep_tasks=args.sweep_tasks,
        model=args.model,
        max_steps=args.max_steps,
        lrs=parse_lrs(args.lrs or []),
        data_dir=args.data_dir,
        train=dict(args.train or []),
        out=args.out,
    )
    sweep = f"lrs swept on seed{'s' * (len(grid.sweep) > 1)} {', '.join(map(str, grid.sweep))}"
    sweep += f" of {' '.join(grid.swept_tasks)}" if grid.sweep_tasks else ""
    print(
        f"lamp compare: {grid.n_cells()} cells ({len(grid.tasks)} tasks x {len(grid.methods)} methods x "
        f"{len(grid.seeds)} seeds, {sweep}), {grid.max_steps} steps each, into {grid.out}"
    )
    records, paths = compare(grid, report_only=args.report_only, workers=args.workers)
    print()
    print(paths["markdown"].read_text().split("\n## ")[0].rstrip())
    print(f"\nsaved: {paths['markdown']}, {paths['json']}, {paths['chart']}")
    return 0
