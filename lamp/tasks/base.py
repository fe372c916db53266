"""`Example` and `Task`: a task is data (sources, formatter, label words, metric, split rule), not code.

Rows reach a task in the hub's schema (see `lamp.tasks.sources`); `Task.example` turns one into the text-to-text
pair of T5 / DePT, e.g. ``rte sentence1: ... sentence2: ...`` -> ``entailment``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lamp.tasks.sources import Hub, LocalFiles, Packaged
from lamp.tasks.splits import Protocol, halve_validation

Row = Mapping[str, Any]
Metric = Callable[..., dict[str, float]]  # (predictions, labels, groups) -> {name: 0-100 value}


@dataclass(frozen=True)
class Example:
    """One formatted example."""

    source: str  # formatted input text, e.g. "rte sentence1: ... sentence2: ..."
    target: str  # gold target text, e.g. "entailment" (STS-B: the score rounded to 0.2, e.g. "3.8")
    label: int | float  # gold class index into task.label_words; the gold score (float) for STS-B
    group: str | None = None  # MultiRC question id (exact match per question); None elsewhere


def clean(value: object) -> str:
    """Field text with whitespace runs collapsed (release files carry trailing spaces and newlines)."""
    return " ".join(str(value).split())


@dataclass(frozen=True)
class Fields:
    """The usual formatter: ``name1: value1 name2: value2`` over the row's fields, in the given order."""

    names: tuple[str, ...]

    def __call__(self, row: Row) -> str:
        return " ".join(f"{name}: {clean(row[name])}" for name in self.names)


def fields(*names: str) -> Fields:
    """``fields("sentence1", "sentence2")`` formats a row as ``sentence1: ... sentence2: ...``."""
    return Fields(names)


@dataclass(frozen=True)
class Task:
    """A task spec. `formatter` gives the source text after the task-name prefix; targets come from the label.

    Local files are tried first (when a data folder holds the task's folder), then the packaged corpus, then the
    hub; `protocol` (from `lamp.tasks.splits`) cuts the official splits into train / validation / test.
    """

    name: str
    label_words: tuple[str, ...] | None
    formatter: Callable[[Row], str]
    metric: Metric
    hub: Hub | None = None
    local: LocalFiles | None = None
    packaged: Packaged | None = None
    protocol: Protocol = halve_validation
    is_regression: bool = False
    group: Callable[[Row], str] | None = None  # the Example.group of a row (MultiRC: its question)

    # ----- rows -> examples -----

    def label_of(self, raw: object) -> int | float:
        """A release's or the hub's label (index, bool, label word or digit string; a number for regression)."""
        words = self.label_words or ()
        if self.is_regression:
            value = float(raw)  # type: ignore[arg-type]
            low, high = float(words[0]), float(words[-1])
            if not low <= value <= high:
                raise ValueError(f"score {value} outside {low}..{high}")
            return value
        index = raw
        if isinstance(raw, str):
            if raw in words:
                return words.index(raw)
            index = int(raw) if raw.strip().lstrip("-").isdigit() else None  # GLUE's "0" / "1"
        if isinstance(index, numbers.Integral) and 0 <= int(index) < len(words):  # bool too: False -> 0
            return int(index)
        raise ValueError(f"label {raw!r} is not one of {list(words)} or an index into them")

    def target_of(self, label: int | float) -> str:
        """The target text: the label word; for regression the nearest label word, ties to the even index
        (STS-B: T5's ``round(score * 5) / 5``, so 3.9 -> "4.0" and 3.7 -> "3.6")."""
        assert self.label_words is not None
        if not self.is_regression:
            return self.label_words[int(label)]
        value = Decimal(repr(float(label)))  # exact decimal arithmetic makes ties exact
        distances = [abs(Decimal(word) - value) for word in self.label_words]
        return self.label_words[min(range(len(distances)), key=lambda i: (distances[i], i % 2))]

    def format(self, row: Row) -> tuple[str, str]:
        """(source text, target text) of a row in the hub's schema."""
        example = self.example(row)
        return example.source, example.target

    def example(self, row: Row) -> Example:
        """The `Example` of a row in the hub's schema."""
        label = self.label_of(row["label"])
        source = f"{self.name} {self.formatter(row)}"
        return Example(source, self.target_of(label), label, self.group(row) if self.group else None)

    # ----- predictions -----

    def parse(self, text: str) -> int | float | None:
        """Generated text -> label index (classification) or number (regression); None if it is neither."""
        text = text.strip()
        if self.is_regression:
            try:
                value = float(text)
            except ValueError:
                return None
            return value if math.isfinite(value) else None
        words = self.label_words or ()
        if text in words:
            return words.index(text)
        folded = [word.casefold() for word in words]
        return folded.index(text.casefold()) if text.casefold() in folded else None

    def label_value(self, index: int) -> int | float:
        """The prediction of rank classification's chosen label index (regression: the label word's number)."""
        assert self.label_words is not None
        if not 0 <= index < len(self.label_words):
            raise IndexError(f"label index {index} out of range for {len(self.label_words)} label words")
        return float(self.label_words[index]) if self.is_regression else int(index)

    def valid(self, prediction: object) -> int | float | None:
        """The prediction if it is a usable value for this task, else None (scored as wrong)."""
        if self.is_regression:
            if isinstance(prediction, numbers.Real) and math.isfinite(float(prediction)):
                return float(prediction)
            return None
        n = len(self.label_words or ())
        if isinstance(prediction, numbers.Integral) and 0 <= int(prediction) < n:
            return int(prediction)
        return None

    def compute_metrics(
        self, predictions: Sequence[int | float | None], examples: Sequence[Example]
    ) -> dict[str, float]:
        """Task metrics on 0-100 plus "score" (their mean). None / out-of-range predictions count as wrong."""
        if len(predictions) != len(examples):
            raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
        values = self.metric(
            [self.valid(p) for p in predictions],
            [example.label for example in examples],
            [example.group for example in examples],
        )
        return {**values, "score": sum(values.values()) / len(values)}
