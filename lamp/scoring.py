"""The two scorers: rank classification (the label words' log-probability) and greedy generation.

Rank classification reads one position when the label words start with different tokens (one forward pass,
logits at one position); otherwise it scores each label's whole token sequence. Generation decodes greedily
and maps text to a label with the task's parser; junk becomes None, which the metrics count as wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from lamp.data import Encoded, collate_sources, collate_train, pad_id, target_ids
from lamp.errors import ConfigError
from lamp.model import IGNORE_INDEX
from lamp.progress import progress

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from lamp.backbones import ModelKind
    from lamp.model import PromptedModel
    from lamp.tasks.base import Task


SCORERS = ("auto", "rank", "generate")
SCORER_HELP = (
    "rank (classification: the label word the model ranks highest, one forward pass), generate (decode and parse the "
    "answer) or auto (rank for causal LMs on classification tasks, generation otherwise; default)"
)
"""What each scorer does, for the --scorer flag of every command that scores."""


def resolve_scorer(scorer: str, kind: ModelKind, task: Task, tokenizer: PreTrainedTokenizerBase) -> str:
    """The scorer `scorer` names for `task` on a `kind` backbone: `auto` is rank classification for causal LMs on
    tasks with label words, generation otherwise. ConfigError for `rank` on a task without label words (free-form
    answers), and for label words that are the same tokens to `tokenizer` (`label_token_ids`): neither scorer could
    tell them apart."""
    chosen = scorer if scorer != "auto" else "rank" if kind == "causal" and task.label_words else "generate"
    if chosen == "rank" and not task.label_words:
        raise ConfigError(
            f"task {task.name} has no label words for rank classification: use the generate scorer (--scorer generate)"
        )
    if task.label_words:
        label_token_ids(tokenizer, kind, task.label_words, task.lead)
    return chosen


def label_token_ids(
    tokenizer: PreTrainedTokenizerBase, kind: ModelKind, label_words: tuple[str, ...], lead: str = " "
) -> list[list[int]]:
    """Each label word's target token ids (`target_ids`: after `lead` for causal LMs, then EOS). ConfigError for two
    words that are the same tokens (words the vocabulary lacks, e.g. both <unk>): rank classification could never
    tell them apart, and would answer the first for every row."""
    ids = [target_ids(tokenizer, kind, word, lead) for word in label_words]
    first_with: dict[tuple[int, ...], str] = {}
    for word, word_ids in zip(label_words, ids, strict=True):
        earlier = first_with.setdefault(tuple(word_ids), word)
        if earlier != word:
            tokens = " ".join(map(str, tokenizer.convert_ids_to_tokens(word_ids)))
            raise ConfigError(
                f"label words {earlier!r} and {word!r} are the same tokens to this tokenizer ({tokens}): choose "
                "words it tells apart"
            )
    return ids


def max_new_tokens(tokenizer: PreTrainedTokenizerBase, kind: ModelKind, task: Task) -> int:
    """Generation budget: the task's own (`Task.max_new_tokens`, free-form answers), else the longest label word's
    tokens plus two (regression tasks: room for a number)."""
    if getattr(task, "max_new_tokens", None):
        return task.max_new_tokens
    return 2 + max((len(target_ids(tokenizer, kind, w, task.lead)) for w in task.label_words or ("0.0",)), default=4)


def answer_tokens(tokenizer: PreTrainedTokenizerBase, kind: ModelKind, task: Task, scorer: str) -> int:
    """Tokens a causal LM's scorer appends to a source: the longest label word with its EOS (rank) or the generation
    budget (generate); 0 for seq2seq, whose answer goes to the decoder. The reserve of `lamp.data.encode`."""
    if kind != "causal":
        return 0
    if scorer == "generate":
        return max_new_tokens(tokenizer, kind, task)
    return max(len(ids) for ids in label_token_ids(tokenizer, kind, task.label_words, task.lead))


def _rows(prompt: torch.Tensor | None, prompt_mask: torch.Tensor | None, rows: list[int], batch: int) -> dict[str, Any]:
    """The prompt arguments for a subset of the batch's rows (a per-row prompt is (batch, n, d))."""
    if prompt is None or prompt.dim() == 2 or len(rows) == batch:
        return {"prompt": prompt, "prompt_mask": prompt_mask}
    return {"prompt": prompt[rows], "prompt_mask": None if prompt_mask is None else prompt_mask[rows]}


def _forward(
    model: PromptedModel, batch: dict[str, Any], device: torch.device, prompts: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    labels = batch["labels"].to(device)
    inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items() if k != "labels"}
    inputs.update({k: v.to(device) for k, v in prompts.items() if v is not None})
    logits = model(**inputs).logits if model.kind == "causal" else model(**inputs, labels=labels).logits
    return model.align(logits, labels)


@torch.no_grad()
def rank_scores(
    model: PromptedModel,
    sources: list[list[int]],
    labels: list[list[int]] | list[list[list[int]]],
    pad: int,
    prompt: torch.Tensor | None = None,
    prompt_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """(batch, n_labels) log-probabilities of each label given each source.

    `labels` is one list of label token ids for every row, or one such list per row (a batch mixing tasks); a row
    with fewer labels than the widest gets -inf in the missing columns. A row whose labels start with different
    tokens is scored on that first token (one forward pass, logits at one position), any other row on its labels'
    whole token sequences, so each row scores as it would in a batch of its own task. `prompt` / `prompt_mask` are
    passed to the model (per-row prompts: (batch, n, d) and (batch, n)).
    """
    device = next(model.parameters()).device
    per_row = bool(labels) and isinstance(labels[0][0], list)
    rows: list[list[list[int]]] = labels if per_row else [labels] * len(sources)  # type: ignore[assignment]
    scores = torch.full((len(sources), max(len(r) for r in rows)), -torch.inf, device=device)
    firsts = [[ids[0] for ids in r] for r in rows]
    fast = [row for row, f in enumerate(firsts) if len(set(f)) == len(f)]
    if fast:
        batch = collate_train([Encoded(sources[row], [firsts[row][0]]) for row in fast], pad, model.kind)
        logits, _ = _forward(model, batch, device, _rows(prompt, prompt_mask, fast, len(sources)))
        logprobs = torch.log_softmax(logits[:, 0].float(), dim=-1)
        for i, row in enumerate(fast):
            scores[row, : len(firsts[row])] = logprobs[i, firsts[row]]
    slow = [row for row in range(len(sources)) if row not in set(fast)]
    for column in range(max((len(rows[row]) for row in slow), default=0)):  # one pass per label position
        members = [row for row in slow if column < len(rows[row])]
        batch = collate_train([Encoded(sources[row], rows[row][column]) for row in members], pad, model.kind)
        logits, targets = _forward(model, batch, device, _rows(prompt, prompt_mask, members, len(sources)))
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        valid = targets != IGNORE_INDEX
        picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        scores[members, column] = (picked * valid).sum(-1)
    return scores


@torch.no_grad()
def generate_texts(
    model: PromptedModel,
    sources: list[list[int]],
    tokenizer: PreTrainedTokenizerBase,
    max_new_tokens: int | list[int],
    prompt: torch.Tensor | None = None,
    prompt_mask: torch.Tensor | None = None,
) -> list[str]:
    """Greedy continuations. `max_new_tokens` may differ per row (a batch mixing tasks): the batch decodes up to
    the largest, and each row keeps only its own budget, so it reads as it would in a batch of its own task."""
    device = next(model.parameters()).device
    budgets = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(sources)
    batch = collate_sources(sources, pad_id(tokenizer), left=model.kind == "causal")
    extra = {k: v.to(device) for k, v in (("prompt", prompt), ("prompt_mask", prompt_mask)) if v is not None}
    out = model.generate(
        **{k: v.to(device) for k, v in batch.items()},
        **extra,
        max_new_tokens=max(budgets),
        do_sample=False,
        pad_token_id=pad_id(tokenizer),
    )
    # seq2seq output begins with the decoder start token, causal output with the input
    start = 1 if model.kind == "seq2seq" else batch["input_ids"].shape[1]
    rows = [row[start : start + budget] for row, budget in zip(out, budgets, strict=True)]
    return [text.strip() for text in tokenizer.batch_decode(rows, skip_special_tokens=True)]


def predict(
    model: PromptedModel,
    encoded: list[Encoded],
    task: Task,
    tokenizer: PreTrainedTokenizerBase,
    scorer: str,
    batch_size: int,
    show_progress: bool = True,
) -> list[int | float | str | None]:
    """Predictions for `encoded` examples as the task's metrics take them (label values, generated text for a
    free-form task, or None if invalid).

    Batches are formed from examples of similar length (longest first) and the predictions are put back in the
    given order: a row scores the same in any batch (left padding, positions count real tokens), so this only
    removes padding work. `show_progress`: a progress bar over the examples (see `lamp.progress`).
    """
    predictions: list[int | float | str | None] = [None] * len(encoded)
    labels = label_token_ids(tokenizer, model.kind, task.label_words, task.lead) if scorer == "rank" else None
    max_new = max_new_tokens(tokenizer, model.kind, task)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].source))
    bar = progress(total=len(order), enabled=show_progress, desc=f"scoring {task.name}", unit="ex", leave=False)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        sources = [encoded[i].source for i in rows]
        if scorer == "rank":
            best = rank_scores(model, sources, labels, pad_id(tokenizer)).argmax(-1).tolist()
            values = [task.label_value(i) for i in best]
        else:
            values = [task.parse(t) for t in generate_texts(model, sources, tokenizer, max_new)]
        for i, value in zip(rows, values, strict=True):
            predictions[i] = value
        bar.update(len(rows))
    bar.close()
    return predictions
