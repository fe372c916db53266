"""Registry of prompt methods: name -> (config class, module class). A new method is one file and one line here."""

from __future__ import annotations

from typing import Any

from lamp.errors import ConfigError
from lamp.methods.base import PromptConfig, PromptModule
from lamp.methods.dept import DeptConfig, DeptPrompt
from lamp.methods.dpt import DptConfig, DptPrompt
from lamp.methods.full import FullConfig, FullModule
from lamp.methods.lamp import LampConfig, LampPrompt
from lamp.methods.lora import LoraConfig, LoraModule
from lamp.methods.none import NoPrompt, NoPromptConfig
from lamp.methods.pt import PromptTuningConfig, PromptTuningPrompt

METHODS: dict[str, tuple[type[PromptConfig], type[PromptModule]]] = {
    "lamp": (LampConfig, LampPrompt),
    "pt": (PromptTuningConfig, PromptTuningPrompt),
    "dept": (DeptConfig, DeptPrompt),
    "dpt": (DptConfig, DptPrompt),
    "lora": (LoraConfig, LoraModule),
    "full": (FullConfig, FullModule),
    "none": (NoPromptConfig, NoPrompt),
}


def make_config(method: str, **options: Any) -> PromptConfig:
    """Build a method's config by name, e.g. make_config("lamp", length=100, rank=8)."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    config_class = METHODS[method][0]
    known = {f for f in config_class.__dataclass_fields__}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"method {method!r} has no option {', '.join(unknown)}: its options are {', '.join(sorted(known))}"
        )
    return config_class(**options)


def config_from_dict(data: dict[str, Any]) -> PromptConfig:
    """Inverse of PromptConfig.to_dict()."""
    options = dict(data)
    return make_config(options.pop("method", ""), **options)


__all__ = ["METHODS", "PromptConfig", "PromptModule", "make_config", "config_from_dict"]
