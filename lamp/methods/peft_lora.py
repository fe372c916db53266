"""`peft-lora`: PEFT's LoRA through `peft.get_peft_model` on PEFT's default targets for the architecture (the
attention query and value projections), a reference for lamp's `lora` in `lamp bench`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from lamp.checks import POSITIVE, POSITIVE_INT
from lamp.methods.base import Backbone, Declaration, Harness, check_rank_fits
from lamp.methods.peft_model import PeftModelConfig, PeftModelModule

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class PeftLoraConfig(PeftModelConfig):
    """PEFT LoRA on PEFT's default targets for the architecture (query and value projections).

    r: rank of every update; alpha: scale numerator (update scale alpha / r), a positive number as lamp's `lora`
    takes it (PEFT annotates `lora_alpha` as int but computes alpha / r, so 0.5 or 12.5 work as they do in lamp).
    """

    declares = Declaration(prompt_rows=False, backbone=Backbone.INJECTED, export=None, harness=Harness.PEFT)
    r: int = 8
    alpha: float = 8.0

    def validate(self) -> None:
        POSITIVE_INT.check("r", self.r)
        self.alpha = POSITIVE.check("alpha", self.alpha)
        super().validate()

    def check_width(self, width: int) -> None:
        check_rank_fits(self.r, "the backbone's width", width)  # every projection has a side of the width

    def peft_config(self, task_type: Any) -> Any:
        import peft

        return peft.LoraConfig(task_type=task_type, r=self.r, lora_alpha=self.alpha, lora_dropout=0.0)

    def build(self, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase | None = None) -> PeftLora:
        return PeftLora(backbone, self)


class PeftLora(PeftModelModule):
    """PEFT's LoRA model; its layers replace the backbone's own until `unload()`."""
