"""Full fine-tuning as a method of the same harness: every backbone parameter trains, no prompt.

`build` unfreezes the backbone and registers it in this module, so the optimizer, the checkpoint and the saved
adapter hold the whole model (an "adapter" as large as the backbone). `forward()` is an empty (0, d) prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lamp.methods.base import PromptConfig, PromptModule


@dataclass
class FullConfig(PromptConfig):
    """No options: the whole backbone trains."""

    method = "full"

    def build(self, backbone: nn.Module, tokenizer: Any = None) -> FullModule:
        return FullModule(backbone)


class FullModule(PromptModule):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        for parameter in backbone.parameters():
            parameter.requires_grad_(True)
        self.model = backbone
        width = backbone.get_input_embeddings().weight.shape[1]
        self.register_buffer("empty", torch.zeros(0, width), persistent=False)
        self.n_virtual = 0

    def forward(self) -> torch.Tensor:
        return self.empty
