"""Many tasks on one frozen backbone: rows of different tasks share a batch, each row with its own task's prompt.

Each adapter is loaded onto the same backbone object, so the backbone's weights are held once. A batch stacks the
rows' prompts into (batch, n, d), shorter prompts left-padded inside the prompt block with prompt_mask 0, and runs
one forward pass (or one `generate`); predictions equal those of each adapter run alone (up to float error).

Input rows are JSON objects naming their task: either ``{"task": "rte", "source": "rte sentence1: ..."}`` (text
already formatted in the input format the adapter was trained in) or a raw row in the task's own fields, e.g.
``{"task": "rte", "sentence1": "...", "sentence2": "..."}``, which the task renders in that format (a chat
template too, if the adapter was trained with one); a row holding both forms is refused (one would be dropped),
unless the task's template itself names a ``{source}`` field. An optional ``id`` is copied to the output; a
``label`` (raw rows) lets the caller score the predictions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lamp.adapter import read_adapter_config, saved_format
from lamp.backbones import load_model
from lamp.data import (
    ADAPTER_CHAT,
    ADAPTER_CHAT_FIX,
    DEFAULT_MAX_LENGTH,
    chat_wrapper,
    encode_sources,
    fit_max_length,
    pad_id,
    source_budget,
)
from lamp.errors import AdapterError, ConfigError, DataError
from lamp.export import require_pure_prompt
from lamp.methods import METHODS
from lamp.model import PromptedModel, load_adapter
from lamp.progress import progress
from lamp.scoring import (
    answer_tokens,
    generate_texts,
    label_token_ids,
    max_new_tokens,
    rank_scores,
    resolve_scorer,
)
from lamp.tasks import TASKS, Example, Task, get_task, task_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def parse_adapter_spec(spec: str | os.PathLike) -> tuple[str | None, Path]:
    """``DIR`` (the task named in DIR/adapter.json) or ``TASK=DIR`` (name or override the task)."""
    text = str(spec)
    task, sep, path = text.partition("=")
    if sep and not Path(text).exists():
        if not task or not path:  # `=DIR` or `TASK=`: half of the pair is missing
            raise ConfigError(f"--adapter {text!r} lacks its {'task' if not task else 'folder'}: pass TASK=DIR or DIR")
        return task, Path(path)
    return None, Path(text)


def load_task_adapters(
    specs: Sequence[str | os.PathLike], backbone: nn.Module | str | None = None
) -> dict[str, PromptedModel]:
    """task name -> adapter, all on one backbone (`backbone`: a model, a name, or None for the adapters' own).

    Each spec is ``DIR`` or ``TASK=DIR``; the task comes from ``TASK=`` or else the ``task`` that `lamp train`
    records in adapter.json. Adapters must agree on the backbone and be pure prompts (they share batches).
    """
    if not specs:
        raise AdapterError("no adapters given: pass at least one adapter folder")
    named: list[tuple[str, Path, dict[str, Any]]] = []
    for spec in specs:
        task, path = parse_adapter_spec(spec)
        data = read_adapter_config(path)
        task = _task_name(task, data, path)
        other = next((where for name, where, _ in named if name == task), None)
        if other is not None:
            raise AdapterError(
                f"two adapters for task {task!r} ({other} and {path}): a row names its task, which picks one adapter: "
                "pass one adapter per task"
            )
        entry = METHODS.get(data["prompt"]["method"])  # an unknown method: load_adapter says so
        if entry is not None:  # refused before anything loads onto the shared backbone
            require_pure_prompt(entry.config, f"adapter {path} cannot share a batch with other tasks (use lamp eval)")
        named.append((task, path, data))
    names = sorted({data["backbone"]["name"] for *_, data in named})
    if backbone is None and len(names) > 1:
        raise AdapterError(
            f"the adapters name different backbones ({', '.join(names)}): tasks share batches only on one backbone; "
            "pass the backbone explicitly if these names are the same model"
        )
    if backbone is None or isinstance(backbone, str):
        backbone = load_model(backbone or named[0][2]["backbone"]["name"])
    adapters = {}
    for task, path, _ in named:
        adapters[task] = load_adapter(backbone, path)
    return adapters


def adapter_tasks(specs: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """task name -> its Task as each adapter was trained (input format, a user task's saved spec), read from the
    adapters' adapter.json alone (no model loads), so rows can be checked first. An adapter that names no task is an
    AdapterError."""
    tasks = {}
    for spec in specs:
        task, path = parse_adapter_spec(spec)
        data = read_adapter_config(path)
        name = _task_name(task, data, path)
        tasks[name] = served_task(name, data.get("task_spec"), saved_format(data))
    return tasks


def served_task(name: str, spec: Mapping[str, Any] | None, input_format: str) -> Task:
    """The task an adapter serves under `name`, in `input_format`: a user task from the `spec` its adapter saved
    (renamed when TASK= gives a new name, so that two adapters of one task of your own can share batches), else the
    built-in task `name` (an adapter of your own task given a built-in name serves that built-in task's rows)."""
    if spec is not None and (name == spec.get("name") or name not in TASKS):
        return task_of(name, {**spec, "name": name}, input_format)
    return task_of(name, None, input_format)


def _task_name(given: str | None, data: dict[str, Any], path: Path) -> str:
    """The task an adapter serves: TASK= of its spec, else the one adapter.json records; AdapterError if neither."""
    name = given or data.get("task")
    if not name:
        raise AdapterError(f"adapter {path} names no task (adapter.json has no 'task'): pass it as TASK={path}")
    return name


def row_source(row: Any, where: str, views: Mapping[str, Any] | None = None) -> tuple[Any, str, str]:
    """(task, source text, cue) of an input row: its task's fields rendered as `Task.example` does (without needing
    a label), or its ``source`` put in the task's chat template if it has one. The task is its view in `views` (each
    adapter's input format and chat template; given, a task outside it is refused), else its t5 spec; the cue is the
    end that truncation keeps. A row without a known task, without a text source or the task's text fields, with
    both, with an empty source (or, for a user task, an empty field, which its training refuses too), or with a
    label the task does not know, is a DataError naming `where` (e.g. ``rows.jsonl line 3``)."""
    if not isinstance(row, Mapping):
        raise DataError(f'{where} is not a JSON object: write {{"task": ..., "source": ...}}')
    name = row.get("task")
    if not isinstance(name, str):
        raise DataError(f'{where} names no task ("task" is {name!r}): add "task": "<task name>", e.g. "rte"')
    if views is not None and name not in views:  # said before its fields are checked: they may be another task's
        raise DataError(f"{where} names task {name!r}, which no adapter serves: known tasks {', '.join(views)}")
    try:
        task = views[name] if views else get_task(name)
    except DataError as error:
        raise DataError(f"{where}: {error}") from None
    if task.gold_field in row:  # checked now, before any model loads, not when the predictions are scored
        try:
            task.label_of(row[task.gold_field])
            if task.group:
                task.group(row)  # MultiRC scores per question: its rows need their question's id
        except (KeyError, ValueError, TypeError, IndexError) as error:
            raise DataError(
                f"{where} ({name}) has an unusable label ({error}): fix it or drop {task.gold_field!r}"
            ) from None
    text_fields = task.text_fields()
    if "source" in row and "source" not in text_fields:  # a template's own {source} field is a raw row's field
        given = [field for field in text_fields if field in row]
        if given:  # one of them would be dropped silently
            raise DataError(
                f"{where} ({name}) has both 'source' (ready text) and the task's field {', '.join(map(repr, given))}: "
                "keep 'source' or the fields, not both"
            )
        if not isinstance(row["source"], str):
            raise DataError(f"{where} ({name}): 'source' must be text, got {row['source']!r}")
        if not row["source"].strip():
            raise DataError(f"{where} ({name}): 'source' is empty: fill it or drop the row")
        return task, *task.framed(row["source"])
    for field in text_fields:  # str() would quietly render 5 as "5" and null as "None"
        if field in row and not isinstance(row[field], str):
            raise DataError(f"{where} ({name}): field {field!r} must be text, got {row[field]!r}")
        # as training refuses it in a user's own files (`lamp.tasks.user.user_examples`); official data may hold one
        if task.user_data is not None and field in row and not row[field].strip():
            raise DataError(f"{where} ({name}): field {field!r} is empty: fill it or drop the row")
    try:
        return task, *task.render(row)
    except KeyError as error:
        raise DataError(f"{where} ({name}) lacks field {error}: give a 'source' text or the task's fields") from None
    except (ValueError, TypeError, IndexError, AttributeError) as error:
        raise DataError(
            f"{where} ({name}) has unusable fields ({error}): fix the row or give a 'source' text"
        ) from None


@dataclass
class _Prepared:
    task: Task
    scorer: str
    prompt: torch.Tensor
    labels: list[list[int]] | None
    max_new: int


def predict_rows(
    adapters: Mapping[str, PromptedModel],
    rows: Sequence[Mapping[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 32,
    scorer: str = "auto",
    max_length: int | None = None,
    by_length: bool = True,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """One prediction per row, in order: ``{"task", "prediction", ...}`` plus ``scores`` (label word ->
    log-probability) for rank classification or ``text`` for generation, and the row's ``id`` if it has one.

    Rows of any tasks share batches; `by_length` batches rows of similar token length together (less padding; the
    output keeps the input order), else rows are batched in input order. `scorer` is resolved per task (see
    `resolve_scorer`). Rows render in the input format each adapter recorded (`load_adapter` sets `input_format`; a
    model wrapped in this process without one: t5). `max_length`: source tokens (default: each adapter's recorded
    training `max_length`, else 256), a longer row cut as `lamp eval` cuts it (its start and its template's cue
    kept; a row given as ready ``source`` text has no cue, so its start is kept). `show_progress`: a progress bar over
    the rows (`lamp.progress`).
    """
    if not adapters:
        raise AdapterError("no adapters given: pass at least one adapter")
    runner = next(iter(adapters.values()))  # any of them: they share the backbone and add nothing but a prompt
    kind = runner.kind
    prepared: dict[str, _Prepared] = {}
    for name, model in adapters.items():
        if model.backbone is not runner.backbone:
            raise AdapterError(
                f"adapter for {name!r} sits on another backbone object: load all with load_task_adapters"
            )
        require_pure_prompt(
            model.prompt_config, f"the adapter for {name!r} cannot share a batch with other tasks (use lamp eval)"
        )
        # rows render as the adapter was trained; a user task is rebuilt from the spec its adapter saved
        task = served_task(name, getattr(model, "task_spec", None), getattr(model, "input_format", "t5"))
        if getattr(model, "chat_template", False):
            task = task.in_chat(chat_wrapper(tokenizer, kind, ADAPTER_CHAT_FIX, ADAPTER_CHAT))
        chosen = resolve_scorer(scorer, kind, task, tokenizer)
        labels = label_token_ids(tokenizer, kind, task.label_words, task.lead) if chosen == "rank" else None
        prompt = model.eval().prompt().detach()
        prepared[name] = _Prepared(task, chosen, prompt, labels, max_new_tokens(tokenizer, kind, task))

    # Each row is cut as `lamp eval` cuts it (one source encoder, `lamp.data.encode_sources`): to max_length less what
    # its own scorer appends. Near the backbone's positions a batch must also fit the longest prompt and the largest
    # reserve of any task, so there max_length is lowered by what the other tasks need beyond the row's own.
    reserves = {name: answer_tokens(tokenizer, kind, p.task, p.scorer) for name, p in prepared.items()}
    longest, most = max(p.prompt.shape[0] for p in prepared.values()), max(reserves.values())
    lengths = {
        name: max_length or getattr(model, "max_length", None) or DEFAULT_MAX_LENGTH for name, model in adapters.items()
    }
    fit_max_length(min(lengths.values()), runner.backbone, longest, most)  # refuses a prompt that leaves no input room
    budgets = {
        name: source_budget(kind, fit_max_length(lengths[name], runner.backbone, longest + most - own, own), own)
        for name, own in reserves.items()
    }
    texts: list[tuple[str, str]] = []
    for index, row in enumerate(rows):
        _, text, cue = row_source(row, f"row {index + 1}", {name: p.task for name, p in prepared.items()})
        texts.append((text, cue))
    sources = encode_sources(tokenizer, kind, texts, [budgets[row["task"]] for row in rows])

    results: list[dict[str, Any]] = [({"id": row["id"]} if "id" in row else {}) for row in rows]
    order = sorted(range(len(rows)), key=lambda i: len(sources[i])) if by_length else list(range(len(rows)))
    bar = progress(total=len(order), enabled=show_progress, desc="predict", unit="row", leave=False)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for mode in ("rank", "generate"):
            members = [i for i in chunk if prepared[rows[i]["task"]].scorer == mode]
            if members:
                _run_batch(
                    runner,
                    [prepared[rows[i]["task"]] for i in members],
                    [sources[i] for i in members],
                    tokenizer,
                    mode,
                    [results[i] for i in members],
                )
        bar.update(len(chunk))
    bar.close()
    return results


def stack_prompts(prompts: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, n_max, d) prompts and (batch, n_max) mask: shorter prompts left-padded inside the prompt block."""
    width = max(p.shape[0] for p in prompts)
    stacked = prompts[0].new_zeros(len(prompts), width, prompts[0].shape[1])
    mask = torch.zeros(len(prompts), width, dtype=torch.long, device=prompts[0].device)
    for row, prompt in enumerate(prompts):
        stacked[row, width - prompt.shape[0] :] = prompt
        mask[row, width - prompt.shape[0] :] = 1
    return stacked, mask


def _run_batch(
    runner: PromptedModel,
    tasks: list[_Prepared],
    sources: list[list[int]],
    tokenizer: PreTrainedTokenizerBase,
    mode: str,
    out: list[dict[str, Any]],
) -> None:
    prompt, prompt_mask = stack_prompts([t.prompt for t in tasks])
    if mode == "rank":
        scores = rank_scores(runner, sources, [t.labels for t in tasks], pad_id(tokenizer), prompt, prompt_mask)
        best_indices = scores.argmax(-1).tolist()  # missing columns are -inf, so never chosen
        for t, row_scores, best, result in zip(tasks, scores.tolist(), best_indices, out, strict=True):
            words = t.task.label_words
            value = t.task.label_value(best)
            result.update(task=t.task.name, prediction=value if t.task.is_regression else words[best], value=value)
            result["scores"] = dict(zip(words, row_scores[: len(words)], strict=True))
        return
    texts = generate_texts(runner, sources, tokenizer, [t.max_new for t in tasks], prompt, prompt_mask)
    for t, text, result in zip(tasks, texts, out, strict=True):
        value = t.task.parse(text)
        words = t.task.label_words
        shown = words[value] if value is not None and words and not t.task.is_regression else value
        result.update(task=t.task.name, prediction=shown, value=value, text=text)


def score_rows(
    rows: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]], tasks: Mapping[str, Any] | None = None
) -> dict[str, dict[str, float]]:
    """Task metrics (0-100) of each task on its rows that carry their answer (a ``label``, or a user task's label or
    target field; `labelled_rows` says how many of how many); a task with no such row is left out. `tasks`: name ->
    Task for user tasks (`adapter_tasks`)."""
    views = _views(rows, tasks)
    by_task: dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {}
    for row, result in zip(rows, results, strict=True):
        if views[row["task"]].gold_field in row:
            by_task.setdefault(row["task"], []).append((row, result))
    metrics = {}
    for name, pairs in by_task.items():
        task = views[name]
        try:
            examples = [
                Example("", "", task.label_of(row[task.gold_field]), task.group(row) if task.group else None)
                for row, _ in pairs
            ]
        except (KeyError, ValueError) as error:
            raise DataError(f"cannot score task {name}: a row's label or fields are unusable ({error})") from None
        metrics[name] = task.compute_metrics([result["value"] for _, result in pairs], examples)
    return metrics


def labelled_rows(
    rows: Sequence[Mapping[str, Any]], tasks: Mapping[str, Any] | None = None
) -> dict[str, tuple[int, int]]:
    """task name -> (rows that carry their answer, rows): what `score_rows` scores each task on."""
    views = _views(rows, tasks)
    counts: dict[str, tuple[int, int]] = {}
    for row in rows:
        labelled, total = counts.get(row["task"], (0, 0))
        counts[row["task"]] = (labelled + (views[row["task"]].gold_field in row), total + 1)
    return counts


def _views(rows: Sequence[Mapping[str, Any]], tasks: Mapping[str, Any] | None) -> dict[str, Any]:
    """Each task the rows name: its view in `tasks` (user tasks, as adapters saved them), else the built-in task."""
    return {name: tasks[name] if tasks and name in tasks else get_task(name) for name in {row["task"] for row in rows}}
