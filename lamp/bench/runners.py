"""One runner per way of running a method: lamp's wrapper (`lamp.wrap`, the trainer's own forward) or PEFT's own
model (`peft.get_peft_model`). A runner says what the benchmark times: `loss(batch)` and `infer(inputs)`. Which
runner a method gets, and what it does to the backbone, come from its config's declaration, never its name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lamp.backbones import ModelKind
from lamp.bench.config import MethodSpec
from lamp.methods import Backbone, Declaration, Harness, PromptConfig, PromptModule
from lamp.model import align, label_loss, wrap


@dataclass
class GainOnlyConfig(PromptConfig):
    """Stands in for a method that trains nothing (the bare backbone): no prompt, a trainable scalar gain on the input
    embeddings, so backward reaches the input as every prompt method's does. Not registered: bench's own probe."""

    declares = Declaration(prompt_rows=False, input_embeddings=True, export=None)  # the wrapper calls embed_inputs

    def build(self, backbone: nn.Module, tokenizer: Any = None) -> PromptModule:
        return InputGain(backbone.get_input_embeddings().weight.shape[1])


class InputGain(PromptModule):
    n_virtual = 0

    def __init__(self, width: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))
        self.width = width

    def forward(self) -> torch.Tensor:
        return self.gain.new_zeros(0, self.width)

    def embed_inputs(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return inputs_embeds * self.gain.to(inputs_embeds.dtype)


class Runner:
    """What the benchmark times: `loss(batch)` (training forward) and `infer(inputs)` (no-grad forward)."""

    module: nn.Module
    call: Any
    n_virtual: int = 0
    note: str = ""

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.module.parameters() if p.requires_grad]}]

    def trainable_params(self) -> int:
        return sum(p.numel() for group in self.param_groups() for p in group["params"])

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def infer(self, inputs: dict[str, Any]) -> torch.Tensor:
        return self.call(**inputs).logits

    def close(self) -> None:
        """Give the backbone back as it was (PEFT's LoRA edits it in place)."""


class WrapperRunner(Runner):
    """A method lamp's wrapper runs, through `lamp.wrap`: the trainer's own forward.

    Methods that change the backbone itself (injected layers, full fine-tuning) leave it changed: `run_bench`
    notices and builds a fresh backbone for the next row.
    """

    def __init__(self, backbone: nn.Module, spec: MethodSpec, compiled: bool) -> None:
        config = spec.config
        if not config.declares.trains:  # the floor: backward must still reach the input, as every prompt's does
            config = GainOnlyConfig()
            self.note = "no prompt: backbone forward/backward down to the input embeddings through a 1-parameter gain"
        self.module = wrap(backbone, config)
        self.call = torch.compile(self.module) if compiled else self.module
        self.n_virtual = self.module.n_virtual

    def param_groups(self) -> list[dict[str, Any]]:
        return self.module.prompt_encoder.optimizer_groups(1e-3)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.call(**batch).loss


class PeftRunner(Runner):
    """A method PEFT's own model runs (`peft.get_peft_model`), as PEFT users call it: labels in, logits at every
    position; or, with the option logits=needed, given the same `logits_to_keep` as lamp."""

    def __init__(self, backbone: nn.Module, spec: MethodSpec, kind: ModelKind, compiled: bool) -> None:
        config = spec.config
        self.module = config.build(backbone)
        self.n_virtual = self.module.n_virtual
        self.injected = config.declares.backbone is Backbone.INJECTED  # close() takes the layers out again
        self.call = torch.compile(self.module) if compiled else self.module
        self.needed = config.logits == "needed" and kind == "causal"
        self.note = (
            "logits only where the loss needs them" if self.needed else "PEFT's forward: logits at every position"
        )
        extra = config.note(kind == "seq2seq")
        if extra:
            self.note += "; " + extra

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "logits_to_keep"}
        if not self.needed:
            return self.call(**inputs).loss
        labels = inputs.pop("labels")
        logits = self.call(**inputs, logits_to_keep=batch["logits_to_keep"]).logits
        return label_loss(*align(logits, labels, "causal"))

    def infer(self, inputs: dict[str, Any]) -> torch.Tensor:
        if not self.needed:
            inputs = {k: v for k, v in inputs.items() if k != "logits_to_keep"}
        return self.call(**inputs).logits

    def close(self) -> None:
        if self.injected:
            self.module.unload()


def make_runner(backbone: nn.Module, spec: MethodSpec, kind: ModelKind, compiled: bool = False) -> Runner:
    """The runner of the harness `spec`'s method declares."""
    if spec.config.declares.harness is Harness.PEFT:
        return PeftRunner(backbone, spec, kind, compiled)
    return WrapperRunner(backbone, spec, compiled)
