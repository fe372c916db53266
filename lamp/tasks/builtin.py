"""The built-in tasks by name: GLUE, SuperGLUE and polarity (`lamp.tasks` re-exports TASKS and get_task)."""

from __future__ import annotations

import difflib

from lamp.errors import DataError
from lamp.tasks import glue, polarity, superglue
from lamp.tasks.base import Task

TASKS: dict[str, Task] = {task.name: task for task in (*glue.TASKS, *superglue.TASKS, polarity.TASK)}


def get_task(name: str, format: str = "t5") -> Task:
    """The spec of a task by name, viewed in input `format` (see `Task.in_format`); an unknown name lists the known
    ones (DataError), an unknown format too (ConfigError)."""
    try:
        task = TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name).lower(), TASKS, n=1, cutoff=0.75)  # SST-2, RTE, Cola
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(
            f"unknown task {name!r}{hint}; known tasks: {', '.join(TASKS)}; for your own data pass a task YAML file "
            "(docs/tasks.md; lamp train also takes --train-file or --dataset with --template)"
        ) from None
    return task.in_format(format)
