"""Progress bars (tqdm) for lamp's long loops: training, scoring, predict, bench and compare grids.

`TQDM_DISABLE=1` (tqdm's own environment setting) turns every bar off; a bar lamp passes settings to would otherwise
ignore it, so this module reads it once for all of them.
"""

from __future__ import annotations

import os
from typing import Any


def bars_disabled() -> bool:
    """Whether $TQDM_DISABLE asks for no progress bars (any value but "", 0, false, no)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def progress(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> Any:
    """A `tqdm.auto.tqdm` bar (on stderr) over `iterable` (or `total=` steps), off when `enabled` is False or
    $TQDM_DISABLE is set; other keyword arguments go to tqdm (desc, total, leave, unit...)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled or bars_disabled(), dynamic_ncols=True, **kwargs)
