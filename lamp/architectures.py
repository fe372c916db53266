"""Published architectures as configs, to build random-weight models for speed and memory measurements.

`lamp bench --model random:t5-base` builds T5-Base from its config with random weights: no download, and honest
for time and memory (they depend on shapes, not values), meaningless for quality. The plain names (`smollm2-135m`,
a hub id, a folder) keep meaning real weights everywhere in lamp.

Values are the published `config.json` files: T5 v1.0 (google-t5/t5-*), Llama-2-7B (meta-llama/Llama-2-7b-hf),
SmolLM2-135M-Instruct (HuggingFaceTB). `tiny-t5` and `tiny-llama` are two-layer smoke-test sizes, not published.
"""

from __future__ import annotations

from typing import Any

from lamp.errors import ConfigError

PREFIX = "random:"

# T5 v1.0: ReLU feed-forward, tied embeddings, 32 relative-position buckets, vocabulary 32,128.
_T5 = {
    "model_type": "t5",
    "vocab_size": 32128,
    "relative_attention_num_buckets": 32,
    "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-6,
    "initializer_factor": 1.0,
    "feed_forward_proj": "relu",
    "n_positions": 512,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}


def _t5(d_model: int, d_ff: int, d_kv: int, num_heads: int, num_layers: int) -> dict[str, Any]:
    sizes = {"d_model": d_model, "d_ff": d_ff, "d_kv": d_kv, "num_heads": num_heads, "num_layers": num_layers}
    return {**_T5, **sizes, "num_decoder_layers": num_layers}


ARCHITECTURES: dict[str, dict[str, Any]] = {
    "t5-small": _t5(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6),
    "t5-base": _t5(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12),
    "t5-large": _t5(d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24),
    "t5-3b": _t5(d_model=1024, d_ff=16384, d_kv=128, num_heads=32, num_layers=24),
    "t5-11b": _t5(d_model=1024, d_ff=65536, d_kv=128, num_heads=128, num_layers=24),
    "llama2-7b": {
        "model_type": "llama",
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
    },
    "smollm2-135m": {
        "model_type": "llama",
        "vocab_size": 49152,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "head_dim": 64,
        "hidden_act": "silu",
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "initializer_range": 0.041666666666666664,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
    },
    "tiny-t5": _t5(d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2) | {"vocab_size": 128},
    "tiny-llama": {
        "model_type": "llama",
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 1,
        "pad_token_id": 0,
    },
}


def is_random(name: str) -> bool:
    """Whether `name` asks for random weights (`random:<architecture>`)."""
    return name.startswith(PREFIX)


def architecture_config(name: str) -> Any:
    """The transformers config of `random:<architecture>` or a bare architecture name."""
    from transformers import AutoConfig

    arch = name.removeprefix(PREFIX)
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"unknown architecture {arch!r}: choose one of {', '.join(PREFIX + a for a in ARCHITECTURES)}"
        )
    values = dict(ARCHITECTURES[arch])
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    config._name_or_path = PREFIX + arch
    return config


def model_class(config: Any) -> Any:
    """transformers' auto class that builds a model of `config`: seq2seq for an encoder-decoder, else causal LM."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM


def skeleton_model(config: Any) -> Any:
    """The model of a transformers `config` on the meta device: its modules, their names and shapes, and no weights
    (milliseconds for a tiny model, about a second for SmolLM2-135M), for checks of a method against the backbone's
    layers before the weights load (`PromptConfig.check_modules`)."""
    import torch

    with torch.device("meta"):
        return model_class(config).from_config(config)


def build_random(name: str, dtype: Any = None, device: Any = None, seed: int = 0) -> Any:
    """A random-weight model of a published architecture, created directly on `device` in `dtype`.

    Weights are drawn with a fixed seed, so two builds (two benchmark processes) hold the same model.
    """
    import torch

    config = architecture_config(name)
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        model = model_class(config).from_config(config, dtype=dtype)
    return model.eval()
