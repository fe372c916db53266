"""Method comparison under one harness: a grid of `lamp.train.train` runs (task x method x learning rate x seed).

Every cell shares data, scorer, schedule and evaluation; only the method and its learning rate change. Each
method's learning rate is selected per task on the mean validation score over seeds (never on test), and the
report gives the test score at that learning rate as mean +- std over seeds, like the paper's table.

Cells live in `OUT/cells/<task>-<method>-lr<lr>-s<seed>`. A grid resumes where it stopped: a cell with
`results.json` is read back, not rerun; a cell that was interrupted continues from its checkpoint; a cell whose
loss diverged (NaN or inf) is recorded in `failed.json` and reported, not retried.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamp.adapter import atomic_write
from lamp.checks import POSITIVE, POSITIVE_INT, SEED
from lamp.errors import ConfigError, TrainingError
from lamp.floors import FLOORS

RECIPE_KEYS = (
    "model",
    "tasks",
    "methods",
    "seeds",
    "sweep_seeds",
    "sweep_tasks",
    "max_steps",
    "lrs",
    "train",
    "data_dir",
    "out",
    "quick",
    "floors",
)
GRID_FIELDS = ("task", "model", "method", "method_options", "lr", "seed", "max_steps", "out", "resume", "overwrite")
"""TrainConfig fields the grid sets itself; every other field may be shared through `train:`."""
QUICK_STEPS, QUICK_EVAL = 20, 64
"""The built-in --quick shrink (for recipes without a `quick:` entry): one seed, each method's first learning
rate, at most this many steps and validation examples."""
REPORT, TABLE, CHART = "comparison.json", "comparison.md", "comparison.png"


@dataclass
class MethodSpec:
    """One row of the comparison: a label (the table's name), a registered method, its options, its lr sweep."""

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    lrs: list[float] = field(default_factory=list)


@dataclass
class Grid:
    """A comparison to run: every task x method x seed, all with the same training options.

    The learning-rate sweep runs on the first `sweep_seeds` seeds (all of them when None); the other seeds run
    only at the rate selected on those, which saves (lrs - 1) runs per extra seed. With `sweep_tasks` the sweep
    runs on those tasks only and each method's rate is selected on their mean validation score, then used on every
    task (per-task selection otherwise).
    """

    tasks: list[str]
    methods: list[MethodSpec]
    seeds: list[int]
    model: str = "smollm2-135m"
    max_steps: int = 150
    train: dict[str, Any] = field(default_factory=dict)
    out: str = "runs/compare"
    sweep_seeds: int | None = None
    sweep_tasks: list[str] | None = None
    floors: list[str] = field(default_factory=lambda: list(FLOORS))

    @property
    def sweep(self) -> list[int]:
        """The seeds that run every learning rate (and on which the rate is selected)."""
        return self.seeds[: self.sweep_seeds] if self.sweep_seeds else list(self.seeds)

    @property
    def swept_tasks(self) -> list[str]:
        """The tasks that run every learning rate."""
        return list(self.sweep_tasks) if self.sweep_tasks else list(self.tasks)

    def sweep_cells(self) -> list[tuple[str, MethodSpec, float, int]]:
        """(task, method, lr, seed) in run order: seed by seed, so an interrupted grid has whole seeds first."""
        return [(t, m, lr, s) for s in self.sweep for t in self.swept_tasks for m in self.methods for lr in m.lrs]

    def is_swept(self, task: str, seed: int) -> bool:
        return seed in self.sweep and task in self.swept_tasks

    def n_cells(self) -> int:
        rest = sum(not self.is_swept(t, s) for s in self.seeds for t in self.tasks) * len(self.methods)
        return len(self.sweep_cells()) + rest + len(self.floors) * len(self.tasks) * len(self.seeds)


def cell_name(task: str, label: str, lr: float | None, seed: int) -> str:
    """A trained cell's folder name; a floor (no learning rate) is `<task>-<floor>-s<seed>`."""
    return f"{task}-{label}-s{seed}" if lr is None else f"{task}-{label}-lr{lr:g}-s{seed}"


# ---- building a grid: recipe, --quick, command-line overrides ---------------------------------------------------
def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """A recipe YAML as a dict with known keys only; a relative `quick:` path is resolved next to the recipe."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist: pass the path of a YAML file, e.g. benchmarks/quality.yaml")
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(recipe, dict):
        raise ConfigError(f"{path} must hold a mapping of key: value (keys: {', '.join(RECIPE_KEYS)})")
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)}; known keys are {', '.join(RECIPE_KEYS)}")
    if isinstance(recipe.get("quick"), str):
        recipe["quick"] = str(path.parent / recipe["quick"])
    return recipe


def quick_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """The smoke-sized version of a recipe: its `quick:` recipe (a path or a mapping of overrides) if it names one,
    else the built-in shrink (first seed, first learning rate per method, capped steps and validation)."""
    quick = recipe.get("quick")
    if isinstance(quick, str):
        return load_recipe(quick)
    if isinstance(quick, dict):
        merged = {**recipe, **quick}
        merged.pop("quick")
        return merged
    if quick is not None:
        raise ConfigError(f"recipe key quick must be a path or a mapping, got {quick!r}")
    shrunk = copy.deepcopy(recipe)
    # Shrink only values of the right shape; anything else is left for make_grid to refuse with its own message.
    if isinstance(shrunk.get("seeds"), list | tuple) and shrunk["seeds"]:
        shrunk["seeds"] = list(shrunk["seeds"])[:1]
    if isinstance(shrunk.get("lrs"), dict):
        shrunk["lrs"] = {k: list(v)[:1] if isinstance(v, list | tuple) else v for k, v in shrunk["lrs"].items()}
    shrunk["max_steps"] = _capped(shrunk.get("max_steps"), QUICK_STEPS)
    train = shrunk.get("train") or {}
    if isinstance(train, dict):
        train = {**train, "max_eval_examples": _capped(train.get("max_eval_examples"), QUICK_EVAL)}
    shrunk["train"] = train
    shrunk["out"] = str(shrunk.get("out") or "runs/compare") + "-quick"
    return shrunk


def _capped(value: Any, cap: int) -> Any:
    """`value` capped at `cap` (`cap` when unset); a value that is not a positive integer is left to be refused."""
    if value is None:
        return cap
    return min(value, cap) if POSITIVE_INT.ok(value) else value


def parse_lrs(items: list[str]) -> dict[str, list[float]]:
    """["lamp=0.01,0.03", "lora=1e-3"] -> {"lamp": [0.01, 0.03], "lora": [0.001]}."""
    sweeps: dict[str, list[float]] = {}
    for item in items:
        label, sep, values = item.partition("=")
        try:
            sweeps[label] = [float(v) for v in values.split(",")] if sep and label else []
        except ValueError:
            sweeps[label] = []
        if not sweeps[label]:
            raise ConfigError(f"--lrs {item!r} is malformed: write METHOD=LR[,LR...], e.g. lamp=0.01,0.03")
    return sweeps


def make_grid(recipe: dict[str, Any] | None = None, quick: bool = False, **overrides: Any) -> Grid:
    """A validated grid from a recipe dict (see `load_recipe`), optionally shrunk by --quick, with overrides on top.

    overrides: tasks, methods (labels), seeds, model, max_steps, lrs ({label: [lr, ...]}), out, data_dir,
    train ({TrainConfig field: value}); None leaves the recipe's value.
    """
    from lamp.methods import METHODS, make_config
    from lamp.tasks import get_task
    from lamp.train import TrainConfig

    recipe = dict(recipe or {})
    if quick:
        recipe = quick_recipe(recipe)
    train_overrides = overrides.pop("train", None) or {}
    lr_overrides = overrides.pop("lrs", None) or {}
    chosen = overrides.pop("methods", None)
    recipe.update({k: v for k, v in overrides.items() if v is not None})
    recipe_methods = recipe.get("methods") or ["lamp", "pt"]
    if isinstance(recipe_methods, list):
        recipe_methods = {label: {} for label in recipe_methods}
    if not isinstance(recipe_methods, dict):
        raise ConfigError(f"methods must be a list of names or a mapping name: options, got {recipe_methods!r}")
    chosen = list(chosen or recipe_methods)
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"methods lists a name twice: {chosen}")
    for key in ("lrs", "train"):
        if not isinstance(recipe.get(key) or {}, dict):
            raise ConfigError(f"{key} must be a mapping, got {recipe[key]!r}")
    sweeps = {**(recipe.get("lrs") or {}), **lr_overrides}
    unknown = sorted(set(sweeps) - set(chosen) - set(recipe_methods))
    if unknown:
        raise ConfigError(f"learning rates given for {', '.join(unknown)}, which is not a method of this grid")
    default_lr = TrainConfig.lr
    specs = []
    for label in chosen:
        options = recipe_methods.get(label) or {}
        if not isinstance(options, dict):
            raise ConfigError(f"methods: {label} must be a mapping of option: value, got {options!r}")
        options = dict(options)
        method = options.pop("method", label)
        if method not in METHODS:
            raise ConfigError(
                f"unknown method {label!r}: use a registered method ({', '.join(METHODS)}) or define {label} "
                "under methods: in the recipe with `method: <registered name>`"
            )
        make_config(method, **options)  # fail before any training on a bad option
        lrs = POSITIVE.check_list(f"lrs of {label}", sweeps.get(label, [default_lr]))
        specs.append(MethodSpec(label, method, options, lrs))
    tasks = recipe.get("tasks") or ["polarity"]
    if not isinstance(tasks, list | tuple) or len(set(tasks)) != len(tasks):
        raise ConfigError(f"tasks must be a list of distinct task names, got {tasks!r}")
    tasks = [str(task) for task in tasks]
    for task in tasks:
        get_task(task)
    seeds = SEED.check_list("seeds", recipe["seeds"] if recipe.get("seeds") is not None else [0])
    train = {**(recipe.get("train") or {}), **train_overrides}
    if recipe.get("data_dir") is not None:
        train["data_dir"] = str(recipe["data_dir"])
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(train) - (fields - set(GRID_FIELDS)))
    if bad:
        raise ConfigError(
            f"train options {', '.join(bad)} cannot be shared by a grid: the grid sets {', '.join(GRID_FIELDS)} "
            f"itself; the others are {', '.join(sorted(fields - set(GRID_FIELDS)))}"
        )
    max_steps = recipe.get("max_steps")
    max_steps = TrainConfig.max_steps if max_steps is None else POSITIVE_INT.check("max_steps", max_steps)
    sweep_seeds = recipe.get("sweep_seeds")
    if sweep_seeds is not None:
        POSITIVE_INT.check("sweep_seeds", sweep_seeds)
    sweep_tasks = recipe.get("sweep_tasks")
    if sweep_tasks is not None and (
        not isinstance(sweep_tasks, list | tuple) or not sweep_tasks or not set(sweep_tasks) <= set(tasks)
    ):
        raise ConfigError(
            f"sweep_tasks must be a non-empty list of the grid's tasks ({', '.join(tasks)}), got {sweep_tasks!r}"
        )
    floors = recipe.get("floors", list(FLOORS))
    if not isinstance(floors, list | tuple) or not set(floors) <= set(FLOORS) or len(set(floors)) != len(floors):
        raise ConfigError(
            f"floors must be a list of distinct names from {', '.join(FLOORS)} ([] for none), got {floors}"
        )
    clash = sorted(set(floors) & {spec.label for spec in specs})
    if clash:
        raise ConfigError(f"method label {clash[0]!r} is the name of a floor row: rename that method in the recipe")
    grid = Grid(tasks, specs, seeds, str(recipe.get("model") or "smollm2-135m"), max_steps, train)
    grid.floors = list(floors)
    grid.sweep_seeds = sweep_seeds
    grid.sweep_tasks = [str(t) for t in sweep_tasks] if sweep_tasks else None
    grid.out = str(recipe.get("out") or grid.out)
    grid_config(grid, tasks[0], specs[0], specs[0].lrs[0], seeds[0], resume=False)  # validates the train options
    return grid


def grid_config(grid: Grid, task: str, spec: MethodSpec, lr: float, seed: int, resume: bool) -> Any:
    from lamp.train import TrainConfig

    out = Path(grid.out) / "cells" / cell_name(task, spec.label, lr, seed)
    try:
        return TrainConfig(
            task=task,
            model=grid.model,
            method=spec.method,
            method_options=dict(spec.options),
            lr=lr,
            seed=seed,
            max_steps=grid.max_steps,
            out=str(out),
            resume=resume,
            **grid.train,
        )
    except TypeError as error:
        raise ConfigError(f"bad train options: {error}") from None


# ---- running ----------------------------------------------------------------------------------------------------
def _same_settings(saved: dict[str, Any], config: Any) -> list[str]:
    """The TrainConfig fields (other than output handling) on which a finished cell differs from the grid; paths to
    the same folder (the model's, the data's) are the same setting however they are written."""
    from lamp.train import same_setting

    wanted = dataclasses.asdict(config)
    saved = {"format": "t5", **saved}  # cells run before --format existed used the t5 format
    ignored = ("out", "resume", "overwrite")
    return [k for k in wanted if k not in ignored and not same_setting(k, saved.get(k, wanted[k]), wanted[k])]


def cell_record(task: str, spec: MethodSpec, lr: float | None, seed: int, results: dict[str, Any]) -> dict[str, Any]:
    """One row of comparison.json from a finished run's results (or a failure's error)."""
    predictions = results.get("test_predictions") or {}
    return {
        "task": task,
        "method": spec.label,
        "base_method": spec.method,
        "seed": seed,
        "lr": lr,
        "trainable_params": results.get("trainable_params"),
        "effective_trainable_params": results.get("effective_trainable_params"),
        "validation_score": (results.get("validation") or {}).get("score"),
        "test_score": (results.get("test") or {}).get("score"),
        "test_metrics": results.get("test"),
        "test_predictions": predictions,
        "collapsed": len(predictions) == 1,
        "best_step": results.get("best_step"),
        "steps": results.get("steps"),
        "wall_s": results.get("wall_s"),
        "selected": False,
        "error": results.get("error"),
        "cell": cell_name(task, spec.label, lr, seed),
        "trained_now": False,
        "floor": False,
        "below_floor": None,
    }


def run_grid(
    grid: Grid, log: Callable[[str], None] = print, report_only: bool = False, workers: int = 1
) -> list[dict[str, Any]]:
    """Score the floors, run the sweep, select learning rates on its validation scores, run the remaining seeds at
    the selected rates; cells finished earlier are read back. Returns every cell's record with `selected` marked
    (floors are always selected) and `below_floor` set. `report_only`: train nothing, only read back the cells
    finished so far (a partial grid's report). `workers`: cells trained at once, each in its own process."""
    total = grid.n_cells()
    floors = run_floors(grid, log, report_only)
    records = run_cells(grid, grid.sweep_cells(), log, len(floors), total, report_only, workers)
    if grid.sweep_tasks:  # one rate per method, selected on the swept tasks, for every task
        per_method = choose_lrs([{**r, "task": "*"} for r in _task_means(records)])
        chosen = {(task, label): lr for (_, label), lr in per_method.items() for task in grid.tasks}
    else:
        chosen = choose_lrs(records)
    rest = [
        (task, spec, chosen[(task, spec.label)], seed)
        for seed in grid.seeds
        for task in grid.tasks
        for spec in grid.methods
        if (task, spec.label) in chosen and not grid.is_swept(task, seed)
    ]
    records += run_cells(grid, rest, log, len(floors) + len(grid.sweep_cells()), total, report_only, workers)
    for record in records:
        record["selected"] = (
            chosen.get((record["task"], record["method"])) == record["lr"] and record["validation_score"] is not None
        )
    no_prompt = {(r["task"], r["seed"]): r["test_score"] for r in floors if r["method"] == "none"}
    for record in records:  # a trained prompt that does no better than the bare backbone has learned nothing
        floor = no_prompt.get((record["task"], record["seed"]))
        record["below_floor"] = None if floor is None or record["test_score"] is None else record["test_score"] <= floor
    return floors + records


def floor_config(grid: Grid, task: str, seed: int) -> Any:
    """The TrainConfig whose evaluation settings the floors of (task, seed) share with the trained cells."""
    return grid_config(grid, task, grid.methods[0], grid.methods[0].lrs[0], seed, resume=False)


FLOOR_SETTINGS = ("task", "model", "seed", "format", "chat_template", "scorer", "max_length", "max_eval_examples")
"""The settings a floor depends on: a finished floor cell is reused only when they match the grid's."""


def run_floors(grid: Grid, log: Callable[[str], None], report_only: bool) -> list[dict[str, Any]]:
    """Score (or read back) the grid's floors for every task and seed; one backbone load gives both floors."""
    from lamp.floors import floor_results
    from lamp.run_folder import RESULTS
    from lamp.train import same_setting

    records = []
    for seed in grid.seeds:
        for task in grid.tasks:
            config = floor_config(grid, task, seed)
            folders = {name: Path(grid.out) / "cells" / cell_name(task, name, None, seed) for name in grid.floors}
            done = {name: out / RESULTS for name, out in folders.items() if (out / RESULTS).is_file()}
            if len(done) < len(folders) and not report_only:
                log(f"floors of {task} seed {seed}: scoring {', '.join(grid.floors)} (no training)")
                for name, results in floor_results(config).items():
                    if name in folders:
                        text = json.dumps(results, indent=2) + "\n"
                        atomic_write(folders[name] / RESULTS, lambda tmp, text=text: Path(tmp).write_text(text))
                        done[name] = folders[name] / RESULTS
                gc.collect()
            for name, path in done.items():
                results = json.loads(path.read_text())
                wanted = {k: v for k, v in dataclasses.asdict(config).items() if k in FLOOR_SETTINGS}
                saved = {k: results.get("config", {}).get(k) for k in wanted}
                differing = ", ".join(k for k in wanted if not same_setting(k, saved[k], wanted[k]))
                if differing:
                    raise ConfigError(
                        f"{path.parent} was scored with other settings ({differing}): choose another --out, or "
                        "delete that cell to score it again"
                    )
                spec = MethodSpec(name, name)
                records.append({**cell_record(task, spec, None, seed, results), "selected": True, "floor": True})
    return records


def run_cells(
    grid: Grid,
    cells: list[tuple[str, MethodSpec, float, int]],
    log: Callable[[str], None],
    done: int,
    total: int,
    report_only: bool = False,
    workers: int = 1,
) -> list[dict[str, Any]]:
    """Run (or read back) the given cells, `workers` at a time; `done` and `total` only number the progress lines.
    Records come back in the order of `cells` whatever order the workers finish in."""
    from lamp import train as training

    records: dict[int, dict[str, Any]] = {}
    pending: list[tuple[int, str, Any]] = []
    for i, (task, spec, lr, seed) in enumerate(cells):
        tag = f"[{done + i + 1}/{total}] {cell_name(task, spec.label, lr, seed)}"
        config = grid_config(grid, task, spec, lr, seed, resume=False)
        out = Path(config.out)
        results_path, failed_path = out / training.RESULTS, out / "failed.json"
        if results_path.is_file():
            results = json.loads(results_path.read_text())
            differing = _same_settings(results.get("config", {}), config)
            if differing:
                raise ConfigError(
                    f"{out} was run with other settings ({', '.join(differing)}): choose another --out, or delete "
                    "that cell to rerun it"
                )
            log(f"{tag}: finished earlier, test {results['test']['score']:.2f}")
        elif failed_path.is_file():
            results = json.loads(failed_path.read_text())
            log(f"{tag}: failed earlier ({results['error']}); delete {out} to retry it")
        elif report_only:
            log(f"{tag}: not finished yet")
            continue
        else:
            resume = out.is_dir() and any(out.iterdir())
            log(f"{tag}: {'resuming' if resume else 'training'}")
            pending.append((i, tag, dataclasses.replace(config, resume=resume)))
            continue
        records[i] = cell_record(task, spec, lr, seed, results)
    from lamp.progress import progress as progress_bar

    bar = progress_bar(total=len(pending), desc="grid", unit="cell", enabled=len(pending) > 1)
    for i, tag, results in _train_cells(pending, workers):
        bar.update(1)
        task, spec, lr, seed = cells[i]
        out = Path(grid_config(grid, task, spec, lr, seed, resume=False).out)
        if "error" in results:  # a diverged run is a result; other errors stop the grid
            text = json.dumps(results) + "\n"
            atomic_write(out / "failed.json", lambda tmp, text=text: Path(tmp).write_text(text))
            with bar.external_write_mode():  # the line goes above the bar, not through it
                log(f"{tag}: failed: {results['error']}")
        else:
            with bar.external_write_mode():
                log(f"{tag}: validation {results['validation']['score']:.2f}, test {results['test']['score']:.2f}")
            # results.json marks the cell finished, so its resume checkpoint (a full fine-tune's: weights plus
            # optimizer state, ~2 GB) is dead weight; the adapter stays.
            (out / training.CHECKPOINT).unlink(missing_ok=True)
        records[i] = {**cell_record(task, spec, lr, seed, results), "trained_now": True}
    bar.close()
    return [records[i] for i in sorted(records)]


def train_cell(config: Any) -> dict[str, Any]:
    """One cell's results, or {"error": ...} when its loss diverged (NaN or inf): that is a result, not a fault."""
    from lamp import train as training

    try:
        return training.train(config)
    except TrainingError as error:
        return {"error": str(error)}
    finally:
        gc.collect()  # a cell's model and optimizer go before the next one loads


def _worker_setup(threads: int) -> None:
    """A worker process: its share of the CPU threads, and no progress bars (N processes would interleave them)."""
    import torch

    os.environ["TQDM_DISABLE"] = "1"
    torch.set_num_threads(threads)


def _train_cells(pending: list[tuple[int, str, Any]], workers: int) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(index, tag, results) of each pending cell: in this process one after another, or `workers` processes at
    once (spawned: each loads its own backbone; a GPU is shared, which suits small, launch-bound backbones)."""
    if workers == 1 or len(pending) < 2:
        for i, tag, config in pending:
            yield i, tag, train_cell(config)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_setup, initargs=(threads,)) as pool:
        futures = {pool.submit(train_cell, config): (i, tag) for i, tag, config in pending}
        try:
            for future in as_completed(futures):
                i, tag = futures[future]
                yield i, tag, future.result()  # a cell's fault stops the grid; finished cells stay finished
        finally:
            for future in futures:
                future.cancel()


def _task_means(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (task, method, lr) holding the mean validation score over its seeds, so that a selection
    over several tasks weighs each task once."""
    groups: dict[tuple[str, str, float], list[float]] = {}
    for r in records:
        if r["validation_score"] is not None:
            groups.setdefault((r["task"], r["method"], r["lr"]), []).append(r["validation_score"])
    return [
        {"task": t, "method": m, "lr": lr, "validation_score": statistics.fmean(v)} for (t, m, lr), v in groups.items()
    ]


def choose_lrs(records: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Per (task, method): the learning rate with the best mean validation score over the records' seeds.

    Test scores play no part. Ties go to the rate that comes first in the records; failed cells are left out.
    """
    groups: dict[tuple[str, str], dict[float, list[float]]] = {}
    for record in records:
        if record["validation_score"] is not None:
            by_lr = groups.setdefault((record["task"], record["method"]), {})
            by_lr.setdefault(record["lr"], []).append(record["validation_score"])
    chosen = {}
    for key, by_lr in groups.items():
        means = {lr: statistics.fmean(scores) for lr, scores in by_lr.items()}
        chosen[key] = max(means, key=lambda lr: means[lr])  # max keeps the first of equal values
    return chosen


# ---- reporting --------------------------------------------------------------------------------------------------
def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method and task: the selected cells' test mean, std, seeds, collapsed seeds, lr, validation mean."""
    # Trained methods first (the first is the paired comparison's reference), the floors last.
    methods = list(dict.fromkeys(r["method"] for r in sorted(records, key=lambda r: r.get("floor", False))))
    tasks = list(dict.fromkeys(r["task"] for r in records))
    table: dict[str, dict[str, Any]] = {}
    for method in methods:
        row: dict[str, Any] = {"params": None, "tasks": {}}
        for task in tasks:
            chosen = [r for r in records if r["method"] == method and r["task"] == task and r["selected"]]
            row["params"] = row["params"] or next((r["trainable_params"] for r in chosen), None)
            row["effective"] = row.get("effective") or next((r.get("effective_trainable_params") for r in chosen), None)
            if not chosen:
                continue
            mean, std = _mean_std([r["test_score"] for r in chosen])
            row["tasks"][task] = {
                "mean": mean,
                "std": std,
                "n": len(chosen),
                "collapsed": sum(r["collapsed"] for r in chosen),
                "below_floor": sum(bool(r.get("below_floor")) for r in chosen),
                "lr": chosen[0]["lr"],
                "validation": statistics.fmean(r["validation_score"] for r in chosen),
                "seeds": {r["seed"]: r["test_score"] for r in chosen},
            }
        if tasks and all(t in row["tasks"] for t in tasks):
            common = set.intersection(*(set(row["tasks"][t]["seeds"]) for t in tasks))
            if common:  # the average per seed over tasks, then mean and std over seeds
                per_seed = [statistics.fmean(row["tasks"][t]["seeds"][s] for t in tasks) for s in sorted(common)]
                mean, std = _mean_std(per_seed)
                row["average"] = {"mean": mean, "std": std, "n": len(per_seed)}
        table[method] = row
    return {"methods": methods, "tasks": tasks, "table": table}


def paired_differences(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The grid's first method against each other one, on the selected cells they share (same task and seed).

    Per method: the number of pairs, the mean and std of the first method's test score minus the other's, a paired
    t-test's two-sided p over those pairs (None when every difference is equal), and on how many tasks the first
    method's mean is higher. Pairing removes the task (and seed) effect that the averages' std still carries.
    """
    from scipy.stats import ttest_rel

    s = summary(records)
    if len(s["methods"]) < 2:
        return []
    reference, *others = s["methods"]
    first = s["table"][reference]["tasks"]
    rows = []
    for method in others:
        other = s["table"][method]["tasks"]
        tasks = [t for t in s["tasks"] if t in first and t in other]
        pairs = [
            (first[t]["seeds"][k], other[t]["seeds"][k])
            for t in tasks
            for k in first[t]["seeds"]
            if k in other[t]["seeds"]
        ]
        if len(pairs) < 2:
            continue
        diffs = [a - b for a, b in pairs]
        mean, std = _mean_std(diffs)
        p = float(ttest_rel(*zip(*pairs, strict=True)).pvalue) if std > 0 else None
        wins = sum(first[t]["mean"] > other[t]["mean"] for t in tasks)
        rows.append(
            {
                "method": method,
                "pairs": len(pairs),
                "mean": mean,
                "std": std,
                "p": p,
                "tasks_higher": wins,
                "tasks": len(tasks),
            }
        )
    return rows


def _score(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    # one seed has no spread to show; "± 0.0" would claim one
    text = f"{entry['mean']:.1f} ± {entry['std']:.1f}" if entry["n"] > 1 else f"{entry['mean']:.1f} (1 seed)"
    if entry.get("collapsed"):
        text += f" ⚠{entry['collapsed']}/{entry['n']}"
    if entry.get("below_floor"):
        text += f" ▽{entry['below_floor']}/{entry['n']}"
    return text


def markdown(records: list[dict[str, Any]], grid: Grid, info: dict[str, Any]) -> str:
    """comparison.md: the paper-style table, the selected learning rates, every cell, failures."""
    s = summary(records)
    tasks, table = s["tasks"], s["table"]
    seeds = sorted({r["seed"] for r in records})
    sweep = sorted({r["seed"] for r in records if r["seed"] in grid.sweep})
    lines = [
        f"# Method comparison on {grid.model}",
        "",
        "Test score (task metric, 0-100) at the learning rate selected "
        + (
            f"per method on the mean validation score of {', '.join(grid.sweep_tasks)}"
            if grid.sweep_tasks
            else "per task on the mean validation score"
        )
        + f" over seed{'s' * (len(sweep) > 1)} {', '.join(map(str, sweep))}; "
        f"mean ± std over seeds {', '.join(map(str, seeds))} ({len(seeds)} seed{'s' * (len(seeds) > 1)}); "
        f"{grid.max_steps} steps for every method. ⚠k/n: k of the n runs predicted a single class on the whole test "
        "set (collapsed); ▽k/n: k of the n runs scored at or below the bare backbone with no prompt (row `none`) on "
        "the same test split; their scores are included in the mean. Trainable parameters are the nominal count; in "
        "brackets the effective one where it differs (LAMP: only U's pooled block means reach the prompt). Floors, "
        "trained on nothing: `none` (the backbone zero-shot, same format and scorer) and `majority` (the train "
        "split's most frequent label).",
        *(
            ["", f"**Partial grid: {len(records)} of {info['cells_total']} cells finished.**"]
            if len(records) < info.get("cells_total", len(records))
            else []
        ),
        "",
        "| Method | Trainable params (effective) | " + " | ".join(tasks) + " | Avg |",
        "|---|---:|" + "---:|" * (len(tasks) + 1),
    ]
    for method, row in table.items():
        params = f"{row['params']:,}" if row["params"] else "-"
        if row.get("effective") and row["effective"] != row["params"]:  # LAMP: U's pooled block means only
            params += f" ({row['effective']:,})"
        cells = [_score(row["tasks"].get(t)) for t in tasks]
        lines.append(f"| {method} | {params} | " + " | ".join(cells) + f" | {_score(row.get('average'))} |")
    lines += [
        "",
        "## Selected learning rates (mean validation score at that rate)",
        "",
        "| Method | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for method, row in table.items():
        cells = [
            f"{'-' if e['lr'] is None else format(e['lr'], 'g')} ({e['validation']:.1f})"
            if (e := row["tasks"].get(t))
            else "-"
            for t in tasks
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    differences = paired_differences(records)
    if differences:
        reference = s["methods"][0]
        lines += [
            "",
            f"## {reference} against each method (paired on task and seed)",
            "",
            f"Difference = {reference}'s test score minus the method's, over the (task, seed) cells both finished; "
            "p: paired t-test, two-sided. A p above 0.05 means the difference does not exceed the seed-to-seed noise.",
            "",
            f"| Method | Pairs | Mean difference | Std | p | Tasks where {reference} is higher |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for d in differences:
            p = "-" if d["p"] is None else f"{d['p']:.3f}"
            lines.append(
                f"| {d['method']} | {d['pairs']} | {d['mean']:+.1f} | {d['std']:.1f} | {p} | "
                f"{d['tasks_higher']} of {d['tasks']} |"
            )
    lines += [
        "",
        "## Every cell",
        "",
        "| Task | Method | lr | Seed | Validation | Test | Test predictions | Selected |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in sorted(records, key=lambda r: (r["task"], s["methods"].index(r["method"]), r["lr"] or 0, r["seed"])):
        val = "-" if r["validation_score"] is None else f"{r['validation_score']:.2f}"
        test = "-" if r["test_score"] is None else f"{r['test_score']:.2f}"
        predicted = r["error"] or ", ".join(f"{k}: {v}" for k, v in r["test_predictions"].items())
        lines.append(
            f"| {r['task']} | {r['method']} | {'-' if r['lr'] is None else format(r['lr'], 'g')} | {r['seed']} | "
            f"{val} | {test} | {predicted} | "
            f"{'yes' if r['selected'] else ''} |"
        )
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


def chart(records: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> None:
    """Grouped bars: one group per task (and the average), one bar per method, std over seeds as error bars;
    hatched bars contain a collapsed run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary(records)
    groups = s["tasks"] + ["avg"]
    methods = s["methods"]
    figure, axis = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(methods)) / 3 + 3), 4))
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        row = s["table"][method]
        entries = [row["tasks"].get(t) for t in s["tasks"]] + [row.get("average")]
        label = method
        for j, entry in enumerate(entries):
            if entry is None:
                continue
            axis.bar(
                j + (i - (len(methods) - 1) / 2) * width,
                entry["mean"],
                width,
                yerr=entry["std"],
                color=f"C{i}",
                hatch="//" if entry.get("collapsed") else None,
                edgecolor="black" if entry.get("collapsed") else None,
                capsize=2,
                label=label,
            )
            label = None  # one legend entry per method
    axis.set_xticks(range(len(groups)), groups)
    axis.set(ylabel="test score (selected lr)", title=title)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize="small", ncols=min(len(methods), 6), loc="lower center")
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)


def write_report(records: list[dict[str, Any]], grid: Grid, info: dict[str, Any]) -> dict[str, Path]:
    """comparison.json (one row per cell), comparison.md (the tables) and comparison.png in grid.out."""
    out = Path(grid.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / REPORT, "markdown": out / TABLE, "chart": out / CHART}
    text = json.dumps(records, indent=2) + "\n"
    atomic_write(paths["json"], lambda tmp: Path(tmp).write_text(text))
    table = markdown(records, grid, info)
    atomic_write(paths["markdown"], lambda tmp: Path(tmp).write_text(table))
    atomic_write(paths["chart"], lambda tmp: chart(records, tmp, title=f"{grid.model}, {grid.max_steps} steps"))
    return paths


def compare(
    grid: Grid, log: Callable[[str], None] = print, report_only: bool = False, workers: int = 1
) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Run (or resume) the grid, select learning rates on validation, write the report; return records and paths.
    `report_only` trains nothing and reports the cells finished so far; `workers` cells train at once, each in its
    own process (a GPU runs many small cells side by side; on a CPU they share the cores)."""
    workers = POSITIVE_INT.check("workers", workers)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    with locked_grid(grid, report_only):
        records = run_grid(grid, log, report_only, workers)
        if not records:
            raise ConfigError(f"no finished cells in {grid.out}/cells yet: run the grid without --report-only first")
        info = {
            "cells_total": grid.n_cells(),
            "wall_s": time.perf_counter() - started,
            "trained": sum(r["trained_now"] for r in records),
            "cells_wall_s": sum(r["wall_s"] or 0 for r in records),
            "load_start": load_start,
            "load_end": os.getloadavg()[0],
        }
        return records, write_report(records, grid, info)


@contextlib.contextmanager
def locked_grid(grid: Grid, report_only: bool) -> Iterator[None]:
    """Hold the grid folder's lock while the grid trains: a second `lamp compare` on the folder is refused in one
    line. A report (--report-only) only reads the cells, so it may run beside a training grid."""
    from accelerate import PartialState

    from lamp.run_folder import lock_folder, on_main_process, remove_leftovers, run_files

    out = Path(grid.out)

    def claim() -> Any:
        # A grid writes its cells and report into the folder: one holding other files is not lamp's to write into.
        if out.is_dir() and run_files(out) and not ((out / "cells").is_dir() or (out / REPORT).is_file()):
            raise ConfigError(
                f"{out} holds files that are not a lamp comparison: choose another --out; lamp never overwrites them"
            )
        lock = lock_folder(out)
        try:
            remove_leftovers(out)  # a killed grid's half-written report files
        except OSError as error:
            lock.release()
            raise ConfigError(f"cannot write to output folder {out} ({error.strerror}): choose another --out") from None
        return lock

    lock = None if report_only else on_main_process(PartialState(), claim)
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
