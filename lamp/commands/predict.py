"""`lamp predict`: predictions for rows of several tasks with one backbone, each row under its task's adapter.

Input: JSON lines, each naming its task: {"task": "rte", "source": "rte sentence1: ... sentence2: ..."} (text as the
task formats it) or a raw row in the task's fields, {"task": "rte", "sentence1": "...", "sentence2": "..."}.
An "id" is copied to the output; rows that carry a "label" (raw rows) are also scored per task.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from lamp.checks import POSITIVE_INT, non_empty_path
from lamp.cli_options import counted
from lamp.errors import ConfigError, DataError, file_problem, shown_path
from lamp.scoring import SCORER_HELP, SCORERS


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict rows of several tasks in shared batches, one adapter per task",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--adapter",
        action="append",
        required=True,
        metavar="[TASK=]DIR",
        help="adapter folder, once per task; its task is the one lamp train recorded, or TASK= names it",
    )
    parser.add_argument(
        "--input", required=True, type=non_empty_path, help="JSON-lines file of rows ('-' reads standard input)"
    )
    parser.add_argument(
        "--output", type=non_empty_path, help="JSON-lines file for the predictions (default: standard output)"
    )
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=32, help="rows per batch, tasks mixed (default: 32)")
    parser.add_argument("--scorer", default="auto", choices=SCORERS, help=SCORER_HELP)
    parser.add_argument(
        "--max-length",
        type=POSITIVE_INT,
        help="maximum source tokens (default: each adapter's training --max-length; 256 if it records none)",
    )
    parser.add_argument("--model", help="backbone (default: the one the adapters name)")
    parser.set_defaults(func=run)


def read_rows(path: str, tasks: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file ('-': standard input), each checked (a known task, and a source text or the
    task's fields) before any model loads; a bad line is a DataError naming the file and line. `tasks`: the
    adapters' tasks by name (`lamp.predict.adapter_tasks`), so that user tasks are known."""
    from lamp.predict import row_source

    problem = None if path == "-" else file_problem(path)
    if problem is not None:
        raise DataError(f"input file {shown_path(path)} {problem}: pass a JSON-lines file of rows")
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"{path} line {line}: byte 0x{data[error.start]:02x} is not UTF-8: save it as UTF-8") from None
    name = "standard input" if path == "-" else path
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_refuse_constant)
        except NonStandardNumber as error:
            raise DataError(
                f"{name} line {number} holds {error.args[0]}, which JSON does not allow (the output would not be "
                "JSON either): write a number or a string"
            ) from None
        except json.JSONDecodeError:
            suffix = Path(path).suffix.lower()
            hint = f" (lamp predict reads JSON lines, not {suffix[1:].upper()})" if suffix in {".csv", ".tsv"} else ""
            raise DataError(f"{name} line {number} is not JSON{hint}: write one JSON object per line") from None
        except (ValueError, RecursionError) as error:  # JSON, but past the parser's limits
            reason = "it nests too deeply" if isinstance(error, RecursionError) else "a number has thousands of digits"
            raise DataError(f"{name} line {number} is JSON lamp cannot read ({reason}): simplify the row") from None
        row_source(row, f"{name} line {number}", tasks)
        rows.append(row)
    if not rows:
        raise DataError(f'{name} holds no rows: write one JSON object per line, e.g. {{"task": "rte", "source": ...}}')
    return rows


class NonStandardNumber(ValueError):
    """NaN, Infinity or -Infinity in a row: Python's json reads them, strict JSON readers do not."""


def _refuse_constant(name: str) -> Any:
    raise NonStandardNumber(name)


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (through links too); a path that does not exist names none."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_output(output: Path) -> None:
    """Refuse an --output that is a folder, or under a file: the predictions could never be written there."""
    if output.is_dir():
        raise ConfigError(f"--output {output} is a folder: name a file for the predictions, e.g. {output / 'p.jsonl'}")
    existing = next(path for path in output.parents if path.exists())
    if not existing.is_dir():
        raise ConfigError(f"--output {output} lies under {existing}, which is a file: choose another --output")


def run(args: argparse.Namespace) -> int:
    from lamp.adapter import atomic_write
    from lamp.backbones import load_tokenizer
    from lamp.predict import adapter_tasks, labelled_rows, load_task_adapters, predict_rows, score_rows

    if args.output and args.input != "-" and _same_file(args.input, args.output):
        raise DataError(f"--output {args.output} is the --input file: choose another --output (lamp keeps its input)")
    if args.output:  # refused now, not after every prediction is computed
        _check_output(Path(args.output))
    tasks = adapter_tasks(args.adapter)
    rows = read_rows(args.input, tasks)
    adapters = load_task_adapters(args.adapter, backbone=args.model)
    name = next(iter(adapters.values())).backbone_name if args.model is None else args.model
    tokenizer = load_tokenizer(name)
    started = time.perf_counter()
    results = predict_rows(adapters, rows, tokenizer, args.batch_size, args.scorer, args.max_length)
    elapsed = time.perf_counter() - started
    text = "".join(json.dumps(result) + "\n" for result in results)
    if args.output:  # whole or not at all: an earlier output survives a crash mid-write
        atomic_write(Path(args.output), lambda tmp: Path(tmp).write_text(text))
    else:
        sys.stdout.write(text)
    rate = len(rows) / max(elapsed, 1e-9)
    print(f"{counted(len(rows), 'row')}, {counted(len(adapters), 'task')}, {rate:.1f} rows/s", file=sys.stderr)
    counts = labelled_rows(rows, tasks)
    for task, metrics in score_rows(rows, results, tasks).items():
        labelled, total = counts[task]
        on = "" if labelled == total else f" (on the {labelled} of its {total} rows that have a label)"
        print(f"  {task}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()) + on, file=sys.stderr)
    return 0
