"""The interface every prompt method implements, and the prompt initialisations they share.

A method is a pair: a config dataclass (validated on construction) and an `nn.Module` built from it whose
`forward()` returns the prompt rows (n_virtual x d). A method may also change the input embeddings through
`embed_inputs` (DePT's offset); the default leaves them as they are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from lamp.errors import ConfigError

INITS = ("vocab", "text", "random")


@dataclass
class PromptConfig:
    """Base of every method's config. Subclasses set `method` and add their own fields."""

    method: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # a flag's "false" must not pass as a truthy string
            if f.type in (bool, "bool") and not isinstance(getattr(self, f.name), bool):
                raise ConfigError(f"{f.name} must be true or false, got {getattr(self, f.name)!r}")
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError on a bad value; called on construction."""

    def build(self, backbone: nn.Module, tokenizer: Any = None) -> PromptModule:
        """Build the trainable module for `backbone` (already frozen by the wrapper).

        Prompt methods read `backbone.get_input_embeddings().weight` (vocab x d) for their init; a method that
        trains part of the backbone itself (LoRA, full fine-tuning) registers those parameters in its module.
        """
        raise NotImplementedError

    def from_prompt(self, initial: torch.Tensor) -> PromptModule:
        """Build the module starting from a given (length x d) prompt instead of an init (import, --init-from)."""
        raise ConfigError(f"method {self.method!r} cannot start from a given prompt: use method 'lamp'")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}


class PromptModule(nn.Module):
    """A trainable prompt: `forward()` returns (n_virtual, d) rows to prepend to the input embeddings."""

    n_virtual: int

    def forward(self) -> torch.Tensor:
        raise NotImplementedError

    def unpooled(self) -> torch.Tensor:
        """The prompt rows before any shortening (pooling); the same as forward() for methods that do not shorten."""
        return self.forward()

    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        """AdamW parameter groups; a method with several learning rates (DePT) returns one group per rate."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def embed_inputs(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hook on the input embeddings (batch x seq x d) before the prompt is prepended."""
        return inputs_embeds


def check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}: pass {name}=1 or more")


def check_init(init: str, init_text: str | None) -> None:
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}: choose one of {', '.join(INITS)}")
    if init == "text" and not init_text:
        raise ConfigError("init='text' needs init_text: pass the phrase whose embeddings start the prompt")


def initial_prompt(
    length: int, init: str, backbone: nn.Module, tokenizer: Any = None, init_text: str | None = None
) -> torch.Tensor:
    """A vanilla (length x d) prompt in float32: vocabulary rows, a phrase's rows cycled to length, or noise.

    `vocab` samples token ids uniformly from the vocabulary (Lester et al.'s sampled-vocabulary init) with
    torch's global generator, so a training seed fixes it. `random` draws from a normal with the embedding
    matrix's own standard deviation, so the prompt starts on the scale the backbone expects.
    """
    weight = backbone.get_input_embeddings().weight.detach().float()
    if init == "vocab":
        ids = torch.randint(0, weight.shape[0], (length,))
        return weight[ids.to(weight.device)].clone()
    if init == "text":
        if tokenizer is None:
            raise ConfigError("init='text' needs a tokenizer: call lamp.wrap(model, config, tokenizer=tokenizer)")
        ids = tokenizer(init_text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError(f"init_text {init_text!r} gives no tokens: pass a non-empty phrase")
        cycled = torch.tensor([ids[i % len(ids)] for i in range(length)])
        return weight[cycled.to(weight.device)].clone()
    return torch.randn(length, weight.shape[1], device=weight.device) * weight.std()
