"""The evaluation protocol of ATTEMPT / DePT and their successors, in one place.

The official test sets of GLUE and SuperGLUE carry no labels, so the field reports on the official validation set
and selects models on data carved out of the released splits. Each rule below takes the official splits (lists of
examples keyed by split name) and a seed and returns ``{"train", "validation", "test"}``; task specs only name
which rule they follow. All shuffles are seeded (``random.Random(seed)``), so one seed always gives one split.

Examples that share a ``group`` (MultiRC: one question's answers) move as one unit, so a question's answers never
straddle two splits; sizes of the carved splits are counted in units.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from lamp.errors import DataError

T = TypeVar("T")
Protocol = Callable[[dict[str, list], int], dict[str, list]]  # (official splits, seed) -> train/validation/test

HOLD_OUT = 1000  # validation examples carved from the train split of large tasks


def _units(examples: Sequence[T]) -> list[list[T]]:
    """Examples grouped by their `group` (in order of first appearance); ungrouped ones stand alone."""
    units: list[list[T]] = []
    index: dict[str, int] = {}
    for example in examples:
        group = getattr(example, "group", None)
        if group is None:
            units.append([example])
        elif group in index:
            units[index[group]].append(example)
        else:
            index[group] = len(units)
            units.append([example])
    return units


def _shuffled_units(examples: Sequence[T], seed: int) -> list[list[T]]:
    units = _units(examples)
    random.Random(seed).shuffle(units)
    return units


def _flat(units: Sequence[list[T]]) -> list[T]:
    return [example for unit in units for example in unit]


def _need(official: dict[str, list[T]], *names: str) -> None:
    missing = [name for name in names if name not in official]
    if missing:
        raise DataError(f"the split protocol needs official split(s) {missing}, got {sorted(official)}")


def halve_validation(official: dict[str, list[T]], seed: int) -> dict[str, list[T]]:
    """Small tasks (< 10k train): the whole train split trains; the official validation set, shuffled, is cut in
    half: the first half selects models, the second is the reported test set (odd counts give validation the
    larger half, e.g. RTE 277 -> 139 / 138)."""
    _need(official, "train", "validation")
    units = _shuffled_units(official["validation"], seed)
    cut = (len(units) + 1) // 2
    return {"train": list(official["train"]), "validation": _flat(units[:cut]), "test": _flat(units[cut:])}


def hold_out_train(official: dict[str, list[T]], seed: int) -> dict[str, list[T]]:
    """Large tasks (SST-2, QNLI, QQP): 1,000 shuffled train examples select models, the rest train (in file
    order), and the official validation set is the reported test set."""
    _need(official, "train", "validation")
    units = _units(official["train"])
    order = list(range(len(units)))
    random.Random(seed).shuffle(order)
    held = set(order[:HOLD_OUT])
    return {
        "train": _flat([unit for i, unit in enumerate(units) if i not in held]),
        "validation": _flat([units[i] for i in order[:HOLD_OUT]]),
        "test": list(official["validation"]),
    }


def as_given(official: dict[str, list[T]], seed: int) -> dict[str, list[T]]:
    """Tasks whose release has a labelled set for each role (MNLI: validation_mismatched selects models and
    validation_matched is reported, as in ATTEMPT); the seed is unused."""
    _need(official, "train", "validation", "test")
    return {name: list(official[name]) for name in ("train", "validation", "test")}


def proportions(
    official: dict[str, list[T]], seed: int, fractions: tuple[float, float] = (0.8, 0.1)
) -> dict[str, list[T]]:
    """Corpora without official splits (polarity): one shuffled pool cut 80 / 10 / 10 into train / validation /
    test (the test part takes the rounding remainder)."""
    _need(official, "all")
    units = _shuffled_units(official["all"], seed)
    n_train = round(len(units) * fractions[0])
    n_validation = round(len(units) * fractions[1])
    return {
        "train": _flat(units[:n_train]),
        "validation": _flat(units[n_train : n_train + n_validation]),
        "test": _flat(units[n_train + n_validation :]),
    }


def as_available(official: dict[str, list[T]], seed: int) -> dict[str, list[T]]:
    """A user's own data, by the splits given, with the rule of the built-in tasks that have the same ones:
    train, validation and test: `as_given`; train and validation: `halve_validation`; train only: `proportions`
    (80 / 10 / 10); train and test: 10% of train (shuffled) selects models and test is kept as given."""
    given = {name for name, rows in official.items() if rows}
    if {"validation", "test"} <= given:
        return as_given(official, seed)
    if "validation" in given:
        return halve_validation(official, seed)
    if "test" not in given:
        return proportions({"all": official.get("train", [])}, seed)
    units = _shuffled_units(official["train"], seed)
    cut = round(len(units) * 0.1)
    return {"train": _flat(units[cut:]), "validation": _flat(units[:cut]), "test": list(official["test"])}
