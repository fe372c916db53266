"""Tasks as data: one declarative spec per task and one split protocol.

>>> from lamp.tasks import get_task, load_splits
>>> splits = load_splits("rte", data_dir="../shared/data")   # {"train", "validation", "test"} -> [Example]
>>> get_task("rte").compute_metrics(predictions, splits["test"])

Adding a task is one `Task(...)` in `glue.py`, `superglue.py` or a module of its own listed below.
"""

from __future__ import annotations

import os

from lamp.errors import DataError
from lamp.tasks import glue, polarity, superglue
from lamp.tasks.base import Example, Task
from lamp.tasks.polarity import fetch_polarity
from lamp.tasks.sources import load_official

TASKS: dict[str, Task] = {task.name: task for task in (*glue.TASKS, *superglue.TASKS, polarity.TASK)}

__all__ = ["TASKS", "DataError", "Example", "Task", "fetch_polarity", "get_task", "load_splits"]


def get_task(name: str) -> Task:
    """The spec of a task by name; an unknown name lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise DataError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


def load_splits(name: str, data_dir: str | os.PathLike[str] | None = None, seed: int = 42) -> dict[str, list[Example]]:
    """Train / validation / test examples of a task under the field's protocol (see `lamp.tasks.splits`).

    Sources, first that has the task: `data_dir` (else `$LAMP_DATA_DIR`) holding the official files, the packaged
    corpus (polarity, fetched into the cache once), the Hugging Face hub (online only).
    """
    task = get_task(name)
    return task.protocol(load_official(task, data_dir), seed)
