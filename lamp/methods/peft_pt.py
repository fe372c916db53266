"""`peft-pt`: PEFT's PromptTuning through `peft.get_peft_model`, a reference for lamp's `pt` in `lamp bench`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from lamp.checks import POSITIVE_INT
from lamp.errors import ConfigError
from lamp.methods.base import Declaration, Harness
from lamp.methods.peft_model import PeftModelConfig, PeftModelModule

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class PeftPromptTuningConfig(PeftModelConfig):
    """PEFT PromptTuning: `length` virtual tokens, `init` vocab (sampled vocabulary rows) or random."""

    declares = Declaration(export=None, harness=Harness.PEFT)
    length: int = 100
    init: str = "vocab"

    def validate(self) -> None:
        POSITIVE_INT.check("length", self.length)
        if self.init not in ("vocab", "random"):
            raise ConfigError(f"peft-pt init {self.init!r} is not vocab or random: pass init=vocab or init=random")
        super().validate()

    def peft_config(self, task_type: Any) -> Any:
        import peft

        init = peft.PromptTuningInit.SAMPLE_VOCAB if self.init == "vocab" else peft.PromptTuningInit.RANDOM
        return peft.PromptTuningConfig(task_type=task_type, num_virtual_tokens=self.length, prompt_tuning_init=init)

    def note(self, seq2seq: bool) -> str:
        return "PEFT also trains an unused decoder copy of the prompt (its trainable count doubles)" if seq2seq else ""

    def build(self, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase | None = None) -> PeftPromptTuning:
        return PeftPromptTuning(backbone, self)


class PeftPromptTuning(PeftModelModule):
    """PEFT's PromptTuning model."""
