"""The base of the methods PEFT's own model runs (`peft.get_peft_model`, called as PEFT users call it): references
that `lamp bench` measures next to lamp's methods. Their configs declare `Harness.PEFT`, so the registry keeps them
out of `lamp train`, compare, export and predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from lamp.errors import ConfigError
from lamp.methods.base import PromptConfig

LOGITS = ("all", "needed")


@dataclass
class PeftModelConfig(PromptConfig):
    """logits: `all` (PEFT's own forward: labels in, logits at every position) or `needed` (causal LMs: logits only
    where the loss needs them, as lamp's trainer asks for them)."""

    logits: str = "all"

    def validate(self) -> None:
        if self.logits not in LOGITS:
            raise ConfigError(
                f"logits={self.logits!r}: pass logits=all (PEFT's own forward) or logits=needed (as lamp)"
            )

    def peft_config(self, task_type: Any) -> Any:
        """The `peft.PeftConfig` for `task_type` (a `peft.TaskType`)."""
        raise NotImplementedError

    def note(self, seq2seq: bool) -> str:
        """What a reader of the benchmark should know about how PEFT runs this method ("" for nothing)."""
        return ""


class PeftModelModule(nn.Module):
    """`peft.get_peft_model(backbone, ...)`: PEFT's model, whose forward is PEFT's own."""

    def __init__(self, backbone: nn.Module, config: PeftModelConfig) -> None:
        super().__init__()
        import peft

        seq2seq = bool(getattr(backbone.config, "is_encoder_decoder", False))
        task_type = peft.TaskType.SEQ_2_SEQ_LM if seq2seq else peft.TaskType.CAUSAL_LM
        self.model = peft.get_peft_model(backbone, config.peft_config(task_type))
        self.n_virtual = config.n_virtual()

    def forward(self, **inputs: Any) -> Any:
        return self.model(**inputs)

    def unload(self) -> nn.Module:
        """Take injected layers out of the backbone again (PEFT edits it in place); returns the backbone."""
        return self.model.unload()
