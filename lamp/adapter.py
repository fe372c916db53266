"""The adapter format: the prompt module's trainable tensors in safetensors plus a JSON config.

`adapter.json` names the method and its hyper-parameters, the backbone (name or path, kind, embedding width) and
the lamp version; loading checks all of it before any tensor is used, so a wrong-shaped prompt never loads.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import lamp
from lamp.backbones import MODEL_KINDS
from lamp.checks import POSITIVE_INT, SEED
from lamp.errors import AdapterError, ConfigError, first_sentence
from lamp.hub_logs import quiet_hub
from lamp.tasks.base import FORMATS, resolve_format

if TYPE_CHECKING:
    from lamp.model import PromptedModel

WEIGHTS = "adapter.safetensors"
CONFIG = "adapter.json"
FORMAT_VERSION = 1


TMP_SUFFIX = ".tmp"
"""atomic_write's half-written files are `.<name>.<random>.tmp<suffix>`; a run folder's lock holder removes them."""

_PROBLEMS = {
    errno.ENOSPC: ("the disk is full", "free some space or choose another output path"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or choose another output path"),
    errno.EFBIG: ("the file is too large for this file system", "choose another output path"),
    errno.EROFS: ("the file system is read-only", "choose an output path on a writable disk"),
    errno.EACCES: ("permission denied", "choose another output path or make it writable"),
    errno.EPERM: ("permission denied", "choose another output path or make it writable"),
    errno.EISDIR: ("it is a folder", "choose a file path, not a folder"),
    errno.ENOTDIR: ("a parent of it is a file, not a folder", "choose another output path"),
    errno.EEXIST: ("a parent of it is a file, not a folder", "choose another output path"),
}


def write_problem(path: str | os.PathLike, error: OSError) -> str:
    """One line for a failed write: the path, the problem and the fix (no errno jargon, no traceback)."""
    problem, fix = _PROBLEMS.get(error.errno, (error.strerror or str(error), "choose another output path"))
    return f"cannot write {path}: {problem}; {fix}"


def _as_os_error(error: BaseException) -> OSError | None:
    """The OSError behind a failed write: safetensors reports one only inside its message ("(os error 28)")."""
    if isinstance(error, OSError):
        return error
    found = re.search(r"\(os error (\d+)\)", str(error))
    return OSError(int(found.group(1)), os.strerror(int(found.group(1)))) if found else None


def atomic_write(path: Path, write: Any) -> None:
    """Call write(tmp_path), then rename it over `path`: readers see the old file or the new one, never half.

    The temporary file keeps `path`'s suffix (writers such as matplotlib pick the format from it) and gets the mode a
    plain open() would give (0o666 minus the umask). A write that fails on the file system (full disk, read-only
    folder...) raises a one-line ConfigError and leaves the earlier file as it was.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}{path.suffix}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        mode = os.fstat(fd).st_mode & 0o777  # what a plain open() gives here: 0o666 minus the umask
        os.close(fd)
        write(tmp)
        os.chmod(tmp, mode)  # some writers (safetensors) replace the file with a private one
        fd = os.open(tmp, os.O_RDONLY)
        try:  # on disk before the rename, so a crash cannot leave an empty file under the real name
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        cause = _as_os_error(error) if isinstance(error, Exception) else None
        if cause is None:
            raise
        raise ConfigError(write_problem(path, cause)) from None


def adapter_metadata(model: PromptedModel) -> dict[str, Any]:
    backbone = model.backbone
    return {
        "format_version": FORMAT_VERSION,
        "lamp_version": lamp.__version__,
        "prompt": model.prompt_config.to_dict(),
        "backbone": {
            "name": getattr(model, "backbone_name", None) or getattr(backbone.config, "_name_or_path", ""),
            "kind": model.kind,
            "model_type": getattr(backbone.config, "model_type", ""),
            "embedding_width": backbone.get_input_embeddings().weight.shape[1],
            "vocab_size": backbone.get_input_embeddings().weight.shape[0],
        },
        "n_virtual": model.n_virtual,
        "trainable_params": model.num_trainable_parameters(),
        "effective_trainable_params": model.num_effective_parameters(),
        # how a loaded adapter's inputs are rendered (load_adapter sets these), kept when it is saved again
        **({"format": model.input_format} if hasattr(model, "input_format") else {}),
        **({"chat_template": model.chat_template} if hasattr(model, "chat_template") else {}),
        **({"task_spec": model.task_spec} if getattr(model, "task_spec", None) else {}),
        **({"seed": model.split_seed} if getattr(model, "split_seed", None) is not None else {}),
        **({"max_length": model.max_length} if getattr(model, "max_length", None) else {}),
    }


def save_adapter(model: PromptedModel, directory: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write the prompt's trainable tensors and config to `directory` (each file atomically). Raises ConfigError for
    an empty path, which would mean the current folder."""
    if not str(directory).strip():
        raise ConfigError("the adapter folder is empty: pass a path to save the adapter to")
    directory = Path(directory)
    tensors = {name: p.detach().cpu().contiguous() for name, p in model.prompt_encoder.named_parameters()}
    metadata = {**adapter_metadata(model), **(extra or {})}
    atomic_write(directory / WEIGHTS, lambda tmp: save_file(tensors, tmp))
    atomic_write(directory / CONFIG, lambda tmp: Path(tmp).write_text(json.dumps(metadata, indent=2) + "\n"))
    return directory


def _config_problem(data: Any) -> str | None:
    """What makes a parsed adapter.json unusable (a field that loading reads is missing or of the wrong type)."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    prompt, backbone = data.get("prompt"), data.get("backbone")
    if not isinstance(prompt, dict) or not isinstance(prompt.get("method"), str):
        return "no 'prompt' object naming its 'method'"
    if not isinstance(backbone, dict):
        return "no 'backbone' object"
    if not isinstance(backbone.get("name"), str):
        return f"backbone 'name' is {backbone.get('name')!r}, not text"
    if backbone.get("kind") not in MODEL_KINDS:
        return f"backbone 'kind' is {backbone.get('kind')!r}, not one of {', '.join(MODEL_KINDS)}"
    if not POSITIVE_INT.ok(backbone.get("embedding_width")):
        return f"backbone 'embedding_width' is {backbone.get('embedding_width')!r}, not a positive integer"
    if data.get("task") is not None and not isinstance(data["task"], str):
        return f"'task' is {data['task']!r}, not text"
    if data.get("format", "t5") not in FORMATS:  # absent in adapters saved before formats existed
        return f"'format' is {data['format']!r}, not one of {', '.join(FORMATS)}"
    if not isinstance(data.get("chat_template", False), bool):
        return f"'chat_template' is {data['chat_template']!r}, not true or false"
    if not isinstance(data.get("task_spec", {}), dict):  # a user task's spec (lamp.tasks.user.TaskSpec.to_dict)
        return f"'task_spec' is {data['task_spec']!r}, not an object"
    if "seed" in data and not SEED.ok(data["seed"]):  # the split seed `lamp eval` defaults to
        return f"'seed' is {data['seed']!r}, not {SEED.describe()}"
    if "max_length" in data and not POSITIVE_INT.ok(data["max_length"]):  # eval's and predict's default
        return f"'max_length' is {data['max_length']!r}, not {POSITIVE_INT.describe()}"
    return None


def saved_format(data: dict[str, Any]) -> str:
    """The input format (``t5`` or ``natural``) an adapter's rows are rendered in, from its adapter.json `data`: the
    recorded `format`; else ``t5`` for an adapter of `lamp train` saved before formats existed (it names its task),
    and the `auto` choice for the backbone's kind for one saved from the API (`save_adapter` of a model that no run
    trained, which records no format), as `lamp train` would pick for that backbone."""
    if data.get("format"):
        return data["format"]
    return "t5" if data.get("task") else resolve_format("auto", data["backbone"]["kind"])


def _not_an_adapter(folder: Path) -> str:
    """Why `folder` holds no lamp adapter, and what to pass instead: a run folder, a PEFT adapter or a model."""
    if not str(folder) or str(folder) == ".":
        return "the adapter path is empty: pass the adapter's folder"
    if not folder.exists():
        return f"no adapter at {folder}: no such folder"
    if not folder.is_dir():
        return f"no adapter at {folder}: it is a file, not an adapter folder"
    if (folder / "adapter" / CONFIG).is_file():  # a `lamp train --out` folder (run_folder.ADAPTER)
        return f"{folder} is a training run's folder: pass its adapter, {folder / 'adapter'}"
    if (folder / "adapter_config.json").is_file():
        return (
            f"{folder} holds a PEFT adapter (adapter_config.json), not a lamp adapter: load it with peft, or start a "
            f"lamp prompt from a PEFT prompt-tuning adapter with lamp train --init-from {folder}"
        )
    if (folder / "config.json").is_file():
        return f"{folder} holds a model, not an adapter: pass it as --model, and the adapter's folder as --adapter"
    if (folder / "trainer_state.json").is_file():  # transformers' Trainer: its state, not lamp's adapter.json
        return (
            f"{folder} is a transformers Trainer checkpoint, not a lamp adapter: continue it with "
            f"trainer.train(resume_from_checkpoint=...), and save the adapter with model.save_pretrained(dir)"
        )
    return f"no adapter at {folder}: {CONFIG} is missing (save one with model.save_adapter(dir))"


def read_adapter_config(directory: str | os.PathLike) -> dict[str, Any]:
    """adapter.json, with every field that loading reads checked; a bad one is an AdapterError naming the file."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise AdapterError(_not_an_adapter(Path(directory)))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        problem = _config_problem(data)
    except ValueError as error:  # not JSON, or bytes that are not UTF-8
        problem = " ".join(str(error).split())[:200]
    except RecursionError:  # json's parser recurses once per level: thousands of nested [ exhaust the stack
        problem = "JSON nested too deeply"
    if problem:
        raise AdapterError(f"{path} is corrupt or not a lamp adapter config ({problem}): save the adapter again")
    version = data.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise AdapterError(
            f"{path} has format_version {version!r}, this lamp reads 1 to {FORMAT_VERSION}: "
            "load it with the lamp version that saved it (or a newer one)"
        )
    return data


def nonfinite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first tensor that holds NaN or inf values, or None."""
    return next((name for name, tensor in tensors.items() if not torch.isfinite(tensor).all()), None)


def check_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` (read from `path`) unless one is not finite floating point: a NaN prompt scores every row as one
    class, so it must never load quietly."""
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise AdapterError(
                f"{path} tensor {name!r} holds {tensor.dtype} values, not floating point: "
                "it is not a prompt adapter, save the adapter again"
            )
    name = nonfinite(tensors)
    if name is not None:
        raise AdapterError(
            f"{path} tensor {name!r} holds NaN or inf values: the adapter is corrupt (a diverged run?); "
            "use an earlier adapter or train again"
        )
    return tensors


def read_adapter_tensors(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """adapter.safetensors, checked by `check_tensors`; a missing or unreadable file is an AdapterError."""
    weights = Path(directory) / WEIGHTS
    if not weights.is_file():
        raise AdapterError(f"adapter {directory} has no {WEIGHTS}: the save was incomplete, save it again")
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError, ValueError) as error:
        reason = " ".join(str(error).split())[:200]
        raise AdapterError(f"{weights} is corrupt ({reason}): save the adapter again") from None
    return check_tensors(weights, tensors)


def resolve_adapter(source: str | os.PathLike, revision: str | None = None, token: str | bool | None = None) -> Path:
    """The local folder of an adapter: `source` itself when it is a folder, else a hub repo id (owner/name) fetched
    with huggingface_hub's `snapshot_download` (only the adapter's two files). Raises AdapterError (one line) for a
    path that does not exist and a repo that cannot be fetched (offline, unknown, private without a token)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    name = str(source)
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise AdapterError(f"no adapter at {name}: no such folder, and not a hub repo id (owner/name)")
    from huggingface_hub import snapshot_download  # local: slow to import, and only hub ids need it

    try:
        with quiet_hub(transformers_too=False):
            folder = snapshot_download(name, revision=revision, token=token, allow_patterns=[CONFIG, WEIGHTS])
    except (OSError, ValueError) as error:  # huggingface_hub's errors are one or the other
        cause = first_sentence(error)
        raise AdapterError(
            f"cannot fetch adapter {name!r} from the hub ({cause}): pass a local adapter folder or a reachable repo id"
        ) from None
    return Path(folder)


def push_adapter(
    model: PromptedModel,
    repo_id: str,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    message: str = "Upload lamp adapter",
) -> str:
    """Save `model`'s adapter to a scratch folder and upload it to the hub repo `repo_id` (created if missing) with
    `HfApi.upload_folder`; returns the commit URL. A refusal from the hub is a one-line ConfigError."""
    from huggingface_hub import HfApi  # local: huggingface_hub is slow to import and only pushing needs it

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="lamp-push-") as staging:
        save_adapter(model, staging)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, folder_path=staging, revision=revision, commit_message=message)
        except (OSError, ValueError) as error:
            cause = first_sentence(error)
            raise ConfigError(
                f"cannot push to hub repo {repo_id!r} ({cause}): check the repo id and your token"
            ) from None
    return str(getattr(commit, "commit_url", commit))
