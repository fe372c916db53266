"""`lamp compare`: train every method of a grid under one harness and write the paper-style comparison table.

Flags come from `CompareOptions` through `lamp.cli_options` (the path every command's dataclass takes); `--config`
is the recipe (`lamp.compare.load_recipe`), whose keys the grid flags override.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from lamp.checks import POSITIVE_INT
from lamp.cli_options import add_config_flags, counted, flag_values, key_value, key_value_pairs


@dataclass
class CompareOptions:
    """The flags of `lamp compare`; unset grid flags leave the recipe's value (or the grid's default)."""

    tasks: list[str] | None = None
    """tasks: built-in names or task YAML files (your own data), e.g. sst2 rte my_task.yaml (default: polarity)"""
    methods: list[str] | None = None
    """registered methods or recipe labels (default: lamp pt)"""
    seeds: list[int] | None = None
    """seeds (default: 0)"""
    sweep_seeds: int | None = None
    """run the learning-rate sweep on the first N seeds only; the other seeds run the selected rate (default: all)"""
    sweep_tasks: list[str] | None = None
    """run the learning-rate sweep on these tasks only and use each method's selected rate on every task (default:
    select per task)"""
    model: str | None = None
    """backbone for every cell (default: smollm2-135m)"""
    max_steps: int | None = None
    """optimizer steps of every cell (default: 150)"""
    lrs: list[str] | None = None
    """learning-rate sweep per method, METHOD=LR[,LR...], e.g. lamp=0.01,0.03 lora=3e-4,1e-3 (default: 0.03)"""
    data_dir: str | None = None
    """folder with the official task files, e.g. ../shared/data"""
    train: list[tuple[str, Any]] | None = None
    """a `lamp train` option shared by every cell, KEY=VALUE, e.g. --train batch_size=8 (repeatable)"""
    out: str | None = None
    """output folder (default: the recipe's out, else runs/compare)"""
    quick: bool = False
    """the recipe's quick version (its `quick:` entry; without one: first seed, first lr per method, at most 20 steps
    and 64 validation examples)"""
    reuse: str | None = None
    """an earlier comparison.json (e.g. a committed one) or a grid folder holding one: its cells stand in for those
    OUT has no record of, so a grid continues on a fresh clone or another machine; each is checked against the
    recipe's settings"""
    workers: int = 1
    """cells trained at once, each in its own process (a GPU fits many small cells at once)"""
    report_only: bool = False
    """train nothing: write the report from the cells finished so far (a running or stopped grid)"""


def _train_flag(parser: Any, name: str, help_text: str) -> None:
    parser.add_argument("--train", dest=name, type=key_value, action="append", metavar="KEY=VALUE", help=help_text)


def _workers_flag(parser: Any, name: str, help_text: str) -> None:
    parser.add_argument("--workers", type=POSITIVE_INT, default=None, metavar="N", help=help_text)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare methods on tasks over seeds and learning rates (table, JSON, chart)",
        description=(
            "Run a grid of `lamp train` cells (task x method x lr x seed), select each method's learning rate per "
            "task on mean validation score, and report the test score at that rate as mean +- std over seeds in "
            "OUT/comparison.md, OUT/comparison.json, OUT/comparison.png and OUT/comparison-curves.png (validation "
            "curves). Rerunning the same command resumes: finished cells are read back, interrupted ones continue "
            "from their checkpoint; --reuse takes the cells of an earlier report. Flags override the --config "
            "recipe (see benchmarks/quality.yaml)."
        ),
    )
    parser.add_argument("--config", help="recipe YAML (keys: model, tasks, methods, seeds, max_steps, lrs, train, ...)")
    add_config_flags(parser, CompareOptions, custom={"train": _train_flag, "workers": _workers_flag})
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lamp.compare import compare, load_recipe, make_grid, parse_lrs

    options = CompareOptions(**flag_values(args, CompareOptions))
    train = key_value_pairs(options.train or [], "--train")  # the flags first: they are what the user just typed
    recipe = load_recipe(args.config) if args.config else {}
    grid = make_grid(
        recipe,
        quick=options.quick,
        tasks=options.tasks,
        methods=options.methods,
        seeds=options.seeds,
        sweep_seeds=options.sweep_seeds,
        sweep_tasks=options.sweep_tasks,
        model=options.model,
        max_steps=options.max_steps,
        lrs=parse_lrs(options.lrs or []),
        data_dir=options.data_dir,
        train=train,
        out=options.out,
        reuse=options.reuse,
    )
    if grid.sweeps_lrs:
        sweep = f"lrs swept on seed{'s' * (len(grid.sweep) != 1)} {', '.join(map(str, grid.sweep))}"
        sweep += f" of {' '.join(grid.swept_tasks)}" if grid.sweep_tasks else ""
    else:
        sweep = "one lr per method"
    shape = " x ".join(
        counted(n, noun)
        for n, noun in ((len(grid.tasks), "task"), (len(grid.methods), "method"), (len(grid.seeds), "seed"))
    )
    print(
        f"lamp compare: {counted(grid.n_cells(), 'cell')} ({shape}, {sweep}), {grid.max_steps} steps each, "
        f"into {grid.out}"
    )
    records, paths = compare(grid, report_only=options.report_only, workers=options.workers)
    print()
    print(paths["markdown"].read_text().split("\n## ")[0].rstrip())
    print(f"\nsaved: {paths['markdown']}, {paths['json']}, {paths['chart']}, {paths['curves']}")
    return 0
