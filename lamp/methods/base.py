"""The interface every prompt method implements, and the prompt initialisations they share.

A method is a pair: a config dataclass (validated on construction) and an `nn.Module` built from it whose
`forward()` returns the prompt rows (n_virtual x d). A method may also change the input embeddings through
`embed_inputs` (DePT's offset); the default leaves them as they are.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from lamp.checks import POSITIVE_INT
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

        Prompt methods take their init from what the input embedding layer returns (`embedding_rows`,
        `embedding_std`), never from its raw weight (Gemma scales rows by sqrt(d) in forward); a method that
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
    export_format: ClassVar[str] = "peft"
    """What `export` writes (`lamp export`): "peft" (a stock PEFT adapter) or "model" (a transformers model folder)."""

    def export(self, model: Any, directory: Path) -> str:
        """Write what serves this method without lamp into `directory` (an empty scratch folder) and return one
        line: what it is and how to load it, with `{out}` standing for the final folder. `model` is the
        PromptedModel holding this module. Default: the materialised prompt as a PEFT prompt-tuning adapter (an
        AdapterError when the method is more than its prompt)."""
        from lamp.export import write_peft_prompt

        return write_peft_prompt(model, directory)

    def forward(self) -> torch.Tensor:
        raise NotImplementedError

    def unpooled(self) -> torch.Tensor:
        """The prompt rows before any shortening (pooling); the same as forward() for methods that do not shorten."""
        return self.forward()

    def effective_parameters(self) -> int:
        """Trainable entries the prompt actually depends on; fewer than the nominal count when some directions
        never reach the output (LAMP's pooling). Default: every trainable entry."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        """AdamW parameter groups; a method with several learning rates (DePT) returns one group per rate."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def embed_inputs(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hook on the input embeddings (batch x seq x d) before the prompt is prepended."""
        return inputs_embeds


def check_positive(name: str, value: int) -> None:
    POSITIVE_INT.check(name, value)


def check_init(init: str, init_text: str | None) -> None:
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}: choose one of {', '.join(INITS)}")
    if init == "text" and not init_text:
        raise ConfigError("init='text' needs init_text: pass the phrase whose embeddings start the prompt")


def embedding_rows(backbone: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """(len(ids), d) float32 rows as the backbone's input embedding layer returns them for token `ids`.

    Reading `get_input_embeddings().weight` instead would miss what the layer does in `forward`: Gemma's
    `ScaledWordEmbedding` multiplies by sqrt(d), so raw rows would be sqrt(d) too small for the backbone.
    """
    layer = backbone.get_input_embeddings()
    with torch.no_grad():
        return layer(ids.to(layer.weight.device)).detach().float()


def embedding_std(backbone: nn.Module, chunk: int = 8192) -> float:
    """Standard deviation of every entry of the embedding layer's output over the whole vocabulary.

    Equals `weight.std()` (and is computed that way) when the layer returns its weight's rows unchanged; otherwise
    (a scaled embedding) the rows are run through the layer in chunks, accumulated in float64.
    """
    layer = backbone.get_input_embeddings()
    weight = layer.weight.detach()
    probe = torch.arange(min(weight.shape[0], 16), device=weight.device)
    if torch.equal(embedding_rows(backbone, probe), weight[probe].float()):
        return weight.float().std().item()
    total = total_sq = 0.0
    for start in range(0, weight.shape[0], chunk):
        rows = embedding_rows(backbone, torch.arange(start, min(start + chunk, weight.shape[0]))).double()
        total += rows.sum().item()
        total_sq += rows.pow(2).sum().item()
    count = weight.numel()
    return math.sqrt(max(total_sq - total * total / count, 0.0) / (count - 1))


def initial_prompt(
    length: int, init: str, backbone: nn.Module, tokenizer: Any = None, init_text: str | None = None, repeat: int = 1
) -> torch.Tensor:
    """A vanilla (length x d) prompt in float32: vocabulary rows, a phrase's rows cycled to length, or noise.

    `repeat`: a text init writes each of the phrase's tokens that many times in a row (a method that average-pools
    blocks of `repeat` rows then starts from the phrase itself).

    Rows come from the embedding layer's output (`embedding_rows`), so a text init equals feeding those tokens.
    `vocab` samples token ids uniformly from the vocabulary (Lester et al.'s sampled-vocabulary init) with
    torch's global generator, so a training seed fixes it. `random` draws from a normal with the embedding
    output's own standard deviation, so the prompt starts on the scale the backbone expects.
    """
    weight = backbone.get_input_embeddings().weight
    if init == "vocab":
        ids = torch.randint(0, weight.shape[0], (length,))
        return embedding_rows(backbone, ids)
    if init == "text":
        if tokenizer is None:
            raise ConfigError("init='text' needs a tokenizer: call lamp.wrap(model, config, tokenizer=tokenizer)")
        ids = tokenizer(init_text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError(f"init_text {init_text!r} gives no tokens: pass a non-empty phrase")
        return embedding_rows(backbone, torch.tensor([ids[(i // repeat) % len(ids)] for i in range(length)]))
    return torch.randn(length, weight.shape[1], device=weight.device) * embedding_std(backbone)
