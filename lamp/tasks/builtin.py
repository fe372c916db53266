"""The built-in tasks by name: GLUE, SuperGLUE and polarity (`lamp.tasks` re-exports TASKS and get_task)."""

from __future__ import annotations

from lamp.errors import DataError, did_you_mean
from lamp.tasks import glue, polarity, superglue
from lamp.tasks.base import Task

TASKS: dict[str, Task] = {task.name: task for task in (*glue.TASKS, *superglue.TASKS, polarity.TASK)}


def get_task(name: str, format: str = "t5") -> Task:
    """The spec of a task by name, viewed in input `format` (see `Task.in_format`); an unknown name lists the known
    ones (DataError), an unknown format too (ConfigError)."""
    try:
        task = TASKS[name]
    except KeyError:
        raise DataError(
            f"unknown task {name!r}{did_you_mean([name], TASKS)}; known tasks: {', '.join(TASKS)}; for your own data "
            "pass a task YAML file (docs/tasks.md; lamp train also takes --train-file or --dataset with --template)"
        ) from None
    return task.in_format(format)
