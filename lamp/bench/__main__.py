"""`python -m lamp.bench PAYLOAD OUT`: the worker process that measures one method (`lamp.bench.isolation`)."""

from __future__ import annotations

import sys

from lamp.bench.isolation import worker
from lamp.errors import LampError

if __name__ == "__main__":
    try:
        sys.exit(worker(sys.argv[1:]))
    except LampError as error:
        print(f"lamp bench: error: {error}", file=sys.stderr)
        sys.exit(2)
