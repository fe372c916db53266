"""Vanilla prompt tuning (Lester et al., 2021): an l x d prompt, every entry trainable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from lamp.methods.base import Declaration, PromptConfig, PromptModule, check_init, check_positive, initial_prompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class PromptTuningConfig(PromptConfig):
    """length: virtual tokens; init: `vocab`, `text` (embeddings of init_text), `task` (`text` from the task's own
    template and label words, `Task.prompt_words`; lamp train) or `random`."""

    declares = Declaration(prompt_init=True)
    length: int = 100
    init: str = "vocab"
    init_text: str | None = None

    def validate(self) -> None:
        check_positive("length", self.length)
        check_init(self.init, self.init_text)

    def build(self, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase | None = None) -> PromptTuningPrompt:
        return PromptTuningPrompt(initial_prompt(self.length, self.init, backbone, tokenizer, self.init_text))


class PromptTuningPrompt(PromptModule):
    def __init__(self, initial: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(initial.float().contiguous())
        self.n_virtual = initial.shape[0]

    def forward(self) -> torch.Tensor:
        return self.weight
