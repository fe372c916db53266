"""Turning task examples into model batches: tokenisation, dynamic padding, and the logits each batch needs.

Seq2seq (T5): source -> encoder (right-padded), target -> decoder labels (padded with -100).
Causal LMs: source then " target" and EOS in one left-padded sequence, labels only on the target. Left padding
puts every row's last source token at the same column, so rank classification and generation read one
position, and the collator knows how many final positions the loss needs (`logits_to_keep`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lamp.model import IGNORE_INDEX


@dataclass(frozen=True)
class Encoded:
    source: list[int]
    target: list[int]


def target_ids(tokenizer: Any, kind: str, text: str) -> list[int]:
    """Token ids of a target: a leading space for causal LMs so it tokenises as a word after the source."""
    if kind == "seq2seq":
        return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return tokenizer(" " + text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def encode(examples: list[Any], tokenizer: Any, kind: str, max_length: int) -> list[Encoded]:
    """Tokenise sources (truncated to max_length, keeping the start) and targets."""
    sources = tokenizer([e.source for e in examples], add_special_tokens=kind == "seq2seq")["input_ids"]
    encoded = []
    for example, source in zip(examples, sources, strict=True):
        target = target_ids(tokenizer, kind, example.target)
        if kind == "causal":
            source = source[: max(1, max_length - len(target))]
        else:
            source = source[:max_length]
        encoded.append(Encoded(source, target))
    return encoded


class LazyEncoded:
    """`encode` row by row on first access: a short run on a large train split (SST-2: 67k rows, a few hundred
    read) tokenises only the rows it reads. Encoding one row gives the same ids as encoding it in a batch."""

    def __init__(self, examples: list[Any], tokenizer: Any, kind: str, max_length: int) -> None:
        self.examples, self.tokenizer, self.kind, self.max_length = examples, tokenizer, kind, max_length
        self.cache: dict[int, Encoded] = {}

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Encoded:
        if index not in self.cache:
            self.cache[index] = encode([self.examples[index]], self.tokenizer, self.kind, self.max_length)[0]
        return self.cache[index]


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def collate_sources(sources: list[list[int]], pad: int, left: bool) -> dict[str, torch.Tensor]:
    """Pad token-id lists to the longest in the batch (dynamic padding)."""
    width = max(len(s) for s in sources)
    ids = torch.full((len(sources), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sources), width), dtype=torch.long)
    for row, s in enumerate(sources):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[row, span] = torch.tensor(s, dtype=torch.long)
        mask[row, span] = 1
    return {"input_ids": ids, "attention_mask": mask}


def collate_train(batch: list[Encoded], pad: int, kind: str) -> dict[str, Any]:
    """A training batch with labels; for causal LMs also `logits_to_keep` covering every labelled position."""
    if kind == "seq2seq":
        out = collate_sources([e.source for e in batch], pad, left=False)
        labels = collate_sources([e.target for e in batch], IGNORE_INDEX, left=False)["input_ids"]
        return {**out, "labels": labels}
    out = collate_sources([e.source + e.target for e in batch], pad, left=True)
    labels = torch.full_like(out["input_ids"], IGNORE_INDEX)
    for row, e in enumerate(batch):
        labels[row, labels.shape[1] - len(e.target) :] = torch.tensor(e.target)
    # The last kept logit predicts nothing, and the first target token is predicted one position earlier.
    out["labels"] = labels
    out["logits_to_keep"] = max(len(e.target) for e in batch) + 1
    return out


class EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]
