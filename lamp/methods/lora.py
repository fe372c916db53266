"""LoRA (Hu et al., 2022) through `peft`, as a method of the same harness: low-rank updates on backbone layers,
no prompt.

A layer-injecting tuner in PEFT's sense (its config declares it): `build` injects LoRA layers into the (frozen)
backbone with `peft.inject_adapter_in_model` and registers the injected low-rank tensors in this module, so its
parameters, and hence the saved adapter, are exactly the LoRA weights. It adds no virtual tokens: `forward()` is an
empty (0, d) prompt. `lamp export` writes a stock PEFT LoRA adapter (`lamp.export.write_peft_layers`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from lamp.checks import POSITIVE, Number
from lamp.errors import ConfigError, first_sentence
from lamp.methods.base import Backbone, Declaration, EmptyPrompt, Export, PromptConfig, check_positive

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


NAMES = re.compile(r"\s*\[?\s*[\w.]+(\s*,\s*[\w.]+)*\s*\]?\s*")
"""target_modules text that lists module names (comma-separated, optionally in brackets) rather than a regex."""


@dataclass
class LoraConfig(PromptConfig):
    """rank: r of every LoRA update. alpha: scale numerator (update scale alpha / r; peft's default 8).
    dropout: dropout on the LoRA input. target_modules: module names (a list, or names in one string separated by
    commas: "q_proj,v_proj", as the command line gives them), or a regex / "all-linear" (any other string: peft
    matches a regex against the whole module path, so a bare name as a regex would match nothing); None takes peft's
    default for the architecture: the attention query and value projections (q_proj/v_proj on Llama, q/v on T5)."""

    declares = Declaration(prompt_rows=False, backbone=Backbone.INJECTED, export=Export.PEFT_LORA)
    rank: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    target_modules: list[str] | str | None = None

    def validate(self) -> None:
        check_positive("rank", self.rank)
        self.alpha = POSITIVE.check("alpha", self.alpha)
        self.dropout = Number(0, 1, high_open=True).check("dropout", self.dropout)
        modules = self.target_modules
        if isinstance(modules, tuple):
            self.target_modules = modules = list(modules)
        if isinstance(modules, str) and NAMES.fullmatch(modules):  # "q_proj,v_proj" or "[q_proj, v_proj]"
            self.target_modules = modules = [name.strip() for name in modules.strip("[] ").split(",")]
        if not (
            modules is None
            or (isinstance(modules, str) and modules)
            or (isinstance(modules, list) and modules and all(isinstance(m, str) and m for m in modules))
        ):
            raise ConfigError(
                f"target_modules must be a non-empty list of module names or a regex, got {modules!r}: "
                "pass e.g. target_modules=['q_proj','v_proj']"
            )
        if isinstance(modules, str):  # peft matches a string as a regex ("all-linear" compiles too)
            try:
                re.compile(modules)
            except re.error as error:
                raise ConfigError(
                    f"target_modules {modules!r} is not a valid regex ({error}): fix it, or pass module names, e.g. "
                    "target_modules=['q_proj','v_proj']"
                ) from None

    def check_width(self, width: int) -> None:
        if self.rank > width:  # every linear layer of a transformer has a side of the model's width d
            raise ConfigError(
                f"rank {self.rank} exceeds the backbone's width {width}: an update of a layer with a side of {width} "
                f"has rank at most {width} (and rank x {width} entries per side), pass rank <= {width}"
            )

    def check_modules(self, skeleton: Callable[[], nn.Module]) -> None:
        """Inject into the backbone built on the meta device, as `build` will into its weights: the same refusal
        for target_modules that name no layer or a layer LoRA cannot wrap, before the weights load."""
        self._inject(skeleton())

    def build(self, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase | None = None) -> LoraModule:
        self._inject(backbone)
        return LoraModule(backbone)

    def _inject(self, backbone: nn.Module) -> None:
        """`peft.inject_adapter_in_model`, whose ValueError (a multi-line module dump when a target is not a layer
        type it wraps) becomes one line naming the backbone's linear layers."""
        import peft

        config = peft.LoraConfig(
            r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=self.target_modules
        )
        try:
            peft.inject_adapter_in_model(config, backbone)
        except ValueError as error:
            linear = sorted(
                {name.rsplit(".", 1)[-1] for name, m in backbone.named_modules() if isinstance(m, nn.Linear)}
            )
            cause = first_sentence(error)
            if "is not supported" in str(error):  # "Target module LlamaModel(<its whole module dump>) is not ..."
                cause = f"{str(error).split('(', 1)[0].strip()} is not a layer type LoRA wraps"
            raise ConfigError(
                f"LoRA cannot be applied with target_modules {self.target_modules!r} ({cause}): the backbone's linear "
                f"layers are {', '.join(linear)}; pass some of them, e.g. target_modules=q_proj,v_proj"
            ) from None


class LoraModule(EmptyPrompt):
    """Holds the LoRA tensors peft injected into the backbone, keyed by the wrapped module's path; no prompt rows."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__(backbone.get_input_embeddings().weight.shape[1])
        from peft.tuners.lora import LoraLayer

        self.layers = nn.ModuleDict()
        for name, module in backbone.named_modules():
            if isinstance(module, LoraLayer):
                parts = nn.ModuleDict({part: getattr(module, part) for part in module.adapter_layer_names})
                self.layers[name.replace(".", "-")] = parts
