"""Full fine-tuning as a method of the same harness: every backbone parameter trains, no prompt.

Its config declares that it trains the backbone itself, so the wrapper leaves the backbone trainable; the module
registers the backbone, so the optimizer, the checkpoint and the saved adapter hold the whole model (an "adapter"
as large as the backbone). `forward()` is an empty (0, d) prompt. `lamp export` writes it as what it is, a
transformers model folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from lamp.methods.base import Backbone, Declaration, EmptyPrompt, Export, PromptConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class FullConfig(PromptConfig):
    """No options: the whole backbone trains."""

    declares = Declaration(prompt_rows=False, backbone=Backbone.TRAINED, export=Export.MODEL)

    def build(self, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase | None = None) -> FullModule:
        return FullModule(backbone)


class FullModule(EmptyPrompt):
    """The backbone itself (trainable, as the declaration told the wrapper) and no prompt rows."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__(backbone.get_input_embeddings().weight.shape[1])
        self.model = backbone
