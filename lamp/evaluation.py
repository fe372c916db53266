"""Scoring a model on a task's rows: the one evaluation path of `lamp train` (validation, test, zero-shot), `lamp eval`
(`evaluate_adapter`) and `lamp compare`'s floors.

Rows are encoded for scoring by `lamp.data.encode(..., scoring=True)`: the source encoder and truncation rule that
`lamp predict` uses too, so a row scores the same through either command. The scorers are `lamp.scoring`'s.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamp.adapter import read_adapter_config, saved_format
from lamp.backbones import load_tokenizer
from lamp.data import ADAPTER_CHAT, ADAPTER_CHAT_FIX, DEFAULT_MAX_LENGTH, Encoded, chat_wrapper, encode, fit_max_length
from lamp.errors import ConfigError, DataError
from lamp.model import load_adapter
from lamp.scoring import answer_tokens, predict, resolve_scorer
from lamp.tasks.base import resolve_format
from lamp.tasks.user import FILE_KEYS, task_of

DEFAULT_SEED = 42
"""The split seed of a run that names none (`TrainConfig.seed`'s default)."""

if TYPE_CHECKING:
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

    from lamp.model import PromptedModel
    from lamp.tasks import Task


class Evaluator:
    """Scores a model on encoded examples, sharded over processes and gathered back in order."""

    def __init__(
        self, accelerator: Accelerator, task: Task, tokenizer: PreTrainedTokenizerBase, scorer: str, batch_size: int
    ) -> None:
        self.accelerator, self.task, self.tokenizer = accelerator, task, tokenizer
        self.scorer, self.batch_size = scorer, batch_size
        self.last_predictions: list[int | float | str | None] = []

    def __call__(self, model: PromptedModel, examples: list[Any], encoded: list[Encoded]) -> dict[str, float]:
        """The task's metrics (0-100, "score" among them) of `model`'s predictions for `encoded` (`examples` hold the
        gold labels); the predictions stay in `last_predictions`, in the examples' order."""
        was_training = model.training
        model.eval()
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        indices = list(range(rank, len(encoded), world))
        with self.accelerator.autocast():
            mine = predict(
                model,
                [encoded[i] for i in indices],
                self.task,
                self.tokenizer,
                self.scorer,
                self.batch_size,
                show_progress=self.accelerator.is_main_process,
            )
        pairs = list(zip(indices, mine, strict=True))
        if world > 1:
            from accelerate.utils import gather_object

            pairs = gather_object(pairs)
        predictions = [p for _, p in sorted(pairs, key=lambda pair: pair[0])]
        self.last_predictions = predictions  # kept so a run can report what it predicted (a collapse shows there)
        model.train(was_training)
        return self.task.compute_metrics(predictions, examples)


def evaluate_adapter(
    adapter: str | os.PathLike,
    task_name: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    seed: int | None = None,
    scorer: str = "auto",
    batch_size: int = 32,
    max_length: int | None = None,
    model: str | None = None,
    format: str | None = None,
    chat_template: bool | None = None,
) -> dict[str, float]:
    """Score a saved adapter on one split of a task: `task_name` (a task name or task YAML file; default: the
    adapter's own task, a user task rebuilt from the spec its adapter.json saved). Rows are rendered as the adapter
    was trained: its recorded input format and chat template (`lamp.adapter.saved_format`), unless
    `format` (auto, t5 or natural) or `chat_template` say otherwise. `seed` (the split seed) and `max_length`
    (source tokens) default to the ones the adapter was trained with on its own task (42 and 256 for another task,
    or an adapter saved before they were recorded): with another seed a split can hold the adapter's training rows.
    """
    from accelerate import Accelerator

    from lamp.tasks import load_splits  # looked up per call: tests replace lamp.tasks.load_splits

    saved = read_adapter_config(adapter)
    task_name = task_name or saved.get("task")
    if not task_name:
        raise ConfigError(f"adapter {adapter} names no task: pass --task")
    own = saved if task_name == saved.get("task") else {}  # what the adapter recorded of its own task
    spec = own.get("task_spec")
    task = task_of(task_name, spec)  # checked before the model loads
    for recorded in (spec.get(key) for key in FILE_KEYS) if spec else ():
        if recorded and not Path(recorded).exists():  # a path recorded at training time, not one the user typed
            raise DataError(
                f"data file {recorded} does not exist: adapter {adapter} recorded it for its task {task_name!r} when "
                "it was trained; put the file back there, or pass --task with a task file that names where it is now"
            )
    seed = own.get("seed", DEFAULT_SEED) if seed is None else seed
    max_length = own.get("max_length", DEFAULT_MAX_LENGTH) if max_length is None else max_length
    name = saved["backbone"]["name"] if model is None else model
    tokenizer = load_tokenizer(name)
    accelerator = Accelerator()
    prompted = load_adapter(name, adapter).to(accelerator.device)  # the adapter's files are checked first
    task = task_of(task_name, spec, resolve_format(format or saved_format(saved), prompted.kind))
    if saved.get("chat_template", False) if chat_template is None else chat_template:
        if chat_template:  # the flag asked
            task = task.in_chat(chat_wrapper(tokenizer, prompted.kind))
        else:  # the adapter's record asked
            fix = f"{ADAPTER_CHAT_FIX}, or pass --no-chat-template"
            task = task.in_chat(chat_wrapper(tokenizer, prompted.kind, fix, ADAPTER_CHAT))
    chosen = resolve_scorer(scorer, prompted.kind, task, tokenizer)
    splits = load_splits(task, data_dir, seed)
    if split not in splits:
        raise ConfigError(f"unknown split {split!r}: choose one of {', '.join(splits)}")
    examples = splits[split]
    evaluate = Evaluator(accelerator, task, tokenizer, chosen, batch_size)
    reserve = answer_tokens(tokenizer, prompted.kind, task, evaluate.scorer)
    max_length = fit_max_length(max_length, prompted.backbone, prompted.n_virtual, reserve)
    encoded = encode(examples, tokenizer, prompted.kind, max_length, reserve, scoring=True)
    return evaluate(prompted, examples, encoded)
