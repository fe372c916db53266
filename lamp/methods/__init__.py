"""The registry of methods: name -> (config class, module class), one `register` line per method.

A new method is one file (its config, which declares what it changes, and its module; see `lamp.methods.base`) and
one `register` line here. Shared code finds methods only through this registry and reads what they change from
their config's `declares`; it never names a method.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from lamp.errors import ConfigError
from lamp.methods.base import Backbone, Declaration, EmptyPrompt, Export, PromptConfig, PromptModule
from lamp.methods.dept import DeptConfig, DeptPrompt
from lamp.methods.dpt import DptConfig, DptPrompt
from lamp.methods.full import FullConfig, FullModule
from lamp.methods.lamp import LampConfig, LampPrompt
from lamp.methods.lora import LoraConfig, LoraModule
from lamp.methods.none import NoPrompt, NoPromptConfig
from lamp.methods.pt import PromptTuningConfig, PromptTuningPrompt


class Method(NamedTuple):
    """A registered method: its config class (with its declaration) and the module class its config builds."""

    config: type[PromptConfig]
    module: type[PromptModule]


METHODS: dict[str, Method] = {}
"""Every registered method by name, in registration order (the order help texts and errors list them in)."""


def register(name: str, config: type[PromptConfig], module: type[PromptModule]) -> None:
    """Make `name` a method: `config` (a PromptConfig dataclass) builds `module`. Sets `config.method` to `name`.

    Raises ValueError for a name already taken, and for a module that overrides `embed_inputs` without its config
    declaring `input_embeddings` (or the reverse): the wrapper calls the hook only when it is declared.
    """
    if name in METHODS:
        raise ValueError(f"method {name!r} is registered already")
    hooks = module.embed_inputs is not PromptModule.embed_inputs
    if hooks != config.declares.input_embeddings:
        raise ValueError(
            f"method {name!r}: {module.__name__} {'overrides' if hooks else 'does not override'} embed_inputs, but "
            f"{config.__name__}.declares has input_embeddings={config.declares.input_embeddings}"
        )
    config.method = name
    METHODS[name] = Method(config, module)


register("lamp", LampConfig, LampPrompt)
register("pt", PromptTuningConfig, PromptTuningPrompt)
register("dept", DeptConfig, DeptPrompt)
register("dpt", DptConfig, DptPrompt)
register("lora", LoraConfig, LoraModule)
register("full", FullConfig, FullModule)
register("none", NoPromptConfig, NoPrompt)

DEFAULT_METHOD = "lamp"
"""The method `lamp train` and `TrainConfig` use when none is named."""


def lookup(name: str) -> Method:
    """The registered method `name`; ConfigError (one line, naming the choices) for an unknown one."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")
    return METHODS[name]


def option_names(name: str) -> list[str]:
    """The options (config fields) of method `name`, in declaration order."""
    return [f.name for f in dataclasses.fields(lookup(name).config)]


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse an unknown method and options it does not have (their values are checked by `make_config`)."""
    known = option_names(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"method {name!r} has no option {', '.join(unknown)}: its options are {', '.join(sorted(known))}"
        )


def make_config(name: str, **options: Any) -> PromptConfig:
    """Build a method's config by name, e.g. make_config("lamp", length=100, rank=8); ConfigError for an unknown
    method, an option it does not have, or a bad value."""
    check_options(name, options)
    return lookup(name).config(**options)


def config_from_dict(data: dict[str, Any]) -> PromptConfig:
    """Inverse of PromptConfig.to_dict()."""
    options = dict(data)
    return make_config(options.pop("method", ""), **options)


__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "Backbone",
    "Declaration",
    "EmptyPrompt",
    "Export",
    "LampConfig",
    "Method",
    "PromptConfig",
    "PromptModule",
    "PromptTuningConfig",
    "check_options",
    "config_from_dict",
    "lookup",
    "make_config",
    "option_names",
    "register",
]
