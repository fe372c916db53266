"""Errors lamp raises for bad input: each message is one line naming the problem and the fix."""


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
