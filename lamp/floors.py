"""The two floors of a comparison, computed without training.

- `none`: the bare backbone, no prompt, scored zero-shot in the same input format with the same scorer as the
  trained cells. A trained prompt at or below it has learned nothing the backbone could not already do.
- `majority`: every row predicted as the train split's most frequent label (regression: the train labels' mean).

Both are scored on the run's validation rows (`max_eval_examples` of them) and its whole test split, under the same
split protocol and seed as a trained cell, and returned shaped like `lamp.train`'s results.json.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from lamp.backbones import load_model, load_tokenizer
from lamp.data import encode, fit_max_length
from lamp.evaluation import Evaluator
from lamp.methods import METHODS, make_config
from lamp.model import wrap
from lamp.train import run_settings, task_setup

if TYPE_CHECKING:
    from lamp.tasks import Example, Task

BARE = next(name for name, method in METHODS.items() if not method.config.declares.trains)
"""The floor scored with the bare backbone, named after the registered method that trains nothing (the one whose
config declares `trains=False`), so that floor rows, folders and results keep that method's name."""
MAJORITY = "majority"
"""The floor that predicts the train split's most frequent label; no method, only a row name."""
FLOORS = (BARE, MAJORITY)


def majority_prediction(task: Task, train: list[Example]) -> int | float:
    """The train split's most frequent label (ties: the smallest index); its mean for a regression task."""
    labels = [example.label for example in train]
    if task.is_regression:
        return statistics.fmean(labels)
    counts = Counter(labels)
    return min(counts, key=lambda label: (-counts[label], label))


def floor_results(config: Any) -> dict[str, dict[str, Any]]:
    """{"none": results, "majority": results} for `config`'s task, model, format, seed and evaluation options
    (a `lamp.train.TrainConfig`; its method and training options play no part). Loads the backbone once."""
    from accelerate import Accelerator  # local: slow to import, and `lamp --help` reaches this module

    started = time.perf_counter()
    tokenizer = load_tokenizer(config.model)
    accelerator = Accelerator()
    model = wrap(load_model(config.model), make_config(BARE)).to(accelerator.device)
    spec = config.task_spec()  # None for a built-in task; a task YAML file's spec, read once
    input_format, task, splits, scorer, reserve = task_setup(config, spec, tokenizer, model.kind)
    validation = splits["validation"][: config.max_eval_examples] if config.max_eval_examples else splits["validation"]
    max_length = fit_max_length(config.max_length, model.backbone, 0, reserve)
    evaluate = Evaluator(accelerator, task, tokenizer, scorer, config.eval_batch_size)
    common = {
        "task": task.name,
        "model": config.model,
        "seed": config.seed,
        "format": input_format,
        "trainable_params": 0,
        "effective_trainable_params": 0,
        "n_virtual": 0,
        "steps": 0,
        "best_step": 0,
        "zero_shot": None,
        "split_sizes": {name: len(rows) for name, rows in splits.items()},
        # what was scored: no method (the grid's first method only lent its evaluation settings)
        "config": {**run_settings(config, spec), "method": BARE, "method_options": {}},
    }

    results: dict[str, dict[str, Any]] = {}
    val_encoded = encode(validation, tokenizer, model.kind, max_length, reserve, scoring=True)
    test_encoded = encode(splits["test"], tokenizer, model.kind, max_length, reserve, scoring=True)
    val_score = evaluate(model, validation, val_encoded)
    test_score = evaluate(model, splits["test"], test_encoded)
    predicted = Counter(str(p) for p in evaluate.last_predictions)
    results[BARE] = {
        **common,
        "method": BARE,
        "scorer": scorer,
        "validation": val_score,
        "test": test_score,
        "test_predictions": dict(sorted(predicted.items())),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    guess = majority_prediction(task, splits["train"])
    results[MAJORITY] = {
        **common,
        "method": MAJORITY,
        "scorer": MAJORITY,
        "validation": task.compute_metrics([guess] * len(validation), validation),
        "test": task.compute_metrics([guess] * len(splits["test"]), splits["test"]),
        "test_predictions": {str(guess): len(splits["test"])},
        "wall_s": 0.0,
    }
    return results
