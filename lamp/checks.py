"""Checks for numeric options, shared by every command, the Python API and YAML files, so each reads alike.

A check validates a value that arrived as Python or YAML (`check(name, value)`, a ConfigError naming the option,
the value and the allowed range) and, passed as argparse's `type=`, parses and validates a command-line string
(argparse then prints ``argument --flag: must be ..., got '...'``). Integers must be integers (a bool or 2.5 is
not); numbers must be finite (nan and inf never pass a range).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any

from lamp.config_files import YAML_NUMBER
from lamp.errors import ConfigError, did_you_mean

SEED_MAX = 2**32 - 1  # numpy's seed range, which accelerate's set_seed feeds


def _hint(value: Any) -> str:
    """Why a number arrived as text: a quoted number in a YAML file (`lr: "1e-5"`), or leading zeros in a flag's
    value (`--set length=010`); nothing for 'nan' and 'inf', which are refused as numbers too."""
    number = isinstance(value, str) and re.fullmatch(YAML_NUMBER, value)
    if number and re.match(r"[-+]?0[0-9]", value):  # `--set length=010`: Python literals refuse 010
        return " (text, not a number: write it without leading zeros)"
    return " (text, not a number: write it without quotes)" if number else ""


def text_hint(value: Any) -> str:
    """Why a value that must be text is not: what YAML read it as (a config's `name: 1e3`, `out: 2024`,
    `report_to: null`), with the fix; nothing for other types."""
    if isinstance(value, bool):
        return " (YAML reads unquoted true and false as booleans: quote it)"
    if isinstance(value, int | float):
        return " (YAML read it as a number: quote it, e.g. '1e3')"
    if value is None:
        return " (YAML reads null, ~ and an empty value as nothing: give text, or drop the key)"
    return ""


class _Check:
    """The shared half: the ConfigError and argparse forms of one range test."""

    def ok(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self, plural: bool = False) -> str:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        raise NotImplementedError

    def check(self, name: str, value: Any) -> Any:
        """`value` (an int as int, a number as float) if it is in range, else a ConfigError naming `name`."""
        if not self.ok(value):
            raise ConfigError(f"{name} must be {self.describe()}, got {value!r}{_hint(value)}")
        return self.parse(value)

    def check_list(self, name: str, values: Any) -> list:
        """A non-empty list of values in range (a YAML list or repeated flags), each distinct."""
        if not isinstance(values, list | tuple) or not values:
            raise ConfigError(f"{name} must be a non-empty list, got {values!r}")
        if bad := [value for value in values if not self.ok(value)]:
            raise ConfigError(f"{name} must hold {self.describe(plural=True)}, got {values!r}{_hint(bad[0])}")
        if len(set(values)) != len(values):
            raise ConfigError(f"{name} lists a value twice: {values!r}: list each value once")
        return [self.parse(value) for value in values]

    def __call__(self, text: str) -> Any:
        """argparse's `type=`: the parsed value, or ArgumentTypeError (argparse names the flag)."""
        try:
            value = self.parse(text)
        except ValueError:
            value = text
        if not self.ok(value):
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")
        return value


@dataclass(frozen=True)
class Int(_Check):
    """An integer in [low, high] (either end open when None)."""

    low: int | None = None
    high: int | None = None

    def ok(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def describe(self, plural: bool = False) -> str:
        if self.low == 1 and self.high is None:
            return "positive integers" if plural else "a positive integer"
        noun = "integers" if plural else "an integer"
        if self.high is None:
            return f"{noun} >= {self.low}" if self.low is not None else noun
        if self.low is None:
            return f"{noun} <= {self.high}"
        return f"{noun} from {self.low} to {self.high}"

    def parse(self, text: Any) -> int:
        return int(text)


@dataclass(frozen=True)
class Number(_Check):
    """A finite real number above `low` (or at it, unless `low_open`) and below `high` (or at it, unless
    `high_open`)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def ok(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self, plural: bool = False) -> str:
        noun = "finite numbers" if plural else "a finite number"
        if self.low is not None and self.high is not None:
            opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {opening}{self.low:g}, {self.high:g}{closing}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {self.high:g}"
        return noun

    def parse(self, text: Any) -> float:
        return float(text)


POSITIVE_INT = Int(low=1)
COUNT = Int(low=0)
SEED = Int(0, SEED_MAX)
POSITIVE = Number(0, low_open=True)
LEARNING_RATE = Number(0, 1e6, low_open=True)
"""A learning rate: AdamW moves each weight by about lr a step, so anything near the top is already nonsense; the
cap keeps lr / (1 - beta1) inside float32, where torch's Adam would stop with an overflow RuntimeError."""
NON_NEGATIVE = Number(0)


def choices(*values: str) -> dict[str, tuple[str, ...]]:
    """Field metadata of a config option that takes one of `values` (`field(default=..., metadata=choices(...))`):
    its command-line flag lists them (`lamp.cli_options`), and `check_choices` enforces them for Python and YAML."""
    return {"choices": values}


def check_choices(config: Any) -> None:
    """ConfigError naming the flag and its choices for a field of the dataclass `config` outside its `choices`."""
    for f in dataclasses.fields(config):
        allowed = f.metadata.get("choices")
        value = getattr(config, f.name)
        if allowed and value not in allowed:
            raise ConfigError(
                f"unknown --{f.name.replace('_', '-')} {value!r}{did_you_mean([value], allowed)}: choose one of "
                f"{', '.join(allowed)}"
            )


def non_empty_path(text: str) -> str:
    """argparse's `type=` for a file or folder a command writes: an empty path would silently mean the current
    folder (or the command's default), so it is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: pass a path")
    return text
