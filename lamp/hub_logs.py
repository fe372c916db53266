"""Quieting the Hugging Face libraries' own log lines while lamp resolves a name, so that lamp's one-line error is
the only thing a user reads when a model, tokenizer or dataset cannot be found (offline, huggingface_hub logs every
retry)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_hub(transformers_too: bool = True) -> Iterator[None]:
    """Silence huggingface_hub's log lines (a hub id on an offline machine logs every retry) and, with
    `transformers_too`, transformers' warnings and Python warnings, while a name resolves and loads; the levels are
    restored after. lamp's own error then says in one line what failed."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as transformers_logging

    libraries = [hub_logging, transformers_logging] if transformers_too else [hub_logging]
    levels = [library.get_verbosity() for library in libraries]  # also sets each library's logger up first
    try:
        for library in libraries:
            library.set_verbosity(logging.ERROR)
        with warnings.catch_warnings():
            if transformers_too:
                warnings.simplefilter("ignore")
            yield
    finally:
        for library, level in zip(libraries, levels, strict=True):
            library.set_verbosity(level)
