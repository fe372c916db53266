"""lamp: LAMP prompt tuning (prompt decomposition, compressed outer product, average pooling) for any
Hugging Face seq2seq or causal language model."""

from lamp.adapter import save_adapter
from lamp.backbones import load_model, load_tokenizer
from lamp.errors import AdapterError, ConfigError, DataError, LampError
from lamp.export import export_adapter, export_peft, from_peft_prompt, read_prompt
from lamp.inspection import effective_rank, inspect_adapters, prompt_summary
from lamp.methods import (
    METHODS,
    LampConfig,
    PromptConfig,
    PromptModule,
    PromptTuningConfig,
    config_from_dict,
    make_config,
)
from lamp.model import PromptedModel, load_adapter, wrap
from lamp.predict import load_task_adapters, predict_rows

__version__ = "0.1.0"

__all__ = [
    "AdapterError",
    "ConfigError",
    "DataError",
    "LampConfig",
    "LampError",
    "METHODS",
    "PromptConfig",
    "PromptModule",
    "PromptTuningConfig",
    "PromptedModel",
    "config_from_dict",
    "effective_rank",
    "export_adapter",
    "export_peft",
    "from_peft_prompt",
    "inspect_adapters",
    "load_adapter",
    "load_task_adapters",
    "load_model",
    "load_tokenizer",
    "make_config",
    "predict_rows",
    "prompt_summary",
    "read_prompt",
    "save_adapter",
    "wrap",
]
