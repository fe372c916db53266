"""The `lamp` command line: one subcommand per job, each a module in `lamp.commands`.

Each command module defines `add_parser(subparsers)` (which registers its parser and sets `func`) and keeps its
work in typed functions of the library, so the CLI stays a thin layer.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings

from lamp.errors import Interrupted, LampError

# Subcommand modules, in the order `lamp --help` lists them.
SUBCOMMANDS: dict[str, argparse.ArgumentParser] = {}
"""Each subcommand's parser, by name (filled by `build_parser`), so a wrong flag is named by its command."""
COMMANDS = ["train", "eval", "data", "bench", "predict", "export", "inspect", "compare"]


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and exit code 2) instead of the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lamp", description="LAMP prompt tuning for Hugging Face language models.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"lamp.commands.{name}").add_parser(subparsers)
    SUBCOMMANDS.update(subparsers.choices)
    return parser


def _out_of_memory(error: BaseException) -> str | None:
    """The one line for an allocation that failed (torch.OutOfMemoryError, the CPU allocator's "can't allocate
    memory", Python's MemoryError), or None for any other error. A run's checkpoint and adapter stay as they were."""
    text = str(error)
    if not (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError" or "allocate memory" in text):
        return None
    tried = re.search(r"tried to allocate ([0-9.]+) ?([A-Za-z]*)", text, flags=re.IGNORECASE)
    size = ""
    if tried:  # the CPU allocator counts bytes, CUDA's message gives its own unit
        number, unit = tried.groups()
        size = f"{float(number) / 1e9:.1f} GB" if unit.lower() in ("", "bytes") else f"{number} {unit}"
    what = f" (tried to allocate {size})" if size else ""
    return f"out of memory{what}: make the batch, the inputs or the prompt smaller, or use a device with more memory"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the subcommand whose flags were wrong, and point at its own --help
        (SUBCOMMANDS.get(args.command) or parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 0
    formatwarning = warnings.formatwarning  # a warning is one line, as an error is: no file:line and source line
    warnings.formatwarning = lambda message, *_, **__: f"lamp {args.command}: warning: {message}\n"
    try:
        return args.func(args) or 0
    except LampError as error:
        print(f"lamp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a vanished file or device mid-run: say what and where, without a traceback
        where = f" ({error.filename})" if error.filename else ""
        message = f"{error.strerror or error}{where}: check the path and retry"
        print(f"lamp {args.command}: error: {message}", file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError) as error:  # torch's CPU allocator and CUDA raise RuntimeError subclasses
        line = _out_of_memory(error)
        if line is None:
            raise
        print(f"lamp {args.command}: error: {line}", file=sys.stderr)
        return 2
    except Interrupted:  # the command already said what it kept and how to go on
        return 130
    except KeyboardInterrupt:
        print(f"lamp {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
