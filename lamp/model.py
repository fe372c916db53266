"""One method-agnostic wrapper: a frozen Hugging Face LM with a trainable soft prompt in front of its input.

Encoder-decoders (T5) get the prompt in front of the encoder's input embeddings; decoder-only LMs (Llama, GPT-2,
Gemma, Qwen...) in front of the decoder's. The wrapper only knows the `PromptModule` interface: it never asks
which method it holds.

Every row sees exactly what the backbone would see for ``[prompt; its tokens]`` alone: a left-padded row's pads are
moved in front of the prompt (the prompt touches the row's first token, which it then predicts), positions count
real rows only, labels on pads are ignored, and per-token inputs (`token_type_ids`, `position_ids`) are extended over
the prompt as PEFT does (type 0; positions 0..n-1 with the input's shifted by n).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import _IncompatibleKeys

from lamp.adapter import (
    CONFIG,
    WEIGHTS,
    push_adapter,
    read_adapter_config,
    read_adapter_tensors,
    resolve_adapter,
    save_adapter,
    saved_format,
)
from lamp.backbones import ModelKind, load_model
from lamp.devices import free_memory_bytes
from lamp.errors import AdapterError, ConfigError, LampError
from lamp.methods import Backbone, Declaration, EmptyPrompt, PromptConfig, PromptModule, config_from_dict

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
# Per-token inputs the wrapper extends over the prompt; any other (batch, tokens) integer input is refused.
PER_TOKEN_INPUTS = ("token_type_ids", "position_ids")
# The key/value cache argument: transformers 5 names it `cache`, earlier releases `past_key_values`.
CACHE_ARGUMENTS = ("cache", "past_key_values")
# generate() options that run the batch several times (beams, returned sequences) or rewrite the key/value cache.
_CACHE_REWRITING_GENERATE_OPTIONS = ("assistant_model", "prompt_lookup_num_tokens", "penalty_alpha")


def align(logits: torch.Tensor, labels: torch.Tensor, kind: ModelKind) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair each label with the logits that predict it (`PromptedModel.align`; `kind` is `model_kind`'s)."""
    if kind == "seq2seq":
        return logits, labels
    kept = logits.shape[1]
    targets = labels[:, labels.shape[1] - kept + 1 :] if kept <= labels.shape[1] else labels
    return logits[:, -targets.shape[1] - 1 : -1], targets


def label_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The training loss: mean cross-entropy of aligned (batch, T, vocab) logits against (batch, T) targets, in
    float32, labels IGNORE_INDEX left out. The wrapper's forward and `lamp bench`'s PEFT runs both use it."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)


def model_kind(model: nn.Module) -> ModelKind:
    """`seq2seq` or `causal`; anything else is rejected with the fix."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "get_input_embeddings"):
        raise ConfigError(
            f"{type(model).__name__} is not a Hugging Face language model: pass an AutoModelForSeq2SeqLM "
            "or AutoModelForCausalLM"
        )
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    if hasattr(model, "get_output_embeddings") and model.get_output_embeddings() is not None:
        return "causal"
    raise ConfigError(
        f"{type(model).__name__} has no language-model head: load it with AutoModelForCausalLM or "
        "AutoModelForSeq2SeqLM instead"
    )


def parameter_versions(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """Each parameter's storage and in-place version: changes whenever a parameter is replaced or updated."""
    return tuple((p.data_ptr(), p._version) for p in module.parameters())


def max_positions(model: nn.Module) -> int | None:
    """The backbone's context window (`max_position_embeddings`, GPT-2's `n_positions`), or None if it declares
    none (T5's relative positions)."""
    return config_positions(model.config)


def text_config(config: Any) -> Any:
    """The language model's part of a backbone's `PretrainedConfig` (a multimodal config's text config; else the
    config itself)."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def config_kind(config: Any) -> ModelKind:
    """`model_kind` from a backbone's `PretrainedConfig` alone (before its weights load): `seq2seq` for an
    encoder-decoder, else `causal` (`model_kind` refuses a model that is neither once it has loaded)."""
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


def config_width(config: Any) -> int | None:
    """The embedding width (`hidden_size`) from a backbone's `PretrainedConfig` alone (before its weights load); None
    when the config does not give one."""
    value = getattr(text_config(config), "hidden_size", None)
    return value if isinstance(value, int) and value > 0 else None


def config_positions(config: Any) -> int | None:
    """`max_positions` from a backbone's `PretrainedConfig` alone (before its weights load)."""
    value = getattr(text_config(config), "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def has_sliding_window(model: nn.Module) -> bool:
    """Whether some attention layer of `model` sees only a window of recent columns (`sliding_window` set)."""
    language = text_config(model.config)
    return bool(getattr(language, "sliding_window", None)) and getattr(language, "use_sliding_window", True)


def prompt_fingerprint(module: nn.Module) -> tuple:
    """The prompt module's parameter versions and contents: an edit through `.data` (which autograd's version
    counter misses) changes the contents. Cheap for prompt modules (thousands of entries)."""
    with torch.no_grad():
        return (*parameter_versions(module), *(float(p.detach().float().sum()) for p in module.parameters()))


def _shape(value: Any) -> str:
    return f"shape {tuple(value.shape)}" if torch.is_tensor(value) else type(value).__name__


def holds_integers(value: torch.Tensor) -> bool:
    """Whether a tensor holds integers (token ids): not float, complex or bool."""
    return not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)


def check_batched(input_ids: Any, inputs_embeds: Any, width: int) -> None:
    """ConfigError unless exactly one of `input_ids` (batch, T) integer ids and `inputs_embeds` (batch, T, `width`)
    is given, with at least one row: torch's own errors for these come from deep inside the backbone (1-D ids: a
    shape mismatch in attention; float ids: the embedding's dtype check). Ids outside the vocabulary are not checked
    (as in transformers: it would cost a device sync per call)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ConfigError("pass exactly one of input_ids and inputs_embeds")
    given, dims = ("input_ids", 2) if inputs_embeds is None else ("inputs_embeds", 3)
    value = input_ids if inputs_embeds is None else inputs_embeds
    if not torch.is_tensor(value) or value.dim() != dims:
        shape = "(batch, length)" if dims == 2 else f"(batch, length, {width})"
        one_row = torch.is_tensor(value) and value.dim() == dims - 1
        fix = "add the batch dimension (x[None])" if one_row else "e.g. tokenizer(texts, return_tensors='pt')"
        raise ConfigError(f"{given} must be a {shape} tensor, got {_shape(value)}: {fix}")
    if value.shape[0] == 0:
        raise ConfigError(f"{given} holds no rows ({_shape(value)}): pass at least one")
    if dims == 2 and not holds_integers(value):
        raise ConfigError(f"input_ids must hold integer token ids, got {value.dtype}: e.g. input_ids.long()")
    if dims == 3 and value.shape[-1] != width:
        raise ConfigError(
            f"inputs_embeds are {value.shape[-1]} wide and the backbone's embeddings {width}: pass embeddings of "
            "the backbone's width (e.g. model.get_input_embeddings()(input_ids))"
        )


def check_labels(labels: Any) -> torch.Tensor:
    """`labels` as int64 token ids (-100 where no loss), as the loss needs them; ConfigError (one line) for a value that
    is not an integer tensor, where torch's own error comes from deep inside cross_entropy."""
    if not torch.is_tensor(labels):
        raise ConfigError(f"labels must be a tensor of token ids (-100 where no loss), got {type(labels).__name__}")
    if not holds_integers(labels):
        raise ConfigError(
            f"labels must hold integer token ids (-100 where no loss), got {labels.dtype}: e.g. labels.long()"
        )
    return labels.long()


def leading_pads(mask: torch.Tensor) -> torch.Tensor:
    """(batch,) number of masked columns before each row's first real token (the whole row if it has none)."""
    return (mask.cumsum(-1) == 0).sum(-1)


class PromptedModel(nn.Module):
    """A frozen backbone plus a trainable prompt module. Only the prompt's parameters require gradients.

    It behaves like PEFT's `PeftModel`: `config` is the backbone's Hugging Face config (the method's own is
    `prompt_config`), `device` and `dtype` are the backbone's, `state_dict()` holds the trainable tensors only (so a
    `transformers.Trainer` checkpoint is the prompt, not a copy of the backbone), and `save_pretrained` /
    `from_pretrained` / `push_to_hub` read and write the adapter format (`lamp.adapter`).
    """

    # Trainer: the loss is a mean over the micro-batch's labelled tokens, so Trainer divides it by the gradient
    # accumulation steps itself rather than passing `num_items_in_batch`.
    accepts_loss_kwargs = False

    def __init__(
        self, backbone: nn.Module, config: PromptConfig, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> None:
        super().__init__()
        self.kind = model_kind(backbone)
        accepted = inspect.signature(backbone.forward).parameters
        if "inputs_embeds" not in accepted:  # checked before the backbone is frozen or changed
            raise ConfigError(
                f"{type(backbone).__name__}.forward takes no inputs_embeds, so no prompt can be put in front of its "
                "input: use a model whose forward accepts inputs_embeds (every transformers LM does)"
            )
        self.backbone = backbone
        self.prompt_config = config
        trains_backbone = config.declares.backbone is Backbone.TRAINED  # full fine-tuning; every other method: frozen
        for parameter in backbone.parameters():
            parameter.requires_grad_(trains_backbone)
        embeddings = backbone.get_input_embeddings().weight
        device = embeddings.device
        config.check_fits(max_positions(backbone), embeddings.shape[1], free_memory_bytes(device))  # before `build`
        self.prompt_encoder: PromptModule = config.build(backbone, tokenizer).to(device)
        self._accepts_position_ids = "position_ids" in accepted
        self._accepted_inputs = set(accepted)
        self._cache_argument = next((n for n in CACHE_ARGUMENTS if n in accepted), None)
        # Public switch: False runs the prompt through the backbone with every evaluation batch (see forward). The
        # cache lays rows out as [prompt; pads; tokens], so a sliding attention window (Gemma 3, Mistral) would count
        # a short row's pads and lose sight of the prompt: such backbones always run the full pass.
        self.reuse_prompt_cache = (
            self.kind == "causal" and self._cache_argument is not None and not has_sliding_window(backbone)
        )
        self._cached_prompt: torch.Tensor | None = None
        self._cache_key: tuple | None = None
        self._prefix_layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._prefix_key: tuple | None = None
        self.backbone_name: str = getattr(backbone.config, "_name_or_path", "")

    @property
    def declares(self) -> Declaration:
        """What the method changes, as its config class declares it (`lamp.methods.Declaration`)."""
        return self.prompt_config.declares

    # ---- the prompt -------------------------------------------------------------------------------------------
    def prompt(self) -> torch.Tensor:
        """The materialised prompt (n_virtual x d). With autograd on it is computed afresh (so gradients reach the
        prompt's parameters in train and eval mode alike); without, it is cached until a parameter changes."""
        if torch.is_grad_enabled() or self.n_virtual == 0:
            return self.prompt_encoder()
        key = prompt_fingerprint(self.prompt_encoder)
        if self._cached_prompt is None or key != self._cache_key:
            self._cached_prompt = self.prompt_encoder()
            self._cache_key = key
        return self._cached_prompt

    def _prefix_cache(self, batch: int, dtype: torch.dtype) -> Any:
        """The backbone's keys and values over the shared prompt, for `batch` rows, or None if it cannot give them.

        A causal LM's prompt sits at positions 0..n-1 and attends only to itself, so its keys and values are the
        same for every input: evaluation computes them once (recomputed when any parameter changes) instead of
        once per row (SST-2 with a 100-token prompt scores 3.2x faster on SmolLM2-135M).
        """
        from transformers import DynamicCache

        device = self.backbone.get_input_embeddings().weight.device
        autocast = torch.is_autocast_enabled(device.type)  # keys and values made under autocast have its dtype
        key = (dtype, autocast, *parameter_versions(self.backbone), *prompt_fingerprint(self.prompt_encoder))
        if key != self._prefix_key:
            prompt = self.prompt().to(dtype).unsqueeze(0)
            ones = torch.ones(prompt.shape[:2], dtype=torch.long, device=prompt.device)
            extra = {"position_ids": ones.cumsum(-1) - 1} if self._accepts_position_ids else {}
            outputs = self.backbone(
                inputs_embeds=prompt, attention_mask=ones, use_cache=True, logits_to_keep=1, **extra
            )
            cache = outputs.get(self._cache_argument)
            layers = getattr(cache, "layers", None)
            if (
                not isinstance(cache, DynamicCache)
                or not layers
                or any(getattr(x, "keys", None) is None for x in layers)
            ):
                self.reuse_prompt_cache = False  # an unusual cache (state-space, hybrid): run the prompt every time
                return None
            self._prefix_layers = [(layer.keys, layer.values) for layer in layers]
            self._prefix_key = key
        expanded = [(k.expand(batch, *k.shape[1:]), v.expand(batch, *v.shape[1:])) for k, v in self._prefix_layers]
        return DynamicCache(expanded, config=self.backbone.config)

    def _may_reuse_prompt_cache(self, own_prompt: bool, per_token: dict[str, torch.Tensor], kwargs: dict) -> bool:
        """Evaluation of a causal LM with the module's own prompt and nothing that changes the prompt's rows."""
        evaluating = not (self.training or torch.is_grad_enabled())
        return (
            self.reuse_prompt_cache
            and evaluating
            and own_prompt
            and self.n_virtual > 0
            and not per_token  # e.g. token type ids add their own embedding to the prompt's rows
            and self._cache_argument not in kwargs
        )

    @contextlib.contextmanager
    def without_prompt(self) -> Iterator[PromptedModel]:
        """This model with no prompt rows and no input hook for the duration: the bare backbone's zero-shot. A method
        that changed the backbone itself (LoRA, full fine-tuning) keeps its change, which is none before training."""
        module = self.prompt_encoder
        self.prompt_encoder = EmptyPrompt(self.backbone.get_input_embeddings().weight.shape[1])
        try:
            yield self
        finally:
            self.prompt_encoder = module

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[PromptedModel]:
        """PEFT's `disable_adapter()`: for the duration, the model computes what the bare backbone does: no prompt
        rows, no input hook, and the layers a tuner injected (LoRA) switched off (PEFT's `enable_adapters(False)`).
        ConfigError for a method that trained the backbone's own weights (full fine-tuning): nothing to switch off."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        if self.declares.backbone is Backbone.TRAINED:
            raise ConfigError(
                f"method {self.prompt_config.method!r} trained the backbone's own weights: there is no adapter to "
                "disable; load the original backbone for its outputs"
            )
        injected = [m for m in self.backbone.modules() if isinstance(m, BaseTunerLayer) and not m.disable_adapters]
        for layer in injected:
            layer.enable_adapters(False)
        try:
            with self.without_prompt():
                yield self
        finally:
            for layer in injected:
                layer.enable_adapters(True)

    def merge_and_unload(self, copy: bool = False) -> nn.Module:
        """PEFT's `merge_and_unload()`: the backbone with the layers a tuner injected (LoRA) merged into its own weights
        (each layer's `merge()`, then its base layer in its place), a plain transformers model that alone computes
        what this model computed. In place, as PEFT does (this model then holds that plain backbone), unless `copy`.
        ConfigError for a method whose effect is not in injected layers (a prompt has no weights to merge into)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        if self.declares.backbone is not Backbone.INJECTED:
            raise ConfigError(
                f"method {self.prompt_config.method!r} injects no layers, so there is nothing to merge into the "
                "backbone's weights: use the model as it is, or export it (lamp export)"
            )
        merged = deepcopy(self.backbone) if copy else self.backbone
        for name, module in list(merged.named_modules()):
            if isinstance(module, BaseTunerLayer):
                module.merge()
                parent, _, child = name.rpartition(".")
                setattr(merged.get_submodule(parent), child, module.get_base_layer())
        for attribute in ("peft_config", "_hf_peft_config_loaded"):  # what injection set: a plain model now
            if attribute in vars(merged):
                delattr(merged, attribute)
        return merged

    def clear_prompt_cache(self) -> None:
        """Forget the cached prompt and its keys and values. Needed only after editing the backbone's weights through
        `.data` (autograd's version counter, which keys the cache, does not see such edits; the prompt's own
        parameters are also keyed by their contents)."""
        self._cached_prompt = self._cache_key = self._prefix_layers = self._prefix_key = None

    def num_trainable_parameters(self) -> int:
        """Every trainable entry: the nominal count papers report (LAMP: l*r + r + r*d; LoRA and full fine-tuning:
        the backbone entries they train). See `num_effective_parameters` for what the output depends on."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def num_effective_parameters(self) -> int:
        """Trainable entries the output depends on: LAMP's l/k*r + r + r*d (only U's pooled block means reach the
        prompt); the nominal count for every other method."""
        return (
            self.num_trainable_parameters()
            - sum(p.numel() for p in self.prompt_encoder.parameters() if p.requires_grad)
            + self.prompt_encoder.effective_parameters()
        )

    def save_adapter(self, directory: str | os.PathLike) -> Path:
        """Save the trainable prompt tensors (safetensors) and config (JSON); see `lamp.load_adapter`."""
        return save_adapter(self, directory)

    # ---- the PEFT-like model object -------------------------------------------------------------------------
    @property
    def config(self) -> Any:
        """The backbone's Hugging Face config, which Trainer, TRL and pipelines read (the method's config is
        `prompt_config`)."""
        return self.backbone.config

    @property
    def generation_config(self) -> Any:
        """The backbone's generation defaults (pipelines copy and edit them)."""
        return self.backbone.generation_config

    def can_generate(self) -> bool:
        """Whether `generate` works: every backbone lamp wraps is a language model."""
        return True

    def get_input_embeddings(self) -> nn.Module:
        """The backbone's token embedding (frozen; the prompt's rows are not in it), as transformers' and TRL's code
        asks a model for it."""
        return self.backbone.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module | None:
        """The backbone's LM head."""
        return self.backbone.get_output_embeddings()

    @property
    def base_model(self) -> Any:
        """The backbone without its LM head, with the prompt in front of its input: a callable taking the backbone's
        inputs (`input_ids` or `inputs_embeds`, `attention_mask`, ...) that returns the backbone base model's output
        with `last_hidden_state` (batch, T, d): the last T columns of ``[prompt; input]``, column i predicting token
        i+1 (a left-padded row's column before its first token is the prompt's last row, as in `align`). TRL's
        SFTTrainer computes its fused loss from it and `get_output_embeddings()`. Causal LMs only (ConfigError)."""
        return self._prompted_base

    def _prompted_base(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if self.kind != "causal":
            raise ConfigError("base_model serves causal LMs only: run a seq2seq model through forward")
        inputs = self._inputs(input_ids, inputs_embeds, attention_mask, None, None, kwargs)
        outputs = self.backbone.base_model(**self._full_sequence(inputs), **kwargs)
        outputs.last_hidden_state = outputs.last_hidden_state[:, -inputs["mask"].shape[1] :]
        return outputs

    def add_model_tags(self, tags: list[str] | str) -> None:
        """Tags for the model card the backbone would write (TRL adds its own)."""
        if hasattr(self.backbone, "add_model_tags"):
            self.backbone.add_model_tags(tags)

    @property
    def device(self) -> torch.device:
        """Where inputs go: the device of the backbone's input embeddings."""
        return self.backbone.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the backbone's input embeddings (the prompt is cast to it)."""
        return self.backbone.get_input_embeddings().weight.dtype

    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """(trainable, all) parameter entries, a tied weight counted once (PEFT's name and count)."""
        parameters = list(self.parameters())
        return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)

    def print_trainable_parameters(self) -> None:
        """Print PEFT's line: `trainable params: X || all params: Y || trainable%: Z`."""
        trainable, total = self.get_nb_trainable_parameters()
        print(
            f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
        )

    def activation_checkpointing_enable(
        self, activation_checkpointing_kwargs: dict | None = None, **kwargs: Any
    ) -> None:
        """Recompute the backbone's activations in backward (transformers' option, e.g. `every_n_layers`). The
        backbone also makes its input embeddings require grad, so that methods without prompt rows (LoRA) still
        get gradients through checkpointed layers. Trainer calls this for `activation_checkpointing=True`."""
        enable = getattr(self.backbone, "activation_checkpointing_enable", None)
        if enable is None:  # transformers before the rename
            self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=activation_checkpointing_kwargs)
        else:
            enable(activation_checkpointing_kwargs=activation_checkpointing_kwargs, **kwargs)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **kwargs: Any) -> None:
        """transformers' older name of `activation_checkpointing_enable`."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    def gradient_checkpointing_disable(self) -> None:
        """Keep activations again."""
        disable = getattr(self.backbone, "activation_checkpointing_disable", None)
        (disable or self.backbone.gradient_checkpointing_disable)()

    activation_checkpointing_disable = gradient_checkpointing_disable

    @property
    def is_gradient_checkpointing(self) -> bool:
        """Whether some backbone layer recomputes its activations in backward."""
        return any(getattr(module, "gradient_checkpointing", False) for module in self.backbone.modules())

    is_activation_checkpointing = is_gradient_checkpointing

    def state_dict(self, *, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> dict[str, Any]:
        """The trainable state only: every parameter of the prompt module as `prompt_encoder.NAME`, a tied weight
        once; the frozen backbone is `backbone.state_dict()`. So a `transformers.Trainer` checkpoint holds the prompt
        (as a PEFT one holds the adapter), not a copy of the backbone whose tied embeddings safetensors refuses."""
        destination = {} if destination is None else destination
        for name, parameter in self.prompt_encoder.named_parameters():
            destination[f"{prefix}prompt_encoder.{name}"] = parameter if keep_vars else parameter.detach()
        return destination

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Copy what `state_dict()` gives into the prompt module (the backbone is left as it is); returns torch's
        (missing_keys, unexpected_keys). Raises AdapterError (one line) for a tensor of the wrong shape, and with
        `strict` for a missing or unexpected key. `assign` is accepted for torch's signature; values are copied."""
        parameters = {f"prompt_encoder.{name}": p for name, p in self.prompt_encoder.named_parameters()}
        missing = [key for key in parameters if key not in state_dict]
        unexpected = [key for key in state_dict if key not in parameters]
        if strict and (missing or unexpected):
            raise AdapterError(
                f"the state dict misses {missing} and has unexpected {unexpected}: load a state saved from the same "
                f"method ({self.prompt_config.method!r}) and options"
            )
        for key, parameter in parameters.items():
            if key in state_dict and tuple(state_dict[key].shape) != tuple(parameter.shape):
                raise AdapterError(
                    f"state dict entry {key} has shape {tuple(state_dict[key].shape)}, the model's "
                    f"{tuple(parameter.shape)}: load a state saved from the same method and options"
                )
        with torch.no_grad():
            for key, parameter in parameters.items():
                if key in state_dict:
                    parameter.copy_(state_dict[key])
        return _IncompatibleKeys(missing, unexpected)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        safe_serialization: bool = True,
        **kwargs: Any,
    ) -> Path:
        """PEFT's name for `save_adapter`: write `adapter.safetensors` and `adapter.json` to `save_directory`, which
        `from_pretrained` and `lamp.load_adapter` read. Other ranks of a distributed run (`is_main_process=False`)
        write nothing. PEFT's `safe_serialization=True` is what lamp always does; False (a pickle file) and PEFT's
        other options (`selected_adapters`, `save_embedding_layers`, ...: a lamp model holds one adapter and never
        saves the backbone's embeddings) are refused with ConfigError."""
        if not safe_serialization:
            raise ConfigError("save_pretrained writes safetensors only: drop safe_serialization=False")
        if kwargs:
            raise ConfigError(
                f"save_pretrained takes no {', '.join(sorted(kwargs))}: a lamp model saves its one adapter's "
                "trainable tensors (see save_adapter)"
            )
        return self.save_adapter(save_directory) if is_main_process else Path(save_directory)

    @classmethod
    def from_pretrained(
        cls,
        pretrained: str | os.PathLike,
        model: nn.Module | str | None = None,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        is_trainable: bool = False,
    ) -> PromptedModel:
        """A saved adapter on `model`: a backbone, a model name, or None for the backbone the adapter names.

        `pretrained` is a local adapter folder (`save_pretrained`, `lamp train`'s OUT/adapter) or a hub repo id
        (owner/name), fetched with huggingface_hub's `snapshot_download` (`revision`, `token`). PEFT's order,
        `from_pretrained(backbone, folder)`, works too. As in PEFT, the adapter comes frozen and in eval mode, for
        inference, unless `is_trainable` (`load_adapter` leaves it trainable, in train mode). Raises AdapterError
        (one line) for a folder that is not an adapter, a repo that cannot be fetched, or an adapter made for another
        backbone.
        """
        if isinstance(pretrained, nn.Module):  # PeftModel.from_pretrained(model, model_id)
            pretrained, model = model, pretrained
        loaded = load_adapter(model, resolve_adapter(pretrained, revision=revision, token=token))
        if not is_trainable:  # as PEFT's load_adapter: frozen, and in eval mode (no dropout; the prompt cache)
            loaded.prompt_encoder.requires_grad_(False)
            loaded.eval()
        return loaded

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        commit_message: str = "Upload lamp adapter",
    ) -> str:
        """Upload the adapter (`save_pretrained`'s files) to the hub repo `repo_id`, creating it if needed, with
        huggingface_hub's `HfApi.upload_folder`; returns the commit's URL. `from_pretrained(repo_id)` loads it back.
        Raises ConfigError (one line) when the hub refuses (no token, no rights, offline)."""
        return push_adapter(self, repo_id, private=private, token=token, revision=revision, message=commit_message)

    @property
    def n_virtual(self) -> int:
        return self.prompt_encoder.n_virtual

    def max_input_tokens(self) -> int | None:
        """Input tokens that fit beside the prompt in the backbone's context window (None: no limit declared).
        A causal LM's generated tokens count too."""
        limit = max_positions(self.backbone)
        return None if limit is None else limit - self.n_virtual

    # ---- inputs -----------------------------------------------------------------------------------------------
    def _inputs(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        prompt: torch.Tensor | None,
        prompt_mask: torch.Tensor | None,
        kwargs: dict[str, Any],
        extra_tokens: int = 0,
    ) -> dict[str, torch.Tensor]:
        """The input's embeddings (batch, T, d) and mask (batch, T), the batch's prompt (batch, n, d) and mask, and
        the per-token inputs popped from `kwargs`; refuses what cannot be put behind the prompt.

        `prompt` overrides the module's prompt: (n, d) for the whole batch or (batch, n, d) for one prompt per
        row, with `prompt_mask` (batch, n) marking the real prompt rows where rows' prompts differ in length.
        """
        check_batched(input_ids, inputs_embeds, self.backbone.get_input_embeddings().weight.shape[-1])
        if inputs_embeds is None:
            inputs_embeds = self.backbone.get_input_embeddings()(input_ids)
        batch, length = inputs_embeds.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=inputs_embeds.device)
        if attention_mask.shape != (batch, length):
            raise ConfigError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, the input {(batch, length)}: pass one mask "
                "value per input token"
            )
        per_token = {name: kwargs.pop(name) for name in PER_TOKEN_INPUTS if kwargs.get(name) is not None}
        for name, value in per_token.items():
            if not torch.is_tensor(value) or value.shape[-1] != length or value.dim() != 2:
                raise ConfigError(f"{name} must be a (batch, {length}) tensor like the input, got {_shape(value)}")
        for name, value in kwargs.items():  # other per-token inputs would leave the prompt's rows uncovered
            if name.startswith("decoder_") or not torch.is_tensor(value) or value.is_floating_point():
                continue
            if tuple(value.shape) == (batch, length):
                raise ConfigError(
                    f"{name} is a per-token input the prompt cannot be put in front of: drop it, or feed the "
                    f"backbone yourself (lamp extends {', '.join(PER_TOKEN_INPUTS)} only)"
                )
        embeds = inputs_embeds
        if self.declares.input_embeddings:  # DePT's offset; the hook of every other method is the identity
            embeds = self.prompt_encoder.embed_inputs(inputs_embeds, attention_mask)
        if prompt is None:
            prompt = self.prompt()
        if prompt.dim() == 2:
            prompt = prompt.unsqueeze(0).expand(batch, -1, -1)
        if prompt_mask is None:
            prompt_mask = torch.ones(prompt.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device)
        limit = max_positions(self.backbone)
        needed = prompt.shape[1] + length + extra_tokens
        if limit is not None and needed > limit:
            room = limit - prompt.shape[1]
            fixes = [f"cut inputs to {room - extra_tokens} tokens"] if room - extra_tokens > 0 else []
            if extra_tokens and room - length > 0:
                fixes.append(f"pass max_new_tokens <= {room - length}")
            raise ConfigError(
                f"the prompt's {prompt.shape[1]} rows, {length} input tokens"
                + (f" and {extra_tokens} new tokens" if extra_tokens else "")
                + f" exceed the backbone's {limit} positions: "
                + (" or ".join(fixes) or "use a prompt with fewer virtual tokens")
            )
        return {
            "embeds": embeds,
            "mask": attention_mask,
            "prompt": prompt.to(embeds.dtype),
            "prompt_mask": prompt_mask.to(attention_mask.dtype),
            "per_token": per_token,
        }

    def _full_sequence(self, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Backbone inputs for ``[prompt; input]``, each row's leading pads moved in front of the prompt.

        Moving the pads keeps the prompt next to the row's first real token, as when the row is fed alone: its last
        row predicts that token, and relative-position encoders (T5) see the same distances whatever the padding.
        """
        prompt, embeds, n = inputs["prompt"], inputs["embeds"], inputs["prompt"].shape[1]
        mask = torch.cat([inputs["prompt_mask"], inputs["mask"]], dim=1)
        columns = {"inputs_embeds": torch.cat([prompt, embeds], dim=1), "attention_mask": mask}
        for name, value in inputs["per_token"].items():
            value = value.expand(embeds.shape[0], -1)
            if name == "position_ids":  # the prompt takes positions 0..n-1 and the input's move up by n
                front = torch.arange(n, device=value.device).expand(value.shape[0], -1)
                columns[name] = torch.cat([front, value + n], dim=1)
            else:  # token type 0 over the prompt, as PEFT does
                columns[name] = torch.cat([value.new_zeros(value.shape[0], n), value], dim=1)
        first_token = n + leading_pads(inputs["mask"])
        index = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        in_front = (mask == 0) & (index < first_token.unsqueeze(1))
        order = torch.sort((~in_front).long(), dim=1, stable=True).indices  # pads before the first token go first
        for name, value in columns.items():
            gather = order.unsqueeze(-1).expand(-1, -1, value.shape[-1]) if value.dim() == 3 else order
            columns[name] = value.gather(1, gather)
        if self.kind == "causal" and self._accepts_position_ids and "position_ids" not in columns:
            columns["position_ids"] = self._position_ids(columns["attention_mask"])
        return columns

    def _cached_sequence(self, inputs: dict[str, Any], cache: Any) -> dict[str, torch.Tensor]:
        """Backbone inputs past the prompt, whose keys and values come from `cache` (layout ``[prompt; input]``)."""
        n = inputs["prompt"].shape[1]
        mask = torch.cat([inputs["prompt_mask"], inputs["mask"]], dim=1)
        columns = {"inputs_embeds": inputs["embeds"], "attention_mask": mask, self._cache_argument: cache}
        if self._accepts_position_ids:
            columns["position_ids"] = self._position_ids(mask)[:, n:]
        return columns

    def _position_ids(self, mask: torch.Tensor) -> torch.Tensor:
        # Positions count real tokens only, so a left-padded row scores as it would alone (generate does the same).
        return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)

    # ---- forward ----------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        prompt: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """Forward through the backbone with the prompt prepended; takes `input_ids` or `inputs_embeds`.

        Seq2seq: `labels` (and any decoder inputs) go to the decoder unchanged. Causal: `labels` align with
        the input tokens (-100 where no loss; labels on padding are ignored) and get -100 over the prompt;
        `logits_to_keep` (as in transformers: 0 keeps all) computes the vocabulary projection only for the last
        positions, and the loss is computed on those, so it must cover every labelled position (the collator in
        `lamp.data` computes it). Evaluating (no autograd, eval mode) with `logits_to_keep` set, a causal LM reads
        the prompt's keys and values from a cache computed once (`_prefix_cache`): same outputs, up to float
        rounding, in less time. Raises ConfigError (one line) for inputs that do not fit the backbone's positions
        and for per-token inputs it cannot extend over the prompt.
        """
        own_prompt = prompt is None
        if labels is not None:
            labels = check_labels(labels)
        if self.kind == "causal" and any(kwargs.get(name) is not None for name in CACHE_ARGUMENTS):
            raise ConfigError(
                "forward does not continue a key/value cache (the prompt would be put in front of the new tokens "
                "again): decode with generate, or call model.backbone with the cache yourself"
            )
        inputs = self._inputs(input_ids, inputs_embeds, attention_mask, prompt, prompt_mask, kwargs)
        if self.kind == "seq2seq":
            return self.backbone(**self._full_sequence(inputs), labels=labels, **kwargs)
        as_tuple = kwargs.pop("return_dict", None) is False  # the loss is added to the output object below
        if labels is not None:
            if labels.shape != inputs["mask"].shape:
                raise ConfigError(
                    f"labels have shape {tuple(labels.shape)}, the input {tuple(inputs['mask'].shape)}: a causal LM "
                    "takes one label per input token (-100 where no loss)"
                )
            labels = labels.masked_fill(inputs["mask"] == 0, IGNORE_INDEX)  # a label on padding means nothing
            covered = logits_to_keep - 1  # the kept logits predict the last logits_to_keep - 1 tokens
            if 0 <= covered < labels.shape[1] and (labels[:, : labels.shape[1] - covered] != IGNORE_INDEX).any():
                first = int((labels != IGNORE_INDEX).any(0).nonzero()[0])
                raise ConfigError(
                    f"logits_to_keep={logits_to_keep} leaves labels from input position {first} without logits: pass "
                    f"logits_to_keep >= {labels.shape[1] - first + 1}, or 0 to keep them all"
                )
        length = inputs["mask"].shape[1]
        # The cache holds the prompt in front of every row's pads, so it serves only when no kept logit belongs to
        # the column before a padded row's first token (that logit is the prompt's own last row in the full pass).
        cache = None
        if 0 < logits_to_keep <= length and self._may_reuse_prompt_cache(own_prompt, inputs["per_token"], kwargs):
            if not (leading_pads(inputs["mask"]) > length - logits_to_keep).any():
                cache = self._prefix_cache(inputs["embeds"].shape[0], inputs["embeds"].dtype)
        sequence = self._full_sequence(inputs) if cache is None else self._cached_sequence(inputs, cache)
        outputs = self.backbone(**sequence, logits_to_keep=logits_to_keep, return_dict=True, **kwargs)
        if labels is not None:
            outputs["loss"] = label_loss(*self.align(outputs.logits, labels))
        if as_tuple:  # transformers' order: the loss first
            return tuple(outputs[key] for key in sorted(outputs.keys(), key=lambda key: key != "loss"))
        return outputs

    def align(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair each label with the logits that predict it: (batch, T, vocab) and (batch, T).

        Seq2seq logits already line up with the decoder labels. Causal logits are the last `kept` positions of
        prompt + input, where logits[:, i] predicts token i+1 and the last one predicts nothing.
        """
        return align(logits, labels, self.kind)

    def _expands_batch(self, kwargs: dict[str, Any]) -> bool:
        """Whether generate() will run rows several times (beams, returned sequences) or rewrite the cache."""
        config = kwargs.get("generation_config") or self.backbone.generation_config
        beams = kwargs.get("num_beams", getattr(config, "num_beams", None)) or 1
        returned = kwargs.get("num_return_sequences", getattr(config, "num_return_sequences", None)) or 1
        rewriting = any(
            kwargs.get(name) is not None or getattr(config, name, None) is not None
            for name in _CACHE_REWRITING_GENERATE_OPTIONS
        )
        return beams > 1 or returned > 1 or rewriting or kwargs.get("use_cache") is False

    def _new_tokens(self, kwargs: dict[str, Any], inputs: torch.Tensor | None) -> int:
        """Tokens generate() will add to a causal LM's sequence (0 for seq2seq, whose decoder counts its own).

        The prompt is invisible, as in PEFT: `max_length` and `min_length` count the input's tokens and the new ones,
        as for the bare backbone, so they are turned into `max_new_tokens` / `min_new_tokens` in `kwargs` (the
        backbone, fed the prompt's rows too, would count them). Default: transformers' max_length of 20.
        """
        if self.kind != "causal" or inputs is None:
            return 0
        config = kwargs.get("generation_config") or self.backbone.generation_config
        length = inputs.shape[1]
        minimum = kwargs.pop("min_length", None)
        if minimum is not None and kwargs.get("min_new_tokens") is None:
            kwargs["min_new_tokens"] = max(minimum - length, 0)
        total = kwargs.pop("max_length", None)
        new = kwargs.get("max_new_tokens", getattr(config, "max_new_tokens", None))
        if new is None:
            total = total or getattr(config, "max_length", None) or 20
            if total <= length:
                raise ConfigError(
                    f"max_length={total} leaves no new tokens after the {length} input tokens: pass a larger "
                    "max_length or max_new_tokens"
                )
            new = kwargs["max_new_tokens"] = total - length
        return new

    def _generation_option(self, kwargs: dict[str, Any], name: str) -> Any:
        config = kwargs.get("generation_config") or self.backbone.generation_config
        return kwargs[name] if kwargs.get(name) is not None else getattr(config, name, None)

    def _bos_ids(self, kwargs: dict[str, Any]) -> torch.Tensor:
        """(1, 1) ids holding the bos token: what transformers' generate starts from when given no input."""
        bos = self._generation_option(kwargs, "bos_token_id")
        if bos is None:
            raise ConfigError("pass input_ids or inputs_embeds: the backbone has no bos_token_id to start from")
        return torch.full((1, 1), int(bos), dtype=torch.long, device=self.device)

    def _mask_from_padding(self, input_ids: torch.Tensor, kwargs: dict[str, Any]) -> torch.Tensor | None:
        """The attention mask transformers' generate infers when given none: 0 on pad tokens, where the ids hold
        any and the pad token is not an eos token (`GenerationMixin._prepare_attention_mask_for_generation`);
        None where it infers nothing (all ones)."""
        pad, eos = self._generation_option(kwargs, "pad_token_id"), self._generation_option(kwargs, "eos_token_id")
        eos_ids = [] if eos is None else [int(e) for e in eos] if isinstance(eos, (list, tuple)) else [int(eos)]
        if not torch.is_tensor(input_ids) or pad is None or int(pad) in eos_ids or not (input_ids == pad).any():
            return None
        return (input_ids != pad).long()

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        prompt: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """Generate with the prompt; takes transformers' generate options (beams, sampling, returned sequences,
        `max_length`, `return_dict_in_generate`, `streamer`...) and returns what the bare backbone's generate returns
        for the same input, the prompt invisible (as in PEFT): a causal LM given `input_ids` (or `inputs`) gives
        ``[input_ids; new tokens]`` per returned sequence (pipelines cut the input off), given `inputs_embeds` the new
        tokens only; seq2seq gives the decoder's tokens.

        As transformers' generate: without `attention_mask`, pad tokens in `input_ids` are masked (unless the pad token
        is an eos token), and no input at all starts from the bos token. Causal inputs must be left-padded (a row that
        ends in padding is refused), and a key/value cache is refused (the wrapper builds it). Greedy or sampled
        decoding of one sequence per row reads the module's own prompt from its key/value cache (see `forward`); options
        that expand the batch run the full pass, so every option gives the tokens the backbone gives for ``[prompt;
        input]``. Raises ConfigError (one line) for inputs and lengths that do not fit the backbone's positions.
        """
        if input_ids is None and kwargs.get("inputs") is not None:  # transformers' name for the first argument
            input_ids = kwargs.pop("inputs")
        kwargs.pop("inputs", None)
        for name in PER_TOKEN_INPUTS:
            if kwargs.get(name) is not None:
                raise ConfigError(f"generate takes no {name}: the wrapper sets the prompt's positions itself")
        for name in CACHE_ARGUMENTS:
            if kwargs.get(name) is not None:
                raise ConfigError(
                    f"generate takes no {name}: the wrapper builds the prompt's key/value cache itself; pass the "
                    "whole input instead"
                )
        if input_ids is None and inputs_embeds is None:  # as transformers: start from the backbone's bos token
            input_ids = self._bos_ids(kwargs)
        if attention_mask is None and input_ids is not None:
            attention_mask = self._mask_from_padding(input_ids, kwargs)
        check_batched(input_ids, inputs_embeds, self.backbone.get_input_embeddings().weight.shape[-1])
        new_tokens = self._new_tokens(kwargs, input_ids if input_ids is not None else inputs_embeds)
        inputs = self._inputs(input_ids, inputs_embeds, attention_mask, prompt, prompt_mask, kwargs, new_tokens)
        mask = inputs["mask"]
        if self.kind == "causal" and ((mask[:, -1] == 0) & mask.bool().any(-1)).any():
            raise ConfigError(
                "a row of the batch ends in padding, and a causal LM generates after the last column: pad on the "
                "left (tokenizer.padding_side = 'left')"
            )
        cache = None
        if self._may_reuse_prompt_cache(prompt is None, inputs["per_token"], kwargs) and not self._expands_batch(
            kwargs
        ):
            cache = self._prefix_cache(inputs["embeds"].shape[0], inputs["embeds"].dtype)
        if cache is None:
            sequence = self._full_sequence(inputs)
            sequence.pop("position_ids", None)  # generate derives positions from the mask itself
        else:  # generate feeds the backbone only the embeddings past the cached prompt
            mask = torch.cat([inputs["prompt_mask"], inputs["mask"]], dim=1)
            embeds = torch.cat([inputs["prompt"], inputs["embeds"]], dim=1)
            sequence = {"inputs_embeds": embeds, "attention_mask": mask, self._cache_argument: cache}
        out = self.backbone.generate(**sequence, **kwargs)
        if self.kind == "seq2seq" or input_ids is None:
            return out
        return with_input_in_front(input_ids, out)


def with_input_in_front(input_ids: torch.Tensor, out: Any) -> Any:
    """Put `input_ids` (batch, T) in front of generate's new tokens (batch * k, new), as a causal LM given input ids
    returns them; `out` is a tensor or generate's output object with `sequences`, which is updated in place."""
    sequences = getattr(out, "sequences", out)
    repeated = input_ids.to(sequences.device).repeat_interleave(sequences.shape[0] // input_ids.shape[0], dim=0)
    full = torch.cat([repeated, sequences], dim=1)
    if sequences is out:
        return full
    out.sequences = full
    return out


def wrap(model: nn.Module, config: PromptConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> PromptedModel:
    """Freeze `model` and put a trainable prompt of `config`'s method in front of its input.

    `tokenizer` is needed only for init='text'. Raises ConfigError for a model that is not a Hugging Face LM or
    whose forward takes no `inputs_embeds`.
    """
    if not isinstance(config, PromptConfig):
        raise ConfigError(f"expected a prompt config such as lamp.LampConfig(...), got {type(config).__name__}")
    check_not_wrapped(model)
    return PromptedModel(model, config, tokenizer)


def _family(model_type: str) -> str:
    """A model type without the `_text` of a multimodal family's text-only class (gemma3_text: gemma3)."""
    return model_type.removesuffix("_text")


def check_not_wrapped(model: object) -> None:
    """ConfigError for a model lamp already wraps, or whose layers an adapter was injected into (a LoRA model's
    backbone, a PEFT model): one adapter per backbone (PEFT's one active adapter)."""
    if isinstance(model, PromptedModel):
        raise ConfigError(
            "the model is already wrapped with a prompt (a lamp PromptedModel): pass its backbone, model.backbone, "
            "to put another prompt on it"
        )
    if getattr(model, "peft_config", None) is not None:  # set by PEFT's injection: lamp's LoRA, or PEFT's own
        raise ConfigError(
            "the model already holds injected adapter layers (a lamp LoRA model's backbone, or a PEFT model): the "
            "new prompt would run on top of them; load a fresh backbone, or merge them first (merge_and_unload)"
        )


def load_adapter(model: nn.Module | str | None, directory: str | os.PathLike) -> PromptedModel:
    """Wrap `model` (a backbone, or None to load the adapter's own backbone by name) with a saved adapter."""
    data = read_adapter_config(directory)
    saved = data["backbone"]
    # Everything the files alone can tell is checked before a backbone loads, so a corrupt adapter fails fast.
    try:
        config = config_from_dict(data["prompt"])
    except (LampError, TypeError) as error:
        raise AdapterError(f"{directory}/{CONFIG} holds an invalid prompt config: {error}") from None
    recorded = data.get("n_virtual")
    if isinstance(recorded, int) and recorded != config.n_virtual():  # e.g. a hand-edited pool: the same tensors
        raise AdapterError(
            f"{directory}/{CONFIG}: its prompt config gives {config.n_virtual()} virtual tokens, its n_virtual "
            f"{recorded}: the file was edited; restore it or save the adapter again"
        )
    tensors = read_adapter_tensors(directory)
    weights = Path(directory) / WEIGHTS
    check_not_wrapped(model)
    # The backbone the adapter is put on, by name: the saved one, the one given by name, or what a given model says.
    backbone_name = saved["name"] if model is None else model if isinstance(model, str) else None
    if model is None or isinstance(model, str):
        model = load_model(saved["name"] if model is None else model)
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
    if saved.get("model_type") and _family(saved["model_type"]) not in {
        _family(getattr(config, "model_type", "")) for config in (model.config, text_config(model.config))
    }:
        warnings.warn(  # same width, other architecture: the prompt was learned in another embedding space
            f"adapter {directory} was trained on a {saved['model_type']} model ({saved['name'] or 'unnamed'}), this "
            f"backbone is {model.config.model_type}: its prompt is likely meaningless here; load it on the backbone "
            "it was trained for",
            stacklevel=2,
        )
    # The saved tensors replace whatever the init makes, so build the skeleton with the cheapest init.
    prompted = wrap(model, config.skeleton())
    prompted.prompt_config = config
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
    if backbone_name is not None:  # else wrap took the given model's own name (its config's _name_or_path)
        prompted.backbone_name = backbone_name
    # How the adapter's inputs were rendered, so that eval and predict render rows the same way.
    prompted.input_format = saved_format(data)
    prompted.chat_template = data.get("chat_template", False)
    prompted.task_spec = data.get("task_spec")  # a user task's spec, so eval and predict can rebuild the task
    prompted.split_seed = data.get("seed")  # the run's split seed and source tokens (None: not recorded)
    prompted.max_length = data.get("max_length")
    return prompted
