"""Prompts in and out of lamp: export what serves a method without lamp, and start a prompt from a saved one.

Export writes what each method's config declares (`Declaration.export`, one writer per kind in `WRITERS`): prompt
methods the materialised prompt (for LAMP: U_r diag(q) V_r, pooled) as a PEFT prompt-tuning adapter, layer-injecting
tuners (LoRA) their layers as a PEFT LoRA adapter, both with PEFT's own machinery, so unmodified
`peft.PeftModel.from_pretrained(backbone, out)` runs them; a method that trains the backbone a transformers model
folder (`AutoModelForCausalLM.from_pretrained(out)`). Import reads a PEFT prompt-tuning adapter (with PEFT's own
loaders) or a lamp adapter, and hands the (l x d) prompt to a method's `from_prompt`: for LAMP, the same truncated SVD
that decomposes any other initial prompt.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lamp.adapter import CONFIG, atomic_write, check_tensors, read_adapter_config, read_adapter_tensors, write_problem
from lamp.backbones import load_tokenizer
from lamp.checks import POSITIVE_INT
from lamp.errors import AdapterError, ConfigError, LampError
from lamp.methods import DEFAULT_METHOD, METHODS, Declaration, Export, PromptConfig, config_for_prompt, config_from_dict
from lamp.model import PromptedModel, config_kind, config_width, load_adapter, model_kind, wrap
from lamp.run_folder import run_files

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PEFT_CONFIG = "adapter_config.json"
TASK_TYPES = {"causal": "CAUSAL_LM", "seq2seq": "SEQ_2_SEQ_LM"}


def require_pure_prompt(config: PromptConfig | type[PromptConfig], why: str) -> None:
    """Refuse (AdapterError, one line ending in `why`) a method whose declared effect is more than its prompt rows
    (`Declaration.beyond_prompt`): it changes the input embeddings or the backbone."""
    reason = config.declares.beyond_prompt()
    if reason is not None:
        raise AdapterError(
            f"method {config.method!r} {reason}, so {why}: only methods whose effect is purely a prompt can"
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


EXPORTS = {  # a declared export's `format`: what its folder is
    "peft": "a PEFT export",
    "model": "a model folder",
}

EXPORT_MARKER = ".lamp-export"
"""The file each export leaves beside its own, naming its format: a later export writes only over a folder that
holds one of the same format. A config.json or adapter_config.json alone is not enough: the backbone's own folder,
or a PEFT adapter the user trained elsewhere, holds one too."""


def check_export_folder(out: Path, export_format: str = "peft") -> None:
    """`check_output_folder`, and refuse a folder that holds files but no earlier lamp export of `export_format`:
    PEFT and transformers write over names (README.md, config.json, model.safetensors) that a user's folder, or the
    backbone's own, may hold."""

    check_output_folder(out)
    what = EXPORTS[export_format]
    if not out.is_dir() or not run_files(out):
        return
    marker = out / EXPORT_MARKER
    earlier = marker.read_text(errors="replace").strip() if marker.is_file() else None
    if earlier is None:
        raise ConfigError(f"{out} holds files that are not {what}: choose another --out; lamp never overwrites them")
    if earlier != export_format:
        raise ConfigError(
            f"{out} holds an earlier export of format {earlier!r}, not {export_format!r}: choose another --out (the "
            "two formats' files would mix in one folder)"
        )


def declared(source: PromptedModel | str | os.PathLike) -> tuple[str, Declaration | None]:
    """The method of `source` and what its config declares, read from adapter.json before any backbone loads (None
    for a method lamp does not know: loading the adapter then says so)."""
    if isinstance(source, PromptedModel):
        return source.prompt_config.method, source.declares
    method = read_adapter_config(source)["prompt"]["method"]
    entry = METHODS.get(method)
    return method, entry.config.declares if entry else None


def export_refusal(method: str, declares: Declaration) -> str:
    """Why a method that declares no export cannot be exported, and what to do instead."""
    reason = declares.beyond_prompt()
    if reason is not None:
        return (
            f"method {method!r} {reason}, so it cannot be exported as a PEFT prompt-tuning adapter: only methods "
            "whose effect is purely a prompt can; score it with lamp eval"
        )
    return f"method {method!r} adds and trains nothing, so there is nothing to export: the backbone is the model"


def export_adapter(
    source: PromptedModel | str | os.PathLike,
    out_dir: str | os.PathLike,
    backbone: nn.Module | str | None = None,
    export_format: str | None = None,
) -> tuple[Path, str]:
    """Write `source` (a PromptedModel or a lamp adapter folder) as what serves its method without lamp, into
    `out_dir` all or nothing; returns the folder and one line on what it holds and how to load it.

    Each method's config declares its export (`Declaration.export`), written by `WRITERS`: prompt methods a stock
    PEFT prompt-tuning adapter, LoRA a stock PEFT LoRA adapter, full fine-tuning a transformers model folder.
    `export_format` ("peft" or "model"), when given, must be the declared one's `format`, or "model" for a method
    whose injected layers merge into the backbone's weights (LoRA: `MERGED`, PEFT's merge). `backbone` (a model or a
    name) is used to load an adapter folder; by default the backbone its adapter.json names. Raises ConfigError /
    AdapterError (one line) for an output folder that holds other files, a format the method does not write, a
    method that declares no export, and a write that fails; nothing is written then.
    """
    out = Path(out_dir)
    method, declares = declared(source)
    if declares is not None and declares.export is None:
        raise AdapterError(export_refusal(method, declares))
    wanted = declares.export.format if declares is not None else None
    merge = declares is not None and export_format == Export.MODEL.format and declares.export in MERGED
    if export_format is not None and wanted is not None and export_format != wanted and not merge:
        raise ConfigError(
            f"method {method!r} exports as {EXPORTS[wanted]} (format {wanted!r}), not {export_format!r}: "
            f"use --format {wanted} (or lamp.export_adapter)"
        )
    folder_format = export_format if merge else wanted or "peft"
    check_export_folder(out, folder_format)
    model = source if isinstance(source, PromptedModel) else load_adapter(backbone, source)
    writer = MERGED[model.declares.export] if merge else WRITERS[model.declares.export]
    # The writer puts its files into a scratch folder, copied into `out` all or nothing.
    with tempfile.TemporaryDirectory(prefix="lamp-export-") as staging:
        try:
            line = writer(model, Path(staging))
            (Path(staging) / EXPORT_MARKER).write_text(folder_format + "\n")
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
    methods, LoRA for layer-injecting ones; `export_adapter` with format "peft" (a method that exports a model folder
    is refused)."""
    return export_adapter(source, out_dir, backbone, export_format="peft")[0]


def write_peft_prompt(model: PromptedModel, directory: Path) -> str:
    """Write `model`'s materialised prompt into `directory` as a PEFT prompt-tuning adapter, with PEFT's own
    `save_pretrained`; returns the loading line (`{out}` stands for the final folder).

    The PEFT config has num_virtual_tokens = n_virtual, token_dim = d and one transformer submodule: like lamp,
    PEFT's prompt tuning then prepends the prompt to the encoder only for seq2seq models. Raises AdapterError for a
    method whose declared effect is more than its prompt (`require_pure_prompt`).
    """
    from peft import PromptTuningConfig, get_peft_model

    require_pure_prompt(model.prompt_config, "it cannot be exported as a PEFT prompt-tuning adapter")
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


def write_peft_layers(model: PromptedModel, directory: Path) -> str:
    """Write the layers a PEFT tuner injected into `model`'s backbone (LoRA) into `directory` as a stock PEFT adapter:
    PEFT's own config of the injected layers (the target modules it resolved) and their tensors as PEFT's
    `get_peft_model_state_dict` names them, under PeftModel's `base_model.model.` prefix, so
    `peft.PeftModel.from_pretrained(backbone, out)` rebuilds this model. Returns the loading line."""
    from peft.utils import SAFETENSORS_WEIGHTS_NAME, get_peft_model_state_dict
    from safetensors.torch import save_file

    backbone = model.backbone
    config = copy.deepcopy(backbone.peft_config["default"])
    config.task_type = TASK_TYPES[model.kind]
    config.base_model_name_or_path = model.backbone_name or None
    config.inference_mode = True
    config.save_pretrained(str(directory))
    # save_embedding_layers=False: the injected layers never change the vocabulary; "auto" may look the name up online.
    weights = get_peft_model_state_dict(backbone, save_embedding_layers=False)
    tensors = {f"base_model.model.{name}": t.detach().cpu().contiguous() for name, t in weights.items()}
    save_file(tensors, str(directory / SAFETENSORS_WEIGHTS_NAME), metadata={"format": "pt"})
    return "a PEFT LoRA adapter to {out}: peft.PeftModel.from_pretrained(backbone, {out!r})"


def write_model_folder(model: PromptedModel, directory: Path, backbone: nn.Module | None = None) -> str:
    """Write `model`'s (trained) backbone, or the given `backbone` in its place, into `directory` as a transformers
    model folder (`save_pretrained`), with the tokenizer of the backbone's name when that name loads one (a model
    folder or hub id lamp can reach). Returns the loading line."""
    (backbone or model.backbone).save_pretrained(str(directory))
    tokenizer = ""
    if model.backbone_name:
        try:
            load_tokenizer(model.backbone_name).save_pretrained(str(directory))
            tokenizer = " and its tokenizer"
        except LampError:  # a backbone built in memory, or a name that cannot be fetched here
            pass
    auto = "AutoModelForSeq2SeqLM" if model.kind == "seq2seq" else "AutoModelForCausalLM"
    return f"a transformers model folder{tokenizer} to {{out}}: transformers.{auto}.from_pretrained({{out!r}})"


def write_merged_model(model: PromptedModel, directory: Path) -> str:
    """Merge the layers a PEFT tuner injected into `model`'s backbone (LoRA) into a copy of the backbone's own weights
    (each layer's `merge()` and base layer, as `peft.PeftModel.merge_and_unload` does) and write that copy as a
    transformers model folder: it alone computes what backbone + adapter computed. `model` is left as it was.
    Returns the loading line."""
    merged = model.merge_and_unload(copy=True)
    return write_model_folder(model, directory, merged).replace("folder", "folder (LoRA merged into its weights)", 1)


WRITERS = {Export.PEFT_PROMPT: write_peft_prompt, Export.PEFT_LORA: write_peft_layers, Export.MODEL: write_model_folder}
"""The writer of each declared export: (model, scratch folder) -> the line saying what it wrote and how to load it."""
MERGED = {Export.PEFT_LORA: write_merged_model}
"""Declared exports that can also be written merged into the backbone's weights, as a model folder (`--format
model`)."""


def _write_all(files: list[tuple[Path, Path]]) -> None:
    """Copy each (source, target) with atomic_write, nested so that no target is renamed before every copy is
    written: a failed write (full disk, read-only folder) leaves all the earlier files as they were."""
    if files:
        (source, target), rest = files[0], files[1:]
        atomic_write(target, lambda tmp: (shutil.copyfile(source, tmp), _write_all(rest)))


PEFT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
"""The weight files PEFT's `save_pretrained` writes (safetensors by default, torch's pickle format before)."""


def read_peft_prompt(source: str | os.PathLike) -> tuple[Any, torch.Tensor]:
    """(config, prompt) of a PEFT prompt-tuning adapter folder: its `PromptTuningConfig` and the (num_virtual_tokens
    x token_dim) float32 prompt, read without a backbone. AdapterError (one line) for a config that is not prompt
    tuning or not valid, weights that are missing, corrupt or not finite, and a prompt whose shape is not the
    config's (num_virtual_tokens rows per transformer submodule, as PEFT's `PromptEmbedding` holds them)."""
    from peft import PeftConfig, PeftType
    from peft.utils import load_peft_weights

    path = Path(source)
    try:
        with warnings.catch_warnings():  # PEFT warns about some saved configs (prefix tuning) before lamp's line
            warnings.simplefilter("ignore")
            config = PeftConfig.from_pretrained(str(path))
    except (ValueError, TypeError, OSError, RecursionError) as error:  # malformed, or nested past json's stack
        reason = "JSON nested too deeply" if isinstance(error, RecursionError) else " ".join(str(error).split())[:160]
        raise AdapterError(f"{path / PEFT_CONFIG} is not a valid PEFT config ({reason}): export it again") from None
    if config.peft_type != PeftType.PROMPT_TUNING:
        raise AdapterError(
            f"{path} is a PEFT {config.peft_type.value} adapter: only PROMPT_TUNING adapters hold a prompt lamp "
            "can import"
        )
    virtual, submodules = config.num_virtual_tokens, config.num_transformer_submodules or 1
    if not POSITIVE_INT.ok(virtual) or not POSITIVE_INT.ok(submodules):
        raise AdapterError(
            f"{path / PEFT_CONFIG} has num_virtual_tokens {virtual!r} and num_transformer_submodules "
            f"{config.num_transformer_submodules!r}, not positive integers: export it again"
        )
    if not any((path / name).is_file() for name in PEFT_WEIGHTS):
        raise AdapterError(f"{path} has no {PEFT_WEIGHTS[0]}: the adapter's save was incomplete, export it again")
    try:
        weights = load_peft_weights(str(path), device="cpu")
    except Exception as error:  # safetensors and torch raise their own types on a corrupt file
        reason = " ".join(str(error).split())[:160]
        raise AdapterError(f"the weights in {path} are corrupt ({reason}): export them again") from None
    check_tensors(path, weights)
    prompt = weights.get("prompt_embeddings")
    if prompt is None:
        raise AdapterError(f"{path} holds no prompt_embeddings: it is not a complete PEFT prompt-tuning adapter")
    if prompt.dim() != 2 or prompt.shape[0] != virtual * submodules or prompt.shape[1] == 0:
        raise AdapterError(
            f"{path} prompt_embeddings has shape {tuple(prompt.shape)}, its config asks for {virtual * submodules} "
            f"rows ({virtual} virtual tokens x {submodules} transformer submodules) of one width: export it again"
        )
    # With two transformer submodules (PEFT's seq2seq default) the encoder's rows come first, and they are the only
    # ones PEFT's prompt tuning uses.
    return config, prompt[:virtual].float()


def read_prompt(source: str | os.PathLike, backbone: nn.Module) -> torch.Tensor:
    """The (l x d) float32 prompt that a PEFT prompt-tuning adapter or a lamp adapter puts before the input."""
    path = Path(source)
    width = backbone.get_input_embeddings().weight.shape[1]
    if (path / PEFT_CONFIG).is_file():
        config, prompt = read_peft_prompt(path)
        kind = model_kind(backbone)
        if config.task_type and config.task_type != TASK_TYPES[kind]:
            raise AdapterError(f"{path} is a PEFT {config.task_type} adapter, the backbone is {kind}: use its backbone")
    elif (path / CONFIG).is_file():
        entry = METHODS.get(read_adapter_config(path)["prompt"]["method"])  # unknown: load_adapter says so
        if entry is not None:  # refused before loading, which would change the backbone of a LoRA adapter
            require_pure_prompt(entry.config, "its prompt alone does not reproduce it and cannot be imported")
        with torch.random.fork_rng():  # loading builds a throwaway init first; keep the caller's seeded stream
            model = load_adapter(backbone, path)
        prompt = _materialised(model)
    else:
        raise _no_prompt_adapter(path)
    if prompt.shape[1] != width:
        raise AdapterError(
            f"the prompt in {path} has width {prompt.shape[1]}, the backbone's embeddings {width}: "
            "use the backbone the prompt was trained for"
        )
    return prompt


def wrap_prompt(
    backbone: nn.Module, config: PromptConfig, initial: torch.Tensor, tokenizer: PreTrainedTokenizerBase | None = None
) -> PromptedModel:
    """Wrap `backbone` with `config`'s method, its module built from the given (l x d) prompt (`from_prompt`)."""
    module = config.from_prompt(initial)
    # The wrapper builds a throwaway module first: give it the cheapest init, and keep the caller's seeded
    # generator where it was, so a seeded run with an imported prompt stays reproducible.
    with torch.random.fork_rng():
        model = wrap(backbone, config.skeleton(), tokenizer)
    model.prompt_config = config
    model.prompt_encoder = module.to(backbone.get_input_embeddings().weight.device)
    return model


def wrap_saved_prompt(
    backbone: nn.Module,
    source: str | os.PathLike,
    method: str = DEFAULT_METHOD,
    tokenizer: PreTrainedTokenizerBase | None = None,
    **options: Any,
) -> PromptedModel:
    """`method` started from the prompt saved in `source` (PEFT or lamp adapter): the model first sees that prompt
    (up to a low-rank method's truncation), and the length is the one that puts its rows before the input
    (`PromptConfig.for_prompt`; LAMP: rows x pool). ConfigError for a method that cannot start from a prompt, an
    option it does not have, or a `length` other than that one."""
    initial = read_prompt(source, backbone)
    config = config_for_prompt(method, *initial.shape, str(source), **options)
    return wrap_prompt(backbone, config, config.expand(initial), tokenizer)


def from_peft_prompt(
    backbone: nn.Module, source: str | os.PathLike, rank: int | None = None, pool: int = 1, **options: Any
) -> PromptedModel:
    """A prompt of the default method (LAMP) initialised from a PEFT prompt-tuning adapter or a lamp adapter, through
    the truncated SVD (`wrap_saved_prompt`).

    The model first sees the imported (n x d) prompt: LAMP's length is n * pool, each imported row repeated `pool`
    times. `rank` defaults to LAMP's default capped at min(n, d); with rank = min(n, d) the LAMP prompt equals the
    imported one (up to float error) for any pool. Other options of the method pass through.
    """
    return wrap_saved_prompt(backbone, source, DEFAULT_METHOD, rank=rank, pool=pool, **options)


def _no_prompt_adapter(path: Path) -> AdapterError:
    """Why `path` holds no prompt to start from: a run folder (its adapter is one level down), or nothing usable."""
    if (path / "adapter" / CONFIG).is_file():  # a `lamp train --out` folder
        return AdapterError(f"{path} is a training run's folder: pass its adapter, {path / 'adapter'}")
    return AdapterError(f"no adapter at {path}: expected {PEFT_CONFIG} (PEFT prompt tuning) or {CONFIG} (lamp adapter)")


def saved_prompt_config(
    source: str | os.PathLike, method: str, options: dict[str, Any]
) -> tuple[PromptConfig, tuple[int, str | None]]:
    """`method`'s config (with its `options`) that starts from the prompt saved in `source` (a PEFT prompt-tuning or
    lamp adapter folder: `lamp train --init-from`), and the (embedding width, model kind or None) the prompt was
    saved for, from the adapter's files alone (its JSON and tensors: NaN, inf, a truncated file;
    a PEFT adapter's prompt gives the shape), so that a missing or corrupt adapter and a bad option fail before the
    backbone loads; `wrap_saved_prompt` builds the same config from the prompt itself once it has."""
    path = Path(source)
    given = sorted({"init", "init_text"} & set(options))
    if given:  # the saved prompt is the start: an init would be silently unused
        raise ConfigError(
            f"--init-from {path} starts from its saved prompt, so {' and '.join(given)} would be unused: drop "
            f"{'them' if len(given) > 1 else 'it'}, or drop --init-from"
        )
    if (path / PEFT_CONFIG).is_file():
        peft_config, prompt = read_peft_prompt(path)  # its config, NaN, inf, a truncated file, the shape
        shape = tuple(prompt.shape)
        kind = next((kind for kind, name in TASK_TYPES.items() if name == peft_config.task_type), None)
    elif (path / CONFIG).is_file():
        data = read_adapter_config(path)
        try:
            saved = config_from_dict(data["prompt"])
        except (LampError, TypeError) as error:
            raise AdapterError(f"{path}/{CONFIG} holds an invalid prompt config: {error}") from None
        require_pure_prompt(saved, "its prompt alone does not reproduce it and cannot be imported")
        read_adapter_tensors(path)  # NaN, inf, a truncated file
        shape, kind = (saved.n_virtual(), data["backbone"]["embedding_width"]), data["backbone"]["kind"]
    else:
        raise _no_prompt_adapter(path)
    return config_for_prompt(method, *shape, str(path), **options), (shape[1], kind)


def check_saved_prompt_fits(path: str, saved_for: tuple[int, str | None], backbone_config: Any) -> None:
    """AdapterError when the prompt in `path`, saved for (embedding width, model kind or None), does not fit the
    backbone of `backbone_config` (a transformers config: `hidden_size`, `is_encoder_decoder`), as `read_prompt`
    refuses it once the backbone has loaded."""
    width, kind = saved_for
    backbone_width = config_width(backbone_config)
    backbone_kind = config_kind(backbone_config)
    if backbone_width is not None and backbone_width != width:
        raise AdapterError(
            f"the prompt in {path} has width {width}, the backbone's embeddings {backbone_width}: use the backbone "
            "the prompt was trained for"
        )
    if kind is not None and kind != backbone_kind:
        raise AdapterError(
            f"the prompt in {path} was saved for a {kind} backbone, this one is {backbone_kind}: use its backbone"
        )
