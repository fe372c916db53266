"""Errors lamp raises for bad input: each message is one line naming the problem and the fix."""

import difflib
import errno
import os
import stat
from collections.abc import Iterable


class LampError(ValueError):
    """A user-facing error: bad configuration, missing data, mismatched adapter. The CLI exits 2 on it."""


class ConfigError(LampError):
    """An invalid method or training configuration."""


class DataError(LampError):
    """Missing, malformed or unknown task data."""


class AdapterError(LampError):
    """A missing, corrupt or mismatched adapter."""


class TrainingError(LampError):
    """A run that cannot go on (a NaN or inf loss); the last good checkpoint is kept."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, already reported in one line (what is kept, how to resume): the CLI only exits 130."""


def first_sentence(error: BaseException, limit: int = 200) -> str:
    """The first sentence of a library's error message on one line, at most `limit` characters: the cause lamp quotes
    in its own one-line error (huggingface_hub's messages run over several lines and sentences)."""
    return " ".join(str(error).split()).split(". ")[0][:limit]


def did_you_mean(unknown: Iterable[object], known: Iterable[str]) -> str:
    """` (did you mean 'sst2'?)` for the first of `unknown` names close to one of `known` (difflib's ratio >= 0.75,
    case ignored: `SST-2`, `lenght`, `learning_rate` -> `lr` is not close), else empty; for a one-line error."""
    known = list(known)
    by_lower = {k.lower(): k for k in known}
    for name in unknown:
        close = difflib.get_close_matches(str(name).lower(), by_lower, n=1, cutoff=0.75)
        if close:
            return f" (did you mean {by_lower[close[0]]!r}?)"
    return ""


def shown_path(path: str | os.PathLike[str]) -> str:
    """`path` as a one-line message shows it: as given, or quoted with escapes when it holds a line break or another
    character that does not print (so the message stays one line and the name is exact)."""
    text = os.fspath(path)
    return text if text.isprintable() else repr(text)


def file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot be read as a file, as a message's predicate ("does not exist", "is a folder, not a file",
    "is a symbolic link loop", "is not a regular file": a pipe, a device), or None for a regular file. Follows
    links; a link to nothing does not exist."""
    try:
        mode = os.stat(os.path.expanduser(path)).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is a symbolic link loop"
        if error.errno == errno.ENOTDIR:  # a file named as a folder on the way: a/file.txt/x
            return "does not exist"
        return f"cannot be read ({error.strerror})"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return None
