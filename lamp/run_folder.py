"""A run's folder: its files, its lock, its checkpoint, and the signals that stop a run where a checkpoint is whole.

Every file is written whole or not at all (`lamp.adapter.atomic_write`); a second process on the same folder is
refused; a checkpoint is checked part by part before a resume trusts it, and a bad one is named in one line. Nothing
here knows a run's settings (`lamp.train` checks those).

The checkpoint is one file written by hand rather than with Accelerate's `save_state` / `load_state`, which write a
folder of files one after another (a crash mid-save leaves a mix of two steps; here the last whole checkpoint
survives), save the whole prepared model (the frozen backbone too, gigabytes for 7B) and load without checking
(a NaN prompt or a truncated file would be a traceback, not a line naming the file). `skip_first_batches` has
nothing to replace: the data order is a pure function of the seed and the step (`lamp.train`), not a DataLoader's.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lamp.adapter import CONFIG as ADAPTER_CONFIG
from lamp.adapter import nonfinite
from lamp.errors import ConfigError

CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"
LOG = "log.jsonl"
PLOT = "training.png"
ADAPTER = "adapter"
MIN_FREE_MB = 64  # checkpoints of a prompt are small; less free space than this fails before training
RUN_CONFIG = "train_config.json"
"""The run's TrainConfig as JSON, next to its checkpoint: --resume reads the run's settings back from it."""
LOCK = ".lamp.lock"
"""Held by the process that runs in a folder (train: the run folder; compare: the grid folder)."""
RUN_FILE_NAMES = (RUN_CONFIG, CHECKPOINT, RESULTS, LOG, PLOT)
"""The files of a run (besides its ADAPTER folder): the only ones --overwrite deletes."""
_LEFTOVER = re.compile(r"^\..+\.\w{8}\.tmp(\.\w+)?$|^\.write-test-\d+$")  # atomic_write's and the write probe's


class FolderLock:
    """The lock `lock_folder` took. Releasing it also removes the folders taking it created, when they hold nothing
    else: a run refused after the lock (a bad --model) leaves no empty folder holding only a lock file behind."""

    def __init__(self, lock: Any, folder: Path, created: list[Path]) -> None:
        self.lock, self.folder, self.created = lock, folder, created  # created: the folder first, then its parents

    def release(self) -> None:
        empty = bool(self.created) and self.folder.is_dir() and not run_files(self.folder)
        if empty:  # while still held, so no other process takes a lock on the file about to go
            with contextlib.suppress(OSError):
                (self.folder / LOCK).unlink()
        self.lock.release()
        for path in self.created if empty else ():
            try:
                path.rmdir()  # only once empty: anything written meanwhile stays
            except OSError:
                break


def lock_folder(folder: Path, flag: str = "--out") -> FolderLock:
    """Create `folder` and take its lock without waiting (release it when done): a second process on the same folder
    is refused in one line."""
    from filelock import FileLock, Timeout

    lock = FileLock(folder / LOCK, timeout=0)
    created = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"output path {folder} is a file: choose a folder for {flag}")
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:  # an OSError too, so caught first
        raise ConfigError(
            f"{folder} is in use by another lamp process: wait for it to end, or choose another {flag}"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot write to output folder {folder} ({error.strerror}): choose another {flag}") from None
    return FolderLock(lock, folder, created)


def run_files(out: Path) -> list[Path]:
    """What a run folder holds besides lamp's own bookkeeping (its lock, half-written files, write probes)."""
    return [path for path in out.iterdir() if path.name != LOCK and not _LEFTOVER.match(path.name)]


def holds_run(out: Path) -> bool:
    """Whether `out` holds a lamp run, known by the files only a run writes (its settings, checkpoint, results or
    adapter); a log or a plot alone could be anyone's."""
    return (
        any((out / name).is_file() for name in (RUN_CONFIG, CHECKPOINT, RESULTS))
        or (out / ADAPTER / ADAPTER_CONFIG).is_file()
    )


def check_run_folder(out: Path) -> list[Path]:
    """What `out` holds (`run_files`; nothing if it is no folder yet), refusing a folder lamp must not write into:
    one where a run's file is a folder (or its adapter folder a file), or one that holds files but no lamp run."""
    if not out.is_dir():
        return []
    held = run_files(out)
    for name in RUN_FILE_NAMES:
        if (out / name).exists() and not (out / name).is_file():
            raise ConfigError(
                f"{out / name} is a folder, not the run's {name} file: move it away or choose another --out"
            )
    if (out / ADAPTER).exists() and not (out / ADAPTER).is_dir():
        raise ConfigError(
            f"{out / ADAPTER} is a file, not the run's adapter folder: move it away or choose another --out"
        )
    if held and not holds_run(out):
        raise ConfigError(f"{out} holds files that are not a lamp run: choose another --out; lamp never deletes them")
    return held


def remove_leftovers(folder: Path) -> None:
    """Delete the half-written files a killed process left (call it holding the folder's lock)."""
    for parent in (folder, folder / ADAPTER):
        for path in parent.iterdir() if parent.is_dir() else ():
            if _LEFTOVER.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)


def on_main_process(state: Any, action: Callable[[], Any]) -> Any:
    """`action()` on the main process only (its result there, None elsewhere). A ConfigError it raises is raised on
    every process (`state`: an Accelerator or PartialState), so the processes of one run stop together instead of
    waiting for each other."""
    problem, result = None, None
    if state.is_main_process:
        try:
            result = action()
        except ConfigError as error:
            problem = str(error)
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        problem = broadcast_object_list([problem])[0]
    if problem is not None:
        raise ConfigError(problem)
    return result


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, its structure checked; a truncated, corrupt, unreadable or broken file is a one-line
    error and is left in place."""
    fix = "pass --overwrite instead of --resume to start the run over (the file is left as it is)"
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # torch raises many kinds here (OSError, UnpicklingError, RuntimeError, EOFError...)
        raise ConfigError(
            f"checkpoint {path} cannot be read (truncated, corrupt or not a lamp checkpoint): {fix}"
        ) from None
    problem = _checkpoint_problem(saved)
    if problem:
        raise ConfigError(f"checkpoint {path} cannot be used ({problem}): {fix}")
    return saved


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _checkpoint_problem(saved: Any) -> str | None:
    """What makes a loaded checkpoint unusable: a missing part, a part of the wrong type, a prompt that is not finite
    (it would train on as NaN), a state the loop cannot continue from."""
    if not isinstance(saved, dict):
        return f"a {type(saved).__name__}, not a lamp checkpoint"
    missing = [key for key in ("prompt", "optimizer", "scheduler", "rng", "state") if key not in saved]
    if missing:
        return f"it has no {', '.join(missing)}"
    prompt, state = saved["prompt"], saved["state"]
    if not isinstance(prompt, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in prompt.items()):
        return "its prompt is not a mapping of name: tensor"
    bad = nonfinite({k: v for k, v in prompt.items() if v.is_floating_point()})
    if bad is not None:
        return f"prompt tensor {bad!r} holds NaN or inf values"
    if not isinstance(saved["optimizer"], dict) or not {"state", "param_groups"} <= saved["optimizer"].keys():
        return "its optimizer state is not an optimizer's state_dict"
    if not isinstance(saved["scheduler"], dict):
        return "its scheduler state is not a mapping"
    if not torch.is_tensor(saved["rng"]) or saved["rng"].dtype != torch.uint8:
        return "its rng is not a random generator's state"
    if not isinstance(state, dict):
        return f"its state is a {type(state).__name__}, not a mapping"
    missing = [key for key in ("step", "best_step", "best_score", "log") if key not in state]
    if missing:
        return f"its state has no {', '.join(missing)}"
    for key in ("step", "best_step"):
        if not _is_count(state[key]):
            return f"its state's {key} is {state[key]!r}, not an integer >= 0"
    if not isinstance(state["best_score"], int | float) or isinstance(state["best_score"], bool):
        return f"its state's best_score is {state['best_score']!r}, not a number"
    if not isinstance(state["log"], list) or not all(isinstance(row, dict) for row in state["log"]):
        return "its state's log is not a list of rows"
    if not isinstance(state.get("zero_shot", None), dict | None):
        return f"its state's zero_shot is {state['zero_shot']!r}, not scores"
    if not isinstance(state.get("elapsed_s", 0.0), int | float):
        return f"its state's elapsed_s is {state['elapsed_s']!r}, not a number"
    validated = {row.get("step") for row in state["log"] if "validation" in row}
    if state["best_step"] > state["step"] or (state["best_step"] and state["best_step"] not in validated):
        return f"its state's best_step {state['best_step']} is no validated step of its log"
    return None


class _RecordingFile:
    """A file that keeps its write error: torch.save reports a full disk only as an opaque RuntimeError."""

    def __init__(self, file: Any) -> None:
        self.file, self.error = file, None

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def torch_save(payload: Any, path: str | os.PathLike) -> None:
    """torch.save to `path`; a failed write raises its OSError (which atomic_write turns into one line)."""
    with open(path, "wb") as file:
        recorder = _RecordingFile(file)
        try:
            torch.save(payload, recorder)
        except RuntimeError:
            if recorder.error is None:
                raise
            raise recorder.error from None


class StopRequest:
    """SIGINT/SIGTERM ask the loop to stop at the next step boundary, where a checkpoint is consistent; a second
    signal stops at once, and then the last checkpoint on disk is kept as it is (train's handler)."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second signal stops at once
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
