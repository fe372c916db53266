"""A user's own data: files per split (CSV, TSV, JSON or JSON lines, Parquet) or a hub dataset, read with `datasets`.

Each file becomes a list of rows (one dict per record, fields by column name); the task then checks that every row
has the fields its template and answer read (`lamp.tasks.user`). Every problem a file can have is one DataError
naming the file and the fix: missing, of an unknown type, empty, unreadable, or without a row.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamp.errors import DataError, file_problem, shown_path
from lamp.hub_logs import quiet_hub
from lamp.tasks.sources import not_utf8

# suffix -> (datasets builder, its options): CSV cells are read as written (na_filter off: "NA" stays text and an
# empty cell is "", not NaN); JSON reads a list of objects or one object per line.
READERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {"na_filter": False}),
    ".tsv": ("csv", {"sep": "\t", "na_filter": False}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
SPLITS = ("train", "validation", "test")
HUB_SPLITS = {"train": ("train",), "validation": ("validation", "valid", "dev"), "test": ("test",)}
Rows = list[tuple[str, dict[str, Any]]]  # (where, e.g. "data.csv row 3", row)


@dataclass(frozen=True)
class UserData:
    """Where a user task's rows live: `files` ((split, path) pairs, train first) or a hub `dataset`
    (``owner/name`` or ``owner/name:config``; a local folder of data files works too)."""

    files: tuple[tuple[str, str], ...] = ()
    dataset: str | None = None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars or info lines from `datasets` while a file loads, nor huggingface_hub's retry lines while a
    dataset is fetched (lamp's own line says what failed)."""
    import datasets

    was_disabled = datasets.utils.are_progress_bars_disabled()
    level = datasets.utils.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity(logging.CRITICAL)  # it logs a broken file's error before raising it
    try:
        with quiet_hub(transformers_too=False):
            yield
    finally:
        datasets.utils.logging.set_verbosity(level)
        if not was_disabled:
            datasets.enable_progress_bars()


def _reason(error: BaseException) -> str:
    """The innermost cause of a loading error (datasets wraps the reader's own error), in one short line."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def read_file(path: str) -> list[dict[str, Any]]:
    """The rows of one data file, its type known by its suffix (`READERS`). DataError when the file is missing,
    of another type, empty, unreadable (not UTF-8, broken CSV or JSON) or holds no rows."""
    import datasets

    file = Path(path).expanduser()
    if file.is_dir():  # before the suffix: a folder has none to name
        raise DataError(f"data file {shown_path(path)} is a folder, not a file: pass the file itself")
    reader = READERS.get(file.suffix.lower())
    if reader is None:
        raise DataError(
            f"{path}: unknown data file type {file.suffix or '(no suffix)'!r}: use a .csv, .tsv, .json, .jsonl or "
            ".parquet file"
        )
    problem = file_problem(file)
    if problem is not None:
        raise DataError(f"data file {shown_path(path)} {problem}: check the path")
    data = file.read_bytes()
    if not data.strip():
        raise DataError(f"data file {path} is empty: add a header and rows (CSV) or one JSON object per line")
    builder, options = reader
    if builder != "parquet":  # text files: a bad byte is named here (pyarrow's JSON reader lets it through)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise not_utf8(file) from None
    if builder == "json":
        _records_only(path, text, whole=file.suffix.lower() == ".json")
    if builder == "csv" and len(data.strip().splitlines()) < 2:  # datasets cannot read a header alone
        raise DataError(f"data file {path} holds no rows (a header only?): add rows")
    if builder == "csv":  # every cell is text as written: pandas would read 5 as a number and True as a bool
        options = {**options, "features": _text_columns(path, text, options.get("sep", ","))}
    try:
        with _quiet():
            loaded = datasets.load_dataset(builder, data_files=str(file.resolve()), split="train", **options)
            rows = loaded.to_list()
    except Exception as error:  # pandas, pyarrow and json each raise their own kinds for a broken file
        if builder == "parquet":  # a binary file: no text to save as UTF-8, no syntax to check
            raise DataError(
                f"cannot read {path} as Parquet ({_reason(error)}): it is not a whole Parquet file; write it again "
                "(e.g. pandas' DataFrame.to_parquet), or pass a .csv or .jsonl file"
            ) from None
        raise DataError(
            f"cannot read {path} as {file.suffix[1:].upper()} ({_reason(error)}): save it as UTF-8 "
            f"{'with a header row' if builder == 'csv' else 'records'} and check its syntax"
        ) from None
    if not rows:
        raise DataError(f"data file {path} holds no rows (a header only?): add rows")
    return rows


def _records_only(path: str, text: str, whole: bool) -> None:
    """Refuse JSON rows that are not objects (a list of numbers, a line holding a list or a string): `datasets`
    reads a list of scalars as one column named "text", and fails on such lines with its parser's message, neither
    naming the problem. `whole`: a .json file, which may hold one list of rows (else it holds JSON lines). A file
    that does not parse is left to `datasets`, whose error names the syntax."""
    rows: list[Any] = []
    try:
        value = json.loads(text) if whole else None
    except (ValueError, RecursionError):  # JSON lines in a .json file, or broken JSON
        value = None
    if value == []:
        raise DataError(f"data file {path} holds no rows (an empty list): add rows")
    if isinstance(value, list):
        rows = value
    elif whole and value is not None:
        rows = [value]
    else:
        for line in text.splitlines():  # blank lines hold no row (nor does datasets count them)
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except (ValueError, RecursionError):
                    break  # a broken line: datasets names it
    if whole and isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        raise DataError(  # pandas' to_json default: one object of columns, which datasets would read as one row
            f"{path} holds one object of columns ({', '.join(map(repr, list(value)[:3]))}: lists), not rows: write one "
            'JSON object per row, e.g. [{"text": "...", "label": "..."}] (pandas: to_json(orient="records"))'
        )
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError(
                f"{path} row {number} is {repr(row)[:80]}, not a record with fields: write one JSON object per row, "
                'e.g. {"text": "...", "label": "..."}'
            )


def _text_columns(path: str, text: str, sep: str) -> Any:
    """`datasets` features reading every column of a CSV / TSV file as text, by the names its header gives."""
    import datasets

    csv.field_size_limit(max(csv.field_size_limit(), len(text)))  # a long document is one field; pandas has no limit
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    names = next(reader, [])
    other = {",": "\t", "\t": ","}[sep]
    if len(names) == 1 and other in names[0]:  # tab-separated rows in a .csv file (or the other way round)
        kind, suffix = ("tabs", ".tsv") if other == "\t" else ("commas", ".csv")
        raise DataError(f"{path}: its header is separated by {kind}: name the file {Path(path).stem}{suffix}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(f"{path}: the header names column {', '.join(map(repr, twice))} twice: name each column once")
    # pandas takes a first row with one field too many as an index column and shifts every value left
    start = reader.line_num + 1  # the line a row starts on (a quoted value may span lines)
    try:
        for row in reader:
            if row and len(row) != len(names):
                fix = "quote a value that holds the separator" if len(row) > len(names) else "fill in the missing ones"
                if reader.line_num > start:
                    fix += " (or close a quote left open)"
                raise DataError(
                    f"{path}:{start}: expected {len(names)} fields as the header names, found {len(row)}: {fix}"
                )
            start = reader.line_num + 1
    except csv.Error as error:
        raise DataError(f"{path}:{start}: {error}: check the quotes on that line") from None
    return datasets.Features({name: datasets.Value("string") for name in names})


def read_dataset(dataset: str) -> dict[str, list[dict[str, Any]]]:
    """The splits of a hub dataset ``owner/name[:config]`` (or a local folder `datasets` reads), train required;
    validation may be named validation, valid or dev. DataError when it cannot be loaded or has no train split."""
    import datasets

    path, _, config = dataset.partition(":")
    try:
        with _quiet():
            loaded = datasets.load_dataset(path, config or None)
    except Exception as error:  # offline, unknown id, unknown config...
        raise DataError(
            f"cannot load dataset {dataset!r} ({_reason(error)}): pass a hub id reachable online (owner/name or "
            "owner/name:config), or your files with --train-file"
        ) from None
    found = {}
    for split, names in HUB_SPLITS.items():
        name = next((n for n in names if n in loaded), None)
        if name is not None:
            found[split] = loaded[name].to_list()
    if "train" not in found:
        raise DataError(f"dataset {dataset!r} has no train split (found {sorted(loaded)}): pass --train-file instead")
    return found


def user_rows(data: UserData) -> dict[str, Rows]:
    """Rows per split (train, and validation / test where given), each with where it came from."""
    if data.dataset is not None:
        splits = read_dataset(data.dataset)
        return {
            split: [(f"{data.dataset} {split} row {i}", row) for i, row in enumerate(rows, start=1)]
            for split, rows in splits.items()
        }
    return {
        split: [(f"{path} row {i}", row) for i, row in enumerate(read_file(path), start=1)]
        for split, path in data.files
    }
