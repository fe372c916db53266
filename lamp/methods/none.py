"""No prompt: the bare backbone, nothing added and nothing trained. It is the zero-shot floor of a comparison
(`lamp.floors`) and the reference row of `lamp bench`; `lamp train` refuses it (there is nothing to train)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lamp.methods.base import PromptConfig, PromptModule


@dataclass
class NoPromptConfig(PromptConfig):
    """No options."""

    method = "none"

    def build(self, backbone: nn.Module, tokenizer: Any = None) -> NoPrompt:
        return NoPrompt(backbone.get_input_embeddings().weight.shape[1])


class NoPrompt(PromptModule):
    """An empty (0, d) prompt and no parameters."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("empty", torch.zeros(0, width), persistent=False)
        self.n_virtual = 0

    def forward(self) -> torch.Tensor:
        return self.empty
