"""A grid's report: the per-method summary, the paired comparison, comparison.md, .png, -curves.png and .json."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamp.adapter import atomic_write
from lamp.compare.cell import REPORT, Cell
from lamp.floors import BARE, MAJORITY

if TYPE_CHECKING:
    from lamp.compare.recipe import Recipe

TABLE, CHART, CURVES = "comparison.md", "comparison.png", "comparison-curves.png"


@dataclass
class Stat:
    """Test scores (0-100) of one method over seeds: on one task at its selected lr, or averaged over tasks."""

    mean: float
    std: float
    """Sample std over seeds; 0.0 for one seed."""
    n: int
    """Seeds."""
    collapsed: int = 0
    """Seeds whose run predicted one class on the whole test set."""
    below_floor: int = 0
    """Seeds that scored at or below the `none` floor."""
    lr: float | None = None
    validation: float | None = None
    """Mean validation score at `lr`."""
    seeds: dict[int, float] = field(default_factory=dict)
    """Test score per seed."""


@dataclass
class Row:
    """One method's line of the table: its parameter counts, a `Stat` per task, the average over tasks."""

    params: int | None = None
    effective: int | None = None
    tasks: dict[str, Stat] = field(default_factory=dict)
    average: Stat | None = None
    """Over the seeds every task has: the per-seed mean over tasks, then mean and std over seeds."""


@dataclass
class Summary:
    methods: list[str]
    """Trained methods in grid order (the first is the paired comparison's reference), the floors last."""
    tasks: list[str]
    table: dict[str, Row]


@dataclass
class Paired:
    """The grid's first method against `method` over the (task, seed) cells both finished."""

    method: str
    pairs: int
    mean: float
    """Mean of the first method's test score minus `method`'s."""
    std: float
    p: float | None
    """Paired t-test, two-sided; None when every difference is equal."""
    tasks_higher: int
    """Tasks on which the first method's mean is higher."""
    tasks: int


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary(cells: list[Cell]) -> Summary:
    """Per method and task: the selected cells' test mean, std, seeds, collapsed seeds, lr, validation mean."""
    methods = list(dict.fromkeys(c.method for c in sorted(cells, key=lambda c: c.floor)))
    tasks = list(dict.fromkeys(c.task for c in cells))
    table: dict[str, Row] = {}
    for method in methods:
        row = Row()
        for task in tasks:
            chosen = [c for c in cells if c.method == method and c.task == task and c.selected]
            row.params = row.params or next((c.trainable_params for c in chosen), None)
            row.effective = row.effective or next((c.effective_trainable_params for c in chosen), None)
            if not chosen:
                continue
            mean, std = _mean_std([c.test_score for c in chosen])
            row.tasks[task] = Stat(
                mean=mean,
                std=std,
                n=len(chosen),
                collapsed=sum(c.collapsed for c in chosen),
                below_floor=sum(bool(c.below_floor) for c in chosen),
                lr=chosen[0].lr,
                validation=statistics.fmean(c.validation_score for c in chosen),
                seeds={c.seed: c.test_score for c in chosen},
            )
        if tasks and all(t in row.tasks for t in tasks):
            common = set.intersection(*(set(row.tasks[t].seeds) for t in tasks))
            if common:  # the average per seed over tasks, then mean and std over seeds
                per_seed = [statistics.fmean(row.tasks[t].seeds[s] for t in tasks) for s in sorted(common)]
                mean, std = _mean_std(per_seed)
                row.average = Stat(mean, std, len(per_seed))
        table[method] = row
    return Summary(methods, tasks, table)


def paired_differences(cells: list[Cell]) -> list[Paired]:
    """The grid's first method against each other one, on the selected cells they share (same task and seed).

    Pairing removes the task (and seed) effect that the averages' std still carries. A method with fewer than two
    pairs is left out.
    """
    from scipy.stats import ttest_rel

    s = summary(cells)
    if len(s.methods) < 2:
        return []
    reference, *others = s.methods
    first = s.table[reference].tasks
    rows = []
    for method in others:
        other = s.table[method].tasks
        tasks = [t for t in s.tasks if t in first and t in other]
        pairs = [(first[t].seeds[k], other[t].seeds[k]) for t in tasks for k in first[t].seeds if k in other[t].seeds]
        if len(pairs) < 2:
            continue
        mean, std = _mean_std([a - b for a, b in pairs])
        # identical differences have no spread: float noise in std (1e-15) would give a spurious p of 0
        p = float(ttest_rel(*zip(*pairs, strict=True)).pvalue) if std > 1e-9 else None
        wins = sum(first[t].mean > other[t].mean for t in tasks)
        rows.append(Paired(method, len(pairs), mean, std, p, wins, len(tasks)))
    return rows


def _score(entry: Stat | None) -> str:
    if entry is None:
        return "-"
    # one seed has no spread to show; "± 0.0" would claim one
    text = f"{entry.mean:.1f} ± {entry.std:.1f}" if entry.n > 1 else f"{entry.mean:.1f} (1 seed)"
    if entry.collapsed:
        text += f" ⚠{entry.collapsed}/{entry.n}"
    if entry.below_floor:
        text += f" ▽{entry.below_floor}/{entry.n}"
    return text


def _lr(lr: float | None) -> str:
    return "-" if lr is None else format(lr, "g")


def _table(header: list[str], align: str, rows: Iterable[list[str]]) -> list[str]:
    """A markdown table's lines; `align` has one character per column: l (left) or r (right)."""
    rule = "".join("---|" if a == "l" else "---:|" for a in align)
    return ["| " + " | ".join(header) + " |", "|" + rule, *("| " + " | ".join(row) + " |" for row in rows)]


FLOOR_LEGEND = {
    BARE: f"`{BARE}` (the backbone zero-shot, same format and scorer)",
    MAJORITY: f"`{MAJORITY}` (the train split's most frequent label)",
}


def markdown(cells: list[Cell], grid: Recipe, info: dict[str, Any]) -> str:
    """comparison.md: the paper-style table, the selected learning rates, every cell, failures.

    info: cells_total, wall_s, trained, cells_wall_s, load_start, load_end (see `lamp.compare.run.compare`)."""
    s = summary(cells)
    tasks, table = s.tasks, s.table
    seeds = sorted({c.seed for c in cells})
    sweep = sorted({c.seed for c in cells if c.seed in grid.sweep})
    selection = (
        f"per method on the mean validation score of {', '.join(grid.sweep_tasks)}"
        if grid.sweep_tasks
        else "per task on the mean validation score"
    )
    rate = (
        f"the learning rate selected {selection} over seed{'s' * (len(sweep) > 1)} {', '.join(map(str, sweep))}"
        if grid.sweeps_lrs
        else "each method's one learning rate"
    )
    floors = [f for f in FLOOR_LEGEND if any(c.floor and c.method == f for c in cells)]
    below = (  # the mark compares with the `none` floor, so it is explained only where that row is
        f"; ▽k/n: k of the n runs scored at or below the bare backbone with no prompt (row `{BARE}`) on the same test "
        "split"
        if BARE in floors
        else ""
    )
    lines = [
        f"# Method comparison on {grid.model}",
        "",
        f"Test score (task metric, 0-100) at {rate}; "
        f"mean ± std over seeds {', '.join(map(str, seeds))} ({len(seeds)} seed{'s' * (len(seeds) > 1)}); "
        f"{grid.max_steps} steps for every method. ⚠k/n: k of the n runs predicted a single class on the whole test "
        f"set (collapsed){below}; their scores are included in the mean. Trainable parameters are the nominal count; "
        "in brackets the effective one where it differs (LAMP: only U's pooled block means reach the prompt)."
        + (f" Floors, trained on nothing: {'; '.join(FLOOR_LEGEND[f] for f in floors)}." if floors else ""),
    ]
    if len(cells) < info.get("cells_total", len(cells)):
        lines += ["", f"**Partial grid: {len(cells)} of {info['cells_total']} cells finished.**"]
    main_rows = []
    for method, row in table.items():
        params = f"{row.params:,}" if row.params else "-"
        if row.effective and row.effective != row.params:  # LAMP: U's pooled block means only
            params += f" ({row.effective:,})"
        main_rows.append([method, params, *(_score(row.tasks.get(t)) for t in tasks), _score(row.average)])
    lines += [
        "",
        *_table(["Method", "Trainable params (effective)", *tasks, "Avg"], "lr" + "r" * len(tasks) + "r", main_rows),
    ]
    rates = [
        [method, *(f"{_lr(e.lr)} ({e.validation:.1f})" if (e := row.tasks.get(t)) else "-" for t in tasks)]
        for method, row in table.items()
    ]
    lines += [
        "",
        "## Selected learning rates (mean validation score at that rate over every seed that ran it; the rate was "
        "chosen on the sweep's seeds)",
        "",
    ]
    lines += _table(["Method", *tasks], "l" * (len(tasks) + 1), rates)
    differences = paired_differences(cells)
    if differences:
        reference = s.methods[0]
        lines += [
            "",
            f"## {reference} against each method (paired on task and seed)",
            "",
            f"Difference = {reference}'s test score minus the method's, over the (task, seed) cells both finished; "
            "p: paired t-test, two-sided. A p above 0.05 means the difference does not exceed the seed-to-seed noise.",
            "",
        ]
        header = ["Method", "Pairs", "Mean difference", "Std", "p", f"Tasks where {reference} is higher"]
        pairs = [
            [
                d.method,
                str(d.pairs),
                f"{d.mean:+.1f}",
                f"{d.std:.1f}",
                "-" if d.p is None else f"{d.p:.3f}",
                f"{d.tasks_higher} of {d.tasks}",
            ]
            for d in differences
        ]
        lines += _table(header, "lrrrrr", pairs)
    ordered = sorted(cells, key=lambda c: (c.task, s.methods.index(c.method), c.lr or 0, c.seed))
    every = [
        [
            c.task,
            c.method,
            _lr(c.lr),
            str(c.seed),
            "-" if c.validation_score is None else f"{c.validation_score:.2f}",
            "-" if c.test_score is None else f"{c.test_score:.2f}",
            c.error or ", ".join(f"{k}: {v}" for k, v in c.test_predictions.items()),
            "yes" if c.selected else "",
        ]
        for c in ordered
    ]
    header = ["Task", "Method", "lr", "Seed", "Validation", "Test", "Test predictions", "Selected"]
    lines += ["", "## Every cell", "", *_table(header, "llrrrrll", every)]
    lines += [
        "",
        "## Run",
        "",
        "- Methods: " + "; ".join(f"{m.label} = {m.method} {m.options or ''}".strip() for m in grid.methods),
        f"- Shared training options: {json.dumps(grid.train, sort_keys=True)}",
        f"- Wall time of this invocation: {info['wall_s'] / 60:.1f} min (cells trained now: {info['trained']}; "
        f"sum of all cells' own wall time: {info['cells_wall_s'] / 60:.1f} min)",
        f"- Load average (1 min) at start / end: {info['load_start']:.2f} / {info['load_end']:.2f} on "
        f"{os.cpu_count()} CPUs",
    ]
    return "\n".join(lines) + "\n"


def chart(cells: list[Cell], path: str | os.PathLike[str], title: str = "") -> None:
    """Grouped bars: one group per task (and the average), one bar per method, std over seeds as error bars;
    hatched bars contain a collapsed run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary(cells)
    groups = s.tasks + ["avg"]
    methods = s.methods
    figure, axis = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(methods)) / 3 + 3), 4))
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        row = s.table[method]
        entries = [row.tasks.get(t) for t in s.tasks] + [row.average]
        label = method
        for j, entry in enumerate(entries):
            if entry is None:
                continue
            axis.bar(
                j + (i - (len(methods) - 1) / 2) * width,
                entry.mean,
                width,
                yerr=entry.std,
                color=f"C{i}",
                hatch="//" if entry.collapsed else None,
                edgecolor="black" if entry.collapsed else None,
                capsize=2,
                label=label,
            )
            label = None  # one legend entry per method
    axis.set_xticks(range(len(groups)), groups)
    axis.set(ylabel="test score (selected lr)", title=title)
    axis.grid(axis="y", alpha=0.3)
    # below the axes: inside, it would cover the bars
    axis.legend(fontsize="small", ncols=min(len(methods), 6), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png", bbox_inches="tight")
    plt.close(figure)


def curves(cells: list[Cell], path: str | os.PathLike[str], title: str = "") -> None:
    """Validation score against step, one panel per task, one line per method at its selected learning rate (the
    mean over the seeds whose cells kept their curve, at the steps they share), the bare backbone's validation score
    (row `none`) dashed: whether a method was still rising when its budget ended. Rows without a curve (floors,
    rows written before curves were kept) are left out; a panel says so when none is left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(c.task for c in cells))
    figure, axes = plt.subplots(1, len(tasks), figsize=(max(6.5, 4.5 * len(tasks)), 3.6), squeeze=False)
    methods = list(dict.fromkeys(c.method for c in cells if not c.floor))
    for axis, task in zip(axes[0], tasks, strict=True):
        drawn = 0
        for i, method in enumerate(methods):
            runs = [
                dict(map(tuple, c.validation_curve))
                for c in cells
                if c.task == task and c.method == method and c.selected and c.validation_curve
            ]
            steps = sorted(set.intersection(*(set(run) for run in runs))) if runs else []
            if steps:
                means = [statistics.fmean(run[step] for run in runs) for step in steps]
                axis.plot(steps, means, marker="o", markersize=3, color=f"C{i}", label=f"{method} ({len(runs)})")
                drawn += 1
        bare = [c.validation_score for c in cells if c.task == task and c.method == BARE and c.validation_score]
        if bare:
            axis.axhline(statistics.fmean(bare), color="gray", linestyle="--", label=BARE)
        if not drawn:
            axis.text(0.5, 0.25, "no validation curves", ha="center", va="center", transform=axis.transAxes)
        axis.set(title=task, xlabel="step", ylabel="validation score")
        axis.xaxis.get_major_locator().set_params(integer=True)  # steps are whole
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="x-small")
    figure.suptitle(f"{title}; in brackets: seeds with a curve" if title else "in brackets: seeds with a curve")
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)


def write_report(cells: list[Cell], grid: Recipe, info: dict[str, Any]) -> dict[str, Path]:
    """comparison.json (one row per cell), comparison.md (the tables), comparison.png (test scores) and
    comparison-curves.png (validation curves) in grid.out."""
    out = Path(grid.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / REPORT, "markdown": out / TABLE, "chart": out / CHART, "curves": out / CURVES}
    text = json.dumps([cell.to_json() for cell in cells], indent=2) + "\n"
    atomic_write(paths["json"], lambda tmp: Path(tmp).write_text(text))
    table = markdown(cells, grid, info)
    atomic_write(paths["markdown"], lambda tmp: Path(tmp).write_text(table))
    title = f"{Path(grid.model).name}, {grid.max_steps} steps"  # a model folder's full path would not fit
    atomic_write(paths["chart"], lambda tmp: chart(cells, tmp, title=title))
    atomic_write(paths["curves"], lambda tmp: curves(cells, tmp, title=title))
    return paths
