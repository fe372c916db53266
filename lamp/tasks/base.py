"""`Example` and `Task`: a task is data (sources, formatters, label words, metric, split rule), not code.

Rows reach a task in the hub's schema (see `lamp.tasks.sources`); `Task.example` turns one into a (source, target)
pair in one of two input formats (`FORMATS`):

- ``t5``: the text-to-text format of T5 / DePT, e.g. ``rte sentence1: ... sentence2: ...`` -> ``entailment``;
- ``natural``: a short template for decoder LMs whose answer follows a cue, with natural label words (a
  verbalizer), e.g. ``...\nQuestion: ... True or False?\nAnswer:`` -> ``True`` (scored as `` True``).

`Task.in_format` views a task in either; the label indices (and so labels, metrics and results) are the same.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lamp.errors import ConfigError, DataError
from lamp.tasks.files import UserData
from lamp.tasks.sources import Hub, LocalFiles, Packaged
from lamp.tasks.splits import Protocol, halve_validation

if TYPE_CHECKING:
    from lamp.backbones import ModelKind


Row = Mapping[str, Any]
Metric = Callable[..., dict[str, float]]  # (predictions, labels, groups) -> {name: 0-100 value}
FORMATS = ("t5", "natural")  # the input formats every task renders in; "auto" picks one by model kind


def resolve_format(name: str, kind: ModelKind) -> str:
    """`auto` -> ``t5`` for a seq2seq backbone, ``natural`` for a causal one (`kind` as `lamp.model.model_kind`
    gives it); ``t5`` / ``natural`` are kept. Raises ConfigError on any other name."""
    if name == "auto":
        return "t5" if kind == "seq2seq" else "natural"
    if name not in FORMATS:
        raise ConfigError(f"unknown input format {name!r}: choose auto, {', '.join(FORMATS)}")
    return name


@dataclass(frozen=True)
class Example:
    """One formatted example."""

    source: str  # formatted input text, e.g. "rte sentence1: ... sentence2: ..."
    target: str  # gold target text, e.g. "entailment" (STS-B: the score rounded to 0.2, e.g. "3.8")
    label: int | float | str  # gold class index into task.label_words; STS-B: the score; free-form: the target
    group: str | None = None  # MultiRC question id (exact match per question); None elsewhere
    cue: str = ""  # the end of `source` that truncation keeps (a natural format's answer cue); "" keeps the start
    lead: str = " "  # what a causal LM reads between source and target (see `Task.lead`)


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


PLACEHOLDER = re.compile(r"\{(\w+)\}")
"""A plain field in a template: ``{name}``, no format spec or conversion."""


def template_fields(text: str) -> tuple[str, ...]:
    """The fields a template names, in order and once each, as `str.format` reads them (``{{`` is a literal brace).
    ValueError for a template `str.format` cannot read (an unclosed brace)."""
    names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Template:
    """A natural input format: `text` with ``{field}`` placeholders over a row's hub fields (values whitespace-
    collapsed), ending in an answer cue, and `label_words`, the verbalizer, in the order of the task's label indices.

    Everything after the first placeholder is the row's `cue`: the part a too-long input keeps (`lamp.data.encode`),
    so the long passage goes first and the short fields and the question after it.
    """

    text: str
    label_words: tuple[str, ...] | None

    def render(self, row: Row) -> tuple[str, str]:
        """(source, cue) of a row; the source ends with the cue. A missing field raises KeyError."""
        source, cue, seen = "", "", False
        for literal, name, _, _ in string.Formatter().parse(self.text):  # specs and conversions: refused by TaskSpec
            piece = literal + (clean(row[name]) if name is not None else "")
            source += piece
            cue += piece if seen else ""
            seen = seen or name is not None  # the cue starts after the first field
        return source, cue


@dataclass(frozen=True)
class Task:
    """A task spec. `formatter` gives the t5 format's source text after the task-name prefix, `natural` the natural
    format (template and label words); targets come from the label.

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
    natural: Template | None = None  # the natural format for decoder LMs (see `in_format`)
    input_format: str = "t5"  # the format this view renders, one of FORMATS
    classes: tuple[str, ...] | None = None  # in a natural view: the t5 label words, which releases' labels name
    chat: tuple[str, str] | None = None  # a chat view: the text before and after the user's message (`in_chat`)
    label_field: str = "label"  # the row field that holds the label
    target_field: str | None = None  # free-form generation: the row field that holds the target text
    max_new_tokens: int | None = None  # tokens generated for an answer (None: the longest label word's plus two)
    user_data: UserData | None = None  # a user's own files or hub dataset (`lamp.tasks.user`), read first
    spec: Mapping[str, Any] | None = None  # a user task's spec (`TaskSpec.to_dict`), saved with its adapters
    label_indices: bool = True  # a label may be an index into the label words; False: only the words (label_values)

    # ----- formats -----

    def in_format(self, name: str) -> Task:
        """This task viewed in input format `name` (one of FORMATS): examples, label words and so scoring follow it;
        label indices do not change. Raises ConfigError on an unknown name, DataError when the task has no natural
        template."""
        if name not in FORMATS:
            raise ConfigError(f"unknown input format {name!r}: choose one of {', '.join(FORMATS)}")
        if name == self.input_format:
            return self
        if name == "t5":
            return dataclasses.replace(self, input_format="t5", label_words=self.classes, classes=None)
        if self.natural is None:
            raise DataError(f"task {self.name} has no natural format: use --format t5")
        return dataclasses.replace(
            self, input_format=name, label_words=self.natural.label_words, classes=self.label_words
        )

    def in_chat(self, wrapper: tuple[str, str]) -> Task:
        """This view with each source as the user's message of an instruct model's chat template: `wrapper` is the
        (before, after) text around it, the assistant's turn opened (`lamp.data.chat_wrapper`)."""
        return dataclasses.replace(self, chat=wrapper)

    @property
    def is_generation(self) -> bool:
        """Free-form generation: the target is a row's text, scored by generation (exact match, F1, ROUGE-L)."""
        return self.target_field is not None

    @property
    def gold_field(self) -> str:
        """The row field that holds the gold answer: the target text's field, else the label's."""
        return self.target_field or self.label_field

    @property
    def lead(self) -> str:
        """What a causal LM reads between source and label word: a space, so the label word tokenises as a word
        after the cue; none after a chat template's opened assistant turn (a new line): measured zero-shot on
        SmolLM2-135M-Instruct, no space scored higher on 4 of 6 tasks and 12 points higher on their mean
        (benchmarks/zero_shot_formats.py, docs/quality.md)."""
        return "" if self.chat else " "

    def render(self, row: Row) -> tuple[str, str]:
        """(source, cue) of a row in this view's format; the cue ("" for t5) is the end truncation keeps."""
        if self.input_format == "natural":
            assert self.natural is not None  # in_format checked it
            return self.framed(*self.natural.render(row))
        return self.framed(f"{self.name} {self.formatter(row)}")

    def prompt_words(self) -> str:
        """The task's own words, for a prompt's text init (`init: task`): this view's fixed input text (the natural
        template without its fields, and without what a field leaves of punctuation alone; the task's name in the
        t5 format) then its label words joined by "or", whitespace collapsed; "" when there is neither. SST-2's
        natural view: "Review: Sentiment: negative or positive"."""
        if self.input_format == "natural":
            assert self.natural is not None  # in_format checked it
            fixed = "".join(literal for literal, *_ in string.Formatter().parse(self.natural.text))
        else:
            fixed = self.name
        kept = [word for word in fixed.split() if any(c.isalnum() for c in word)]  # not a field's leftover `?` or `""`
        return " ".join([*kept, *" or ".join(self.label_words or ()).split()])

    def text_fields(self) -> tuple[str, ...]:
        """The row fields that formats render as text (the t5 formatter's and the natural template's fields)."""
        names = [*getattr(self.formatter, "names", ()), *template_fields(self.natural.text if self.natural else "")]
        return tuple(dict.fromkeys(names))

    def framed(self, source: str, cue: str = "") -> tuple[str, str]:
        """(source, cue) put in this view's chat template, if it has one; the template's end joins the cue."""
        if self.chat is None:
            return source, cue
        before, after = self.chat
        return before + source + after, cue + after

    # ----- rows -> examples -----

    def label_of(self, raw: object) -> int | float | str:
        """A release's or the hub's label (index, bool, label word or digit string; a number for regression; the
        text itself for free-form generation). A label value that equals a label word's text (a user's ``-1`` for
        ``("-1", "1")``) is that word, before it is read as an index; without `label_indices` (a user's
        label_values) only the words are labels. ValueError on a label it cannot place, and on a free-form target
        that is not text or a number (a JSON list, object or boolean)."""
        if self.is_generation:
            if isinstance(raw, bool) or not isinstance(raw, str | numbers.Number | None):
                raise ValueError(f"target field {self.gold_field!r} holds {raw!r}, not text")
            if raw is None or not str(raw).strip():
                raise ValueError(f"target field {self.gold_field!r} is empty")
            return str(raw).strip()
        words = self.classes or self.label_words or ()  # releases name the t5 label words
        if self.is_regression:
            value = float(raw)  # type: ignore[arg-type]
            low, high = float(words[0]), float(words[-1])
            if not low <= value <= high:
                raise ValueError(f"score {value} outside {low}..{high}")
            return value
        index = raw
        if isinstance(raw, numbers.Integral) and not isinstance(raw, bool) and str(raw) in words:
            return words.index(str(raw))
        if isinstance(raw, str):
            raw = raw.strip()  # as the label words themselves are (`--label-words ' positive'`)
            if raw in words:
                return words.index(raw)
            index = int(raw) if raw.strip().lstrip("-").isdigit() else None  # GLUE's "0" / "1"
        if not self.label_indices:
            raise ValueError(f"label {raw!r} is not one of the label values {list(words)}")
        if isinstance(index, numbers.Integral) and 0 <= int(index) < len(words):  # bool too: False -> 0
            return int(index)
        raise ValueError(f"label {raw!r} is not one of {list(words)} or an index into them")

    def target_of(self, label: int | float | str) -> str:
        """The target text: the label word; for regression the nearest label word, ties to the even index
        (STS-B: T5's ``round(score * 5) / 5``, so 3.9 -> "4.0" and 3.7 -> "3.6"); free-form: the label itself."""
        if self.is_generation:
            return str(label)
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
        label = self.label_of(row[self.gold_field])
        source, cue = self.render(row)
        return Example(source, self.target_of(label), label, self.group(row) if self.group else None, cue, self.lead)

    # ----- predictions -----

    def parse(self, text: str) -> int | float | str | None:
        """Generated text -> label index (classification) or number (regression), None if it is neither; free-form
        generation keeps the text."""
        text = text.strip()
        if self.is_generation:
            return text
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

    def valid(self, prediction: object) -> int | float | str | None:
        """The prediction if it is a usable value for this task, else None (scored as wrong)."""
        if self.is_generation:
            return prediction if isinstance(prediction, str) else None
        if self.is_regression:
            if isinstance(prediction, numbers.Real) and math.isfinite(float(prediction)):
                return float(prediction)
            return None
        n = len(self.label_words or ())
        if isinstance(prediction, numbers.Integral) and 0 <= int(prediction) < n:
            return int(prediction)
        return None

    def compute_metrics(
        self, predictions: Sequence[int | float | str | None], examples: Sequence[Example]
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
