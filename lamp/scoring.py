"""The two scorers: rank classification (the label words' log-probability) and greedy generation.

Rank classification reads one position when the label words start with different tokens (one forward pass,
logits at one position); otherwise it scores each label's whole token sequence. Generation decodes greedily
and maps text to a label with the task's parser; junk becomes None, which the metrics count as wrong.
"""

from __future__ import annotations

from typing import Any

import torch

from lamp.data import Encoded, collate_sources, collate_train, pad_id, target_ids
from lamp.model import IGNORE_INDEX

SCORERS = ("auto", "rank", "generate")


def resolve_scorer(scorer: str, kind: str, task: Any) -> str:
    """`auto`: rank classification for causal LMs on tasks with label words, generation otherwise."""
    if scorer != "auto":
        return scorer
    return "rank" if kind == "causal" and task.label_words else "generate"


def label_token_ids(tokenizer: Any, kind: str, label_words: tuple[str, ...]) -> list[list[int]]:
    return [target_ids(tokenizer, kind, word) for word in label_words]


def _forward(model: Any, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    labels = batch["labels"].to(device)
    inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits if model.kind == "causal" else model(**inputs, labels=labels).logits
    return model.align(logits, labels)


@torch.no_grad()
def rank_scores(model: Any, sources: list[list[int]], labels: list[list[int]], pad: int) -> torch.Tensor:
    """(batch, n_labels) log-probabilities of each label given each source."""
    device = next(model.parameters()).device
    firsts = [ids[0] for ids in labels]
    if len(set(firsts)) == len(firsts):
        batch = collate_train([Encoded(s, [firsts[0]]) for s in sources], pad, model.kind)
        logits, _ = _forward(model, batch, device)
        return torch.log_softmax(logits[:, 0].float(), dim=-1)[:, firsts]
    columns = []
    for ids in labels:
        batch = collate_train([Encoded(s, ids) for s in sources], pad, model.kind)
        logits, targets = _forward(model, batch, device)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        valid = targets != IGNORE_INDEX
        picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        columns.append((picked * valid).sum(-1))
    return torch.stack(columns, dim=-1)


@torch.no_grad()
def generate_texts(model: Any, sources: list[list[int]], tokenizer: Any, max_new_tokens: int) -> list[str]:
    device = next(model.parameters()).device
    batch = collate_sources(sources, pad_id(tokenizer), left=model.kind == "causal")
    out = model.generate(
        **{k: v.to(device) for k, v in batch.items()},
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=pad_id(tokenizer),
    )
    return [text.strip() for text in tokenizer.batch_decode(out, skip_special_tokens=True)]


def predict(
    model: Any, encoded: list[Encoded], task: Any, tokenizer: Any, scorer: str, batch_size: int
) -> list[int | float | None]:
    """Predictions for `encoded` examples as the task's metrics take them (label values, or None if invalid)."""
    predictions: list[int | float | None] = []
    labels = label_token_ids(tokenizer, model.kind, task.label_words) if scorer == "rank" else None
    max_new = 2 + max((len(target_ids(tokenizer, model.kind, w)) for w in task.label_words or ("0.0",)), default=4)
    for start in range(0, len(encoded), batch_size):
        sources = [e.source for e in encoded[start : start + batch_size]]
        if scorer == "rank":
            best = rank_scores(model, sources, labels, pad_id(tokenizer)).argmax(-1).tolist()
            predictions.extend(task.label_value(i) for i in best)
        else:
            predictions.extend(task.parse(t) for t in generate_texts(model, sources, tokenizer, max_new))
    return predictions
