"""The registry of methods: name -> (config class, module class), one `register` line per method.

Methods that PEFT's own model runs (`Harness.PEFT`: `peft-pt`, `peft-lora`) are registered the same way, in
`REGISTRY`; they are references for `lamp bench` alone, so `METHODS` (what train, compare, export and predict
accept) leaves them out and `lookup` refuses them in one line.

A new method is one file (its config, which declares what it changes, and its module; see `lamp.methods.base`) and
one `register` line here. Shared code finds methods only through this registry and reads what they change from
their config's `declares`; it never names a method.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import torch
from torch import nn

from lamp.errors import ConfigError, did_you_mean
from lamp.methods.base import Backbone, Declaration, EmptyPrompt, Export, Harness, PromptConfig, PromptModule
from lamp.methods.dept import DeptConfig, DeptPrompt
from lamp.methods.dpt import DptConfig, DptPrompt
from lamp.methods.full import FullConfig, FullModule
from lamp.methods.lamp import LampConfig, LampPrompt
from lamp.methods.lora import LoraConfig, LoraModule
from lamp.methods.none import NoPrompt, NoPromptConfig
from lamp.methods.peft_lora import PeftLora, PeftLoraConfig
from lamp.methods.peft_pt import PeftPromptTuning, PeftPromptTuningConfig
from lamp.methods.pt import PromptTuningConfig, PromptTuningPrompt


class Method(NamedTuple):
    """A registered method: its config class (with its declaration) and the module class its config builds."""

    config: type[PromptConfig]
    module: type[nn.Module]


REGISTRY: dict[str, Method] = {}
"""Every registered method by name, whatever runs it, in registration order (`lamp bench` measures them all)."""
METHODS: dict[str, Method] = {}
"""The methods lamp's wrapper runs (`Harness.LAMP`), in registration order (the order help texts and errors list
them in): what train, compare, export and predict accept."""


def register(name: str, config: type[PromptConfig], module: type[nn.Module]) -> None:
    """Make `name` a method: `config` (a PromptConfig dataclass) builds `module`. Sets `config.method` to `name`.

    Raises ValueError for a name already taken, and for a module that overrides `embed_inputs` without its config
    declaring `input_embeddings` (or the reverse): the wrapper calls the hook only when it is declared.
    """
    if name in REGISTRY:
        raise ValueError(f"method {name!r} is registered already")
    hooks = getattr(module, "embed_inputs", PromptModule.embed_inputs) is not PromptModule.embed_inputs
    if hooks != config.declares.input_embeddings:
        raise ValueError(
            f"method {name!r}: {module.__name__} {'overrides' if hooks else 'does not override'} embed_inputs, but "
            f"{config.__name__}.declares has input_embeddings={config.declares.input_embeddings}"
        )
    config.method = name
    REGISTRY[name] = Method(config, module)
    if config.declares.harness is Harness.LAMP:
        METHODS[name] = REGISTRY[name]


register("lamp", LampConfig, LampPrompt)
register("pt", PromptTuningConfig, PromptTuningPrompt)
register("dept", DeptConfig, DeptPrompt)
register("dpt", DptConfig, DptPrompt)
register("lora", LoraConfig, LoraModule)
register("full", FullConfig, FullModule)
register("none", NoPromptConfig, NoPrompt)
register("peft-pt", PeftPromptTuningConfig, PeftPromptTuning)
register("peft-lora", PeftLoraConfig, PeftLora)

DEFAULT_METHOD = "lamp"
"""The method `lamp train` and `TrainConfig` use when none is named."""
BENCH_DEFAULTS = [
    "none",
    "pt:length=100",
    "pt:length=25",
    "lamp:length=100,rank=8,pool=4",
    "peft-pt:length=100",
    "peft-lora:r=8",
    "lora:rank=8",
]
"""The method specs `lamp bench` measures when none are named."""


def lookup(name: str, harnesses: tuple[Harness, ...] = (Harness.LAMP,)) -> Method:
    """The registered method `name` run by one of `harnesses` (default: lamp's wrapper); ConfigError (one line,
    naming the choices) for an unknown one, or one run by another harness (PEFT's own model: bench only)."""
    entry = REGISTRY.get(name)
    choices = ", ".join(n for n, e in REGISTRY.items() if e.config.declares.harness in harnesses)
    if entry is None:
        raise ConfigError(f"unknown method {name!r}{did_you_mean([name], REGISTRY)}: choose one of {choices}")
    harness = entry.config.declares.harness
    if harness not in harnesses:
        raise ConfigError(
            f"method {name!r} runs in {harness.value}'s own model, which only lamp bench measures: choose one of "
            f"{choices}"
        )
    return entry


def option_names(name: str, harnesses: tuple[Harness, ...] = (Harness.LAMP,)) -> list[str]:
    """The options (config fields) of method `name`, in declaration order."""
    return [f.name for f in dataclasses.fields(lookup(name, harnesses).config)]


def check_options(name: str, options: dict[str, Any], harnesses: tuple[Harness, ...] = (Harness.LAMP,)) -> None:
    """Refuse an unknown method and options it does not have (their values are checked by `make_config`)."""
    known = option_names(name, harnesses)
    unknown = sorted(set(options) - set(known))
    if unknown and not known:
        raise ConfigError(f"method {name!r} takes no options, got {', '.join(unknown)}: pass plain {name}")
    if unknown:
        raise ConfigError(
            f"method {name!r} has no option {', '.join(unknown)}{did_you_mean(unknown, known)}: its options are "
            f"{', '.join(sorted(known))}"
        )


def make_config(name: str, **options: Any) -> PromptConfig:
    """Build a method's config by name, e.g. make_config("lamp", length=100, rank=8); ConfigError for an unknown
    method, an option it does not have, or a bad value."""
    check_options(name, options)
    return lookup(name).config(**options)


def config_for_prompt(name: str, rows: int, width: int, source: str, **options: Any) -> PromptConfig:
    """The config of method `name` whose model starts by seeing the (rows x width) prompt saved in `source`
    (`PromptConfig.for_prompt`), from the prompt's shape alone, so that a warm start's options are checked before any
    backbone loads. ConfigError for a method that cannot start from a prompt, an option it does not have, a bad value,
    or a `length` other than the one that puts the rows before the input."""
    length = options.pop("length", None)
    check_options(name, options)
    shape = torch.empty(rows, width, device="meta")  # for_prompt reads the shape only: nothing is allocated
    config = lookup(name).config.for_prompt(shape, **options)
    if length is not None and length != config.length:
        raise ConfigError(
            f"length {length} differs from the {config.length} rows that start from the {rows} rows of the prompt in "
            f"{source}: leave the length unset"
        )
    return config


def config_from_dict(data: dict[str, Any]) -> PromptConfig:
    """Inverse of PromptConfig.to_dict()."""
    options = dict(data)
    return make_config(options.pop("method", ""), **options)


__all__ = [
    "BENCH_DEFAULTS",
    "DEFAULT_METHOD",
    "METHODS",
    "REGISTRY",
    "Backbone",
    "Declaration",
    "EmptyPrompt",
    "Export",
    "Harness",
    "LampConfig",
    "Method",
    "PromptConfig",
    "PromptModule",
    "PromptTuningConfig",
    "check_options",
    "config_for_prompt",
    "config_from_dict",
    "lookup",
    "make_config",
    "option_names",
    "register",
]
