"""The adapter format: the prompt module's trainable tensors in safetensors plus a JSON config.

`adapter.json` names the method and its hyper-parameters, the backbone (name or path, kind, embedding width) and
the lamp version; loading checks all of it before any tensor is used, so a wrong-shaped prompt never loads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from lamp.errors import AdapterError, LampError
from lamp.methods import config_from_dict

WEIGHTS = "adapter.safetensors"
CONFIG = "adapter.json"
FORMAT_VERSION = 1


def atomic_write(path: Path, write: Any) -> None:
    """Call write(tmp_path), then rename it over `path`: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def adapter_metadata(model: Any) -> dict[str, Any]:
    import lamp

    backbone = model.backbone
    return {
        "format_version": FORMAT_VERSION,
        "lamp_version": lamp.__version__,
        "prompt": model.config.to_dict(),
        "backbone": {
            "name": getattr(model, "backbone_name", None) or getattr(backbone.config, "_name_or_path", ""),
            "kind": model.kind,
            "model_type": getattr(backbone.config, "model_type", ""),
            "embedding_width": backbone.get_input_embeddings().weight.shape[1],
            "vocab_size": backbone.get_input_embeddings().weight.shape[0],
        },
        "n_virtual": model.n_virtual,
        "trainable_params": model.num_trainable_parameters(),
    }


def save_adapter(model: Any, directory: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write the prompt's trainable tensors and config to `directory` (each file atomically)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors = {name: p.detach().cpu().contiguous() for name, p in model.prompt_encoder.named_parameters()}
    metadata = {**adapter_metadata(model), **(extra or {})}
    atomic_write(directory / WEIGHTS, lambda tmp: save_file(tensors, tmp))
    atomic_write(directory / CONFIG, lambda tmp: Path(tmp).write_text(json.dumps(metadata, indent=2) + "\n"))
    return directory


def read_adapter_config(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise AdapterError(f"no adapter at {directory}: {CONFIG} is missing (save one with model.save_adapter(dir))")
    try:
        data = json.loads(path.read_text())
        data["prompt"]["method"], data["backbone"]["embedding_width"]  # noqa: B018 - presence check
    except (ValueError, KeyError, TypeError):
        raise AdapterError(f"{path} is corrupt or not a lamp adapter config: save the adapter again") from None
    return data


def load_adapter(model: Any, directory: str | os.PathLike) -> Any:
    """Wrap `model` (a backbone, or None to load the adapter's own backbone by name) with a saved adapter."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from lamp.backbones import load_model
    from lamp.model import model_kind, wrap

    data = read_adapter_config(directory)
    saved = data["backbone"]
    if model is None or isinstance(model, str):
        model = load_model(model or saved["name"])
    width = model.get_input_embeddings().weight.shape[1]
    if width != saved["embedding_width"]:
        raise AdapterError(
            f"adapter {directory} was trained for embedding width {saved['embedding_width']} "
            f"({saved['name'] or 'an unnamed backbone'}), this backbone has {width}: load it on the backbone it was "
            "trained for"
        )
    if model_kind(model) != saved["kind"]:
        raise AdapterError(
            f"adapter {directory} is for a {saved['kind']} model, this backbone is {model_kind(model)}: "
            f"load it on {saved['name']}"
        )
    weights = Path(directory) / WEIGHTS
    if not weights.is_file():
        raise AdapterError(f"adapter {directory} has no {WEIGHTS}: the save was incomplete, save it again")
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError, ValueError) as error:
        raise AdapterError(f"{weights} is corrupt ({error}): save the adapter again") from None
    try:
        config = config_from_dict(data["prompt"])
    except LampError as error:
        raise AdapterError(f"{directory}/{CONFIG} holds an invalid prompt config: {error}") from None
    # The saved tensors replace whatever the init makes, so build the skeleton with the cheapest init.
    skeleton = dataclasses.replace(config, init="random", init_text=None) if hasattr(config, "init") else config
    prompted = wrap(model, skeleton)
    prompted.config = config
    expected = {name: tuple(p.shape) for name, p in prompted.prompt_encoder.named_parameters()}
    found = {name: tuple(t.shape) for name, t in tensors.items()}
    if expected != found:
        raise AdapterError(
            f"{weights} holds tensors {found}, the config expects {expected}: the files do not belong together"
        )
    # Copy by parameter name, not load_state_dict: a module that holds backbone weights (full fine-tuning) lists a
    # tied weight once among its parameters but twice in its state dict.
    parameters = dict(prompted.prompt_encoder.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            parameters[name].copy_(tensor)
    prompted.backbone_name = saved["name"]
    return prompted
