"""The interface every prompt method implements, the declaration of what it changes, and the prompt initialisations
they share.

A method is a pair: a config dataclass (validated on construction) and an `nn.Module` built from it whose
`forward()` returns the prompt rows (n_virtual x d). The config class declares what the method changes
(`Declaration`), following PEFT's split between prompt-learning methods (prompt rows in front of the input, perhaps
a change to the input embeddings, a frozen backbone) and layer-injecting tuners (LoRA) or full fine-tuning, which
change the backbone. Shared code (the wrapper, adapters, export, predict, train) reads that declaration; it never
inspects a module to guess, and never asks which method it holds.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from lamp.checks import POSITIVE_INT
from lamp.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from lamp.tasks import Task

INITS = ("vocab", "common-vocab", "text", "task", "random")
"""A vanilla prompt's inits (`initial_prompt`); `task` is a text init from the task's own words, which `lamp train`
fills in (`PromptConfig.for_task`)."""

COMMON_TOKENS = 5000
"""`common-vocab` samples among the first this many token ids (Lester et al. 2021, section 3: "the 5,000 most common
tokens"; prompt-tuning research code after it: ``np.random.permutation(range(5000))``)."""


class Backbone(enum.Enum):
    """What a method does to the backbone's own layers."""

    FROZEN = "frozen"
    """Prompt learning: the backbone never changes (the wrapper freezes it)."""
    INJECTED = "injected"
    """A layer-injecting tuner (LoRA): `build` inserts trainable layers into the frozen backbone."""
    TRAINED = "trained"
    """The backbone's own weights train (full fine-tuning): the wrapper leaves them trainable."""


class Harness(enum.Enum):
    """What runs a method's forward and backward."""

    LAMP = "lamp"
    """lamp's wrapper (`lamp.wrap`): train, eval, compare, export and predict hold it."""
    PEFT = "peft"
    """PEFT's own model (`peft.get_peft_model`), called as PEFT users call it: a reference that only `lamp bench`
    measures; the wrapper, the trainer and the adapters never hold it."""


class Export(enum.Enum):
    """What `lamp export` writes for a method, so that it serves without lamp."""

    PEFT_PROMPT = "peft-prompt"
    """The materialised prompt as a stock PEFT prompt-tuning adapter."""
    PEFT_LORA = "peft-lora"
    """The injected layers as a stock PEFT LoRA adapter."""
    MODEL = "model"
    """The whole backbone as a transformers model folder."""

    @property
    def format(self) -> str:
        """`lamp export --format`: "peft" (a PEFT adapter for a backbone) or "model" (a model folder)."""
        return "model" if self is Export.MODEL else "peft"


@dataclass(frozen=True)
class Declaration:
    """What a method changes, declared once by its config class (`PromptConfig.declares`).

    prompt_rows: it puts virtual tokens (n_virtual > 0 rows) in front of the input.
    input_embeddings: it changes the input embeddings through its module's `embed_inputs` (DePT's offset); the
    wrapper calls `embed_inputs` only when this is declared.
    backbone: what it does to the backbone's own layers (`Backbone`).
    export: what `lamp export` writes (`Export`), None when nothing serves it without lamp.
    prompt_init: its config takes a vanilla prompt's init (`init`, `init_text` fields; see `initial_prompt`).
    trains: it has parameters to train (False: the bare backbone, a floor).
    harness: what runs it (`Harness`): lamp's wrapper, or PEFT's own model (bench only; never exported).
    """

    prompt_rows: bool = True
    input_embeddings: bool = False
    backbone: Backbone = Backbone.FROZEN
    export: Export | None = Export.PEFT_PROMPT
    prompt_init: bool = False
    trains: bool = True
    harness: Harness = Harness.LAMP

    def __post_init__(self) -> None:
        """A declaration contradicting itself is a programming error in the method (ValueError at import)."""
        if self.harness is Harness.PEFT and self.export is not None:
            raise ValueError("a method PEFT's own model runs has no lamp adapter to export: declare export=None")
        needs = {Export.PEFT_LORA: Backbone.INJECTED, Export.MODEL: Backbone.TRAINED}
        if self.export is Export.PEFT_PROMPT and (self.beyond_prompt() or not self.prompt_rows):
            reason = self.beyond_prompt() or "adds no prompt rows"
            raise ValueError(f"a PEFT prompt export needs a method whose effect is its prompt, but it {reason}")
        if self.export in needs and self.backbone is not needs[self.export]:
            raise ValueError(
                f"export {self.export.value} needs backbone {needs[self.export].value}, not {self.backbone.value}"
            )

    def beyond_prompt(self) -> str | None:
        """Why the method's effect is more than its prompt rows, or None when the rows alone reproduce it (then it
        exports as a PEFT prompt, imports as a prompt, and shares a batch with other tasks' prompts)."""
        if self.input_embeddings:
            return "also changes the input embeddings"
        if self.backbone is not Backbone.FROZEN:
            return "changes the backbone's own layers"
        return None


INIT_COPIES = 3
"""Copies of a prompt's init that building it may hold at once (the rows, a float copy, a decomposition's factors)."""


@dataclass
class PromptConfig:
    """Base of every method's config. Subclasses add their own fields and state `declares`; the registry
    (`lamp.methods.register`) sets `method`, the name adapters and run configs record."""

    method: ClassVar[str] = ""
    declares: ClassVar[Declaration] = Declaration()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # a flag's "false" must not pass as a truthy string
            if f.type in (bool, "bool") and not isinstance(getattr(self, f.name), bool):
                raise ConfigError(f"{f.name} must be true or false, got {getattr(self, f.name)!r}")
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError on a bad value; called on construction."""

    def n_virtual(self) -> int:
        """Virtual tokens the built module puts before the input (its `n_virtual`), known before it is built: the
        config's `length`, or 0 for a method that declares no prompt rows. A method that shortens its prompt
        overrides it (LAMP: length / pool)."""
        return getattr(self, "length", 0) if self.declares.prompt_rows else 0

    def build(self, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase | None = None) -> PromptModule:
        """Build the trainable module for `backbone` (frozen by the wrapper unless `declares.backbone` is TRAINED).

        Prompt methods take their init from what the input embedding layer returns (`embedding_rows`,
        `embedding_std`), never from its raw weight (Gemma scales rows by sqrt(d) in forward); a method that
        trains part of the backbone itself (LoRA, full fine-tuning) registers those parameters in its module.
        """
        raise NotImplementedError

    def from_prompt(self, initial: torch.Tensor) -> PromptModule:
        """Build the module starting from a given (length x d) prompt instead of an init (import, --init-from)."""
        raise ConfigError(f"method {self.method!r} cannot start from a given prompt: use method 'lamp'")

    @classmethod
    def for_prompt(cls, initial: torch.Tensor, **options: Any) -> PromptConfig:
        """The config whose model starts by seeing the given (n x d) prompt (a warm start, an import): `options`,
        and the length that puts n rows before the input (n here; LAMP: n * pool, `expand`). A method may fit an
        unset option to the prompt (LAMP caps its rank at min(n, d))."""
        # Only a method that builds its module from a prompt (overrides `from_prompt`) can start from one: refused
        # here, before any prompt or backbone is read.
        if cls.from_prompt is PromptConfig.from_prompt or "length" not in {f.name for f in dataclasses.fields(cls)}:
            raise ConfigError(f"method {cls.method!r} cannot start from a given prompt: use method 'lamp'")
        return cls(length=len(initial), **options)

    def expand(self, seen: torch.Tensor) -> torch.Tensor:
        """The module's own (length x d) rows (`from_prompt`) that put the given (n_virtual x d) rows before the
        input: the rows themselves, unless the method shortens its prompt (LAMP repeats each row `pool` times, so
        that each pooled block's mean is that row)."""
        return seen

    def init_rows(self) -> int:
        """Rows of the prompt as it is initialised (and decomposed), before any shortening: `n_virtual`, unless the
        method shortens its prompt (LAMP: length, pooled to length / pool)."""
        return self.n_virtual()

    def check_fits(self, positions: int | None, width: int | None = None, free: int | None = None) -> None:
        """ConfigError when the method does not fit a backbone `width` wide (`check_width`), when the prompt's rows
        (`n_virtual`) fill a backbone of `positions` positions (None: no limit) and leave none for input, when an
        option reaches past those positions (`check_positions`), or when its (`init_rows` x `width`) float32 init,
        with the copies a decomposition makes (INIT_COPIES), needs more than the `free` bytes of the device it is
        built on (None: unchecked). Checked on the config, before `build` allocates the prompt: a length of 10^8
        would take hundreds of GB first."""
        if width is not None:
            self.check_width(width)
        rows = self.n_virtual()
        if positions is not None and rows >= positions:
            length = getattr(self, "length", None)  # the option's own units: LAMP's length counts rows before pooling
            most = f"length at most {(positions - 1) * length // rows}" if length else f"at most {positions - 1} rows"
            raise ConfigError(
                f"the {self.method} prompt's {rows} rows fill the backbone's {positions} positions and leave none for "
                f"input: use a shorter prompt ({most})"
            )
        if positions is not None:
            self.check_positions(positions)
        if width is not None and free is not None:
            init_rows = self.init_rows()
            need = init_rows * width * 4 * INIT_COPIES
            if need > free:
                shortened = (  # LAMP's length x pool under --init-from: the rows before pooling are what is large
                    f" (its {init_rows} rows are shortened to {rows} only after the init: fewer rows before shortening)"
                    if init_rows != rows
                    else ""
                )
                raise ConfigError(
                    f"the {self.method} prompt's {init_rows} x {width} init needs about {need / 1e9:.1f} GB, "
                    f"{free / 1e9:.1f} GB of memory is free: use a shorter prompt{shortened}"
                )

    def check_width(self, width: int) -> None:
        """ConfigError when the method cannot be built on a backbone whose embeddings are `width` wide (a low-rank
        factor of a rank above it); nothing by default. Called by `check_fits`, before `build`, and by `lamp compare`
        for every method before its first cell (`lamp.compare.run.check_before_cells`)."""

    def check_modules(self, skeleton: Callable[[], nn.Module]) -> None:
        """ConfigError when the method cannot be built into the backbone's layers (a LoRA target that names no
        layer); nothing by default. `skeleton()` builds the backbone on the meta device (its modules, names and
        shapes, no weights: `lamp.architectures.skeleton_model`), so only a method that needs the layers pays for
        them. Called after `check_fits`, before the weights load, by `lamp train`, `lamp compare` (before its first
        cell) and `lamp bench` (before its first row)."""

    def check_positions(self, positions: int) -> None:
        """ConfigError when an option of the method reaches past a backbone of `positions` positions (DePT's offset
        rows); nothing by default. Called by `check_fits` once the prompt's rows are known to fit."""

    def skeleton(self) -> PromptConfig:
        """This config with the cheapest init (random, no text), for a module whose tensors are replaced as soon as
        it is built (loading an adapter, starting from a given prompt)."""
        if not self.declares.prompt_init:
            return self
        return dataclasses.replace(self, init="random", init_text=None)

    def for_task(self, task: Task) -> PromptConfig:
        """This config with init `task` made a text init from the task's own words (`Task.prompt_words`), so that
        what the prompt started from is recorded as its phrase; unchanged for any other init and for a method
        without a vanilla prompt's init. ConfigError for a task without words of its own (a template of fields
        only, free-form answers)."""
        if not self.declares.prompt_init or getattr(self, "init", None) != "task":
            return self
        words = task.prompt_words()
        if not words:
            raise ConfigError(
                f"init 'task' starts the prompt from task {task.name}'s own words, and it has none (its template is "
                "only fields, and its answers are free-form): pass --init text with --init-text PHRASE, or another init"
            )
        return dataclasses.replace(self, init="text", init_text=words)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}


class PromptModule(nn.Module):
    """A trainable prompt: `forward()` returns (n_virtual, d) rows to prepend to the input embeddings."""

    n_virtual: int

    def forward(self) -> torch.Tensor:
        raise NotImplementedError

    def unpooled(self) -> torch.Tensor:
        """The prompt rows before any shortening (pooling); the same as forward() for methods that do not shorten."""
        return self.forward()

    def effective_parameters(self) -> int:
        """Trainable entries the prompt actually depends on; fewer than the nominal count when some directions
        never reach the output (LAMP's pooling). Default: every trainable entry."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        """AdamW parameter groups; a method with several learning rates (DePT) returns one group per rate."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def embed_inputs(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hook on the input embeddings (batch x seq x d) before the prompt is prepended; the wrapper calls it only
        for methods that declare `input_embeddings`."""
        return inputs_embeds


class EmptyPrompt(PromptModule):
    """No prompt rows: an empty (0, d) prompt, and no parameters of its own. The base of methods that add no rows;
    the wrapper's `without_prompt` swaps it in for the bare backbone."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("empty", torch.zeros(0, width), persistent=False)
        self.n_virtual = 0

    def forward(self) -> torch.Tensor:
        return self.empty


def check_positive(name: str, value: int) -> None:
    POSITIVE_INT.check(name, value)


def check_rank_fits(rank: int, bound_name: str, bound: int) -> None:
    """Refuse a low-rank factor wider than the matrix it factors: a product through a `bound`-row (or -column)
    factor has rank <= bound, so a larger rank only adds parameters that cannot change the product's span."""
    if rank > bound:
        raise ConfigError(f"rank {rank} exceeds {bound_name} {bound}: pass rank <= {bound}")


def check_init(init: str, init_text: str | None) -> None:
    if init_text is not None and not isinstance(init_text, str):  # YAML and --set read `5` as a number
        raise ConfigError(
            f"init_text must be text, got {init_text!r}: pass a phrase (give a number with --init-text, or quote it "
            "in YAML: init_text: '5')"
        )
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}{did_you_mean([init], INITS)}: choose one of {', '.join(INITS)}")
    if init == "text" and not init_text:
        raise ConfigError("init='text' needs init_text: pass the phrase whose embeddings start the prompt")
    if init != "text" and init_text is not None:  # the phrase would be silently unused
        raise ConfigError(f"init_text is read only with init='text' (init is {init!r}): pass --init text, or drop it")


def embedding_rows(backbone: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """(len(ids), d) float32 rows as the backbone's input embedding layer returns them for token `ids`.

    Reading `get_input_embeddings().weight` instead would miss what the layer does in `forward`: Gemma's
    `ScaledWordEmbedding` multiplies by sqrt(d), so raw rows would be sqrt(d) too small for the backbone.
    """
    layer = backbone.get_input_embeddings()
    with torch.no_grad():
        return layer(ids.to(layer.weight.device)).detach().float()


def embedding_std(backbone: nn.Module, chunk: int = 8192) -> float:
    """Standard deviation of every entry of the embedding layer's output over the whole vocabulary.

    Equals `weight.std()` (and is computed that way) when the layer returns its weight's rows unchanged; otherwise
    (a scaled embedding) the rows are run through the layer in chunks, accumulated in float64.
    """
    layer = backbone.get_input_embeddings()
    weight = layer.weight.detach()
    probe = torch.arange(min(weight.shape[0], 16), device=weight.device)
    if torch.equal(embedding_rows(backbone, probe), weight[probe].float()):
        return weight.float().std().item()
    total = total_sq = 0.0
    for start in range(0, weight.shape[0], chunk):
        rows = embedding_rows(backbone, torch.arange(start, min(start + chunk, weight.shape[0]))).double()
        total += rows.sum().item()
        total_sq += rows.pow(2).sum().item()
    count = weight.numel()
    return math.sqrt(max(total_sq - total * total / count, 0.0) / (count - 1))


def initial_prompt(
    length: int,
    init: str,
    backbone: nn.Module,
    tokenizer: PreTrainedTokenizerBase | None = None,
    init_text: str | None = None,
    repeat: int = 1,
) -> torch.Tensor:
    """A vanilla (length x d) prompt in float32: vocabulary rows, a phrase's rows cycled to length, or noise
    (init `vocab`, `common-vocab`, `text` or `random`; `task` is made `text` by `PromptConfig.for_task` first).

    `repeat`: a text init writes each of the phrase's tokens that many times in a row (a method that average-pools
    blocks of `repeat` rows then starts from the phrase itself). A phrase longer than the prompt is cut to its
    first tokens, as PEFT's `PromptTuningInit.TEXT` does.

    Rows come from the embedding layer's output (`embedding_rows`), so a text init equals feeding those tokens.
    `vocab` samples token ids uniformly from the whole vocabulary, with replacement (PEFT's
    `PromptTuningInit.SAMPLE_VOCAB`). `common-vocab` samples them without replacement from the first
    `COMMON_TOKENS` ids, as Lester et al. 2021 (section 3, "sampled vocab") and prompt-tuning research code after
    it do: SentencePiece orders pieces by likelihood and BPE by merge order, so the first ids are the most common
    tokens (SmolLM2's also hold its 17 special tokens); a prompt longer than that cycles fresh permutations. Both draw
    from torch's global generator, so a training seed fixes them. `random` draws from a normal with the embedding
    output's own standard deviation, so the prompt starts on the scale the backbone expects.
    """
    weight = backbone.get_input_embeddings().weight
    if init == "task":
        raise ConfigError(
            "init='task' starts from a task's own words, which lamp train fills in: to wrap a model yourself, pass "
            "init='text' and the phrase as init_text"
        )
    if init == "vocab":
        ids = torch.randint(0, weight.shape[0], (length,))
        return embedding_rows(backbone, ids)
    if init == "common-vocab":
        common = min(COMMON_TOKENS, weight.shape[0])
        ids = torch.cat([torch.randperm(common) for _ in range(-(-length // common))])[:length]
        return embedding_rows(backbone, ids)
    if init == "text":
        if tokenizer is None:
            raise ConfigError("init='text' needs a tokenizer: call lamp.wrap(model, config, tokenizer=tokenizer)")
        ids = tokenizer(init_text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError(f"init_text {init_text!r} gives no tokens: pass a non-empty phrase")
        return embedding_rows(backbone, torch.tensor([ids[(i // repeat) % len(ids)] for i in range(length)]))
    return torch.randn(length, weight.shape[1], device=weight.device) * embedding_std(backbone)
