"""Training and evaluation on Hugging Face Accelerate: one CPU, one GPU, or `accelerate launch` across processes.

One optimizer step = `grad_accum` micro-batches of `batch_size` examples (the global batch is split across
processes). The data order is a seeded permutation per epoch, so step t always sees the same examples and a
resumed run continues exactly where the checkpoint stopped. Evaluation runs every `eval_every` steps; the best
validation score keeps its adapter, and the test split is scored once, with the best adapter, at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import resource
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import torch

from lamp.adapter import CONFIG as ADAPTER_CONFIG
from lamp.adapter import WEIGHTS, atomic_write, load_adapter, save_adapter
from lamp.backbones import SMOLLM2
from lamp.errors import ConfigError, Interrupted, TrainingError
from lamp.methods import DEFAULT_METHOD, PromptConfig, check_options, lookup, make_config
from lamp.scoring import SCORERS, answer_tokens, predict, resolve_scorer
from lamp.tasks.base import FORMATS
from lamp.tasks.user import DATA_OPTIONS, is_spec_file, spec_of, task_of
from lamp.tracking import PROJECT, TRACKING_DIR, hparams, parse_report_to, scalars

CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"
LOG = "log.jsonl"
PLOT = "training.png"
ADAPTER = "adapter"
DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
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
    """Shorthand for --method.init: the prompt init, vocab, text or random (method default when unset)."""
    init_text: InitVar[str | None] = None
    """Shorthand for --method.init_text: the phrase for init=text."""
    lr: float = 0.03
    """Peak learning rate (the prompt's; methods may set their own per group)."""
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
    max_length: int = 256
    """Maximum source tokens (causal: source plus target)."""
    eval_every: int = 50
    """Evaluate on validation every N steps (and at the end)."""
    eval_batch_size: int = 32
    """Batch size for evaluation."""
    max_eval_examples: int | None = None
    """Cap the validation examples used for model selection (the test split is always scored in full)."""
    scorer: str = "auto"
    """auto (rank for causal LMs on classification tasks, generation otherwise), rank or generate."""
    seed: int = 42
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
    mixed_precision: str = "auto"
    """auto (under `accelerate launch`: the launcher's --mixed_precision; else bf16 on a GPU that supports it, else
    fp32), no, bf16 or fp16 (given, it wins over the launcher's, and a line says so)."""
    report_to: str = "none"
    """Experiment trackers, through Accelerate: none, all (every one installed), or a comma list of tensorboard, wandb,
    mlflow, comet_ml, aim, clearml, dvclive. TensorBoard writes under OUT/runs (tensorboard --logdir OUT/runs)."""
    zero_shot: bool = True
    """Also score the bare backbone (no prompt, same format and scorer) on test: the floor a prompt must beat."""
    dtype: str = "auto"
    """Backbone weights: auto (as saved), float32, bfloat16 or float16 (bfloat16 halves a 7B backbone's memory)."""
    gradient_checkpointing: bool = False
    """Recompute the backbone's activations in the backward pass (less memory, about a third more time)."""
    init_from: str | None = None
    """Start the prompt from a saved one (a PEFT prompt-tuning or lamp adapter folder), decomposed like any init."""
    format: str = "auto"
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
        from lamp.checks import NON_NEGATIVE, POSITIVE, POSITIVE_INT, SEED, Int

        def flag(name: str) -> str:
            return "--" + name.replace("_", "-")

        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), str(f.type)
            if kind.startswith("str") and isinstance(value, os.PathLike):  # a Path for out, model, data_dir...
                value = os.fspath(value)
                setattr(self, f.name, value)
            if kind == "bool" and not isinstance(value, bool):
                raise ConfigError(f"{flag(f.name)} must be true or false, got {value!r}")
            if kind.startswith("str") and not (isinstance(value, str) or (value is None and "None" in kind)):
                raise ConfigError(f"{flag(f.name)} must be text, got {value!r}")
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
        self.lr = POSITIVE.check("--lr", self.lr)
        self.weight_decay = NON_NEGATIVE.check("--weight-decay", self.weight_decay)
        self.max_grad_norm = NON_NEGATIVE.check("--max-grad-norm", self.max_grad_norm)
        if self.scorer not in SCORERS:
            raise ConfigError(f"unknown scorer {self.scorer!r}: choose one of {', '.join(SCORERS)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown --dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ConfigError(f"unknown --mixed-precision {self.mixed_precision!r}: choose auto, no, bf16 or fp16")
        if self.format not in ("auto", *FORMATS):
            raise ConfigError(f"unknown --format {self.format!r}: choose auto, {', '.join(FORMATS)}")
        self.report_to = ",".join(parse_report_to(self.report_to)) or "none"
        shorthands = dict(zip(SHORTHANDS, (length, rank, pool, init, init_text), strict=True))
        self.method_options = with_shorthands(self.method_options, shorthands)
        check_options(self.method, self.method_options)
        if not self.init_from:  # with --init-from the saved prompt sets the length: checked when it is read
            self.method_config()

    def data_options(self) -> dict[str, Any]:
        """The options that describe a user's own task (`lamp.tasks.user.DATA_OPTIONS`), None where unset."""
        return {name: getattr(self, name) for name in DATA_OPTIONS}

    def method_config(self) -> PromptConfig:
        """The method's config: its defaults with `method_options` on top; ConfigError (one line) for a bad value."""
        return make_config(self.method, **self.method_options)


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


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


MIN_FREE_MB = 64  # checkpoints of a prompt are small; less free space than this fails before training
RUN_CONFIG = "train_config.json"
"""The run's TrainConfig as JSON, next to its checkpoint: --resume reads the run's settings back from it."""
LOCK = ".lamp.lock"
"""Held by the process that runs in a folder (train: the run folder; compare: the grid folder)."""
RUN_FILE_NAMES = (RUN_CONFIG, CHECKPOINT, RESULTS, LOG, PLOT)
"""The files of a run (besides its ADAPTER folder): the only ones --overwrite deletes."""
SAFE_ON_RESUME = ("out", "resume", "overwrite", "eval_batch_size", "data_dir", "gradient_checkpointing", "report_to")
"""The fields a resumed run may change: none changes what is trained (data_dir: the same files elsewhere; report_to:
only where the numbers are also sent). Every other field must match the saved run; max_steps too, since the
learning-rate schedule depends on it."""
_LEFTOVER = re.compile(r"^\..+\.\w{8}\.tmp(\.\w+)?$|^\.write-test-\d+$")  # atomic_write's and the write probe's


def lock_folder(folder: Path, flag: str = "--out") -> Any:
    """Create `folder` and take its lock without waiting (a FileLock; release it when done): a second process on
    the same folder is refused in one line."""
    from filelock import FileLock, Timeout

    lock = FileLock(folder / LOCK, timeout=0)
    try:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"output path {folder} is a file: choose a folder for {flag}")
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:  # an OSError too, so caught first
        raise ConfigError(
            f"{folder} is in use by another lamp process: wait for it to end, or choose another {flag}"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot write to output folder {folder} ({error.strerror}): choose another {flag}") from None
    return lock


def run_files(out: Path) -> list[Path]:
    """What a run folder holds besides lamp's own bookkeeping (its lock, half-written files, write probes)."""
    return [path for path in out.iterdir() if path.name != LOCK and not _LEFTOVER.match(path.name)]


def holds_run(out: Path) -> bool:
    """Whether `out` holds a lamp run, known by the files only a run writes (its settings, checkpoint, results or
    adapter); a log or a plot alone could be anyone's."""
    return (
        any((out / name).is_file() for name in (RUN_CONFIG, CHECKPOINT, RESULTS))
        or (out / ADAPTER / ADAPTER_CONFIG).is_file()
    )


def check_run_folder(out: Path) -> list[Path]:
    """What `out` holds (`run_files`; nothing if it is no folder yet), refusing a folder lamp must not write into:
    one where a run's file is a folder (or its adapter folder a file), or one that holds files but no lamp run."""
    if not out.is_dir():
        return []
    held = run_files(out)
    for name in RUN_FILE_NAMES:
        if (out / name).exists() and not (out / name).is_file():
            raise ConfigError(
                f"{out / name} is a folder, not the run's {name} file: move it away or choose another --out"
            )
    if (out / ADAPTER).exists() and not (out / ADAPTER).is_dir():
        raise ConfigError(
            f"{out / ADAPTER} is a file, not the run's adapter folder: move it away or choose another --out"
        )
    if held and not holds_run(out):
        raise ConfigError(f"{out} holds files that are not a lamp run: choose another --out; lamp never deletes them")
    return held


def remove_leftovers(folder: Path) -> None:
    """Delete the half-written files a killed process left (call it holding the folder's lock)."""
    for parent in (folder, folder / ADAPTER):
        for path in parent.iterdir() if parent.is_dir() else ():
            if _LEFTOVER.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)


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
        if problem:
            raise ConfigError(
                f"{path} does not hold a lamp run's settings ({problem}): restore it, or pass --overwrite instead of "
                "--resume to start the run over (the file is left as it is)"
            )
    elif (out / CHECKPOINT).is_file():
        with contextlib.suppress(ConfigError, KeyError, TypeError):
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
    return "unset" if value is None else json.dumps(value) if isinstance(value, dict | list) else str(value)


def option_flag(name: str) -> str:
    """The flag of method option `name`: its shorthand (--length) if it has one, else --method.NAME."""
    return "--" + name.replace("_", "-") if name in SHORTHANDS else f"--method.{name}"


def setting_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(flag, wanted value, saved value) for each setting of `wanted` (a TrainConfig as JSON) that `saved` (an
    upgraded saved run) holds with another value, SAFE_ON_RESUME fields aside. Method options are compared one by
    one, and not at all when the method itself differs."""
    differ = [k for k in wanted if k not in SAFE_ON_RESUME and k in saved and not same_setting(k, saved[k], wanted[k])]
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
        wanted = json.loads(json.dumps(dataclasses.asdict(config)))
        differ = setting_differences(saved, wanted)
        if differ:
            parts = ", ".join(f"{flag} {_shown(mine)} (the run has {_shown(theirs)})" for flag, mine, theirs in differ)
            raise ConfigError(
                f"{out} holds a run with other settings: {parts}; drop {' '.join(f for f, _, _ in differ)} to continue "
                "it, or pass --overwrite instead of --resume to start over"
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
        if held and config.resume:
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


def on_main_process(state: Any, action: Callable[[], Any]) -> Any:
    """`action()` on the main process only (its result there, None elsewhere). A ConfigError it raises is raised on
    every process (`state`: an Accelerator or PartialState), so the processes of one run stop together instead of
    waiting for each other."""
    problem, result = None, None
    if state.is_main_process:
        try:
            result = action()
        except ConfigError as error:
            problem = str(error)
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        problem = broadcast_object_list([problem])[0]
    if problem is not None:
        raise ConfigError(problem)
    return result


def start_run(config: TrainConfig, out: Path) -> None:
    """Just before training: remove the old run that --overwrite replaces (only now, once every input of the new run
    has been checked), and record the run's settings for --resume."""
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
    text = json.dumps(dataclasses.asdict(config), indent=2) + "\n"
    atomic_write(out / RUN_CONFIG, lambda tmp: Path(tmp).write_text(text))


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, its structure checked; a truncated, corrupt, unreadable or broken file is a one-line
    error and is left in place."""
    fix = "pass --overwrite instead of --resume to start the run over (the file is left as it is)"
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # torch raises many kinds here (OSError, UnpicklingError, RuntimeError, EOFError...)
        raise ConfigError(
            f"checkpoint {path} cannot be read (truncated, corrupt or not a lamp checkpoint): {fix}"
        ) from None
    problem = _checkpoint_problem(saved)
    if problem:
        raise ConfigError(f"checkpoint {path} cannot be used ({problem}): {fix}")
    return saved


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _checkpoint_problem(saved: Any) -> str | None:
    """What makes a loaded checkpoint unusable: a missing part, a part of the wrong type, a prompt that is not finite
    (it would train on as NaN), a state the loop cannot continue from."""
    from lamp.adapter import nonfinite

    if not isinstance(saved, dict):
        return f"a {type(saved).__name__}, not a lamp checkpoint"
    missing = [key for key in ("prompt", "optimizer", "scheduler", "rng", "state") if key not in saved]
    if missing:
        return f"it has no {', '.join(missing)}"
    prompt, state = saved["prompt"], saved["state"]
    if not isinstance(prompt, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in prompt.items()):
        return "its prompt is not a mapping of name: tensor"
    bad = nonfinite({k: v for k, v in prompt.items() if v.is_floating_point()})
    if bad is not None:
        return f"prompt tensor {bad!r} holds NaN or inf values"
    if not isinstance(saved["optimizer"], dict) or not {"state", "param_groups"} <= saved["optimizer"].keys():
        return "its optimizer state is not an optimizer's state_dict"
    if not isinstance(saved["scheduler"], dict):
        return "its scheduler state is not a mapping"
    if not torch.is_tensor(saved["rng"]) or saved["rng"].dtype != torch.uint8:
        return "its rng is not a random generator's state"
    if not isinstance(state, dict):
        return f"its state is a {type(state).__name__}, not a mapping"
    missing = [key for key in ("step", "best_step", "best_score", "log") if key not in state]
    if missing:
        return f"its state has no {', '.join(missing)}"
    for key in ("step", "best_step"):
        if not _is_count(state[key]):
            return f"its state's {key} is {state[key]!r}, not an integer >= 0"
    if not isinstance(state["best_score"], int | float) or isinstance(state["best_score"], bool):
        return f"its state's best_score is {state['best_score']!r}, not a number"
    if not isinstance(state["log"], list) or not all(isinstance(row, dict) for row in state["log"]):
        return "its state's log is not a list of rows"
    if not isinstance(state.get("zero_shot", None), dict | None):
        return f"its state's zero_shot is {state['zero_shot']!r}, not scores"
    if not isinstance(state.get("elapsed_s", 0.0), int | float):
        return f"its state's elapsed_s is {state['elapsed_s']!r}, not a number"
    validated = {row.get("step") for row in state["log"] if "validation" in row}
    if state["best_step"] > state["step"] or (state["best_step"] and state["best_step"] not in validated):
        return f"its state's best_step {state['best_step']} is no validated step of its log"
    return None


class _RecordingFile:
    """A file that keeps its write error: torch.save reports a full disk only as an opaque RuntimeError."""

    def __init__(self, file: Any) -> None:
        self.file, self.error = file, None

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def torch_save(payload: Any, path: str | os.PathLike) -> None:
    """torch.save to `path`; a failed write raises its OSError (which atomic_write turns into one line)."""
    with open(path, "wb") as file:
        recorder = _RecordingFile(file)
        try:
            torch.save(payload, recorder)
        except RuntimeError:
            if recorder.error is None:
                raise
            raise recorder.error from None


class StopRequest:
    """SIGINT/SIGTERM ask the loop to stop at the next step boundary, where a checkpoint is consistent; a second
    signal stops at once, and then the last checkpoint on disk is kept as it is (train's handler)."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second signal stops at once
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class Evaluator:
    """Scores a model on encoded examples, sharded over processes and gathered back in order."""

    def __init__(self, accelerator: Any, task: Any, tokenizer: Any, scorer: str, batch_size: int) -> None:
        self.accelerator, self.task, self.tokenizer = accelerator, task, tokenizer
        self.scorer, self.batch_size = scorer, batch_size

    def __call__(self, model: Any, examples: list[Any], encoded: list[Any]) -> dict[str, float]:
        was_training = model.training
        model.eval()
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        indices = list(range(rank, len(encoded), world))
        with self.accelerator.autocast():
            mine = predict(
                model,
                [encoded[i] for i in indices],
                self.task,
                self.tokenizer,
                self.scorer,
                self.batch_size,
                show_progress=self.accelerator.is_main_process,
            )
        pairs = list(zip(indices, mine, strict=True))
        if world > 1:
            from accelerate.utils import gather_object

            pairs = gather_object(pairs)
        predictions = [p for _, p in sorted(pairs, key=lambda pair: pair[0])]
        self.last_predictions = predictions  # kept so a run can report what it predicted (a collapse shows there)
        model.train(was_training)
        return self.task.compute_metrics(predictions, examples)


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


def train(config: TrainConfig, callback: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one training job and return its results (also written to `<out>/results.json`).

    `callback(step, state)` is called after every optimizer step (progress hooks; tests use it to interrupt).
    The output folder is locked for the whole run, and unlocked however the run ends. An interrupt (Ctrl-C,
    SIGTERM) is reported in one line that says how to resume, and raised as `Interrupted`.
    """
    try:
        with contextlib.ExitStack() as cleanup:
            return _train(config, callback, cleanup)
    except Interrupted:  # the training loop said what it kept
        raise
    except KeyboardInterrupt:  # before or after the loop (loading, zero-shot scoring, the final test)
        from accelerate import PartialState

        if PartialState().is_main_process:
            print(f"lamp train: interrupted; resume with --resume --out {config.out}", file=sys.stderr)
        raise Interrupted from None


def _train(
    config: TrainConfig, callback: Callable[[int, dict[str, Any]], None] | None, cleanup: contextlib.ExitStack
) -> dict[str, Any]:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    from lamp.backbones import load_model, load_tokenizer
    from lamp.data import LazyEncoded, chat_wrapper, collate_train, encode, fit_max_length, pad_id
    from lamp.model import wrap
    from lamp.plots import plot_training
    from lamp.progress import progress
    from lamp.tasks import load_splits, resolve_format

    mixed, note = resolve_mixed_precision(config.mixed_precision)
    trackers = [] if config.report_to == "none" else config.report_to.split(",")
    accelerator = Accelerator(
        mixed_precision=mixed, log_with=trackers or None, project_dir=str(Path(config.out) / TRACKING_DIR)
    )
    is_main = accelerator.is_main_process
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
    # With --init-from the saved prompt sets the length (TrainConfig checked the options' names only).
    prompt_config = None if config.init_from else config.method_config()
    default_task = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "task")
    spec = spec_of(config.task, config.data_options(), default_task)  # a user's own task, None for a built-in one
    task = task_of(config.task, spec)
    if task.user_data is not None:  # a user's files are read once now, so that a bad one fails before the backbone
        load_splits(task, config.data_dir, config.seed)
    out = out or prepare_output(config, accelerator, cleanup)
    checkpoint = out / CHECKPOINT
    saved = read_checkpoint(checkpoint) if config.resume and checkpoint.is_file() else None  # before any loading
    started = time.perf_counter()

    set_seed(config.seed)
    tokenizer = load_tokenizer(config.model)
    backbone = load_model(config.model, dtype=DTYPES[config.dtype])
    if config.gradient_checkpointing:  # recompute activations in backward: memory for 7B/11B backbones
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.init_from:  # the saved prompt sets the length; the method decomposes it as it would its own init
        from lamp.export import wrap_saved_prompt

        model = wrap_saved_prompt(backbone, config.init_from, config.method, tokenizer, **config.method_options)
        prompt_config = model.prompt_config
    else:
        model = wrap(backbone, prompt_config, tokenizer)
    model = model.to(accelerator.device)
    model.backbone_name = config.model
    kind = model.kind
    input_format = resolve_format(config.format, kind)  # recorded in results.json and the adapter
    task = task_of(config.task, spec, input_format)
    if config.chat_template:
        task = task.in_chat(chat_wrapper(tokenizer, kind))
    splits = load_splits(task, config.data_dir, config.seed)
    adapter_extra = {"task": task.name, "format": input_format, "chat_template": config.chat_template}
    if task.spec is not None:  # a user task travels with its adapters, so eval and predict can rebuild it
        adapter_extra["task_spec"] = dict(task.spec)
    scorer = resolve_scorer(config.scorer, kind, task)
    if scorer == "rank" and not task.label_words:
        raise ConfigError(f"task {task.name} has no label words for rank classification: use --scorer generate")
    reserve = answer_tokens(tokenizer, kind, task, scorer)  # what the scorer appends to a source
    max_length = fit_max_length(config.max_length, model.backbone, model.n_virtual, reserve)
    if max_length < config.max_length:
        accelerator.print(f"lamp train: inputs cut to {max_length} tokens to fit the backbone's positions")
    train_encoded = LazyEncoded(splits["train"], tokenizer, kind, max_length, reserve)
    validation = splits["validation"][: config.max_eval_examples] if config.max_eval_examples else splits["validation"]
    val_encoded = encode(validation, tokenizer, kind, max_length, reserve)
    test_encoded = encode(splits["test"], tokenizer, kind, max_length, reserve)
    evaluate = Evaluator(accelerator, task, tokenizer, scorer, config.eval_batch_size)

    optimizer = torch.optim.AdamW(
        model.prompt_encoder.optimizer_groups(config.lr), lr=config.lr, weight_decay=config.weight_decay
    )
    warmup = config.warmup_steps if config.warmup_steps is not None else round(0.1 * config.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, config.max_steps)
    ddp_model, optimizer = accelerator.prepare(model, optimizer)

    state: dict[str, Any] = {"step": 0, "best_score": -math.inf, "best_step": 0, "zero_shot": None, "log": []}
    if saved is not None:
        try:
            model.prompt_encoder.load_state_dict(saved["prompt"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["rng"])
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            raise ConfigError(
                f"checkpoint {checkpoint} does not fit this run ({str(error).strip().splitlines()[0][:160]}): pass "
                "--overwrite instead of --resume to start the run over (the file is left as it is)"
            ) from None
        state = {"zero_shot": None, **saved["state"]}  # checkpoints older than zero-shot scoring lack it
    elif config.resume:
        accelerator.print(f"lamp train: no checkpoint in {out}, starting from step 0")
    saved_step = None if saved is None else state["step"]  # the step the checkpoint on disk holds
    if is_main:
        start_run(config, out)
    accelerator.wait_for_everyone()
    if trackers:  # after start_run, so that --overwrite has cleared the old run's tracker files
        accelerator.init_trackers(PROJECT, config=hparams(dataclasses.asdict(config)))

        def finish_trackers() -> None:
            """accelerator.end_training() without its destroy_process_group(): the next train() of a `lamp compare`
            grid under `accelerate launch` still needs the group. Only the main process holds trackers."""
            for tracker in accelerator.trackers:
                tracker.finish()

        cleanup.callback(finish_trackers)
    # A resumed run's wall_s counts the earlier invocations up to their last checkpoint (work lost after it is not).
    earlier_s = state.get("elapsed_s", 0.0)

    def on_disk() -> str:
        """What the run folder really holds now, for the message of a stop or a failure."""
        kept = [] if saved_step is None else [f"the last good checkpoint (step {saved_step})"]
        if (out / ADAPTER / WEIGHTS).is_file():
            kept.append("the adapter of the best validation step")
        if not kept:
            first = min(config.eval_every, config.max_steps)
            return f"nothing is saved in {out} yet (the first checkpoint comes at step {first})"
        return f"{' and '.join(kept)} {'are' if len(kept) > 1 else 'is'} kept in {out}"

    def written(write: Callable[[], Any]) -> None:
        """One of the run's writes; a failed one (a full disk...) also says what is still on disk and how to go on."""
        try:
            write()
        except ConfigError as error:
            raise ConfigError(f"{error}; {on_disk()}: resume there with --resume once it can be written") from None

    def save_checkpoint() -> None:
        nonlocal saved_step
        state["elapsed_s"] = earlier_s + time.perf_counter() - started
        if is_main:
            payload = {
                "prompt": model.prompt_encoder.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "state": state,
                "config": dataclasses.asdict(config),
            }
            written(lambda: atomic_write(checkpoint, lambda tmp: torch_save(payload, tmp)))
        saved_step = state["step"]
        accelerator.wait_for_everyone()

    if config.zero_shot and state["zero_shot"] is None:  # the bare backbone: what the prompt has to beat
        with model.without_prompt() as bare:
            state["zero_shot"] = evaluate(bare, splits["test"], test_encoded)
        accelerator.print(f"zero-shot test {task.name} (no prompt): {state['zero_shot']}")

    per_step = config.batch_size * config.grad_accum
    rank, world = accelerator.process_index, accelerator.num_processes
    pad = pad_id(tokenizer)
    params = [p for p in model.parameters() if p.requires_grad]

    def step_batches(step: int) -> list[dict[str, Any]]:
        """The micro-batches of global step `step` (0-based) for this process: a pure function of the seed."""
        first = step * per_step
        epoch = first // len(train_encoded)
        order = torch.randperm(len(train_encoded), generator=torch.Generator().manual_seed(config.seed + epoch))
        indices = [order[(first + i) % len(order)].item() for i in range(per_step)]
        micro = [indices[i : i + config.batch_size] for i in range(0, per_step, config.batch_size)]
        return [collate_train([train_encoded[j] for j in m[rank::world]], pad, kind) for m in micro]

    model.train()
    bar = progress(total=config.max_steps, initial=state["step"], enabled=is_main, desc=f"{config.method} {task.name}")
    running: list[tuple[int, torch.Tensor, float]] = []

    def flush_losses() -> None:
        """Turn the steps' loss tensors into log rows (one host sync per flush, not per step); stop on NaN/inf."""
        values = accelerator.reduce(torch.stack([loss for _, loss, _ in running]), "mean").tolist()
        for (step, _, lr), value in zip(running, values, strict=True):
            if not math.isfinite(value):
                raise TrainingError(
                    f"loss became {value} at step {step}: lower --lr or check the data, and start over with "
                    f"--overwrite; {on_disk()}"
                )
            state["log"].append({"step": step, "loss": value, "lr": lr})
            accelerator.log({"train/loss": value, "train/lr": lr}, step=step)
        running.clear()
        bar.set_postfix(loss=f"{state['log'][-1]['loss']:.4f}")

    stop = StopRequest()
    # True only between steps: mid-step (a second signal stops at once) the state is half a step, never saved.
    at_boundary = True
    try:
        while state["step"] < config.max_steps:
            at_boundary, current = False, state["step"] + 1
            micro_batches = step_batches(state["step"])
            losses: list[torch.Tensor] = []
            for i, batch in enumerate(micro_batches):
                last = i == len(micro_batches) - 1
                sync = nullcontext() if last else accelerator.no_sync(ddp_model)
                with sync, accelerator.autocast():
                    batch = {k: (v.to(accelerator.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
                    loss = ddp_model(**batch).loss / len(micro_batches)
                    accelerator.backward(loss)
                losses.append(loss.detach())
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            step = state["step"]
            bar.update(1)
            running.append((step, torch.stack(losses).sum(), scheduler.get_last_lr()[0]))
            if step % 10 == 0 or step % config.eval_every == 0 or step == config.max_steps:
                flush_losses()
            if step % config.eval_every == 0 or step == config.max_steps:
                metrics = evaluate(model, validation, val_encoded)
                state["log"].append({"step": step, "validation": metrics})
                accelerator.log(scalars("validation", metrics), step=step)
                bar.set_postfix(loss=f"{state['log'][-2]['loss']:.4f}", val=f"{metrics['score']:.2f}")
                if metrics["score"] > state["best_score"]:
                    state["best_score"], state["best_step"] = metrics["score"], step
                    if is_main:
                        written(lambda: save_adapter(model, out / ADAPTER, extra=adapter_extra))
                save_checkpoint()
            at_boundary = True
            if callback is not None:
                callback(step, state)
            if stop.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        if at_boundary:
            if running:
                flush_losses()
            save_checkpoint()
            note = f"stopped at step {state['step']}, checkpoint saved"
        else:  # the last consistent checkpoint stays as it is
            note = f"stopped during step {current}; {on_disk()}"
        bar.close()  # so that the note starts its own line
        if is_main:
            print(f"lamp train: {note}; resume with --resume --out {out}", file=sys.stderr)
        raise Interrupted from None
    finally:
        bar.close()  # before any error propagates, so that its line does not continue the bar's
        stop.restore()

    accelerator.wait_for_everyone()
    # A fresh backbone: methods that change the backbone itself (LoRA, full fine-tuning) must not load twice into one.
    best = load_adapter(load_model(config.model), out / ADAPTER).to(accelerator.device)
    evaluations = {r["step"]: r["validation"] for r in state["log"] if "validation" in r}
    test = evaluate(best, splits["test"], test_encoded)
    predicted = Counter(str(p) for p in evaluate.last_predictions)  # e.g. {"0": 400, "1": 472}; "None" = invalid
    accelerator.log({**scalars("test", test), **scalars("zero_shot", state["zero_shot"] or {})}, step=state["step"])
    results = {
        "task": task.name,
        "method": config.method,
        "model": config.model,
        "seed": config.seed,
        "scorer": scorer,
        "format": input_format,
        "mixed_precision": accelerator.mixed_precision,
        "trainable_params": model.num_trainable_parameters(),
        "effective_trainable_params": model.num_effective_parameters(),
        "n_virtual": model.n_virtual,
        "steps": state["step"],
        "best_step": state["best_step"],
        "wall_s": round(earlier_s + time.perf_counter() - started, 2),
        "peak_mem_mb": round(peak_memory_mb(accelerator.device), 1),
        "validation": evaluations[state["best_step"]],
        "test": test,
        "test_predictions": dict(sorted(predicted.most_common(50))),  # free-form answers: the 50 most common
        "zero_shot": state["zero_shot"],
        "split_sizes": {name: len(rows) for name, rows in splits.items()},
        **({"task_spec": dict(task.spec)} if task.spec is not None else {}),
        "config": dataclasses.asdict(config),
        "prompt_config": prompt_config.to_dict(),
    }
    if is_main:
        results_text = json.dumps(results, indent=2) + "\n"
        log_text = "".join(json.dumps(r) + "\n" for r in state["log"])
        title = f"{config.method} on {task.name} ({config.model})"
        written(lambda: atomic_write(out / RESULTS, lambda tmp: Path(tmp).write_text(results_text)))
        written(lambda: atomic_write(out / LOG, lambda tmp: Path(tmp).write_text(log_text)))
        written(lambda: atomic_write(out / PLOT, lambda tmp: plot_training(state["log"], tmp, title=title)))
    return results


def evaluate_adapter(
    adapter: str | os.PathLike,
    task_name: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    seed: int = 42,
    scorer: str = "auto",
    batch_size: int = 32,
    max_length: int = 256,
    model: str | None = None,
    format: str | None = None,
    chat_template: bool | None = None,
) -> dict[str, float]:
    """Score a saved adapter on one split of a task: `task_name` (a task name or task YAML file; default: the
    adapter's own task, a user task rebuilt from the spec its adapter.json saved). Rows are rendered as the adapter
    was trained: its recorded input format and chat template (adapters saved before formats existed: t5), unless
    `format` (auto, t5 or natural) or `chat_template` say otherwise."""
    from accelerate import Accelerator

    from lamp.adapter import read_adapter_config
    from lamp.backbones import load_tokenizer
    from lamp.data import chat_wrapper, encode, fit_max_length
    from lamp.tasks import load_splits, resolve_format

    saved = read_adapter_config(adapter)
    task_name = task_name or saved.get("task")
    if not task_name:
        raise ConfigError(f"adapter {adapter} names no task: pass --task")
    spec = saved.get("task_spec") if task_name == saved.get("task") else None
    task = task_of(task_name, spec)  # checked before the model loads
    name = model or saved["backbone"]["name"]
    tokenizer = load_tokenizer(name)
    accelerator = Accelerator()
    prompted = load_adapter(name, adapter).to(accelerator.device)  # the adapter's files are checked first
    task = task_of(task_name, spec, resolve_format(format or saved.get("format", "t5"), prompted.kind))
    if saved.get("chat_template", False) if chat_template is None else chat_template:
        task = task.in_chat(chat_wrapper(tokenizer, prompted.kind))
    splits = load_splits(task, data_dir, seed)
    if split not in splits:
        raise ConfigError(f"unknown split {split!r}: choose one of {', '.join(splits)}")
    examples = splits[split]
    evaluate = Evaluator(accelerator, task, tokenizer, resolve_scorer(scorer, prompted.kind, task), batch_size)
    reserve = answer_tokens(tokenizer, prompted.kind, task, evaluate.scorer)
    max_length = fit_max_length(max_length, prompted.backbone, prompted.n_virtual, reserve)
    return evaluate(prompted, examples, encode(examples, tokenizer, prompted.kind, max_length, reserve))
