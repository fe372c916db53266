"""Training and evaluation on Hugging Face Accelerate: one CPU, one GPU, or `accelerate launch` across processes.

One optimizer step = `grad_accum` micro-batches of `batch_size` examples (the global batch is split across
processes). The data order is a seeded permutation per epoch, so step t always sees the same examples and a
resumed run continues exactly where the checkpoint stopped. Evaluation runs every `eval_every` steps; the best
validation score keeps its adapter, and the test split is scored once, with the best adapter, at the end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lamp.adapter import atomic_write, load_adapter, save_adapter
from lamp.errors import ConfigError, TrainingError
from lamp.scoring import SCORERS, predict, resolve_scorer

CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"
LOG = "log.jsonl"
PLOT = "training.png"
ADAPTER = "adapter"
DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class TrainConfig:
    """Everything a run needs. Defaults are the offline default job (LAMP on SmolLM2-135M, polarity), measured
    to finish in minutes on 2 CPU cores; DePT's T5-Base recipe is `configs/dept-t5-base.yaml`."""

    task: str = "polarity"
    """Task name (see `lamp data --help`)."""
    model: str = "smollm2-135m"
    """`smollm2-135m` (offline), a local folder or a Hugging Face hub id."""
    method: str = "lamp"
    """Prompt method (lamp, pt, ...)."""
    length: int | None = None
    """Prompt length l (method default when unset)."""
    rank: int | None = None
    """LAMP rank r (method default when unset)."""
    pool: int | None = None
    """LAMP pooling kernel and stride k (method default when unset)."""
    init: str | None = None
    """Prompt init: vocab, text or random (method default when unset)."""
    init_text: str | None = None
    """Phrase for init=text."""
    method_options: dict[str, Any] = field(default_factory=dict)
    """Any other option of the method's config, as key=value."""
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
    """Continue the run in --out from its last checkpoint."""
    overwrite: bool = False
    """Replace a finished or interrupted run in --out."""
    mixed_precision: str = "auto"
    """auto (bf16 on a GPU that supports it, else fp32), no, bf16 or fp16."""
    zero_shot: bool = True
    """Also score the untrained prompt on test."""
    dtype: str = "auto"
    """Backbone weights: auto (as saved), float32, bfloat16 or float16 (bfloat16 halves a 7B backbone's memory)."""
    gradient_checkpointing: bool = False
    """Recompute the backbone's activations in the backward pass (less memory, about a third more time)."""
    init_from: str | None = None
    """Start the prompt from a saved one (a PEFT prompt-tuning or lamp adapter folder), decomposed like any init."""

    def __post_init__(self) -> None:
        for name in ("lr", "batch_size", "grad_accum", "max_steps", "eval_every", "eval_batch_size", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value!r}")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps <= self.max_steps:
            raise ConfigError(f"--warmup-steps must be between 0 and --max-steps ({self.max_steps})")
        if self.scorer not in SCORERS:
            raise ConfigError(f"unknown scorer {self.scorer!r}: choose one of {', '.join(SCORERS)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown --dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ConfigError(f"unknown --mixed-precision {self.mixed_precision!r}: choose auto, no, bf16 or fp16")

    def prompt_options(self) -> dict[str, Any]:
        shortcuts = {k: getattr(self, k) for k in ("length", "rank", "pool", "init", "init_text")}
        return {**{k: v for k, v in shortcuts.items() if v is not None}, **self.method_options}


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


MIN_FREE_MB = 64  # checkpoints of a prompt are small; less free space than this fails before training


def prepare_output(config: TrainConfig, accelerator: Any) -> Path:
    """Refuse to clobber another run and check the folder is writable, before any training starts.

    Every process checks, then only the main one deletes or creates, so processes never race on the folder.
    """
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} is a file: choose a folder for --out")
    if out.exists() and any(out.iterdir()) and not (config.resume or config.overwrite):
        raise ConfigError(f"{out} already holds a run: pass --resume to continue it, --overwrite to replace it")
    accelerator.wait_for_everyone()
    try:
        if accelerator.is_main_process:
            if config.overwrite and not config.resume and out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        probe = out / f".write-test-{accelerator.process_index}"
        probe.write_bytes(b"\0" * 1024 * 1024)
        probe.unlink()
        free_mb = shutil.disk_usage(out).free / 2**20
    except OSError as error:
        raise ConfigError(f"cannot write to output folder {out} ({error.strerror}): choose another --out") from None
    if free_mb < MIN_FREE_MB:
        raise ConfigError(f"only {free_mb:.0f} MB free under {out}: free some space or choose another --out")
    return out


class StopRequest:
    """SIGINT/SIGTERM ask the loop to stop at the next step boundary, where a checkpoint is consistent."""

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
                model, [encoded[i] for i in indices], self.task, self.tokenizer, self.scorer, self.batch_size
            )
        pairs = list(zip(indices, mine, strict=True))
        if world > 1:
            from accelerate.utils import gather_object

            pairs = gather_object(pairs)
        predictions = [p for _, p in sorted(pairs, key=lambda pair: pair[0])]
        self.last_predictions = predictions  # kept so a run can report what it predicted (a collapse shows there)
        model.train(was_training)
        return self.task.compute_metrics(predictions, examples)


def train(config: TrainConfig, callback: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one training job and return its results (also written to `<out>/results.json`).

    `callback(step, state)` is called after every optimizer step (progress hooks; tests use it to interrupt).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from lamp.backbones import load_model, load_tokenizer
    from lamp.data import LazyEncoded, collate_train, encode, pad_id
    from lamp.methods import make_config
    from lamp.model import wrap
    from lamp.plots import plot_training
    from lamp.tasks import get_task, load_splits

    # Fail fast on bad method options; with --init-from the saved prompt sets the length, checked when it is read.
    prompt_config = None if config.init_from else make_config(config.method, **config.prompt_options())
    task = get_task(config.task)
    mixed = config.mixed_precision
    if mixed == "auto":
        mixed = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = Accelerator(mixed_precision=mixed)
    is_main = accelerator.is_main_process
    out = prepare_output(config, accelerator)
    started = time.perf_counter()

    set_seed(config.seed)
    splits = load_splits(config.task, config.data_dir, config.seed)
    tokenizer = load_tokenizer(config.model)
    backbone = load_model(config.model, dtype=DTYPES[config.dtype])
    if config.gradient_checkpointing:  # recompute activations in backward: memory for 7B/11B backbones
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.init_from:  # the saved prompt sets the length; the method decomposes it as it would its own init
        from lamp.export import wrap_saved_prompt

        model = wrap_saved_prompt(backbone, config.init_from, config.method, tokenizer, **config.prompt_options())
        prompt_config = model.config
    else:
        model = wrap(backbone, prompt_config, tokenizer)
    model = model.to(accelerator.device)
    model.backbone_name = config.model
    kind = model.kind
    scorer = resolve_scorer(config.scorer, kind, task)
    if scorer == "rank" and not task.label_words:
        raise ConfigError(f"task {task.name} has no label words for rank classification: use --scorer generate")
    train_encoded = LazyEncoded(splits["train"], tokenizer, kind, config.max_length)
    validation = splits["validation"][: config.max_eval_examples] if config.max_eval_examples else splits["validation"]
    val_encoded = encode(validation, tokenizer, kind, config.max_length)
    test_encoded = encode(splits["test"], tokenizer, kind, config.max_length)
    evaluate = Evaluator(accelerator, task, tokenizer, scorer, config.eval_batch_size)

    optimizer = torch.optim.AdamW(
        model.prompt_encoder.optimizer_groups(config.lr), lr=config.lr, weight_decay=config.weight_decay
    )
    warmup = config.warmup_steps if config.warmup_steps is not None else round(0.1 * config.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, config.max_steps)
    ddp_model, optimizer = accelerator.prepare(model, optimizer)

    state: dict[str, Any] = {"step": 0, "best_score": -math.inf, "best_step": 0, "zero_shot": None, "log": []}
    checkpoint = out / CHECKPOINT
    if config.resume and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.prompt_encoder.load_state_dict(saved["prompt"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        state = saved["state"]
    elif config.resume:
        accelerator.print(f"lamp train: no checkpoint in {out}, starting from step 0")
    # A resumed run's wall_s counts the earlier invocations up to their last checkpoint (work lost after it is not).
    earlier_s = state.get("elapsed_s", 0.0)

    def save_checkpoint() -> None:
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
            atomic_write(checkpoint, lambda tmp: torch.save(payload, tmp))
        accelerator.wait_for_everyone()

    if config.zero_shot and state["zero_shot"] is None:
        state["zero_shot"] = evaluate(model, splits["test"], test_encoded)
        accelerator.print(f"zero-shot test {task.name}: {state['zero_shot']}")

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
    bar = tqdm(total=config.max_steps, initial=state["step"], disable=not is_main, desc=f"{config.method} {task.name}")
    running: list[tuple[int, torch.Tensor, float]] = []

    def flush_losses() -> None:
        """Turn the steps' loss tensors into log rows (one host sync per flush, not per step); stop on NaN/inf."""
        values = accelerator.reduce(torch.stack([loss for _, loss, _ in running]), "mean").tolist()
        for (step, _, lr), value in zip(running, values, strict=True):
            if not math.isfinite(value):
                raise TrainingError(
                    f"loss became {value} at step {step}: lower --lr or check the data; the last good checkpoint "
                    f"and adapter are kept in {out}"
                )
            state["log"].append({"step": step, "loss": value, "lr": lr})
        running.clear()
        bar.set_postfix(loss=f"{state['log'][-1]['loss']:.4f}")

    stop = StopRequest()
    try:
        while state["step"] < config.max_steps:
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
                bar.set_postfix(loss=f"{state['log'][-2]['loss']:.4f}", val=f"{metrics['score']:.2f}")
                if metrics["score"] > state["best_score"]:
                    state["best_score"], state["best_step"] = metrics["score"], step
                    if is_main:
                        save_adapter(model, out / ADAPTER, extra={"task": task.name})
                save_checkpoint()
            if callback is not None:
                callback(step, state)
            if stop.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        if running:
            flush_losses()
        save_checkpoint()
        if is_main:
            print(
                f"\nlamp train: stopped at step {state['step']}, checkpoint saved; resume with --resume --out {out}",
                file=sys.stderr,
            )
        raise
    finally:
        stop.restore()
    bar.close()

    accelerator.wait_for_everyone()
    # A fresh backbone: methods that change the backbone itself (LoRA, full fine-tuning) must not load twice into one.
    best = load_adapter(load_model(config.model), out / ADAPTER).to(accelerator.device)
    evaluations = {r["step"]: r["validation"] for r in state["log"] if "validation" in r}
    test = evaluate(best, splits["test"], test_encoded)
    predicted = Counter(str(p) for p in evaluate.last_predictions)  # e.g. {"0": 400, "1": 472}; "None" = invalid
    results = {
        "task": task.name,
        "method": config.method,
        "model": config.model,
        "seed": config.seed,
        "scorer": scorer,
        "trainable_params": model.num_trainable_parameters(),
        "n_virtual": model.n_virtual,
        "steps": state["step"],
        "best_step": state["best_step"],
        "wall_s": round(earlier_s + time.perf_counter() - started, 2),
        "peak_mem_mb": round(peak_memory_mb(accelerator.device), 1),
        "validation": evaluations[state["best_step"]],
        "test": test,
        "test_predictions": dict(sorted(predicted.items())),
        "zero_shot": state["zero_shot"],
        "split_sizes": {name: len(rows) for name, rows in splits.items()},
        "config": dataclasses.asdict(config),
        "prompt_config": prompt_config.to_dict(),
    }
    if is_main:
        atomic_write(out / RESULTS, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
        atomic_write(out / LOG, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in state["log"])))
        plot_training(state["log"], out / PLOT, title=f"{config.method} on {task.name} ({config.model})")
    return results


def evaluate_adapter(
    adapter: str | os.PathLike,
    task_name: str,
    split: str = "test",
    data_dir: str | None = None,
    seed: int = 42,
    scorer: str = "auto",
    batch_size: int = 32,
    max_length: int = 256,
    model: str | None = None,
) -> dict[str, float]:
    """Score a saved adapter on one split of a task."""
    from accelerate import Accelerator

    from lamp.adapter import read_adapter_config
    from lamp.backbones import load_model, load_tokenizer
    from lamp.data import encode
    from lamp.tasks import get_task, load_splits

    task = get_task(task_name)
    name = model or read_adapter_config(adapter)["backbone"]["name"]
    tokenizer = load_tokenizer(name)
    accelerator = Accelerator()
    prompted = load_adapter(load_model(name), adapter).to(accelerator.device)
    splits = load_splits(task_name, data_dir, seed)
    if split not in splits:
        raise ConfigError(f"unknown split {split!r}: choose one of {', '.join(splits)}")
    examples = splits[split]
    evaluate = Evaluator(accelerator, task, tokenizer, resolve_scorer(scorer, prompted.kind, task), batch_size)
    return evaluate(prompted, examples, encode(examples, tokenizer, prompted.kind, max_length))
