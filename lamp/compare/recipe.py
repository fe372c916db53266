"""A comparison's recipe: the YAML file, its --quick variant and command-line overrides, validated into a `Recipe`."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamp.checks import LEARNING_RATE, POSITIVE_INT, SEED, text_hint
from lamp.compare.cell import Cell, cell_name, check_cell_part, lr_tag, read_report
from lamp.config_files import load_yaml
from lamp.errors import ConfigError, did_you_mean
from lamp.floors import FLOORS
from lamp.methods import DEFAULT_METHOD, METHODS, make_config
from lamp.tasks.user import is_spec_file, task_of
from lamp.train import ACTIONS, SHORTHANDS, TrainConfig

DEFAULT_METHODS = (DEFAULT_METHOD, next(name for name in METHODS if name != DEFAULT_METHOD))
"""`lamp compare`'s methods when none are named: the default method and the first other registered one, the vanilla
prompt tuning it is measured against."""

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


@dataclass
class GridMethod:
    """One row of the comparison: a label (the table's name), a registered method, its options, its lr sweep.
    ConfigError on construction for an unregistered method, a bad option or a bad sweep."""

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    lrs: list[float] = field(default_factory=lambda: [TrainConfig.lr])

    def __post_init__(self) -> None:
        check_cell_part("method label", self.label)  # before the registry check: a label names folders
        if not isinstance(self.method, str) or self.method not in METHODS:
            if self.method != self.label:  # the label is defined in the recipe: its `method:` value is the bad one
                raise ConfigError(
                    f"methods: {self.label}: method {self.method!r} is not a registered method: choose one of "
                    f"{', '.join(METHODS)}"
                )
            raise ConfigError(
                f"unknown method {self.label!r}{did_you_mean([self.label], METHODS)}: use a registered method "
                f"({', '.join(METHODS)}) or define {self.label} under methods: in the recipe with "
                "`method: <registered name>`"
            )
        try:  # fail before any training on a bad option, naming the method among the recipe's several
            make_config(self.method, **self.options)
        except ConfigError as error:
            raise ConfigError(f"methods: {self.label}: {error}") from None
        self.lrs = LEARNING_RATE.check_list(f"lrs of {self.label}", self.lrs)
        tags = [lr_tag(lr) for lr in self.lrs]
        twice = next((tag for tag in tags if tags.count(tag) > 1), None)
        if twice is not None:
            raise ConfigError(
                f"lrs of {self.label} hold two rates that name one cell ({twice}): give each rate once, "
                "that differ in their first 6 significant digits"
            )


@dataclass
class Recipe:
    """A comparison to run: every task x method x seed, all with the same training options. ConfigError (or
    DataError for an unknown task) on construction, naming the key, for anything that could not run.

    The learning-rate sweep runs on the first `sweep_seeds` seeds (all of them when None); the other seeds run
    only at the rate selected on those, which saves (lrs - 1) runs per extra seed. With `sweep_tasks` the sweep
    runs on those tasks only and each method's rate is selected on their mean validation score, then used on every
    task (per-task selection otherwise). `floors` are the rows scored without training (`lamp.floors`).
    """

    tasks: list[str] = field(default_factory=lambda: ["polarity"])
    """Built-in task names or task YAML files (your own data, docs/tasks.md); held as task names once checked."""
    methods: list[GridMethod] = field(default_factory=lambda: [GridMethod(name, name) for name in DEFAULT_METHODS])
    seeds: list[int] = field(default_factory=lambda: [0])
    model: str = "smollm2-135m"
    max_steps: int = TrainConfig.max_steps
    train: dict[str, Any] = field(default_factory=dict)
    """TrainConfig options shared by every cell (any field but GRID_FIELDS)."""
    out: str = "runs/compare"
    sweep_seeds: int | None = None
    sweep_tasks: list[str] | None = None
    floors: list[str] = field(default_factory=lambda: list(FLOORS))
    task_files: dict[str, str] = field(default_factory=dict)
    """The task YAML file (absolute) of each user task in `tasks`, by task name: what its cells train on."""
    reuse: str | None = None
    """An earlier comparison.json whose cells stand in for cells that have no record under `out` (a grid continued
    from a committed report on a fresh clone or another machine); held as `reused` once read."""
    reused: dict[str, Cell] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        # str() would quietly turn `model: 5` or `out: [a]` into a folder name
        for key, what in (("model", "a model name, folder or hub id"), ("out", "an output folder")):
            if isinstance(getattr(self, key), os.PathLike):
                setattr(self, key, os.fspath(getattr(self, key)))
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                value = getattr(self, key)
                raise ConfigError(f"{key} must be {what} (text), got {value!r}{text_hint(value)}")
        if not self.methods:
            raise ConfigError("methods must name at least one method, e.g. [lamp, pt]")
        labels = [m.label for m in self.methods]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"methods lists a name twice: {labels}")
        tasks_ok = isinstance(self.tasks, list | tuple) and all(isinstance(t, str) for t in self.tasks)
        if not tasks_ok or not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(
                f"tasks must be a non-empty list of distinct task names or task files, got {self.tasks!r}"
            )
        self.tasks = [self._task_name(str(task)) for task in self.tasks]
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks name one task twice: {', '.join(self.tasks)}")
        self.seeds = SEED.check_list("seeds", self.seeds)
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        shared = sorted(fields - set(GRID_FIELDS))
        if method_keys := sorted(set(self.train) & set(SHORTHANDS)):  # a method's own option, not a train option
            what = "is a method option" if len(method_keys) == 1 else "are method options"
            raise ConfigError(
                f"train: {', '.join(method_keys)} {what}: give it under methods:, e.g. methods: "
                f"{{lamp: {{{method_keys[0]}: ...}}}}"
            )
        if grid_keys := sorted(set(self.train) & set(GRID_FIELDS)):
            own = [key for key in grid_keys if key not in ACTIONS]
            where = ", ".join(f"{key} under {RECIPE_NAME_OF.get(key, key)}:" for key in own)
            raise ConfigError(
                f"train options {', '.join(grid_keys)} cannot be shared by a grid: the grid sets them itself"
                + (f"; give {where}" if own else "")
                + ("; it resumes on its own (a new out starts afresh)" if len(own) < len(grid_keys) else "")
            )
        if unknown := sorted(set(self.train) - fields):
            raise ConfigError(
                f"train: {', '.join(map(repr, unknown))} {'is not a' if len(unknown) == 1 else 'are not'} lamp train "
                f"option{'s' * (len(unknown) > 1)}{did_you_mean(unknown, shared)}: choose from {', '.join(shared)}"
            )
        self.max_steps = POSITIVE_INT.check("max_steps", self.max_steps)
        if self.sweep_seeds is not None:
            POSITIVE_INT.check("sweep_seeds", self.sweep_seeds)
            if self.sweep_seeds > len(self.seeds):  # the first N seeds sweep: more than there are is a typo
                raise ConfigError(
                    f"sweep_seeds {self.sweep_seeds} exceeds the number of seeds ({len(self.seeds)}): pass "
                    f"sweep_seeds {len(self.seeds)} or less, or drop it to sweep on every seed"
                )
        sweep_tasks = self.sweep_tasks
        # a task file stands for its task's name; any other entry must already be one of the grid's names
        listed = sweep_tasks if isinstance(sweep_tasks, list | tuple) else []
        named = [self._task_name(str(t)) if is_spec_file(str(t)) else str(t) for t in listed]
        if sweep_tasks is not None and (
            not isinstance(sweep_tasks, list | tuple) or not sweep_tasks or not set(named) <= set(self.tasks)
        ):
            raise ConfigError(
                f"sweep_tasks must be a non-empty list of the grid's tasks ({', '.join(self.tasks)}), "
                f"got {sweep_tasks!r}"
            )
        self.sweep_tasks = named or None
        floors = self.floors
        floors_ok = isinstance(floors, list | tuple) and all(isinstance(f, str) for f in floors)
        if not floors_ok or not set(floors) <= set(FLOORS) or len(set(floors)) != len(floors):
            raise ConfigError(
                f"floors must be a list of distinct names from {', '.join(FLOORS)} ([] for none), got {floors}"
            )
        self.floors = list(floors)
        clash = sorted(set(self.floors) & set(labels))
        if clash:
            raise ConfigError(f"method label {clash[0]!r} is the name of a floor row: rename that method in the recipe")
        first = self.methods[0]
        grid_config(self, self.tasks[0], first, first.lrs[0], self.seeds[0], resume=False)  # the train options
        if self.reuse is not None:
            self.reused = read_report(self.reuse)

    def check_data_dir(self) -> None:
        """ConfigError when a built-in task is to be read from a `data_dir` that is not a folder. Checked before
        cells train, not on --report-only: a grid trained elsewhere is reported wherever its data was."""
        data_dir = self.train.get("data_dir")  # text once grid_config passed; only built-in tasks read it
        if data_dir and set(self.tasks) - set(self.task_files) and not Path(data_dir).expanduser().is_dir():
            raise ConfigError(
                f"data_dir {data_dir} is not a folder: pass the folder holding the official task files, or drop it "
                "to load the tasks from the Hugging Face hub"
            )

    @property
    def sweeps_lrs(self) -> bool:
        """Whether any method runs more than one learning rate (else nothing is selected on validation)."""
        return any(len(m.lrs) > 1 for m in self.methods)

    @property
    def sweep(self) -> list[int]:
        """The seeds that run every learning rate (and on which the rate is selected)."""
        return self.seeds[: self.sweep_seeds] if self.sweep_seeds else list(self.seeds)

    def _task_name(self, entry: str) -> str:
        """The task name of a `tasks` entry: a built-in name, a task YAML file (recorded in `task_files`), or the
        name of one recorded already; DataError / ConfigError for anything else."""
        if entry in self.task_files:
            return entry
        task = task_of(entry)  # checks the name, or reads and checks the file
        check_cell_part(f"the task name of {entry}", task.name)  # a task file's name: may hold anything
        if is_spec_file(entry):
            self.task_files[task.name] = str(Path(entry).resolve())
        return task.name

    @property
    def swept_tasks(self) -> list[str]:
        """The tasks that run every learning rate."""
        return list(self.sweep_tasks) if self.sweep_tasks else list(self.tasks)

    def sweep_cells(self) -> list[tuple[str, GridMethod, float, int]]:
        """(task, method, lr, seed) in run order: seed by seed, so an interrupted grid has whole seeds first."""
        return [(t, m, lr, s) for s in self.sweep for t in self.swept_tasks for m in self.methods for lr in m.lrs]

    def is_swept(self, task: str, seed: int) -> bool:
        return seed in self.sweep and task in self.swept_tasks

    def n_cells(self) -> int:
        rest = sum(not self.is_swept(t, s) for s in self.seeds for t in self.tasks) * len(self.methods)
        return len(self.sweep_cells()) + rest + len(self.floors) * len(self.tasks) * len(self.seeds)


def grid_config(grid: Recipe, task: str, spec: GridMethod, lr: float, seed: int, resume: bool) -> TrainConfig:
    """The TrainConfig of one cell, trained in `grid.out/cells/<cell_name>`."""
    out = Path(grid.out) / "cells" / cell_name(task, spec.label, lr, seed)
    try:
        return TrainConfig(
            task=grid.task_files.get(task, task),
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
    except ConfigError as error:
        raise ConfigError(as_recipe_keys(str(error))) from None


RECIPE_NAME_OF = {"task": "tasks", "method": "methods", "method_options": "methods", "lr": "lrs", "seed": "seeds"}
"""The recipe key behind a TrainConfig field the grid sets (the others keep their names: model, max_steps, out)."""


def as_recipe_keys(message: str) -> str:
    """A lamp train message in a recipe's words: each lamp train flag becomes the recipe key that sets it
    (`--max-length` -> `train: max_length`, `--max-steps` -> `max_steps`, `--lr` -> `lrs`), for the messages of
    cells and of the checks before them; a flag of no TrainConfig field (`--workers`) is left as it is."""
    for f in dataclasses.fields(TrainConfig):
        key = RECIPE_NAME_OF.get(f.name, f.name) if f.name in GRID_FIELDS else f"train: {f.name}"
        message = re.sub(rf"--{re.escape(f.name.replace('_', '-'))}\b(?![-\w])", key, message)
    return message


# ---- from a recipe file and command-line overrides --------------------------------------------------------------
def load_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A recipe YAML as a dict with known keys only; a relative `quick:` path is resolved next to the recipe."""
    recipe = load_yaml(path, "recipe", "pass the path of a YAML file, e.g. benchmarks/quality.yaml", RECIPE_KEYS)
    if not recipe:  # every default at once would be the default grid, not what an empty file was meant to hold
        raise ConfigError(
            f"recipe {path} is empty: give it its keys (tasks, methods, lrs, ...; see benchmarks/quality.yaml)"
        )
    quick = recipe.get("quick")
    if quick is not None and not isinstance(quick, str | dict):  # checked with or without --quick
        raise ConfigError(f"recipe key quick must be a path or a mapping, got {quick!r}")
    if isinstance(quick, str):
        recipe["quick"] = str(Path(path).parent / quick)
    return recipe


def quick_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """The smoke-sized version of a recipe: its `quick:` recipe (a path or a mapping of overrides) if it names one,
    else the built-in shrink (first seed, first learning rate per method, capped steps and validation)."""
    quick = recipe.get("quick")
    if isinstance(quick, str):
        loaded = load_recipe(quick)
        full_out = recipe.get("out", Recipe.out)
        if loaded.get("out", Recipe.out) == full_out:
            raise ConfigError(  # its report would overwrite the full grid's, and its cells sit among the grid's
                f"quick recipe {quick} writes into the full grid's folder {full_out}: give it an out of its own"
            )
        return loaded
    if isinstance(quick, dict):
        merged = {**recipe, **quick}
        merged.pop("quick")
        if "out" not in quick:  # as the built-in shrink: never into the full grid's folder, whose cells it would mix
            merged["out"] = _quick_out(recipe.get("out"))
        return merged
    if quick is not None:
        raise ConfigError(f"recipe key quick must be a path or a mapping, got {quick!r}")
    shrunk = copy.deepcopy(recipe)
    # Shrink only values of the right shape; anything else is left for make_grid to refuse with its own message.
    if isinstance(shrunk.get("seeds"), list | tuple) and shrunk["seeds"]:
        shrunk["seeds"] = list(shrunk["seeds"])[:1]
        if shrunk.get("sweep_seeds") is not None:  # a sweep on the first N seeds: at most the one kept
            shrunk["sweep_seeds"] = _capped(shrunk["sweep_seeds"], 1)
    if isinstance(shrunk.get("lrs"), dict):
        shrunk["lrs"] = {k: list(v)[:1] if isinstance(v, list | tuple) else v for k, v in shrunk["lrs"].items()}
    shrunk["max_steps"] = _capped(shrunk.get("max_steps"), QUICK_STEPS)
    train = shrunk.get("train") or {}
    if isinstance(train, dict):
        train = {**train, "max_eval_examples": _capped(train.get("max_eval_examples"), QUICK_EVAL)}
    shrunk["train"] = train
    shrunk["out"] = _quick_out(shrunk.get("out"))
    return shrunk


def _quick_out(out: Any) -> Any:
    """The quick variant's folder beside the full grid's `out`; a value that is not a path is left to be refused."""
    return "runs/compare-quick" if out is None else out + "-quick" if isinstance(out, str) and out else out


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
        if label in sweeps:  # the later one would silently win
            raise ConfigError(f"--lrs names {label} twice: give its rates once, e.g. {label}=0.01,0.03")
        try:
            sweeps[label] = [float(v) for v in values.split(",")] if sep and label else []
        except ValueError:
            sweeps[label] = []
        if not sweeps[label]:
            raise ConfigError(f"--lrs {item!r} is malformed: write METHOD=LR[,LR...], e.g. lamp=0.01,0.03")
    return sweeps


def make_grid(recipe: dict[str, Any] | None = None, quick: bool = False, **overrides: Any) -> Recipe:
    """The `Recipe` of a recipe dict (see `load_recipe`), optionally shrunk by --quick, with overrides on top.

    overrides: tasks, methods (labels), seeds, model, max_steps, lrs ({label: [lr, ...]}), out, data_dir,
    train ({TrainConfig field: value}), reuse (a comparison.json); None leaves the recipe's value. Unset values (a
    missing key, or null) take Recipe's defaults; an empty list of tasks or methods is refused, as is `floors:` left
    empty (write [] for none).
    ConfigError for a recipe of the wrong shape; the Recipe checks the values.
    """
    recipe = dict(recipe or {})
    if isinstance(recipe.get("quick"), dict):  # checked with or without --quick: a typo there would go unseen
        allowed = [key for key in RECIPE_KEYS if key != "quick"]
        unknown = [str(key) for key in recipe["quick"] if key not in allowed]
        if unknown:
            raise ConfigError(
                f"recipe key quick holds unknown keys {', '.join(unknown)}: use the recipe's keys "
                f"({', '.join(allowed)})"
            )
    if quick:
        recipe = quick_recipe(recipe)
    train_overrides = overrides.pop("train", None) or {}
    lr_overrides = overrides.pop("lrs", None) or {}
    chosen = overrides.pop("methods", None)
    recipe.update({k: v for k, v in overrides.items() if v is not None})
    recipe_methods = list(DEFAULT_METHODS) if recipe.get("methods") is None else recipe["methods"]
    if isinstance(recipe_methods, list):
        if not all(isinstance(label, str) for label in recipe_methods) or len(set(recipe_methods)) != len(
            recipe_methods
        ):  # a dict would quietly drop the second of two equal names
            raise ConfigError(f"methods must list distinct method names, got {recipe_methods!r}")
        recipe_methods = {label: {} for label in recipe_methods}
    if not isinstance(recipe_methods, dict):
        raise ConfigError(f"methods must be a list of names or a mapping name: options, got {recipe_methods!r}")
    chosen = list(chosen or recipe_methods)
    for key in ("lrs", "train"):
        if not isinstance(recipe.get(key) or {}, dict):
            raise ConfigError(f"{key} must be a mapping, got {recipe[key]!r}")
    recipe_lrs = recipe.get("lrs") or {}
    # rates for a method the grid does not run would be dropped unseen; the recipe's lrs may also name a method of
    # the recipe's own that --methods leaves out (a recipe serves several runs), --lrs only one that runs
    for source, lrs, known, fix in (
        ("recipe key lrs", recipe_lrs, list(dict.fromkeys([*chosen, *recipe_methods])), "the recipe's methods"),
        ("--lrs", lr_overrides, chosen, "--methods"),
    ):
        unknown = [str(label) for label in lrs if label not in known]
        if unknown:
            which, it = ("is not one of", "it") if len(unknown) == 1 else ("are not among", "them")
            raise ConfigError(
                f"{source} names {', '.join(unknown)}, which {which} the grid's methods "
                f"({', '.join(map(str, known))}): drop {it} or add {it} to {fix}"
            )
    sweeps = {**recipe_lrs, **lr_overrides}
    methods = []
    for label in chosen:
        options = recipe_methods.get(label) or {}
        if label in recipe_methods and recipe_methods[label] is None and label not in METHODS:  # `mine:`, bare
            raise ConfigError(
                f"methods: {label} is empty: give it method: <registered name> ({', '.join(METHODS)}) and its options"
            )
        if not isinstance(options, dict):
            raise ConfigError(f"methods: {label} must be a mapping of option: value, got {options!r}")
        options = dict(options)
        method = options.pop("method", label)
        methods.append(GridMethod(label, method, options, sweeps.get(label, [TrainConfig.lr])))
    train = {**(recipe.get("train") or {}), **train_overrides}
    if recipe.get("data_dir") is not None:  # as given: TrainConfig refuses what is not text
        train["data_dir"] = recipe["data_dir"]
    keys = ("tasks", "seeds", "model", "max_steps", "out", "sweep_seeds", "sweep_tasks", "reuse")
    values = {key: recipe[key] for key in keys if recipe.get(key) is not None}  # Recipe checks each value
    if "floors" in recipe:  # `floors:` left empty (None) is refused, not taken as the default
        values["floors"] = recipe["floors"]
    return Recipe(methods=methods, train=train, **values)
