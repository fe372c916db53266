"""Turning task examples into model batches: tokenisation, dynamic padding, and the logits each batch needs.

Seq2seq (T5): source -> encoder (right-padded), target -> decoder labels (padded with -100).
Causal LMs: source then " target" and EOS in one left-padded sequence, labels only on the target. Left padding
puts every row's last source token at the same column, so rank classification and generation read one
position, and the collator knows how many final positions the loss needs (`logits_to_keep`).

A too-long source keeps its start and its end `cue` (a natural format's answer cue, see `lamp.tasks.Template`);
`chat_wrapper` gives the text an instruct model's chat template puts around a source (see `Task.in_chat`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from lamp.errors import ConfigError
from lamp.model import IGNORE_INDEX, max_positions

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from lamp.backbones import ModelKind


@dataclass(frozen=True)
class Encoded:
    source: list[int]
    target: list[int]


DEFAULT_MAX_LENGTH = 256
"""Source tokens of a run that names no limit (`TrainConfig.max_length`'s default; eval's and predict's for an
adapter that does not record its own)."""


def target_ids(tokenizer: PreTrainedTokenizerBase, kind: ModelKind, text: str, lead: str = " ") -> list[int]:
    """Token ids of a target then EOS. Causal LMs read `lead` first (a space, so the target tokenises as a word
    after the source; none after a chat template, see `Task.lead`); seq2seq decoders start afresh."""
    if kind == "seq2seq":
        return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return tokenizer(lead + text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def fit_max_length(max_length: int, backbone: Any, prompt_rows: int, reserve: int = 0) -> int:
    """`max_length` (tokens of a source plus what a causal LM appends to it, see `encode`), lowered so that the
    prompt's rows and those tokens fit the backbone's positions (`max_position_embeddings`; no limit when the backbone
    declares none). `reserve`: tokens appended to every source (`lamp.scoring.answer_tokens`). Raises ConfigError
    when the prompt and the reserve leave no room for a source."""
    limit = max_positions(backbone)
    if limit is None:
        return max_length
    room = limit - prompt_rows
    if room - reserve < 1:
        fix = (  # the larger of the two is what to cut
            f"allow fewer answer tokens (--max-new-tokens; at most {room - 1} with this prompt)"
            if reserve > prompt_rows and room > 1
            else "use a shorter prompt (--length or --pool)"
        )
        raise ConfigError(
            f"the prompt's {prompt_rows} rows{f' and {reserve} answer tokens' if reserve else ''} leave no room for "
            f"input in the backbone's {limit} positions: {fix}"
        )
    return min(max_length, room)


def truncate(
    tokenizer: PreTrainedTokenizerBase,
    kind: ModelKind,
    source: str,
    cue: str,
    ids: list[int],
    budget: int,
    scoring: bool = True,
) -> list[int]:
    """`ids` (the tokens of `source`) cut to `budget` tokens: the tokens of the end `cue` are kept, then as much of
    the start as fits; with no cue, the start. A token that straddles the cue's first character counts as the cue's.
    Needs a fast tokenizer (token offsets) when there is a cue.

    `scoring` (rows to score, whose budget does not depend on a gold answer): ConfigError when the budget holds no
    token of the input beside the cue, since the model would see the template without the input. A training row
    whose gold answer is longer than the scorer's reserve (`encode`) is cut instead, to the cue's end if need be."""
    if len(ids) <= budget:
        return ids
    cue_ids = ids[_cue_start(tokenizer, kind, source, cue, ids) :] if cue else []
    if len(cue_ids) >= budget:
        if not scoring:
            return (cue_ids or ids[:1])[-max(budget, 1) :]
        left = _tokens(max(budget, 0))
        said = (
            f"--max-length leaves {left} for an input and the template's cue {cue!r} takes {_tokens(len(cue_ids))}"
            if cue
            else f"--max-length leaves {left} for an input"
        )
        shared = " (a causal LM's --max-length also holds the answer's tokens: a label word, or --max-new-tokens)"
        raise ConfigError(
            f"{said}, so no token of the text would be seen: raise --max-length by at least "
            f"{len(cue_ids) + 1 - budget}{shared if kind == 'causal' else ''}"
        )
    return ids[: budget - len(cue_ids)] + cue_ids


def _tokens(count: int) -> str:
    return f"{count} token{'s' if count != 1 else ''}"


def _cue_start(tokenizer: PreTrainedTokenizerBase, kind: ModelKind, source: str, cue: str, ids: list[int]) -> int:
    """Index of the first token of `ids` that reaches into the end `cue` of `source`."""
    if not tokenizer.is_fast:
        raise ConfigError("cutting a natural-format input to --max-length needs a fast tokenizer: load one (use_fast)")
    offsets = tokenizer(source, add_special_tokens=kind == "seq2seq", return_offsets_mapping=True)["offset_mapping"]
    start = len(source) - len(cue)
    return next((i for i, (_, end) in enumerate(offsets) if end > start), len(ids))


def source_budget(kind: ModelKind, max_length: int, appended: int) -> int:
    """Tokens a source may keep: a causal LM's `max_length` covers the source and the `appended` tokens that follow
    it in one sequence; a seq2seq source has `max_length` to itself (the answer goes to the decoder). Below 1 when
    the appended tokens fill `max_length`: `truncate` refuses that for a row to score."""
    return max_length - appended if kind == "causal" else max_length


def encode_sources(
    tokenizer: PreTrainedTokenizerBase,
    kind: ModelKind,
    sources: Sequence[tuple[str, str]],
    budgets: Sequence[int],
    scoring: bool = True,
) -> list[list[int]]:
    """The source encoder of every path (training, `lamp eval`, `lamp predict`): each (text, cue) tokenised (special
    tokens for seq2seq only) and cut to its budget by `truncate`. One tokenizer call for all (a row's ids do not
    depend on the others)."""
    ids = tokenizer([text for text, _ in sources], add_special_tokens=kind == "seq2seq")["input_ids"]
    return [
        truncate(tokenizer, kind, text, cue, row, budget, scoring)
        for (text, cue), row, budget in zip(sources, ids, budgets, strict=True)
    ]


def encode(
    examples: list[Any],
    tokenizer: PreTrainedTokenizerBase,
    kind: ModelKind,
    max_length: int,
    reserve: int = 0,
    scoring: bool = False,
) -> list[Encoded]:
    """Tokenise sources (`encode_sources`, keeping their start and their `cue`, Example.cue) and targets.

    Causal: max_length covers the source plus its target, or plus `reserve` tokens when more (the longest label word
    a scorer appends, or the tokens it generates), so that training, scoring and generation see the same source and
    every sequence fits. `scoring`: rows to score, whose budget leaves room for the `reserve` only, never for the
    gold target, so a row is cut the same whether or not its answer is known (as `lamp predict` cuts it). The two
    budgets are equal for tasks with label words (no label word is longer than the reserve); they differ only for a
    free-form answer longer than the generation budget."""
    targets = [target_ids(tokenizer, kind, e.target, e.lead) for e in examples]
    budgets = [source_budget(kind, max_length, reserve if scoring else max(len(t), reserve)) for t in targets]
    sources = encode_sources(tokenizer, kind, [(e.source, e.cue) for e in examples], budgets, scoring)
    return [Encoded(source, target) for source, target in zip(sources, targets, strict=True)]


CHAT_SLOT = "{lamp-source}"  # stands for the source while the chat template is rendered
ADAPTER_CHAT = "the adapter (trained in its backbone's chat template)"
"""`chat_wrapper`'s `asked_by` when an adapter's recorded chat template, not a flag, asks for one."""
ADAPTER_CHAT_FIX = "pass the backbone it was trained on as --model"


def chat_wrapper(
    tokenizer: PreTrainedTokenizerBase, kind: ModelKind, fix: str = "drop it", asked_by: str = "--chat-template"
) -> tuple[str, str]:
    """(before, after): the text an instruct model's chat template puts around one user message, the assistant's
    turn opened (``add_generation_prompt``), so that the label word is the assistant's answer (`Task.in_chat`).
    ConfigError for a seq2seq backbone or a tokenizer without a chat template, naming `asked_by` (the flag, or
    `ADAPTER_CHAT` for an adapter's recorded chat template) and ending in `fix` (for an adapter: `ADAPTER_CHAT_FIX`)."""
    if kind != "causal":
        raise ConfigError(f"{asked_by} is for causal (decoder) LMs, and this backbone is seq2seq: {fix}")
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"{asked_by}: the model's tokenizer has no chat template (not an instruct model): {fix}")
    message = [{"role": "user", "content": CHAT_SLOT}]
    text = tokenizer.apply_chat_template(message, tokenize=False, add_generation_prompt=True)
    if text.count(CHAT_SLOT) != 1:
        raise ConfigError(f"{asked_by}: the model's chat template does not show the user's message as given")
    before, _, after = text.partition(CHAT_SLOT)
    return before, after


class LazyEncoded:
    """`encode` row by row on first access: a short run on a large train split (SST-2: 67k rows, a few hundred
    read) tokenises only the rows it reads. Encoding one row gives the same ids as encoding it in a batch."""

    def __init__(
        self,
        examples: list[Any],
        tokenizer: PreTrainedTokenizerBase,
        kind: ModelKind,
        max_length: int,
        reserve: int = 0,
    ) -> None:
        self.examples, self.tokenizer, self.kind, self.max_length = examples, tokenizer, kind, max_length
        self.reserve = reserve
        self.cache: dict[int, Encoded] = {}

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Encoded:
        if index not in self.cache:
            row = [self.examples[index]]
            self.cache[index] = encode(row, self.tokenizer, self.kind, self.max_length, self.reserve)[0]
        return self.cache[index]


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
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


def collate_train(batch: list[Encoded], pad: int, kind: ModelKind) -> dict[str, Any]:
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
