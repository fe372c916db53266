"""Prompts in and out of lamp: export what serves a method without lamp, and start a prompt from a saved one.

Export writes what each method declares (`PromptModule.export_format`): prompt methods the materialised prompt (for
LAMP: U_r diag(q) V_r, pooled) as a PEFT prompt-tuning adapter, LoRA its layers as a PEFT LoRA adapter, both with
PEFT's own machinery, so unmodified `peft.PeftModel.from_pretrained(backbone, out)` runs them; full fine-tuning a
transformers model folder (`AutoModelForCausalLM.from_pretrained(out)`). Import reads a PEFT prompt-tuning adapter (with
PEFT's own loaders) or a lamp adapter, and hands the (l x d) prompt to a method's `from_prompt`: for LAMP, the same
truncated SVD that decomposes any other initial prompt.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lamp.adapter import CONFIG, atomic_write, check_tensors, load_adapter, write_problem
from lamp.errors import AdapterError, ConfigError
from lamp.methods import PromptConfig, PromptModule, make_config
from lamp.methods.lamp import LampConfig
from lamp.model import PromptedModel, model_kind, wrap

PEFT_CONFIG = "adapter_config.json"
TASK_TYPES = {"causal": "CAUSAL_LM", "seq2seq": "SEQ_2_SEQ_LM"}


def impurity(model: PromptedModel) -> str | None:
    """Why the method's effect is more than its prompt rows (None when it is purely a prompt): it overrides
    `embed_inputs`, or its parameters live inside the backbone (LoRA, full fine-tuning)."""
    module = model.prompt_encoder
    if type(module).embed_inputs is not PromptModule.embed_inputs:
        return "also changes the input embeddings (it overrides embed_inputs)"
    inside = {id(p) for p in model.backbone.parameters()}
    if any(id(p) in inside for p in module.parameters()):
        return "changes the backbone's own layers"
    return None


def require_pure_prompt(model: PromptedModel, why: str) -> None:
    reason = impurity(model)
    if reason is not None:
        raise AdapterError(
            f"method {model.prompt_config.method!r} {reason}, so {why}: "
            "only methods whose effect is purely a prompt can"
        )


def _materialised(model: PromptedModel) -> torch.Tensor:
    with torch.no_grad():
        return model.prompt_encoder().detach().float().cpu().contiguous()


def check_output_folder(out: Path, what: str = "export") -> None:
    """Refuse an output folder that is a file or cannot be written, before any work and without leaving anything:
    the check makes and removes a folder in the nearest existing one. `what` names the command's output."""
    existing = next(path for path in (out, *out.parents) if path.exists())
    if not existing.is_dir():
        raise ConfigError(f"{what} output {existing} is a file: choose a folder for --out")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".lamp-write-test-"))
    except OSError as error:
        raise ConfigError(f"cannot write to output folder {out} ({error.strerror}): choose another --out") from None


EXPORTS = {  # a method's `export_format`: the file an earlier export left, what it is, how to load it
    "peft": (PEFT_CONFIG, "a PEFT export"),
    "model": ("config.json", "a model folder"),
}


def check_export_folder(out: Path, export_format: str = "peft") -> None:
    """`check_output_folder`, and refuse a folder that holds files but no earlier export of `export_format` (no
    adapter_config.json, no config.json): PEFT and transformers write over names such as README.md that a user's
    folder may already hold."""
    from lamp.run_folder import run_files  # what the folder holds besides lamp's lock and half-written files

    check_output_folder(out)
    marker, what = EXPORTS[export_format]
    if out.is_dir() and run_files(out) and not (out / marker).is_file():
        raise ConfigError(f"{out} holds files that are not {what}: choose another --out; lamp never overwrites them")


def declared_export(source: PromptedModel | str | os.PathLike) -> tuple[str, str | None]:
    """The method of `source` and the `export_format` its module declares, read from adapter.json before any
    backbone loads (None for a method lamp does not know: loading the adapter then says so)."""
    from lamp.adapter import read_adapter_config
    from lamp.methods import METHODS

    if isinstance(source, PromptedModel):
        return source.prompt_config.method, type(source.prompt_encoder).export_format
    method = read_adapter_config(source)["prompt"]["method"]
    entry = METHODS.get(method)
    return method, entry[1].export_format if entry else None


def export_adapter(
    source: PromptedModel | str | os.PathLike,
    out_dir: str | os.PathLike,
    backbone: nn.Module | str | None = None,
    export_format: str | None = None,
) -> tuple[Path, str]:
    """Write `source` (a PromptedModel or a lamp adapter folder) as what serves its method without lamp, into
    `out_dir` all or nothing; returns the folder and one line on what it holds and how to load it.

    Each method's module declares its `export_format` and writes it (`PromptModule.export`): prompt methods a stock
    PEFT prompt-tuning adapter, LoRA a stock PEFT LoRA adapter, full fine-tuning a transformers model folder.
    `export_format` ("peft" or "model"), when given, must be the method's. `backbone` (a model or a name) is used
    to load an adapter folder; by default the backbone its adapter.json names. Raises ConfigError / AdapterError
    (one line) for an output folder that holds other files, a format the method does not write, a method that
    cannot export, and a write that fails; nothing is written then.
    """
    out = Path(out_dir)
    method, declared = declared_export(source)
    if export_format is not None and declared is not None and export_format != declared:
        raise ConfigError(
            f"method {method!r} exports as {EXPORTS[declared][1]} (format {declared!r}), not {export_format!r}: "
            f"use --format {declared} (or lamp.export_adapter)"
        )
    check_export_folder(out, declared or "peft")
    model = source if isinstance(source, PromptedModel) else load_adapter(backbone, source)
    # Methods write their files into a scratch folder, copied into `out` all or nothing.
    with tempfile.TemporaryDirectory(prefix="lamp-export-") as staging:
        try:
            line = model.prompt_encoder.export(model, Path(staging))
        except OSError as error:
            raise ConfigError(write_problem(staging, error)) from None
        _write_all([(path, out / path.name) for path in sorted(Path(staging).iterdir())])
    return out, line.format(out=str(out))


def export_peft(
    source: PromptedModel | str | os.PathLike,
    out_dir: str | os.PathLike,
    backbone: nn.Module | str | None = None,
) -> Path:
    """Write `source` (a PromptedModel or a lamp adapter folder) as a stock PEFT adapter: prompt tuning for prompt
    methods, LoRA for `lora`; `export_adapter` with format "peft" (full fine-tuning is refused: it is a model)."""
    return export_adapter(source, out_dir, backbone, export_format="peft")[0]


def write_peft_prompt(model: PromptedModel, directory: Path) -> str:
    """Write `model`'s materialised prompt into `directory` as a PEFT prompt-tuning adapter, with PEFT's own
    `save_pretrained`; returns the loading line (`{out}` stands for the final folder).

    The PEFT config has num_virtual_tokens = n_virtual, token_dim = d and one transformer submodule: like lamp,
    PEFT's prompt tuning then prepends the prompt to the encoder only for seq2seq models. Raises AdapterError for a
    method whose effect is more than its prompt (`impurity`).
    """
    from peft import PromptTuningConfig, get_peft_model

    require_pure_prompt(model, "it cannot be exported as a PEFT prompt-tuning adapter")
    prompt = _materialised(model)
    config = PromptTuningConfig(
        task_type=TASK_TYPES[model.kind],
        num_virtual_tokens=prompt.shape[0],
        token_dim=prompt.shape[1],
        num_transformer_submodules=1,
    )
    # PEFT needs a model to hang its prompt encoder on; a weightless copy on the meta device is enough for saving
    # and leaves the caller's backbone untouched.
    with torch.device("meta"):
        skeleton = type(model.backbone)._from_config(model.backbone.config)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(skeleton, config)
    peft_model.prompt_encoder["default"].embedding.weight = nn.Parameter(prompt)
    # get_peft_model takes the name from the (nameless) skeleton, so set the backbone's name afterwards.
    peft_model.peft_config["default"].base_model_name_or_path = model.backbone_name or None
    # save_embedding_layers=False: a prompt never changes the vocabulary; "auto" would look the name up online.
    peft_model.save_pretrained(str(directory), save_embedding_layers=False)
    return "a PEFT prompt-tuning adapter to {out}: peft.PeftModel.from_pretrained(backbone, {out!r})"


def _write_all(files: list[tuple[Path, Path]]) -> None:
    """Copy each (source, target) with atomic_write, nested so that no target is renamed before every copy is
    written: a failed write (full disk, read-only folder) leaves all the earlier files as they were."""
    if files:
        (source, target), rest = files[0], files[1:]
        atomic_write(target, lambda tmp: (shutil.copyfile(source, tmp), _write_all(rest)))


def read_prompt(source: str | os.PathLike, backbone: nn.Module) -> torch.Tensor:
    """The (l x d) float32 prompt that a PEFT prompt-tuning adapter or a lamp adapter puts before the input."""
    path = Path(source)
    width = backbone.get_input_embeddings().weight.shape[1]
    if (path / PEFT_CONFIG).is_file():
        from peft import PeftConfig, PeftType
        from peft.utils import load_peft_weights

        try:
            config = PeftConfig.from_pretrained(str(path))
        except (ValueError, TypeError, OSError) as error:  # a malformed adapter_config.json
            raise AdapterError(f"{path / PEFT_CONFIG} is not a valid PEFT config ({error}): export it again") from None
        if config.peft_type != PeftType.PROMPT_TUNING:
            raise AdapterError(
                f"{path} is a PEFT {config.peft_type.value} adapter: "
                "only PROMPT_TUNING adapters hold a prompt lamp can import"
            )
        kind = model_kind(backbone)
        if config.task_type and config.task_type != TASK_TYPES[kind]:
            raise AdapterError(f"{path} is a PEFT {config.task_type} adapter, the backbone is {kind}: use its backbone")
        try:
            weights = load_peft_weights(str(path), device="cpu")
        except Exception as error:  # safetensors and torch raise their own types on a corrupt file
            raise AdapterError(f"the weights in {path} are corrupt ({str(error)[:120]}): export them again") from None
        check_tensors(path, weights)
        if "prompt_embeddings" not in weights:
            raise AdapterError(f"{path} holds no prompt_embeddings: it is not a complete PEFT prompt-tuning adapter")
        # With two transformer submodules (PEFT's seq2seq default) the encoder's rows come first, and they are the
        # only ones PEFT's prompt tuning uses.
        prompt = weights["prompt_embeddings"][: config.num_virtual_tokens].float()
    elif (path / CONFIG).is_file():
        with torch.random.fork_rng():  # loading builds a throwaway init first; keep the caller's seeded stream
            model = load_adapter(backbone, path)
        require_pure_prompt(model, "its prompt alone does not reproduce it and cannot be imported")
        prompt = _materialised(model)
    else:
        raise AdapterError(
            f"no adapter at {path}: expected {PEFT_CONFIG} (PEFT prompt tuning) or {CONFIG} (lamp adapter)"
        )
    if prompt.shape[1] != width:
        raise AdapterError(
            f"the prompt in {path} has width {prompt.shape[1]}, the backbone's embeddings {width}: "
            "use the backbone the prompt was trained for"
        )
    return prompt


def wrap_prompt(
    backbone: nn.Module, config: PromptConfig, initial: torch.Tensor, tokenizer: Any = None
) -> PromptedModel:
    """Wrap `backbone` with `config`'s method, its module built from the given (l x d) prompt (`from_prompt`)."""
    module = config.from_prompt(initial)
    # The wrapper builds a throwaway module first: give it the cheapest init, and keep the caller's seeded
    # generator where it was, so a seeded run with an imported prompt stays reproducible.
    skeleton = dataclasses.replace(config, init="random", init_text=None) if hasattr(config, "init") else config
    with torch.random.fork_rng():
        model = wrap(backbone, skeleton, tokenizer)
    model.prompt_config = config
    model.prompt_encoder = module.to(backbone.get_input_embeddings().weight.device)
    return model


def wrap_saved_prompt(
    backbone: nn.Module, source: str | os.PathLike, method: str = "lamp", tokenizer: Any = None, **options: Any
) -> PromptedModel:
    """`method` started from the prompt saved in `source` (PEFT or lamp adapter); its length is that prompt's."""
    initial = read_prompt(source, backbone)
    length = options.pop("length", None)
    if length is not None and length != len(initial):
        raise ConfigError(
            f"length {length} differs from the {len(initial)} rows of the prompt in {source}: leave the length unset"
        )
    return wrap_prompt(backbone, make_config(method, length=len(initial), **options), initial, tokenizer)


def from_peft_prompt(
    backbone: nn.Module, source: str | os.PathLike, rank: int | None = None, pool: int = 1, **options: Any
) -> PromptedModel:
    """A LAMP prompt initialised from a PEFT prompt-tuning adapter or a lamp adapter, through the truncated SVD.

    `rank` defaults to LAMP's default capped at min(l, d); with rank = min(l, d) and pool = 1 the LAMP prompt
    equals the imported one (up to float error). Other LampConfig options pass through.
    """
    initial = read_prompt(source, backbone)
    if rank is None:
        rank = min(LampConfig.rank, *initial.shape)
    return wrap_prompt(backbone, LampConfig(length=len(initial), rank=rank, pool=pool, **options), initial)
