"""Training on Hugging Face Accelerate: one CPU, one GPU, or `accelerate launch` across processes.

`train()` reads top to bottom: `_setup` checks every input and builds the run (backbone, prompt, encoded splits,
optimizer; a resume restores its checkpoint), `_begin` records the run and scores the bare backbone, `_fit` runs the
optimizer steps, `_finish` scores the test split and writes the results. What the loop carries from step to step is a
`TrainState`, saved in every checkpoint. The run folder (lock, atomic writes, checkpoint checks, signals) is
`lamp.run_folder`; scoring is `lamp.evaluation`.

One optimizer step = `grad_accum` micro-batches of `batch_size` examples (the global batch is split across
processes). The data order is a seeded permutation per epoch (`step_indices`), so step t always sees the same examples
and a resumed run continues exactly where the checkpoint stopped. Evaluation runs every `eval_every` steps; the best
validation score keeps its adapter, and the test split is scored once, with the best adapter, at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from lamp.adapter import CONFIG as ADAPTER_CONFIG
from lamp.adapter import WEIGHTS, atomic_write, save_adapter
from lamp.architectures import skeleton_model
from lamp.backbones import SMOLLM2, load_config, load_model, load_tokenizer
from lamp.checks import (
    LEARNING_RATE,
    NON_NEGATIVE,
    POSITIVE_INT,
    SEED,
    Int,
    check_choices,
    choices,
    text_hint,
)
from lamp.data import DEFAULT_MAX_LENGTH, LazyEncoded, chat_wrapper, encode, fit_max_length
from lamp.devices import DTYPES as TORCH_DTYPES
from lamp.devices import free_memory_bytes, peak_memory_mb
from lamp.errors import ConfigError, Interrupted, TrainingError
from lamp.evaluation import DEFAULT_SEED, Evaluator, evaluate_adapter
from lamp.export import check_saved_prompt_fits, saved_prompt_config, wrap_saved_prompt
from lamp.methods import (
    DEFAULT_METHOD,
    PromptConfig,
    check_options,
    lookup,
    make_config,
)
from lamp.model import (
    PromptedModel,
    config_kind,
    config_positions,
    config_width,
    load_adapter,
    max_positions,
    wrap,
)
from lamp.plots import plot_training
from lamp.progress import progress
from lamp.run_folder import (
    ADAPTER,
    CHECKPOINT,
    LOCK,
    LOG,
    MIN_FREE_MB,
    PLOT,
    RESULTS,
    RUN_CONFIG,
    RUN_FILE_NAMES,
    StopRequest,
    check_run_folder,
    lock_folder,
    on_main_process,
    read_checkpoint,
    remove_leftovers,
    run_files,
    torch_save,
)
from lamp.scoring import SCORERS, answer_tokens, resolve_scorer
from lamp.tasks.base import FORMATS, Example, Task, resolve_format
from lamp.tasks.user import DATA_OPTIONS, TaskSpec, is_spec_file, spec_of, task_of, word_items
from lamp.tracking import PROJECT, TRACKING_DIR, hparams, parse_report_to, scalars

if TYPE_CHECKING:
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

    from lamp.data import Encoded

__all__ = [  # train's own names, and those of lamp.run_folder and lamp.evaluation that callers import from here
    "CHECKPOINT",
    "LOCK",
    "RESULTS",
    "RUN_CONFIG",
    "ACTIONS",
    "Evaluator",
    "TrainConfig",
    "TrainState",
    "evaluate_adapter",
    "lock_folder",
    "on_main_process",
    "remove_leftovers",
    "run_files",
    "differing_settings",
    "run_settings",
    "task_spec_differences",
    "same_setting",
    "saved_config",
    "step_indices",
    "torch_save",
    "train",
]

DTYPES = {"auto": "auto", **TORCH_DTYPES}
MIXED_PRECISIONS = ("auto", "no", "bf16", "fp16")
PATH_FIELDS = ("model", "init_from", "data_dir", "task", "train_file", "validation_file", "test_file")
"""TrainConfig fields that may name a local folder or file (`task`: a task YAML file): recorded absolute, and equal on
resume however the path is written (relative, absolute, through a link)."""
SHORTHANDS = ("length", "rank", "pool", "init", "init_text")
"""Method options with their own flags (--length...) and TrainConfig keywords (once TrainConfig fields of their own):
each goes into `method_options`, and runs saved before that hold them as top-level keys (`upgrade_saved`)."""


@dataclass
class TrainConfig:
    """Everything a run needs. Defaults are the offline default job (LAMP on SmolLM2-135M, polarity), measured
    to finish in minutes on 2 CPU cores; DePT's T5-Base recipe is `configs/dept-t5-base.yaml`."""

    task: str = "polarity"
    """Task name (see `lamp data --help`), or a task YAML file (your own data; see docs/tasks.md)."""
    model: str = "smollm2-135m"
    """`smollm2-135m` (offline), a local folder or a Hugging Face hub id."""
    method: str = DEFAULT_METHOD
    """Prompt method, a name of lamp.METHODS (lamp, pt, dept, dpt, lora, full). Its options: --method.NAME VALUE,
    --set NAME=VALUE, or the shorthands --length, --rank, --pool, --init, --init-text."""
    method_options: dict[str, Any] = field(default_factory=dict)
    """The options of the method's config that are given, as key=value (the others keep the method's defaults);
    checked against the method on construction."""
    length: InitVar[int | None] = None
    """Shorthand for --method.length: the prompt length l (method default when unset)."""
    rank: InitVar[int | None] = None
    """Shorthand for --method.rank: the rank r (method default when unset)."""
    pool: InitVar[int | None] = None
    """Shorthand for --method.pool: LAMP's pooling kernel and stride k (method default when unset)."""
    init: InitVar[str | None] = None
    """Shorthand for --method.init: the prompt init, vocab, common-vocab (the 5,000 most common tokens), text, task
    (the task's own words) or random (method default when unset)."""
    init_text: InitVar[str | None] = None
    """Shorthand for --method.init_text: the phrase for init=text."""
    lr: float = 0.03
    """Peak learning rate (the prompt's; methods may set their own per group), in (0, 1e6]."""
    batch_size: int = 16
    """Examples per micro-batch (global, over all processes)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    max_steps: int = 150
    """Optimizer steps."""
    warmup_steps: int | None = None
    """Linear warm-up steps (default: 10% of max_steps), then linear decay to 0."""
    weight_decay: float = 1e-5
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0 disables)."""
    max_length: int = DEFAULT_MAX_LENGTH
    """Maximum source tokens (causal: source plus target)."""
    eval_every: int = 50
    """Evaluate on validation every N steps (and at the end)."""
    eval_batch_size: int = 32
    """Batch size for evaluation."""
    max_eval_examples: int | None = None
    """Cap the validation examples used for model selection (the test split is always scored in full)."""
    scorer: str = field(default="auto", metadata=choices(*SCORERS))
    """auto (rank for causal LMs on classification tasks, generation otherwise), rank or generate."""
    seed: int = DEFAULT_SEED
    """Seed for data split, prompt init and data order."""
    data_dir: str | None = None
    """Folder with the official GLUE/SuperGLUE files (else $LAMP_DATA_DIR, then the hub)."""
    out: str = "runs/default"
    """Output folder."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint with the settings it was started with (other flags are
    refused, except --eval-batch-size, --data-dir, --gradient-checkpointing and --report-to)."""
    overwrite: bool = False
    """Replace a finished or interrupted run in --out."""
    mixed_precision: str = field(default="auto", metadata=choices(*MIXED_PRECISIONS))
    """auto (under `accelerate launch`: the launcher's --mixed_precision; else bf16 on a GPU that supports it, else
    fp32), no, bf16 or fp16 (given, it wins over the launcher's, and a line says so)."""
    report_to: str = "none"
    """Experiment trackers, through Accelerate: none, all (every one installed), or a comma list of tensorboard, wandb,
    mlflow, comet_ml, aim, clearml, dvclive. TensorBoard writes under OUT/runs (tensorboard --logdir OUT/runs)."""
    zero_shot: bool = True
    """Also score the bare backbone (no prompt, same format and scorer) on test: the floor a prompt must beat."""
    dtype: str = field(default="auto", metadata=choices(*DTYPES))
    """Backbone weights: auto (as saved), float32, bfloat16 or float16 (bfloat16 halves a 7B backbone's memory)."""
    gradient_checkpointing: bool = False
    """Recompute the backbone's activations in the backward pass (less memory, about a third more time)."""
    init_from: str | None = None
    """LAMP only: start from a saved prompt (a PEFT prompt-tuning or lamp adapter folder): the model first sees it,
    decomposed like any init (each saved row written --pool times, so the length is rows x pool)."""
    format: str = field(default="auto", metadata=choices("auto", *FORMATS))
    """Input format: t5 (T5/DePT text-to-text), natural (a template ending in an answer cue, natural label words) or
    auto (t5 for seq2seq backbones, natural for causal ones)."""
    chat_template: bool = False
    """Put each input in the model's chat template (instruct causal LMs), the label word as the assistant's answer."""
    train_file: str | None = None
    """Your own data: a CSV, TSV, JSON/JSONL or Parquet file of training rows (the task is named by --task if new,
    else by the file)."""
    validation_file: str | None = None
    """Your own validation rows; unset: 10% of the train rows (without --test-file: 80/10/10; docs/tasks.md)."""
    test_file: str | None = None
    """Your own test rows; unset: half of --validation-file, or 10% of the train rows."""
    dataset: str | None = None
    """Your own data from the Hugging Face hub: owner/name or owner/name:config (instead of --train-file)."""
    template: str | None = None
    """Your task's input: text with the row's fields in braces, e.g. 'Review: {text}\nSentiment:'."""
    label_words: str | None = None
    """Classification: the answers, comma-separated (e.g. negative,positive), in the order of the label indices."""
    label_values: str | None = None
    """Classification: what --label-field holds for each label word, comma-separated (unset: the words or 0, 1...)."""
    label_field: str | None = None
    """Classification: the row field that holds the label (unset: label)."""
    target_field: str | None = None
    """Free-form generation: the row field that holds the answer text (instead of --label-words)."""
    max_new_tokens: int | None = None
    """Free-form generation: tokens generated per answer when scoring (unset: 32)."""

    def __post_init__(
        self, length: int | None, rank: int | None, pool: int | None, init: str | None, init_text: str | None
    ) -> None:
        """Check every field once, here, for all callers (flags, YAML, the API); values from YAML arrive untyped. The
        shorthand keywords (`SHORTHANDS`) join `method_options`; the method and its options are checked last."""

        def flag(name: str) -> str:
            return "--" + name.replace("_", "-")

        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), str(f.type)
            if f.name in WORD_LISTS and isinstance(value, list):  # YAML's [a, b], as a task YAML takes it
                value = _comma_text(flag(f.name), value)
                setattr(self, f.name, value)
            if kind.startswith("str") and isinstance(value, os.PathLike):  # a Path for out, model, data_dir...
                value = os.fspath(value)
                setattr(self, f.name, value)
            if kind == "bool" and not isinstance(value, bool):
                raise ConfigError(f"{flag(f.name)} must be true or false, got {value!r}")
            if kind.startswith("str") and not (isinstance(value, str) or (value is None and "None" in kind)):
                raise ConfigError(f"{flag(f.name)} must be text, got {value!r}{text_hint(value)}")
        if not self.out.strip():  # "" would be the current folder, a run spilled among the user's files
            raise ConfigError("--out is empty: pass the run's folder, e.g. --out runs/mine")
        if self.resume and self.overwrite:
            raise ConfigError(
                f"--resume and --overwrite conflict: pass --resume to continue the run in {self.out}, or --overwrite "
                "to replace it"
            )
        # A local folder is recorded by its absolute path, so a run resumes (and its adapter loads) from anywhere.
        for name in PATH_FIELDS:
            value = getattr(self, name)
            if name == "task" and not is_spec_file(value):  # a task name, not a file
                continue
            if value and value != SMOLLM2 and Path(value).expanduser().exists():
                setattr(self, name, os.path.abspath(Path(value).expanduser()))
        if not isinstance(self.method_options, dict) or not all(isinstance(k, str) for k in self.method_options):
            raise ConfigError(f"method_options must be a mapping of option: value, got {self.method_options!r}")
        # Checked values are stored back as plain int / float (a numpy scalar would not go into results.json).
        for name in ("batch_size", "grad_accum", "max_steps", "eval_every", "eval_batch_size", "max_length"):
            setattr(self, name, POSITIVE_INT.check(flag(name), getattr(self, name)))
        if self.max_eval_examples is not None:
            self.max_eval_examples = POSITIVE_INT.check("--max-eval-examples", self.max_eval_examples)
        if self.warmup_steps is not None and not Int(0, self.max_steps).ok(self.warmup_steps):
            raise ConfigError(
                f"--warmup-steps must be an integer from 0 to --max-steps ({self.max_steps}), got {self.warmup_steps!r}"
            )
        self.seed = SEED.check("--seed", self.seed)
        self.lr = LEARNING_RATE.check("--lr", self.lr)
        self.weight_decay = NON_NEGATIVE.check("--weight-decay", self.weight_decay)
        self.max_grad_norm = NON_NEGATIVE.check("--max-grad-norm", self.max_grad_norm)
        check_choices(self)  # scorer, mixed_precision, dtype, format
        self.report_to = ",".join(parse_report_to(self.report_to)) or "none"
        shorthands = dict(zip(SHORTHANDS, (length, rank, pool, init, init_text), strict=True))
        self.method_options = with_shorthands(self.method_options, shorthands)
        check_options(self.method, self.method_options)
        if not self.init_from:  # with --init-from the saved prompt sets the length: train() reads it first
            self.method_config()

    def data_options(self) -> dict[str, Any]:
        """The options that describe a user's own task (`lamp.tasks.user.DATA_OPTIONS`), None where unset."""
        return {name: getattr(self, name) for name in DATA_OPTIONS}

    def method_config(self) -> PromptConfig:
        """The method's config: its defaults with `method_options` on top; ConfigError (one line) for a bad value."""
        return make_config(self.method, **self.method_options)

    def task_spec(self) -> TaskSpec | None:
        """The user task that `task` and the data options describe, read now (a task file as it is on disk); None
        for a built-in task. ConfigError for a task file that cannot be read (`lamp.tasks.user.spec_of`)."""
        default = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "task")
        return spec_of(self.task, self.data_options(), default)


WORD_LISTS = ("label_words", "label_values")
"""Options that a YAML config may give as a list (``label_words: [negative, positive]``) or as comma-separated text."""


def _comma_text(name: str, words: list[Any]) -> str:
    """A YAML list of words as the flag's comma-separated text (`word_items`); ConfigError for an empty list and for
    an item that holds a comma (joined, it would split into two words)."""
    if not words:
        raise ConfigError(f"{name} is an empty list: give at least two words, e.g. [negative, positive]")
    items = word_items(name, words)
    for word in items:
        if "," in word:
            raise ConfigError(
                f"{name} lists {word!r}: each item must be one word without a comma, e.g. [negative, positive]"
            )
    return ",".join(items)


def with_shorthands(options: dict[str, Any], shorthands: dict[str, Any]) -> dict[str, Any]:
    """`options` plus the shorthands that are set (not None); one given both ways with two values is refused."""
    given = {name: value for name, value in shorthands.items() if value is not None}
    for name, value in given.items():
        if name in options and options[name] != value:
            raise ConfigError(
                f"--{name.replace('_', '-')} {value} and method option {name}={options[name]!r} disagree: pass one"
            )
    return {**options, **given}


def upgrade_saved(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved run's settings (train_config.json, or the copy in its checkpoint or results.json) in today's keys.

    Runs saved while the shorthands were TrainConfig fields hold them as top-level keys (null unless given) next to
    `method_options`, which won where both set an option: the set ones join `method_options` that way, so the run
    compares equal to the same settings given today."""
    if not any(name in saved for name in SHORTHANDS):
        return saved
    upgraded = {k: v for k, v in saved.items() if k not in SHORTHANDS}
    options = saved.get("method_options", {})
    if isinstance(options, dict):  # anything else is left for the settings' check to name
        flat = {name: saved[name] for name in SHORTHANDS if saved.get(name) is not None}
        upgraded["method_options"] = {**flat, **options}
    return upgraded


SAFE_ON_RESUME = ("out", "resume", "overwrite", "eval_batch_size", "data_dir", "gradient_checkpointing", "report_to")
"""The fields a resumed run may change: none changes what is trained (data_dir: the same files elsewhere; report_to:
only where the numbers are also sent). Every other field must match the saved run; max_steps too, since the
learning-rate schedule depends on it."""


def saved_config(out: Path) -> dict[str, Any] | None:
    """The settings the run in `out` was started with: its RUN_CONFIG, else (older runs) its checkpoint's copy.
    Runs saved before --format existed were trained in the t5 format. A RUN_CONFIG that is there but unusable is a
    ConfigError naming it (not a fault of the checkpoint's)."""
    path, saved = out / RUN_CONFIG, None
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            saved = upgrade_saved(saved) if isinstance(saved, dict) else saved
            problem = _run_config_problem(saved)
        except OSError as error:
            problem = error.strerror or str(error)
        except ValueError as error:  # not JSON, or bytes that are not UTF-8
            problem = "not JSON: " + " ".join(str(error).split())[:160]
        except RecursionError:  # json's parser recurses once per nested [ or {
            problem = "JSON nested too deeply"
        if problem:
            raise ConfigError(
                f"{path} does not hold a lamp run's settings ({problem}): restore it, or pass --overwrite instead of "
                "--resume to start the run over (the file is left as it is)"
            )
    elif (out / CHECKPOINT).is_file():
        with contextlib.suppress(ConfigError, KeyError, TypeError, RecursionError):
            saved = upgrade_saved(json.loads(json.dumps(read_checkpoint(out / CHECKPOINT)["config"])))
    return {"format": "t5", **saved} if isinstance(saved, dict) else None


def _run_config_problem(saved: Any) -> str | None:
    """What makes a parsed RUN_CONFIG unusable. Every one lamp wrote names the task, model and method; fields of
    later versions may be missing (they keep their defaults)."""
    if not isinstance(saved, dict):
        return f"a JSON {type(saved).__name__}, not an object"
    missing = [name for name in ("task", "model", "method") if name not in saved]
    if missing:
        return f"no {', '.join(missing)}"
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        TrainConfig(**{k: v for k, v in saved.items() if k in known})
    except (ConfigError, TypeError) as error:
        return str(error)
    return None


def same_setting(name: str, saved: Any, wanted: Any) -> bool:
    """Whether a saved setting equals the wanted one; for PATH_FIELDS, two paths to the same folder are equal
    (relative or absolute, through a link), as runs saved before paths were recorded absolute hold them as typed."""
    if saved == wanted:
        return True
    if name in PATH_FIELDS and isinstance(saved, str) and isinstance(wanted, str):
        with contextlib.suppress(OSError):
            return os.path.samefile(Path(saved).expanduser(), Path(wanted).expanduser())
    return False


def _shown(value: Any) -> str:
    """A setting's value in a one-line message: lists and objects as JSON; text quoted (as JSON) where it holds
    what would not show as it is (a line break, a tab, spaces at its ends, nothing)."""
    if value is None:
        return "no value"
    if isinstance(value, dict | list):
        return json.dumps(value)
    if not isinstance(value, str):
        return str(value)
    quoted = json.dumps(value, ensure_ascii=False)
    return quoted if value != value.strip() or quoted[1:-1] != value or not value else value


def option_flag(name: str) -> str:
    """The flag of method option `name`: its shorthand (--length) if it has one, else --method.NAME."""
    return "--" + name.replace("_", "-") if name in SHORTHANDS else f"--method.{name}"


TASK_SPEC = "task_spec"
"""The settings key of a user task's spec (`lamp.tasks.user.TaskSpec.to_dict`): what the run read from its task file
and flags, recorded so that a task file edited since is told from the one the run trained on."""


ACTIONS = ("resume", "overwrite")
"""What one command does to its --out folder: not a setting of the run, so never recorded, and never read from a
--config file (a run's record of an --overwrite run must not overwrite the next run)."""


def run_settings(config: TrainConfig, spec: TaskSpec | None) -> dict[str, Any]:
    """The settings a run records (RUN_CONFIG, its checkpoint, results.json `config`), as JSON values: the
    TrainConfig and, for a user's own task, its spec (`TASK_SPEC`; `spec` is `config.task_spec()`, read once)."""
    settings = json.loads(json.dumps(dataclasses.asdict(config)))
    for action in ACTIONS:
        del settings[action]
    return {**settings, TASK_SPEC: spec.to_dict()} if spec is not None else settings


def task_spec_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(spec key, wanted value, saved value) for each key of a user task's spec that differs between `wanted` and
    `saved` (`run_settings`; data file paths compared as files, like `same_setting`'s); none for a built-in task or
    a run saved before specs were recorded."""
    mine, theirs = wanted.get(TASK_SPEC), saved.get(TASK_SPEC)
    if not isinstance(mine, dict) or not isinstance(theirs, dict):
        return []
    keys = [*mine, *(key for key in theirs if key not in mine)]
    return [(k, mine.get(k), theirs.get(k)) for k in keys if not same_setting(k, theirs.get(k), mine.get(k))]


def differing_settings(saved: dict[str, Any], wanted: dict[str, Any], ignored: tuple[str, ...]) -> list[str]:
    """The keys of `wanted` (`run_settings`) that `saved` holds with another value, `ignored` aside; a key `saved`
    lacks (written before it existed) counts as the same. Where both hold a user task's spec, the spec is compared
    key by key (`task_spec_differences`), and where both name a task file its path is not: a file moved or copied
    that reads the same spec is the same task."""
    differ = [
        k
        for k in wanted
        if k not in ignored and k != TASK_SPEC and k in saved and not same_setting(k, saved[k], wanted[k])
    ]
    both = isinstance(wanted.get(TASK_SPEC), dict) and isinstance(saved.get(TASK_SPEC), dict)
    spec_differs = not both or bool(task_spec_differences(saved, wanted))
    if TASK_SPEC not in ignored and TASK_SPEC in wanted and TASK_SPEC in saved and spec_differs:
        differ.append(TASK_SPEC)
    files = all(isinstance(side.get("task"), str) and is_spec_file(side["task"]) for side in (saved, wanted))
    if "task" in differ and both and files:  # a task file's path is where it is, its spec what it is
        differ.remove("task")
    return differ


def setting_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(flag, wanted value, saved value) for each setting of `wanted` (`run_settings`) that `saved` (an upgraded
    saved run) holds with another value, SAFE_ON_RESUME fields and the task spec (`task_spec_differences`) aside.
    Method options are compared one by one, and not at all when the method itself differs."""
    differ = differing_settings(saved, wanted, (*SAFE_ON_RESUME, TASK_SPEC))
    found = []
    for name in differ:
        if name != "method_options":
            found.append(("--" + name.replace("_", "-"), wanted[name], saved[name]))
        elif "method" not in differ:  # another method's options are no comparison
            mine, theirs = wanted[name], saved[name] if isinstance(saved[name], dict) else {}
            for option in [*mine, *(o for o in theirs if o not in mine)]:
                if mine.get(option) != theirs.get(option):
                    found.append((option_flag(option), mine.get(option), theirs.get(option)))
    return found


def check_resume(config: TrainConfig, out: Path) -> None:
    """Refuse a resume whose settings contradict the saved run's (only SAFE_ON_RESUME fields may change)."""
    saved = saved_config(out)
    if saved is None and (out / CHECKPOINT).is_file():
        read_checkpoint(out / CHECKPOINT)  # neither copy of the settings can be read: say so now, not after loading
    if saved is not None:
        wanted = run_settings(config, config.task_spec())
        differ = setting_differences(saved, wanted)
        if differ:
            parts = ", ".join(f"{flag} {_shown(mine)} (the run has {_shown(theirs)})" for flag, mine, theirs in differ)
            raise ConfigError(
                f"{out} holds a run with other settings: {parts}; drop {' '.join(f for f, _, _ in differ)} to continue "
                "it, or pass --overwrite instead of --resume to start over (a key of a --config file counts as its "
                "flag)"
            )
        if changed := task_spec_differences(saved, wanted):  # the same flags, but the task file was edited since
            parts = ", ".join(f"{key} {_shown(mine)} (the run has {_shown(theirs)})" for key, mine, theirs in changed)
            renamed = next((theirs for key, _, theirs in changed if key == "name"), None)
            named = renamed is not None and is_spec_file(config.task)  # a file's name defaults to its own
            hint = f" (a task file's name is the file's own unless it says one: add `name: {renamed}`)" if named else ""
            raise ConfigError(
                f"{out} holds a run of another task spec than {config.task} reads now: {parts}; restore the task "
                f"file{hint} to continue the run, or pass --overwrite instead of --resume to start over"
            )
    if not (out / CHECKPOINT).is_file() and (out / RESULTS).is_file():
        raise ConfigError(
            f"{out} holds a finished run without its checkpoint, so there is nothing to resume: pass --overwrite "
            "instead of --resume to train it again"
        )


def check_output(config: TrainConfig, out: Path) -> None:
    """With the folder's lock held: refuse to clobber another run, check the folder is writable, clear leftovers."""
    try:
        held = check_run_folder(out)
        if held and not (config.resume or config.overwrite):
            raise ConfigError(f"{out} already holds a run: pass --resume to continue it, --overwrite to replace it")
        if config.resume and not held:  # a typo in --out would otherwise start a new run, silently
            raise ConfigError(f"{out} holds no run to resume: drop --resume to start one there, or check --out")
        if config.resume:
            check_resume(config, out)
        probe = out / ".write-test-0"
        probe.write_bytes(b"\0" * 1024 * 1024)
        probe.unlink()
        free_mb = shutil.disk_usage(out).free / 2**20
        remove_leftovers(out)
    except OSError as error:
        raise ConfigError(f"cannot write to output folder {out} ({error.strerror}): choose another --out") from None
    if free_mb < MIN_FREE_MB:
        raise ConfigError(f"only {free_mb:.0f} MB free under {out}: free some space or choose another --out")


def prepare_output(config: TrainConfig, accelerator: Any, cleanup: contextlib.ExitStack) -> Path:
    """Lock and check the output folder before anything is loaded; nothing the folder holds is changed here.

    The lock is released when `cleanup` closes. Only the main process locks and checks: the processes of one
    `accelerate launch` run share the folder and must not refuse each other. The others get its verdict, so that
    all of them stop together on a refusal.
    """
    out = Path(config.out)

    def claim() -> None:
        check_run_folder(out)  # before the lock, which would leave its file in a folder that is not lamp's
        cleanup.callback(lock_folder(out).release)
        check_output(config, out)

    on_main_process(accelerator, claim)
    return out


def start_run(config: TrainConfig, out: Path, settings: dict[str, Any]) -> None:
    """Just before training: remove the old run that --overwrite replaces (only now, once every input of the new run
    has been checked), and record the run's `settings` (`run_settings`) for --resume."""
    if config.overwrite and not config.resume:
        try:  # the run's own files only: anything else in the folder is the user's and stays
            for name in RUN_FILE_NAMES:
                (out / name).unlink(missing_ok=True)
            for name in (WEIGHTS, ADAPTER_CONFIG):
                (out / ADAPTER / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                (out / ADAPTER).rmdir()  # only once empty
            if (out / TRACKING_DIR).is_dir():  # the old run's tracker files (TensorBoard events...)
                shutil.rmtree(out / TRACKING_DIR)
        except OSError as error:
            raise ConfigError(
                f"cannot remove the old run in {out} ({error.strerror}): remove it yourself or choose another --out"
            ) from None
    text = json.dumps(settings, indent=2) + "\n"
    atomic_write(out / RUN_CONFIG, lambda tmp: Path(tmp).write_text(text))


LAUNCHER_PRECISION = "ACCELERATE_MIXED_PRECISION"
"""Where `accelerate launch --mixed_precision X` (or its config file) hands X to the script
(accelerate/utils/launch.py); Accelerator reads it when given no mixed_precision (accelerate/state.py)."""


def resolve_mixed_precision(wanted: str) -> tuple[str, str | None]:
    """The mixed precision a run uses, and a line to print when --mixed-precision overrides the launcher's.

    auto defers to the launcher (`accelerate launch` always sets LAUNCHER_PRECISION, `no` by default); without one:
    bf16 on a GPU that supports it, else no. An explicit no, bf16 or fp16 wins over the launcher's."""
    launcher = os.environ.get(LAUNCHER_PRECISION, "").strip().lower() or None
    if wanted == "auto":
        if launcher:
            return launcher, None
        return ("bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"), None
    if launcher in (None, wanted):
        return wanted, None
    return wanted, f"lamp train: mixed precision {wanted} (--mixed-precision), not the launcher's {launcher}"


@dataclass
class TrainState:
    """What the training loop carries from step to step. Every checkpoint saves it (`as_dict`: the checkpoint's
    "state") and a resume reads it back (`from_dict`); `train`'s callback gets it after every step."""

    step: int = 0
    """Optimizer steps done."""
    best_score: float = -math.inf
    """The best validation score so far (-inf before the first validation)."""
    best_step: int = 0
    """The first step that reached `best_score`; its adapter is OUT/adapter (0 before the first validation)."""
    zero_shot: dict[str, float] | None = None
    """The bare backbone's test metrics (None until scored; stays None with --no-zero-shot)."""
    log: list[dict[str, Any]] = field(default_factory=list)
    """log.jsonl's rows: {"step", "loss", "lr"} for every step, {"step", "validation"} for every validation."""
    elapsed_s: float = 0.0
    """Wall-clock seconds up to the last checkpoint, earlier invocations of a resumed run included."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainState:
        """The state a checkpoint holds (checked by `read_checkpoint`); older checkpoints lack zero_shot and
        elapsed_s, which keep their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})


@dataclass
class _Run:
    """What `_setup` builds once, for the loop (`_fit`) and the final test (`_finish`)."""

    config: TrainConfig
    settings: dict[str, Any]  # what the run records of its settings (`run_settings`)
    accelerator: Accelerator
    out: Path
    task: Task
    tokenizer: PreTrainedTokenizerBase
    model: PromptedModel
    ddp_model: torch.nn.Module  # the model as Accelerate prepared it (DDP under `accelerate launch`)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    splits: dict[str, list[Example]]
    train_encoded: LazyEncoded
    validation: list[Example]  # the first max_eval_examples validation rows
    val_encoded: list[Encoded]
    test_encoded: list[Encoded]
    evaluate: Evaluator
    scorer: str
    input_format: str
    adapter_extra: dict[str, Any]  # what adapter.json records besides the prompt: task, format, seed, ...
    started: float  # time.perf_counter() when this invocation began loading
    state: TrainState = field(default_factory=TrainState)
    saved_step: int | None = None  # the step the checkpoint on disk holds (None: no checkpoint yet)
    earlier_s: float = 0.0  # a resumed run's elapsed_s when this invocation began

    def on_disk(self) -> str:
        """What the run folder really holds now, for the message of a stop or a failure."""
        kept = [] if self.saved_step is None else [f"the last good checkpoint (step {self.saved_step})"]
        if (self.out / ADAPTER / WEIGHTS).is_file():
            kept.append("the adapter of the best validation step")
        if not kept:
            first = min(self.config.eval_every, self.config.max_steps)
            return f"nothing is saved in {self.out} yet (the first checkpoint comes at step {first})"
        return f"{' and '.join(kept)} {'are' if len(kept) > 1 else 'is'} kept in {self.out}"

    def written(self, write: Callable[[], Any]) -> None:
        """One of the run's writes; a failed one (a full disk...) also says what is still on disk and how to go on."""
        try:
            write()
        except ConfigError as error:
            raise ConfigError(f"{error}; {self.on_disk()}: resume there with --resume once it can be written") from None

    def elapsed_s(self) -> float:
        """Wall-clock seconds of the whole run: earlier invocations up to their last checkpoint, then this one."""
        return self.earlier_s + time.perf_counter() - self.started

    def save_checkpoint(self) -> None:
        """The prompt, optimizer, scheduler, torch RNG and `state`, in one file written whole (`lamp.run_folder`)."""
        self.state.elapsed_s = self.elapsed_s()
        if self.accelerator.is_main_process:
            payload = {
                "prompt": self.model.prompt_encoder.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "state": self.state.as_dict(),
                "config": self.settings,
            }
            checkpoint = self.out / CHECKPOINT
            self.written(lambda: atomic_write(checkpoint, lambda tmp: torch_save(payload, tmp)))
        self.saved_step = self.state.step
        self.accelerator.wait_for_everyone()


def train(config: TrainConfig, callback: Callable[[int, TrainState], None] | None = None) -> dict[str, Any]:
    """Run one training job and return its results (also written to `<out>/results.json`).

    `callback(step, state)` is called after every optimizer step (progress hooks; tests use it to interrupt).
    The output folder is locked for the whole run, and unlocked however the run ends. An interrupt (Ctrl-C,
    SIGTERM) is reported in one line that says how to resume, and raised as `Interrupted`.
    """
    try:
        with contextlib.ExitStack() as cleanup:
            run = _setup(config, cleanup)
            _begin(run, cleanup)
            _fit(run, callback)
            return _finish(run)
    except Interrupted:  # the training loop said what it kept
        raise
    except KeyboardInterrupt:  # before or after the loop (loading, zero-shot scoring, the final test)
        from accelerate import PartialState

        if PartialState().is_main_process:
            print(f"lamp train: interrupted; resume with --resume --out {config.out}", file=sys.stderr)
        raise Interrupted from None


def _setup(config: TrainConfig, cleanup: contextlib.ExitStack) -> _Run:
    """Check every input, then load and wrap the backbone, encode the splits and build the optimizer; a resume
    restores its checkpoint. A bad option, folder or checkpoint fails before anything is loaded."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    mixed, note = resolve_mixed_precision(config.mixed_precision)
    trackers = [] if config.report_to == "none" else config.report_to.split(",")
    accelerator = Accelerator(
        mixed_precision=mixed, log_with=trackers or None, project_dir=str(Path(config.out) / TRACKING_DIR)
    )
    if note:
        accelerator.print(note)
    # A resume is checked against its run first (an option that contradicts the run is named as such); a new run's
    # folder only once its options are known to be good, so that a typo leaves no folder behind.
    out = prepare_output(config, accelerator, cleanup) if config.resume else None
    if not lookup(config.method).config.declares.trains:
        raise ConfigError(
            f"method {config.method!r} has nothing to train: score the bare backbone with lamp compare's floors "
            "(floors: [none]), or choose a method that trains"
        )
    prompt_config, backbone_config = method_setup(config, free_memory_bytes(accelerator.device))
    spec = config.task_spec()  # a user's own task, None for a built-in one
    started = time.perf_counter()

    # The task, its format, chat template, label words and data need the tokenizer and the model kind, not the
    # weights: a bad one is refused before they load, and before a new run's folder is made. The data is read once.
    tokenizer = load_tokenizer(config.model)
    kind = config_kind(backbone_config)
    input_format, task, splits, scorer, reserve = task_setup(config, spec, tokenizer, kind)
    prompt_config = prompt_config.for_task(task)  # init `task`: the text init of this task's own words
    check_batch_fits(config, len(splits["train"]))
    out = out or prepare_output(config, accelerator, cleanup)
    checkpoint = out / CHECKPOINT
    saved = read_checkpoint(checkpoint) if config.resume and checkpoint.is_file() else None  # before the weights
    adapter_extra = {
        "task": task.name,
        "format": input_format,
        "chat_template": config.chat_template,
        "seed": config.seed,  # the split seed: `lamp eval` scores the same test rows, never training rows
        "max_length": config.max_length,
    }
    if task.spec is not None:  # a user task travels with its adapters, so eval and predict can rebuild it
        adapter_extra["task_spec"] = dict(task.spec)
    set_seed(config.seed)  # the prompt's init draws from it
    model = _wrapped_backbone(config, prompt_config, tokenizer).to(accelerator.device)
    model.backbone_name = config.model
    max_length = fit_max_length(config.max_length, model.backbone, model.n_virtual, reserve)
    if max_length < config.max_length:
        accelerator.print(  # a limit, not a cut: only inputs longer than it lose tokens
            f"lamp train: --max-length lowered to {max_length} tokens so that the prompt's {model.n_virtual} rows, "
            f"an input and its answer fit the backbone's {max_positions(model.backbone)} positions"
        )
    train_encoded = LazyEncoded(splits["train"], tokenizer, kind, max_length, reserve)
    validation = splits["validation"][: config.max_eval_examples] if config.max_eval_examples else splits["validation"]
    val_encoded = encode(validation, tokenizer, kind, max_length, reserve, scoring=True)
    test_encoded = encode(splits["test"], tokenizer, kind, max_length, reserve, scoring=True)
    evaluate = Evaluator(accelerator, task, tokenizer, scorer, config.eval_batch_size)

    optimizer = torch.optim.AdamW(
        model.prompt_encoder.optimizer_groups(config.lr), lr=config.lr, weight_decay=config.weight_decay
    )
    warmup = config.warmup_steps if config.warmup_steps is not None else round(0.1 * config.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, config.max_steps)
    ddp_model, optimizer = accelerator.prepare(model, optimizer)
    run = _Run(
        config=config,
        settings=run_settings(config, spec),
        accelerator=accelerator,
        out=out,
        task=task,
        tokenizer=tokenizer,
        model=model,
        ddp_model=ddp_model,
        optimizer=optimizer,
        scheduler=scheduler,
        splits=splits,
        train_encoded=train_encoded,
        validation=validation,
        val_encoded=val_encoded,
        test_encoded=test_encoded,
        evaluate=evaluate,
        scorer=scorer,
        input_format=input_format,
        adapter_extra=adapter_extra,
        started=started,
    )
    if saved is not None:
        _restore(run, saved, checkpoint)
    elif config.resume:
        accelerator.print(f"lamp train: no checkpoint in {out}, starting from step 0")
    return run


def _wrapped_backbone(
    config: TrainConfig, prompt_config: PromptConfig, tokenizer: PreTrainedTokenizerBase
) -> PromptedModel:
    """The backbone (frozen) with the method's prompt in front: a new prompt of `prompt_config`, or with --init-from
    the saved prompt, decomposed as the method decomposes its own init."""
    backbone = load_model(config.model, dtype=DTYPES[config.dtype])
    if config.gradient_checkpointing:  # recompute activations in backward: memory for 7B/11B backbones
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.init_from:  # the saved prompt sets the length; the method decomposes it as it would its own init
        model = wrap_saved_prompt(backbone, config.init_from, config.method, tokenizer, **config.method_options)
    else:
        model = wrap(backbone, prompt_config, tokenizer)
    return model


def _restore(run: _Run, saved: dict[str, Any], checkpoint: Path) -> None:
    """Continue from a checkpoint that `read_checkpoint` checked: prompt, optimizer, scheduler, RNG and state."""
    try:
        run.model.prompt_encoder.load_state_dict(saved["prompt"])
        run.optimizer.load_state_dict(saved["optimizer"])
        run.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
    except (RuntimeError, KeyError, ValueError, TypeError) as error:
        raise ConfigError(
            f"checkpoint {checkpoint} does not fit this run ({str(error).strip().splitlines()[0][:160]}): pass "
            "--overwrite instead of --resume to start the run over (the file is left as it is)"
        ) from None
    run.state = TrainState.from_dict(saved["state"])
    run.saved_step = run.state.step
    # A resumed run's wall_s counts the earlier invocations up to their last checkpoint (work lost after it is not).
    run.earlier_s = run.state.elapsed_s


def _begin(run: _Run, cleanup: contextlib.ExitStack) -> None:
    """Record the run's settings (an --overwrite removes the old run only now), start the trackers, and score the
    bare backbone on test once: the floor a prompt must beat."""
    config, accelerator = run.config, run.accelerator
    if accelerator.is_main_process:
        start_run(config, run.out, run.settings)
    accelerator.wait_for_everyone()
    if config.report_to != "none":  # after start_run, so that --overwrite has cleared the old run's tracker files
        accelerator.init_trackers(PROJECT, config=hparams(dataclasses.asdict(config)))
        cleanup.callback(_finish_trackers, accelerator)
    if config.zero_shot and run.state.zero_shot is None:
        with run.model.without_prompt() as bare:
            run.state.zero_shot = run.evaluate(bare, run.splits["test"], run.test_encoded)
        accelerator.print(f"zero-shot test {run.task.name} (no prompt): {run.state.zero_shot}")


def _finish_trackers(accelerator: Accelerator) -> None:
    """accelerator.end_training() without its destroy_process_group(): the next train() of a `lamp compare` grid under
    `accelerate launch` still needs the group. Only the main process holds trackers."""
    for tracker in accelerator.trackers:
        tracker.finish()


class TaskSetup(NamedTuple):
    """A run's task as its config asks for it on a backbone (`task_setup`)."""

    input_format: str  # the format `--format` resolved to (auto: by the backbone's kind)
    task: Task  # in that format, in the chat template if asked
    splits: dict[str, list[Example]]  # train, validation, test
    scorer: str  # rank or generate, `--scorer` resolved
    reserve: int  # tokens the scorer appends to every source (`lamp.scoring.answer_tokens`)


def task_setup(config: TrainConfig, spec: TaskSpec | None, tokenizer: Any, kind: str) -> TaskSetup:
    """The task, format, chat template, splits and scorer of `config` (a user's task: its `spec`) for a backbone of
    `kind`, from the tokenizer and the backbone's config, not its weights: a bad one is refused before they load.
    Shared by training, the floors and `lamp compare`'s check before its first cell. ConfigError / DataError."""
    from lamp.tasks import load_splits  # looked up per call: tests replace lamp.tasks.load_splits

    input_format = resolve_format(config.format, kind)
    task = task_of(config.task, spec, input_format)
    if config.chat_template:
        task = task.in_chat(chat_wrapper(tokenizer, kind))
    splits = load_splits(task, config.data_dir, config.seed)
    scorer = resolve_scorer(config.scorer, kind, task, tokenizer)
    return TaskSetup(input_format, task, splits, scorer, answer_tokens(tokenizer, kind, task, scorer))


def check_input_room(config: TrainConfig, setup: TaskSetup, tokenizer: Any, kind: str) -> None:
    """ConfigError when `--max-length` leaves a row to score nothing of its input beside its cue (`lamp.data.truncate`),
    tried on the first validation row: the cue is the template's, the same length for every row of most tasks."""
    encode(setup.splits["validation"][:1], tokenizer, kind, config.max_length, setup.reserve, scoring=True)


def method_setup(config: TrainConfig, free: int | None = None) -> tuple[PromptConfig, Any]:
    """The method's config as the run builds it, and the backbone's `PretrainedConfig` it was checked against,
    before any weight or prompt is allocated: from `--init-from`'s saved prompt (which sets the length; its files are
    read and its options checked first, before the backbone's config) or from the given options, then
    `PromptConfig.check_fits` (width, positions, and `free` bytes of the device; None: unchecked) and
    `PromptConfig.check_modules` (the backbone's layers). ConfigError (or AdapterError for a saved prompt that cannot
    be read) for each misfit. Shared by `train` and `lamp compare`'s check before its cells."""
    prompt_config, saved_for = (
        saved_prompt_config(config.init_from, config.method, config.method_options)
        if config.init_from
        else (config.method_config(), None)
    )
    backbone_config = load_config(config.model)  # its config, not its weights: a misfit is refused before they load
    if saved_for is not None:
        check_saved_prompt_fits(config.init_from, saved_for, backbone_config)
    prompt_config.check_fits(config_positions(backbone_config), config_width(backbone_config), free)
    prompt_config.check_modules(functools.partial(skeleton_model, backbone_config))
    return prompt_config, backbone_config


def check_batch_fits(config: TrainConfig, examples: int) -> None:
    """ConfigError when one step (`batch_size` x `grad_accum` rows) asks for more rows than the `examples` training
    rows: a batch would repeat rows, and a huge one would spend minutes filling itself before any message."""
    per_step = config.batch_size * config.grad_accum
    if per_step > examples:
        accumulated = f" x --grad-accum {config.grad_accum}" if config.grad_accum > 1 else ""
        most = examples // config.grad_accum
        if most:
            fix = f"pass --batch-size at most {most}"
        elif config.batch_size <= examples:
            fix = f"pass --grad-accum at most {examples // config.batch_size}"
        else:
            fix = f"pass --batch-size at most {examples} and --grad-accum 1"
        raise ConfigError(
            f"--batch-size {config.batch_size}{accumulated} takes {per_step} rows a step, and the training split has "
            f"{examples}: {fix}"
        )


def step_indices(config: TrainConfig, step: int, examples: int) -> list[list[int]]:
    """The train-row indices of each micro-batch of global step `step` (0-based), before they are split over
    processes: a pure function of the seed (one seeded permutation of the `examples` rows per epoch), so a resumed run
    continues the same order."""
    per_step = config.batch_size * config.grad_accum
    first = step * per_step
    epoch = first // examples
    order = torch.randperm(examples, generator=torch.Generator().manual_seed(config.seed + epoch))
    indices = [order[(first + i) % len(order)].item() for i in range(per_step)]
    return [indices[i : i + config.batch_size] for i in range(0, per_step, config.batch_size)]


def _fit(run: _Run, callback: Callable[[int, TrainState], None] | None) -> None:
    """Optimizer steps up to max_steps, from the checkpoint's step on a resume. Every eval_every steps (and at the
    end): validation, the best adapter kept, a checkpoint. SIGINT/SIGTERM stop at the next step boundary with a
    checkpoint (`StopRequest`), raised as `Interrupted`."""
    from lamp.data import collate_train, pad_id  # looked up per run: benchmarks/trainer_overhead.py records batches

    config, accelerator, state = run.config, run.accelerator, run.state
    rank, world = accelerator.process_index, accelerator.num_processes
    pad, kind = pad_id(run.tokenizer), run.model.kind
    params = [p for p in run.model.parameters() if p.requires_grad]
    run.model.train()
    bar = progress(
        total=config.max_steps,
        initial=state.step,
        enabled=accelerator.is_main_process,
        desc=f"{config.method} {run.task.name}",
    )
    pending: list[tuple[int, torch.Tensor, float]] = []  # (step, loss, lr) of steps not logged yet
    stop = StopRequest()
    # True only between steps: mid-step (a second signal stops at once) the state is half a step, never saved.
    at_boundary = True
    try:
        while state.step < config.max_steps:
            at_boundary, current = False, state.step + 1
            micro = step_indices(config, state.step, len(run.train_encoded))
            batches = [collate_train([run.train_encoded[j] for j in m[rank::world]], pad, kind) for m in micro]
            loss = _optimizer_step(run, batches, params)
            state.step += 1
            step = state.step
            bar.update(1)
            pending.append((step, loss, run.scheduler.get_last_lr()[0]))
            if step % 10 == 0 or step % config.eval_every == 0 or step == config.max_steps:
                _log_losses(run, pending, bar)
            if step % config.eval_every == 0 or step == config.max_steps:
                _validate(run, step, bar)
                run.save_checkpoint()
            at_boundary = True
            if callback is not None:
                callback(step, state)
            if stop.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        if at_boundary:
            if pending:
                _log_losses(run, pending, bar)
            run.save_checkpoint()
            note = f"stopped at step {state.step}, checkpoint saved"
        else:  # the last consistent checkpoint stays as it is
            note = f"stopped during step {current}; {run.on_disk()}"
        bar.close()  # so that the note starts its own line
        if accelerator.is_main_process:
            print(f"lamp train: {note}; resume with --resume --out {run.out}", file=sys.stderr)
        raise Interrupted from None
    finally:
        bar.close()  # before any error propagates, so that its line does not continue the bar's
        stop.restore()


def _optimizer_step(run: _Run, batches: list[dict[str, Any]], params: list[torch.nn.Parameter]) -> torch.Tensor:
    """One optimizer step over this process's micro-batches (gradients synchronised on the last only); the step's
    loss, left on the device (read in `_log_losses`, one host sync per flush)."""
    accelerator = run.accelerator
    losses: list[torch.Tensor] = []
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        sync = nullcontext() if last else accelerator.no_sync(run.ddp_model)
        with sync, accelerator.autocast():
            batch = {k: (v.to(accelerator.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
            loss = run.ddp_model(**batch).loss / len(batches)
            accelerator.backward(loss)
        losses.append(loss.detach())
    if run.config.max_grad_norm > 0:
        accelerator.clip_grad_norm_(params, run.config.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return torch.stack(losses).sum()


def _log_losses(run: _Run, pending: list[tuple[int, torch.Tensor, float]], bar: Any) -> None:
    """Turn the pending steps' loss tensors into log rows (averaged over processes) and empty `pending`; a NaN or inf
    loss stops the run (TrainingError saying what the folder keeps)."""
    values = run.accelerator.reduce(torch.stack([loss for _, loss, _ in pending]), "mean").tolist()
    for (step, _, lr), value in zip(pending, values, strict=True):
        if not math.isfinite(value):
            raise TrainingError(
                f"loss became {value} at step {step}: lower --lr or check the data, and start over with "
                f"--overwrite; {run.on_disk()}"
            )
        run.state.log.append({"step": step, "loss": value, "lr": lr})
        run.accelerator.log({"train/loss": value, "train/lr": lr}, step=step)
    pending.clear()
    bar.set_postfix(loss=f"{run.state.log[-1]['loss']:.4f}")


def _validate(run: _Run, step: int, bar: Any) -> None:
    """Score the validation rows; a better score than any before keeps this step's adapter in OUT/adapter."""
    state = run.state
    metrics = run.evaluate(run.model, run.validation, run.val_encoded)
    state.log.append({"step": step, "validation": metrics})
    run.accelerator.log(scalars("validation", metrics), step=step)
    bar.set_postfix(loss=f"{state.log[-2]['loss']:.4f}", val=f"{metrics['score']:.2f}")
    if metrics["score"] > state.best_score:
        state.best_score, state.best_step = metrics["score"], step
        if run.accelerator.is_main_process:
            run.written(lambda: save_adapter(run.model, run.out / ADAPTER, extra=run.adapter_extra))


def _finish(run: _Run) -> dict[str, Any]:
    """Score the test split once with the best validation step's adapter, and write results.json, log.jsonl and the
    training plot."""
    config, accelerator, state, model = run.config, run.accelerator, run.state, run.model
    accelerator.wait_for_everyone()
    # A fresh backbone: methods that change the backbone itself (LoRA, full fine-tuning) must not load twice into one.
    best = load_adapter(load_model(config.model), run.out / ADAPTER).to(accelerator.device)
    evaluations = {r["step"]: r["validation"] for r in state.log if "validation" in r}
    test = run.evaluate(best, run.splits["test"], run.test_encoded)
    predicted = Counter(str(p) for p in run.evaluate.last_predictions)  # e.g. {"0": 400, "1": 472}; "None" = invalid
    accelerator.log({**scalars("test", test), **scalars("zero_shot", state.zero_shot or {})}, step=state.step)
    results = {
        "task": run.task.name,
        "method": config.method,
        "model": config.model,
        "seed": config.seed,
        "scorer": run.scorer,
        "format": run.input_format,
        "mixed_precision": accelerator.mixed_precision,
        "trainable_params": model.num_trainable_parameters(),
        "effective_trainable_params": model.num_effective_parameters(),
        "n_virtual": model.n_virtual,
        "steps": state.step,
        "best_step": state.best_step,
        "wall_s": round(run.elapsed_s(), 2),
        "peak_mem_mb": round(peak_memory_mb(accelerator.device), 1),
        "validation": evaluations[state.best_step],
        "validation_curve": [[step, evaluations[step]["score"]] for step in sorted(evaluations)],
        "test": test,
        "test_predictions": dict(sorted(predicted.most_common(50))),  # free-form answers: the 50 most common
        "zero_shot": state.zero_shot,
        "split_sizes": {name: len(rows) for name, rows in run.splits.items()},
        **({"task_spec": dict(run.task.spec)} if run.task.spec is not None else {}),
        "config": run.settings,
        "prompt_config": model.prompt_config.to_dict(),
    }
    if accelerator.is_main_process:
        results_text = json.dumps(results, indent=2) + "\n"
        log_text = "".join(json.dumps(r) + "\n" for r in state.log)
        title = f"{config.method} on {run.task.name} ({config.model})"
        run.written(lambda: atomic_write(run.out / RESULTS, lambda tmp: Path(tmp).write_text(results_text)))
        run.written(lambda: atomic_write(run.out / LOG, lambda tmp: Path(tmp).write_text(log_text)))
        run.written(lambda: atomic_write(run.out / PLOT, lambda tmp: plot_training(state.log, tmp, title=title)))
    return results
