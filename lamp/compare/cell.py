"""One cell of a comparison grid: its folder name and its record, a row of comparison.json."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamp.checks import text_hint
from lamp.errors import ConfigError

REPORT = "comparison.json"
"""The report's rows, one per cell, in a grid's output folder."""
LOCAL_SETTINGS = ("out", "resume", "overwrite", "data_dir")
"""Settings that say where a cell ran, not what it ran (the data folder holds the same official files wherever it
is): not compared between a cell and its grid, and left out of a report row's `config`."""


def check_cell_part(what: str, name: object) -> str:
    """`name` (a task or method label) if it can be part of a cell's folder name, else a ConfigError naming `what`:
    a path separator would put the cell outside the grid folder (`../x`) or nest it (`a/b`)."""
    if not isinstance(name, str):
        raise ConfigError(f"{what} must be text, got {name!r}{text_hint(name)}")
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(
            f"{what} is {name!r}, which cannot be part of a cell's folder name: rename it without / or \\ "
            "(letters, digits, - and _)"
        )
    return name


def lr_tag(lr: float) -> str:
    """A learning rate's part of a cell's folder name (6 significant digits: `lr0.03`, `lr1e-05`)."""
    return f"lr{lr:g}"


def cell_name(task: str, label: str, lr: float | None, seed: int) -> str:
    """A trained cell's folder name; a floor (no learning rate) is `<task>-<floor>-s<seed>`."""
    return f"{task}-{label}-s{seed}" if lr is None else f"{task}-{label}-{lr_tag(lr)}-s{seed}"


@dataclass
class Cell:
    """A finished (or failed) cell of the grid, or a floor. Its fields, in this order, are the keys of one row of
    comparison.json; scores are the task metric on a 0-100 scale, None where the cell failed."""

    task: str
    method: str
    """The row's label in the table (a recipe label such as `pt-25`, or a floor's name)."""
    base_method: str
    """The registered method (or the floor) the label stands for."""
    seed: int
    lr: float | None
    """None for a floor, which trains nothing."""
    trainable_params: int | None = None
    effective_trainable_params: int | None = None
    """LAMP: the parameters that reach the prompt (U's pooled block means); None where equal to the nominal count."""
    validation_score: float | None = None
    test_score: float | None = None
    test_metrics: dict[str, Any] | None = None
    test_predictions: dict[str, int] = field(default_factory=dict)
    """How many test rows were predicted as each label (the label's index, as text)."""
    collapsed: bool = False
    """Every test row got the same prediction."""
    best_step: int | None = None
    steps: int | None = None
    validation_curve: list[list[float]] | None = None
    """[step, validation score] at each evaluation; None for floors and for rows written before it was kept."""
    wall_s: float | None = None
    """The cell's own training and evaluation time, in seconds."""
    selected: bool = False
    """Trained at the learning rate selected on validation (floors: always)."""
    error: str | None = None
    """Why the cell failed (its loss diverged); None for a finished cell."""
    cell: str = ""
    """The cell's folder name under OUT/cells (see `cell_name`)."""
    trained_now: bool = False
    """Trained by this invocation, not read back."""
    floor: bool = False
    below_floor: bool | None = None
    """Test score at or below the `none` floor's on the same task and seed; None without that floor or a score."""
    config: dict[str, Any] | None = None
    """The cell's `lamp train` settings as its results.json holds them, less LOCAL_SETTINGS: what `--reuse` checks a
    row against. None in rows written before they were kept."""

    @classmethod
    def from_results(
        cls, task: str, label: str, method: str, lr: float | None, seed: int, results: dict[str, Any]
    ) -> Cell:
        """The record of a run from its results.json (or a failed run's {"error": ...})."""
        predictions = results.get("test_predictions") or {}
        return cls(
            task=task,
            method=label,
            base_method=method,
            seed=seed,
            lr=lr,
            trainable_params=results.get("trainable_params"),
            effective_trainable_params=results.get("effective_trainable_params"),
            validation_score=(results.get("validation") or {}).get("score"),
            test_score=(results.get("test") or {}).get("score"),
            test_metrics=results.get("test"),
            test_predictions=predictions,
            collapsed=len(predictions) == 1,
            best_step=results.get("best_step"),
            steps=results.get("steps"),
            validation_curve=results.get("validation_curve"),
            wall_s=results.get("wall_s"),
            error=results.get("error"),
            cell=cell_name(task, label, lr, seed),
            config=_without_local_settings(results.get("config")),
        )

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Cell:
        """A row of comparison.json; rows written before `effective_trainable_params`, `floor`, `below_floor`,
        `validation_curve` and `config` existed get their defaults."""
        return cls(**row)

    def to_json(self) -> dict[str, Any]:
        """The row of comparison.json (the fields in order; JSON-ready values)."""
        return dataclasses.asdict(self)


def _without_local_settings(config: Any) -> Any:
    """A cell's settings without LOCAL_SETTINGS (a machine's paths have no place in a committed report)."""
    return {k: v for k, v in config.items() if k not in LOCAL_SETTINGS} if isinstance(config, dict) else config


def read_report(path: str | os.PathLike[str]) -> dict[str, Cell]:
    """The rows of a comparison.json (`lamp compare`'s report; a folder: the one it holds) by cell name, or
    ConfigError naming the file when it is not one: missing, not JSON, not a non-empty list of rows, a row that is
    not a cell's record (`is_record`), or one cell twice."""
    fix = "pass the comparison.json of an earlier `lamp compare` run, e.g. benchmarks/results/quality/comparison.json"
    if not os.fspath(path):  # Path("") is the current folder
        raise ConfigError(f"--reuse is empty: {fix}")
    if Path(path).is_dir():  # a grid's output folder stands for its report
        path = Path(path) / REPORT
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--reuse {path} does not exist: {fix}") from None
    except (OSError, ValueError, RecursionError) as error:
        raise ConfigError(f"--reuse {path} cannot be read as JSON ({error}): {fix}") from None
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"--reuse {path} is not a comparison.json (a non-empty list of cell rows): {fix}")
    cells: dict[str, Cell] = {}
    for number, row in enumerate(rows, 1):
        try:
            cell = Cell.from_json(row) if isinstance(row, dict) else None
        except TypeError:  # a missing or unknown key
            cell = None
        if cell is None or not is_record(cell):
            raise ConfigError(f"--reuse {path}: row {number} is not a cell's record (its keys or their types): {fix}")
        if cell.cell in cells:  # the later row would silently win
            raise ConfigError(f"--reuse {path}: cell {cell.cell} has two rows: keep one")
        cells[cell.cell] = cell
    return cells


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or check(value)


def _is_pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value)


_FIELD_CHECKS: dict[str, Callable[[object], bool]] = {
    **dict.fromkeys(("task", "method", "base_method", "cell"), lambda v: isinstance(v, str)),
    "seed": lambda v: isinstance(v, int) and not isinstance(v, bool),
    **dict.fromkeys(
        ("lr", "trainable_params", "effective_trainable_params", "validation_score", "test_score", "best_step")
        + ("steps", "wall_s"),
        _optional(_number),
    ),
    **dict.fromkeys(("test_metrics", "config"), _optional(lambda v: isinstance(v, dict))),
    "test_predictions": lambda v: isinstance(v, dict) and all(_number(n) for n in v.values()),
    **dict.fromkeys(("collapsed", "selected", "trained_now", "floor"), lambda v: isinstance(v, bool)),
    "below_floor": _optional(lambda v: isinstance(v, bool)),
    "error": _optional(lambda v: isinstance(v, str)),
    "validation_curve": _optional(lambda v: isinstance(v, list) and all(_is_pair(p) for p in v)),
}


def is_record(cell: Cell) -> bool:
    """Whether a row read from JSON holds a cell record: each field of its type (numbers finite), either a test
    score or an error (a floor never fails), the test score its metrics give (`score`), and the cell name of its
    task, method, lr and seed."""
    return (
        all(check(getattr(cell, name)) for name, check in _FIELD_CHECKS.items())
        and (cell.error is None) == (cell.test_score is not None)
        and (not cell.test_metrics or cell.test_metrics.get("score") == cell.test_score)
        and not (cell.floor and cell.error)
        and cell.cell == cell_name(cell.task, cell.method, cell.lr, cell.seed)
    )
