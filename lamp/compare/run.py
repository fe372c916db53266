"""Running a grid: floors, the learning-rate sweep, selection on validation, the remaining seeds; cells finished
earlier are read back, interrupted ones resume, `workers` train at once; the grid folder is locked while it trains."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import json
import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from lamp import train as training  # called as training.train: tests replace it
from lamp.adapter import atomic_write
from lamp.backbones import load_config, load_tokenizer
from lamp.checks import POSITIVE_INT
from lamp.compare.cell import LOCAL_SETTINGS, REPORT, Cell, cell_name, is_record
from lamp.compare.recipe import GridMethod, Recipe, as_recipe_keys, grid_config
from lamp.compare.report import write_report
from lamp.errors import ConfigError, Interrupted, LampError, TrainingError
from lamp.floors import BARE, floor_results
from lamp.model import config_kind
from lamp.progress import progress as progress_bar
from lamp.run_folder import CHECKPOINT, RESULTS, holds_run, lock_folder, on_main_process, remove_leftovers, run_files
from lamp.train import TASK_SPEC, TrainConfig, differing_settings, run_settings, task_spec_differences

FLOOR_SETTINGS = (
    "task",
    TASK_SPEC,
    "model",
    "seed",
    "format",
    "chat_template",
    "scorer",
    "max_length",
    "max_eval_examples",
)
"""The settings a floor depends on: a finished floor cell is reused only when they match the grid's."""
REUSED = "reused.json"
"""A cell's row of an earlier report (`--reuse`), kept in the cell's folder: later runs without --reuse read it back
like results.json, so a report written then still holds the cell; deleting the folder runs the cell again."""
Score = tuple[str, str, float | None, float | None]
"""(task, method label, lr, validation score or None for a failed cell): what learning-rate selection reads."""


def compare(
    grid: Recipe, log: Callable[[str], None] = print, report_only: bool = False, workers: int = 1
) -> tuple[list[Cell], dict[str, Path]]:
    """Run (or resume) the grid, select learning rates on validation, write the report; return cells and paths.
    `report_only` trains nothing and reports the cells finished so far; `workers` cells train at once, each in its
    own process (a GPU runs many small cells side by side; on a CPU they share the cores)."""
    workers = POSITIVE_INT.check("workers", workers)
    if not report_only:
        grid.check_data_dir()
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    with locked_grid(grid, report_only):
        if not report_only:  # after the folder's own check, which reads nothing
            check_before_cells(grid)
        cells = run_grid(grid, log, report_only, workers)
        if not cells:
            unused = f", and no row of --reuse {grid.reuse} is a cell of this grid" if grid.reuse else ""
            raise ConfigError(
                f"no finished cells in {grid.out}/cells yet{unused}: run the grid without --report-only first"
            )
        info = {
            "cells_total": grid.n_cells(),
            "wall_s": time.perf_counter() - started,
            "trained": sum(c.trained_now for c in cells),
            "cells_wall_s": sum(c.wall_s or 0 for c in cells),
            "load_start": load_start,
            "load_end": os.getloadavg()[0],
        }
        return cells, write_report(cells, grid, info)


def run_grid(
    grid: Recipe, log: Callable[[str], None] = print, report_only: bool = False, workers: int = 1
) -> list[Cell]:
    """Score the floors, run the sweep, select learning rates on its validation scores, run the remaining seeds at
    the selected rates; cells finished earlier are read back. Returns every cell with `selected` marked (floors are
    always selected) and `below_floor` set. `report_only`: train nothing, only read back the cells finished so far
    (a partial grid's report). `workers`: cells trained at once, each in its own process."""
    named = check_reused(grid)
    if grid.reuse is not None:  # a report of another grid matches nothing: say so rather than train everything
        log(f"--reuse {grid.reuse}: {named} of its {len(grid.reused)} rows are cells of this grid")
    total = grid.n_cells()
    floors = run_floors(grid, log, report_only)
    cells = run_cells(grid, grid.sweep_cells(), log, len(floors), total, report_only, workers)
    scores = [(c.task, c.method, c.lr, c.validation_score) for c in cells]
    if grid.sweep_tasks:  # one rate per method, selected on the swept tasks, for every task
        per_method = choose_lrs(("*", method, lr, mean) for (_, method, lr), mean in _task_means(scores).items())
        chosen = {(task, label): lr for (_, label), lr in per_method.items() for task in grid.tasks}
    else:
        chosen = choose_lrs(scores)
    rest = [
        (task, spec, chosen[(task, spec.label)], seed)
        for seed in grid.seeds
        for task in grid.tasks
        for spec in grid.methods
        if (task, spec.label) in chosen and not grid.is_swept(task, seed)
    ]
    cells += run_cells(grid, rest, log, len(floors) + len(grid.sweep_cells()), total, report_only, workers)
    for cell in cells:
        cell.selected = chosen.get((cell.task, cell.method)) == cell.lr and cell.validation_score is not None
    no_prompt = {(c.task, c.seed): c.test_score for c in floors if c.method == BARE}
    for cell in cells:  # a trained prompt that does no better than the bare backbone has learned nothing
        floor = no_prompt.get((cell.task, cell.seed))
        cell.below_floor = None if floor is None or cell.test_score is None else cell.test_score <= floor
    return floors + cells


def check_before_cells(grid: Recipe) -> None:
    """What a cell would refuse when it starts, checked once before the first, so that a bad one stops the grid
    before hours of other cells: each method against the backbone (`lamp.train.method_setup`: a rank above its
    width, DePT's offset past its positions, an `init_from` prompt that cannot be read or used), each task's format,
    chat template, data, scorer, batch and room for its input under max_length (`lamp.train.task_setup`). Reads the
    backbone's config and tokenizer, not its weights; a model that cannot be found is refused here."""
    backbone = load_config(grid.model)
    kind = config_kind(backbone)
    for spec in grid.methods:
        try:
            training.method_setup(grid_config(grid, grid.tasks[0], spec, spec.lrs[0], grid.seeds[0], False))
        except LampError as error:  # a ConfigError, or an AdapterError for init_from
            raise type(error)(f"methods: {spec.label}: {as_recipe_keys(str(error))}") from None
    tokenizer = load_tokenizer(grid.model)
    for task in grid.tasks:
        config = floor_config(grid, task, grid.seeds[0])
        try:
            setup = training.task_setup(config, config.task_spec(), tokenizer, kind)
            training.check_batch_fits(config, len(setup.splits["train"]))
            training.check_input_room(config, setup, tokenizer, kind)
        except LampError as error:
            raise type(error)(f"task {task}: {as_recipe_keys(str(error))}") from None


def floor_config(grid: Recipe, task: str, seed: int) -> TrainConfig:
    """The TrainConfig whose evaluation settings the floors of (task, seed) share with the trained cells."""
    return grid_config(grid, task, grid.methods[0], grid.methods[0].lrs[0], seed, resume=False)


def read_cell_results(path: Path, key: str = "test") -> dict[str, Any]:
    """A cell's results.json (or failed.json, `key` "error"), or ConfigError naming the file when it is not one:
    lamp writes each atomically, so a broken one was changed by hand."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        results = error
    if not isinstance(results, dict) or key not in results or not isinstance(results.get("config", {}), dict):
        raise ConfigError(
            f"{path} is not a lamp cell's record (no {key!r} in a JSON object): delete {path.parent} to run that "
            "cell again"
        )
    if key == "test" and not isinstance((results["test"] or {}).get("score"), int | float):
        raise ConfigError(f"{path} holds no test score: delete {path.parent} to run that cell again")
    return results


def run_floors(grid: Recipe, log: Callable[[str], None], report_only: bool) -> list[Cell]:
    """Score (or read back) the grid's floors for every task and seed; one backbone load gives both floors."""
    cells = []
    for seed in grid.seeds:
        for task in grid.tasks:
            config = floor_config(grid, task, seed)
            folders = {name: Path(grid.out) / "cells" / cell_name(task, name, None, seed) for name in grid.floors}
            done = {name: out / RESULTS for name, out in folders.items() if (out / RESULTS).is_file()}
            reused = {n: row for n, f in folders.items() if n not in done and (row := reused_row(grid, f)) is not None}
            if reused:
                log(f"floors of {task} seed {seed}: {', '.join(reused)} read back from an earlier report")
            if len(done) + len(reused) < len(folders) and not report_only:
                log(f"floors of {task} seed {seed}: scoring {', '.join(grid.floors)} (no training)")
                for name, results in floor_results(config).items():
                    if name in folders:
                        text = json.dumps(results, indent=2) + "\n"
                        atomic_write(folders[name] / RESULTS, lambda tmp, text=text: Path(tmp).write_text(text))
                        done[name] = folders[name] / RESULTS
                        reused.pop(name, None)
                gc.collect()
            for name in folders:
                if name in reused:  # a floor of an earlier report, checked by check_reused
                    cell = reused[name]
                    _keep_reused(folders[name], cell)
                elif name in done:
                    results = read_cell_results(done[name])
                    if differing := _floor_settings(results.get("config", {}), config):
                        raise ConfigError(
                            f"{folders[name]} was scored with other settings ({differing}): choose another --out, "
                            "or delete that cell to score it again"
                        )
                    cell = Cell.from_results(task, name, name, None, seed, results)
                else:
                    continue  # report-only: not scored yet
                cells.append(dataclasses.replace(cell, selected=True, floor=True, trained_now=False))
    return cells


def _floor_settings(saved: dict[str, Any], config: TrainConfig) -> str:
    """The FLOOR_SETTINGS on which a scored floor differs from the grid's, comma-separated ("" when none); a floor
    scored before task specs were recorded holds none, and is compared on the task's path."""
    wanted = {k: v for k, v in run_settings(config, config.task_spec()).items() if k in FLOOR_SETTINGS}
    saved = {k: saved.get(k) for k in FLOOR_SETTINGS if k != TASK_SPEC or k in saved}
    return ", ".join(_named(differing_settings(saved, wanted, ()), saved, wanted))


def _named(differing: list[str], saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """`differing` with the task spec's entry naming the spec keys that changed (`task_spec: template`)."""
    keys = " and ".join(key for key, _, _ in task_spec_differences(saved, wanted))
    return [f"{name}: {keys}" if name == TASK_SPEC and keys else name for name in differing]


def check_reused(grid: Recipe) -> int:
    """ConfigError when a reused row (`reused_row`) of a cell this grid may run (any of its learning rates, or a
    floor) was run otherwise: another registered method, rate or step count, or, where the row holds its settings
    (rows written before they were kept do not), any training setting `_same_settings` compares. Rows naming cells
    outside the grid are left alone. Checked before anything is scored. Returns how many rows of the --reuse report
    name cells of the grid."""
    named = 0
    for task in grid.tasks:
        for seed in grid.seeds:
            floor = floor_config(grid, task, seed)
            for name in grid.floors:
                out = Path(grid.out) / "cells" / cell_name(task, name, None, seed)
                named += out.name in grid.reused
                row = reused_row(grid, out)
                if row is not None and row.config is not None and (differing := _floor_settings(row.config, floor)):
                    raise ConfigError(_reuse_error(grid, out, differing))
            for spec in grid.methods:
                for lr in spec.lrs:
                    config = grid_config(grid, task, spec, lr, seed, resume=False)
                    named += Path(config.out).name in grid.reused
                    row = reused_row(grid, Path(config.out))
                    if row is None:
                        continue
                    wrong = [] if row.base_method == spec.method else ["method"]
                    wrong += [] if row.lr == lr else ["lr"]  # equal names, other rates: 0.1234567 and 0.12345671
                    wrong += [] if row.error or row.steps == grid.max_steps else ["max_steps"]
                    wrong += _same_settings(row.config, config) if row.config is not None else []
                    if wrong:
                        raise ConfigError(_reuse_error(grid, Path(config.out), ", ".join(dict.fromkeys(wrong))))
    return named


def reused_row(grid: Recipe, out: Path) -> Cell | None:
    """The row of an earlier report that stands for the cell in `out`: the one kept in its folder (REUSED), else the
    `--reuse` report's; None when neither has it. ConfigError when the kept file is not a cell's row."""
    path = out / REUSED
    if not path.is_file():
        return grid.reused.get(out.name)
    try:
        row = Cell.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecursionError, TypeError):  # TypeError: not a mapping of Cell's keys
        row = None
    if row is None or not is_record(row) or row.cell != out.name:
        raise ConfigError(f"{path} is not a lamp cell's row: delete {out} to run that cell again")
    return row


def _keep_reused(out: Path, row: Cell) -> None:
    """Keep a row of the --reuse report in its cell's folder (REUSED), once."""
    if not (out / REUSED).is_file():
        text = json.dumps(row.to_json(), indent=2) + "\n"
        atomic_write(out / REUSED, lambda tmp: Path(tmp).write_text(text))


def _reuse_error(grid: Recipe, out: Path, differing: str) -> str:
    if (out / REUSED).is_file():
        return (
            f"{out / REUSED} holds a row of other settings ({differing}): choose another --out, or delete that cell "
            "to run it"
        )
    return (
        f"--reuse {grid.reuse}: cell {out.name} was run with other settings ({differing}): drop --reuse, or pass the "
        "report of a run of this recipe"
    )


def _same_settings(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    """The TrainConfig fields (other than output handling) on which a finished cell differs from the grid; paths to
    the same folder (the model's) are the same setting however they are written. The data folder is not compared,
    as `--resume` does not: it holds the same official files wherever it is (a grid run on another machine, e.g. a
    GPU's, reads back here)."""
    wanted = run_settings(config, config.task_spec())
    saved = {"format": "t5", **saved}  # cells run before --format existed used the t5 format
    return _named(differing_settings(saved, wanted, LOCAL_SETTINGS), saved, wanted)


def run_cells(
    grid: Recipe,
    cells: list[tuple[str, GridMethod, float, int]],
    log: Callable[[str], None],
    done: int,
    total: int,
    report_only: bool = False,
    workers: int = 1,
) -> list[Cell]:
    """Run (or read back) the given cells, `workers` at a time; `done` and `total` only number the progress lines.
    Records come back in the order of `cells` whatever order the workers finish in."""
    records: dict[int, Cell] = {}
    pending: list[tuple[int, str, TrainConfig]] = []
    unfinished: list[str] = []  # report-only: named in one line, not one line each (a grid may have dozens)
    for i, (task, spec, lr, seed) in enumerate(cells):
        tag = f"[{done + i + 1}/{total}] {cell_name(task, spec.label, lr, seed)}"
        config = grid_config(grid, task, spec, lr, seed, resume=False)
        out = Path(config.out)
        results_path, failed_path = out / RESULTS, out / "failed.json"
        if results_path.is_file() or failed_path.is_file():
            finished = results_path.is_file()
            results = read_cell_results(results_path) if finished else read_cell_results(failed_path, "error")
            differing = _same_settings(results.get("config", {}), config)  # failed cells kept none before
            if differing:
                raise ConfigError(
                    f"{out} was run with other settings ({', '.join(differing)}): choose another --out, or delete "
                    "that cell to rerun it"
                )
            if finished:
                log(f"{tag}: finished earlier, test {results['test']['score']:.2f}")
            else:
                log(f"{tag}: failed earlier ({results['error']}); delete {out} to retry it")
        elif (reused := reused_row(grid, out)) is not None:  # checked by check_reused
            source = out / REUSED if (out / REUSED).is_file() else grid.reuse
            _keep_reused(out, reused)
            records[i] = dataclasses.replace(reused, trained_now=False)
            outcome = f"failed: {reused.error}" if reused.error else f"test {reused.test_score:.2f}"
            log(f"{tag}: read back from {source}, {outcome}")
            continue
        elif report_only:
            unfinished.append(cell_name(task, spec.label, lr, seed))
            continue
        else:
            resume = out.is_dir() and holds_run(out)  # a folder with only a lock or leftovers starts afresh
            log(f"{tag}: {'resuming' if resume else 'training'}")
            pending.append((i, tag, dataclasses.replace(config, resume=resume)))
            continue
        records[i] = Cell.from_results(task, spec.label, spec.method, lr, seed, results)
    if unfinished:
        shown = ", ".join(unfinished[:3]) + (f" and {len(unfinished) - 3} more" if len(unfinished) > 3 else "")
        log(f"not finished yet: {len(unfinished)} of these {len(cells)} cells ({shown})")

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
            (out / CHECKPOINT).unlink(missing_ok=True)
        cell = Cell.from_results(task, spec.label, spec.method, lr, seed, results)
        records[i] = dataclasses.replace(cell, trained_now=True)
    bar.close()
    return [records[i] for i in sorted(records)]


def train_cell(config: TrainConfig) -> dict[str, Any]:
    """One cell's results, or {"error": ...} when its loss diverged (NaN or inf): that is a result, not a fault.
    In a worker process that was stopped it raises Interrupted without training (cells queued for the worker before
    the stop must not start), and one whose main process is gone ends (`_exit_if_orphaned`)."""
    _exit_if_orphaned()
    if _WORKER.get("stopped"):
        raise Interrupted
    try:
        return training.train(config)
    except TrainingError as error:  # with its settings, so that a rerun or --reuse can check them
        return {"error": str(error), "config": run_settings(config, config.task_spec())}
    except KeyboardInterrupt:  # Interrupted too: the cell saved its checkpoint
        if _WORKER:
            _WORKER["stopped"] = True
            _exit_if_orphaned()
        raise
    finally:
        gc.collect()  # a cell's model and optimizer go before the next one loads


def _exit_if_orphaned() -> None:
    """End a worker process whose main process is gone (killed): there is no one to report to, and the pool's
    queues would keep it waiting for ever. Its cell, if any, has already saved its checkpoint."""
    if _WORKER and os.getppid() != _WORKER["parent"]:
        os._exit(130)


_WORKER: dict[str, Any] = {}
"""In a worker process (`_worker_setup`): its main process's pid (`parent`) and whether a cell of it was stopped."""


def _worker_setup(threads: int) -> None:
    """A worker process: its share of the CPU threads, no progress bars (N processes would interleave them), and
    signals from its main process only. In a process group of its own, Ctrl-C or a signal to the grid's group
    reaches the main process alone, which stops each worker once (a second signal would stop a cell at once,
    keeping its previous checkpoint instead of saving the current step); on Linux a worker whose main process
    dies (even by SIGKILL) is sent SIGTERM, so it saves its cell's checkpoint and stops instead of training on
    alone."""
    import torch

    os.environ["TQDM_DISABLE"] = "1"
    torch.set_num_threads(threads)
    _WORKER.update(parent=os.getppid(), stopped=False)
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1
"""prctl(2): the signal a process gets when the thread that started it ends (linux/prctl.h)."""


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _train_cells(
    pending: list[tuple[int, str, TrainConfig]], workers: int
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(index, tag, results) of each pending cell: in this process one after another, or `workers` processes at
    once (spawned: each loads its own backbone; a GPU is shared, which suits small, launch-bound backbones)."""
    if workers == 1 or len(pending) < 2:
        for i, tag, config in pending:
            with _named_cell(config):
                results = train_cell(config)
            yield i, tag, results
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    # SIGTERM stops the grid as Ctrl-C does (its default would end this process and leave the workers to go on)
    terminate = signal.signal(signal.SIGTERM, _raise_interrupt) if _in_main_thread() else None
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_setup, initargs=(threads,)) as pool:
            futures = {pool.submit(train_cell, config): (i, tag, config) for i, tag, config in pending}
            try:
                for future in as_completed(futures):
                    i, tag, config = futures[future]
                    with _named_cell(config):
                        results = future.result()  # a cell's fault stops the grid; finished cells stay finished
                    yield i, tag, results
            except BaseException:  # a signal, a cell's fault, or the caller stopping: cells queued do not start,
                for future in futures:  # and each worker saves its cell's checkpoint and stops
                    future.cancel()
                for process in multiprocessing.active_children():
                    process.terminate()  # SIGTERM: the cell stops at its next step boundary
                raise
    finally:
        if terminate is not None:
            signal.signal(signal.SIGTERM, terminate)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # signal handlers are set there only


@contextlib.contextmanager
def _named_cell(config: TrainConfig) -> Iterator[None]:
    """A cell's refusal (a bad input only that cell meets, e.g. a task without words for init task) names the cell:
    the grid stops on it after other cells may have run."""
    try:
        yield
    except LampError as error:
        raise type(error)(f"cell {Path(config.out).name}: {error}") from None


def _task_means(scores: Iterable[Score]) -> dict[tuple[str, str, float | None], float]:
    """The mean validation score over seeds of each (task, method, lr), so that a selection over several tasks
    weighs each task once."""
    groups: dict[tuple[str, str, float | None], list[float]] = {}
    for task, method, lr, validation in scores:
        if validation is not None:
            groups.setdefault((task, method, lr), []).append(validation)
    return {key: statistics.fmean(values) for key, values in groups.items()}


def choose_lrs(scores: Iterable[Score]) -> dict[tuple[str, str], float]:
    """Per (task, method): the learning rate with the best mean validation score over the scores' seeds.

    Test scores play no part. Ties go to the rate that comes first in `scores`; failed cells are left out.
    """
    groups: dict[tuple[str, str], dict[float, list[float]]] = {}
    for task, method, lr, validation in scores:
        if validation is not None:
            groups.setdefault((task, method), {}).setdefault(lr, []).append(validation)
    chosen = {}
    for key, by_lr in groups.items():
        means = {lr: statistics.fmean(values) for lr, values in by_lr.items()}
        chosen[key] = max(means, key=lambda lr: means[lr])  # max keeps the first of equal values
    return chosen


@contextlib.contextmanager
def locked_grid(grid: Recipe, report_only: bool) -> Iterator[None]:
    """Hold the grid folder's lock while the grid trains: a second `lamp compare` on the folder is refused in one
    line. A report (--report-only) only reads the cells, so it may run beside a training grid."""
    from accelerate import PartialState

    out = Path(grid.out)
    # A grid writes its cells and report into the folder (a report too, and --reuse's rows): one holding other files
    # is not lamp's to write into.
    if out.is_dir() and run_files(out) and not ((out / "cells").is_dir() or (out / REPORT).is_file()):
        raise ConfigError(
            f"{out} holds files that are not a lamp comparison: choose another --out; lamp never overwrites them"
        )

    def claim() -> Any:
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
