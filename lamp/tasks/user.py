"""A user's own task as data: a `TaskSpec` (files or a hub dataset, an input template, and label words or a target
field) built into an ordinary `Task`, so training, scoring, eval and predict treat it like a built-in one.

The spec comes from flags (``lamp train --train-file reviews.csv --template "Review: {text}\\nSentiment:"
--label-words negative,positive``), from a YAML file with the same keys (``lamp train --task reviews.yaml``), or
from the API (``TaskSpec(...)``). Adapters save it (adapter.json ``task_spec``), so `lamp eval` and `lamp predict`
rebuild the task from the adapter alone. Splits follow `lamp.tasks.splits.as_available`.
"""

from __future__ import annotations

import dataclasses
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamp import metrics
from lamp.checks import POSITIVE_INT, text_hint
from lamp.config_files import load_yaml
from lamp.errors import ConfigError, DataError, did_you_mean
from lamp.tasks.base import PLACEHOLDER, Example, Task, Template, fields, template_fields
from lamp.tasks.builtin import TASKS, get_task
from lamp.tasks.files import SPLITS, UserData, user_rows
from lamp.tasks.splits import as_available

SPEC_SUFFIXES = (".yaml", ".yml")
DATA_OPTIONS = (
    "train_file",
    "validation_file",
    "test_file",
    "dataset",
    "template",
    "label_words",
    "label_values",
    "label_field",
    "target_field",
    "max_new_tokens",
)
"""The spec's keys that `lamp train` also takes as flags (`TrainConfig` fields of the same names)."""
FILE_KEYS = ("train_file", "validation_file", "test_file")


BRACKETS = ("[]", "()", "{}")


def word_items(key: str, items: list[Any] | tuple[Any, ...]) -> tuple[str, ...]:
    """A YAML list of words as text (integers as written); ConfigError for a boolean (unquoted true / false), for an
    item YAML read as a fraction (`1.10` is the number 1.1: as text it would become "1.1", `1e3` "1000.0") and for
    items that are not words."""
    for item in items:
        if isinstance(item, bool):
            raise ConfigError(
                f"{key} lists {item!r}: YAML reads unquoted true and false as booleans; quote each word, e.g. "
                "['false', 'true']"
            )
        if isinstance(item, float):
            raise ConfigError(
                f"{key} lists {item!r}: YAML read that item as a number, which changes how it is written; quote "
                "each item that looks like a number, e.g. ['1.10', '1e3']"
            )
        if not isinstance(item, str | int):  # a float is refused above
            raise ConfigError(f"{key} lists {item!r}, which is not a word: write each word as text, e.g. [no, yes]")
    return tuple(str(item).strip() for item in items)


def _words(key: str, value: Any) -> tuple[str, ...] | None:
    """A list of words from YAML (a list) or a flag (comma-separated text); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if any(text.startswith(pair[0]) and text.endswith(pair[1]) for pair in BRACKETS):
            # "[a, b]" would split into the words "[a" and "b]": a label no row holds, and a confusing error later
            raise ConfigError(
                f"{key} {value!r} is a list in brackets: write the words comma-separated, without brackets, e.g. "
                "negative,positive"
            )
        words = tuple(word.strip() for word in value.split(","))
        if any(len(word) > 1 and word[0] == word[-1] and word[0] in "'\"" for word in words):
            raise ConfigError(f"{key} {value!r} has quoted words: write them without quotes, e.g. negative,positive")
    elif isinstance(value, list | tuple):
        words = word_items(key, value)
    else:
        raise ConfigError(f"{key} must be a list of words or comma-separated text, got {value!r}")
    if len(words) < 2 or not all(words) or len(set(words)) != len(words):
        raise ConfigError(
            f"{key} must name at least two different, non-empty words, got {list(words)}: e.g. negative,positive"
        )
    return words


@dataclass(frozen=True)
class TaskSpec:
    """A user task. `template` renders a row's fields in braces (e.g. ``"Review: {text}\\nSentiment:"``); the
    answer is one of `label_words` (classification: the row's `label_field` holds a label word, an index into
    them, or one of `label_values`, in the same order) or the text of the row's `target_field` (free-form
    generation, `max_new_tokens` generated). Data: `train_file` (and optionally `validation_file`, `test_file`),
    or a hub `dataset`. Every check raises ConfigError naming the key and the fix."""

    name: str
    template: str
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    dataset: str | None = None
    label_words: tuple[str, ...] | None = None
    label_values: tuple[str, ...] | None = None
    label_field: str = "label"
    target_field: str | None = None
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        for key in ("name", "template", *FILE_KEYS, "dataset", "label_field", "target_field"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"task {key} must be non-empty text, got {value!r}{text_hint(value)}")
        if isinstance(self.template, str):  # a shell's "\n" is a new line, as in YAML's double-quoted text
            object.__setattr__(self, "template", self.template.replace("\\n", "\n").replace("\\t", "\t"))
        object.__setattr__(self, "label_words", _words("label_words", self.label_words))
        object.__setattr__(self, "label_values", _words("label_values", self.label_values))
        object.__setattr__(self, "max_new_tokens", POSITIVE_INT.check("max_new_tokens", self.max_new_tokens))
        if (self.train_file is None) == (self.dataset is None):
            raise ConfigError("a task needs its data: pass --train-file FILE or --dataset HUB_ID, not both")
        if self.dataset is not None and (self.validation_file or self.test_file):
            raise ConfigError("--validation-file and --test-file go with --train-file, not --dataset")
        if self.dataset is not None and not self.dataset.partition(":")[0].strip():  # ':cfg' names no dataset
            raise ConfigError(f"--dataset {self.dataset!r} names no dataset: pass owner/name or owner/name:config")
        names = self._template_fields()
        if (self.label_words is None) == (self.target_field is None):
            raise ConfigError(
                "a task answers with --label-words (classification) or --target-field (free-form generation): "
                "pass exactly one"
            )
        answer = self.target_field or self.label_field
        if answer in names:  # the model would read the answer it is asked for
            raise ConfigError(
                f"--template {self.template!r} shows the answer field {answer!r} to the model: remove {{{answer}}} "
                "from the template"
            )
        if self.label_values is not None and self.target_field is not None:  # read by classification alone
            raise ConfigError(
                "--label-values applies to classification (--label-words): a --target-field task answers with its "
                "target field's text; drop it"
            )
        if self.label_values is not None and len(self.label_values) != len(self.label_words or ()):
            raise ConfigError(
                f"--label-values has {len(self.label_values)} values for {len(self.label_words or ())} label words: "
                "give one value per label word, in the same order"
            )
        for key in FILE_KEYS:  # recorded absolute, so eval and predict find the files from anywhere
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, os.path.abspath(Path(value).expanduser()))

    def _template_fields(self) -> tuple[str, ...]:
        """The row fields the template names; ConfigError unless it names at least one, each as a plain {name}
        (a format spec, a conversion or a positional field would break, or quietly change, the rendering)."""
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError as error:
            raise ConfigError(
                f"--template {self.template!r} is not a valid template ({error}): write fields as {{name}}"
            ) from None
        fields = [(name, spec, conversion) for _, name, spec, conversion in parsed if name is not None]
        for name, spec, conversion in fields:
            if spec or conversion or not PLACEHOLDER.fullmatch("{" + name + "}") or name.isdigit():
                written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                raise ConfigError(
                    f"--template {self.template!r} has the field {written}: write each field as a row field's name "
                    "in braces, e.g. {text}, with no format spec, conversion or position (a literal brace is {{ or }})"
                )
        if not fields:
            raise ConfigError(
                f"--template {self.template!r} must name the row's fields in braces, e.g. 'Review: {{text}}\\nAnswer:'"
            )
        return tuple(dict.fromkeys(name for name, _, _ in fields))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str | None = "task spec") -> TaskSpec:
        """A spec from a mapping (a task YAML file, adapter.json, the flags); every ConfigError starts with `where`
        (the file; None for flags, whose messages name them)."""
        at = f"{where}: " if where else ""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must hold a mapping of key: value, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"{at}unknown keys {', '.join(unknown)}{did_you_mean(unknown, known)}; known keys are "
                f"{', '.join(known)}"
            )
        if "template" not in data or "name" not in data:
            raise ConfigError(f"{at}a task needs a template (the input, fields in braces), e.g. 'Review: {{text}}'")
        try:
            return cls(**{k: v for k, v in data.items() if v is not None})
        except ConfigError as error:
            raise ConfigError(f"{at}{error}") from None

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready values (lists for word tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def task(self) -> Task:
        """The `Task`: the natural format renders `template` (the t5 format the template's fields, name-prefixed);
        classification scores accuracy, generation exact match, token F1 and ROUGE-L (`lamp.metrics.generation`)."""
        files = tuple((split, getattr(self, f"{split}_file")) for split in SPLITS if getattr(self, f"{split}_file"))
        task = Task(
            name=self.name,
            label_words=self.label_values or self.label_words,
            formatter=fields(*template_fields(self.template)),
            metric=metrics.generation if self.target_field else metrics.accuracy,
            natural=Template(self.template, self.label_words),
            protocol=as_available,
            label_field=self.label_field,
            target_field=self.target_field,
            max_new_tokens=self.max_new_tokens if self.target_field else None,
            user_data=UserData(files, self.dataset),
            spec=self.to_dict(),
            label_indices=self.label_values is None,  # given values are the labels; a position in them is not
        )
        return task.in_format("natural")


def read_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A task YAML file's keys; its file paths are relative to the YAML file, its name defaults to the file's stem.
    ConfigError for a missing or invalid file."""
    fix = "pass a task name or the path of a task YAML file"
    data = load_yaml(path, "task file", fix, keys=[f.name for f in dataclasses.fields(TaskSpec)])
    file = Path(path).expanduser()
    for key in FILE_KEYS:
        if isinstance(data.get(key), str):
            data[key] = str(file.parent / Path(data[key]).expanduser())
    return {"name": file.stem, **data}


def is_spec_file(name: str) -> bool:
    """Whether a --task value names a task YAML file rather than a task."""
    return name.lower().endswith(SPEC_SUFFIXES)


def refuse_built_in_with_data(task: str, options: Mapping[str, Any] | None) -> None:
    """ConfigError for a built-in task's name given with data options (DATA_OPTIONS, None when unset): the user's
    files would silently replace that task's data, or be ignored."""
    if task in TASKS and any(v is not None for v in (options or {}).values()):
        raise ConfigError(
            f"--task {task} is a built-in task, which reads its own data: to train on your files, drop --task or "
            f"give your task a new name (e.g. --task my-{task})"
        )


def spec_of(task: str, options: Mapping[str, Any] | None = None, default: str | None = None) -> TaskSpec | None:
    """The user task that `task` (a task YAML file, or a new task's name) and `options` (DATA_OPTIONS, None when
    unset; they override the file's keys) describe; None for a built-in task without options. A user task is
    named by `task` when that is no built-in name; when `task` is `default` (the caller's unset value), by its train
    file's stem (or dataset name). Any other built-in name with data options is a ConfigError: the user's files
    would silently replace that task's data."""
    if task != default:
        refuse_built_in_with_data(task, options)

    given = {k: v for k, v in (options or {}).items() if v is not None}
    if is_spec_file(task):
        data = {**read_spec_file(task), **given}
        where = f"{task} with the flags on top" if given else task  # a bad value may be the file's or a flag's
    elif given:
        if "train_file" not in given and "dataset" not in given:  # e.g. --max-new-tokens alone, on a built-in task
            flags = ", ".join("--" + key.replace("_", "-") for key in given)
            verb, them = ("applies", "it") if len(given) == 1 else ("apply", "them")
            raise ConfigError(
                f"{flags} {verb} to your own data: pass --train-file FILE or --dataset HUB_ID with {them}, or drop "
                f"{them}"
            )
        source = given.get("train_file") or given.get("dataset") or "data"
        default = Path(str(source).partition(":")[0]).stem or "data"
        data = {"name": default if task in TASKS else task, **given}
        where = None
    else:
        return None
    at = f"{where}: " if where else ""  # messages about a task file start with it
    if data.get("max_new_tokens") is not None and data.get("target_field") is None:  # classification never generates
        raise ConfigError(
            f"{at}--max-new-tokens applies to free-form generation (--target-field): a "
            "--label-words task scores its label words and generates nothing; drop it"
        )
    if data.get("label_field") is not None and data.get("target_field") is not None:  # generation reads no label
        raise ConfigError(
            f"{at}--label-field applies to classification (--label-words): a --target-field task reads its answer "
            "from --target-field alone; drop it"
        )
    spec = TaskSpec.from_dict(data, where)
    if spec.name in TASKS:
        raise ConfigError(f"{at}task name {spec.name!r} is a built-in task's: name your task otherwise (name: in YAML)")
    return spec


def task_of(name: str, spec: TaskSpec | Mapping[str, Any] | None = None, format: str | None = None) -> Task:
    """The task `name` viewed in `format` (None: a built-in task's t5 format, a user task's template): a user task
    from `spec` (a TaskSpec or its dict, as adapters save it) or a task YAML file, else the built-in task of that
    name (`lamp.tasks.get_task`)."""
    if isinstance(spec, Mapping):
        spec = TaskSpec.from_dict(spec, f"the saved spec of task {name!r}")
    spec = spec or spec_of(name)
    task = spec.task() if spec else get_task(name)
    return task.in_format(format) if format else task


def _unlabelled(rows: list[tuple[str, dict[str, Any]]], field: str) -> bool:
    """A hub split without answers (GLUE's test sets: label -1 or missing everywhere)."""
    return all(row.get(field) in (None, -1) for _, row in rows)


# (later split, earlier split, what the later one's score would then be on): a split file that is another's
SAME_FILE = (
    ("test", "train", "the test score would be on training rows"),
    ("validation", "train", "the best step would be chosen on training rows"),
    ("test", "validation", "the test score would be on the rows the best step was chosen on"),
)


def _distinct_files(files: tuple[tuple[str, str], ...]) -> None:
    """DataError when two split files are one file (by their resolved paths: links and ``./`` too)."""
    given = dict(files)
    # realpath, not Path.resolve: a link loop is left to the file's reader, which names it in one line
    resolved = {split: os.path.realpath(Path(path).expanduser()) for split, path in files}
    for later, earlier, harm in SAME_FILE:
        if later in resolved and resolved.get(earlier) == resolved[later]:
            other = "" if given[earlier] == given[later] else f" ({given[earlier]})"
            raise DataError(
                f"--{later}-file {given[later]} is the same file as --{earlier}-file{other}: {harm}; pass a held-out "
                "file"
            )


def user_examples(task: Task) -> dict[str, list[Example]]:
    """The splits given for a user task, as examples. DataError for two splits given one file, a field the task
    reads that a file lacks, a row whose field is empty, or label values that are not the task's."""
    assert task.user_data is not None
    _distinct_files(task.user_data.files)  # here, not in TaskSpec: a saved adapter's spec still predicts
    official = user_rows(task.user_data)
    if task.user_data.dataset is not None:  # a hub dataset's test split may carry no answers: not a test set then
        official = {s: rows for s, rows in official.items() if s == "train" or not _unlabelled(rows, task.gold_field)}
    text_fields = task.text_fields()
    needed = [*text_fields, task.gold_field]
    examples: dict[str, list[Example]] = {}
    for split, rows in official.items():
        source = rows[0][0].rsplit(" row ", 1)[0]
        columns = list(rows[0][1])
        missing = [name for name in needed if name not in columns]
        if missing:
            which = "--label-field / --target-field" if task.gold_field in missing else "--template"
            raise DataError(  # the flag's key is the same in a task file (label_field: ..., template: ...)
                f"{source} has no field {', '.join(map(repr, missing))} (its fields: {', '.join(columns)}): fix "
                f"{which} (or that key of the task file) or the data file"
            )
        unknown: dict[str, str] = {}
        out = []
        for where, row in rows:
            for name in needed:
                if row[name] is None or (name != task.gold_field and not str(row[name]).strip()):
                    raise DataError(f"{where}: field {name!r} is empty: fill it or drop the row")
            for name in text_fields:  # str() would quietly render 5 as "5" and a list as its Python repr
                if not isinstance(row[name], str):
                    raise DataError(
                        f"{where}: field {name!r} must be text, got {repr(row[name])[:80]}: write it as text (a "
                        "quoted string in JSON) or fix --template"
                    )
            try:
                out.append(task.example(row))
            except ValueError as error:
                if task.is_generation:  # an empty answer (fill it), or a list, object or boolean (fix it)
                    fix = "fill it" if isinstance(row[task.gold_field], str) else "fix it"
                    raise DataError(f"{where}: {error}: {fix} or drop the row") from None
                unknown.setdefault(repr(row[task.gold_field]), where)
        if unknown:
            labels = task.classes or task.label_words or ()
            indices = f" nor indices 0-{len(labels) - 1}" if task.label_indices else ""
            fix = "map them with --label-values" if task.label_indices else "give --label-values the file's values"
            raise DataError(
                f"{source}: label values {', '.join(list(unknown)[:5])} (first at {next(iter(unknown.values()))}) are "
                f"not the task's labels {', '.join(map(repr, labels))}{indices}: fix the rows, or {fix}"
            )  # the labels quoted: "[a" is not "a"
        examples[split] = out
    return examples
