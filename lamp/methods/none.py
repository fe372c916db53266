"""No prompt: the bare backbone, nothing added and nothing trained. It is the zero-shot floor of a comparison
(`lamp.floors`) and the reference row of `lamp bench`; `lamp train` refuses it (it declares nothing to train)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from lamp.methods.base import Declaration, EmptyPrompt, PromptConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class NoPromptConfig(PromptConfig):
    """No options."""

    declares = Declaration(prompt_rows=False, export=None, trains=False)

    def build(self, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase | None = None) -> NoPrompt:
        return NoPrompt(backbone.get_input_embeddings().weight.shape[1])


class NoPrompt(EmptyPrompt):
    """An empty (0, d) prompt and no parameters."""
