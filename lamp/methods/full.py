"""Full fine-tuning as a method of the same harness: every backbone parameter trains, no prompt.

`build` unfreezes the backbone and registers it in this module, so the optimizer, the checkpoint and the saved
adapter hold the whole model (an "adapter" as large as the backbone). `forward()` is an empty (0, d) prompt.
`lamp export` writes it as what it is, a transformers model folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
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
    export_format = "model"

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

    def export(self, model: Any, directory: Path) -> str:
        """The fine-tuned backbone as a transformers model folder (`save_pretrained`), with the tokenizer of the
        backbone's name when that name loads one (a model folder or hub id lamp can reach)."""
        from lamp.backbones import load_tokenizer
        from lamp.errors import LampError

        model.backbone.save_pretrained(str(directory))
        tokenizer = ""
        if model.backbone_name:
            try:
                load_tokenizer(model.backbone_name).save_pretrained(str(directory))
                tokenizer = " and its tokenizer"
            except LampError:  # a backbone built in memory, or a name that cannot be fetched here
                pass
        auto = "AutoModelForSeq2SeqLM" if model.kind == "seq2seq" else "AutoModelForCausalLM"
        return f"a transformers model folder{tokenizer} to {{out}}: transformers.{auto}.from_pretrained({{out!r}})"
