"""`lamp bench`: trainable parameters, train-step time, memory and inference latency per method, on one batch.

Every method runs the step the trainer runs: forward with labels on the last position(s) (`PromptedModel.forward`,
`logits_to_keep` from `lamp.data.collate_train`), backward, AdamW step. Besides lamp's own methods:

- `none`: the backbone with no prompt. A prompt method must back-propagate through every layer down to the input,
  so `none` puts a one-parameter gain on the input embeddings and trains that: the floor every prompt pays.
- `peft-pt`: PEFT's PromptTuning through `peft.get_peft_model`, called as PEFT users call it (labels in, logits at
  every position), or with `logits=needed` given the same `logits_to_keep` as lamp.
- `peft-lora`: PEFT's LoRA (PEFT's default targets: the attention query and value projections) through
  `peft.get_peft_model`, same two modes. lamp's own `lora` method (the same peft layers, run by lamp's wrapper and
  trainer) is a registry method like the others.

Peak memory is CUDA's max allocated on a GPU. On a CPU it is the process's peak RSS while measuring; by default
each method runs in a fresh process (`isolate="process"`) so one method's freed-but-kept memory never counts
for the next. Random-weight models (`random:<architecture>`, see `lamp.architectures`) are honest for time and
memory, which depend only on shapes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lamp.adapter import atomic_write
from lamp.checks import COUNT, POSITIVE_INT, SEED
from lamp.errors import ConfigError, LampError
from lamp.methods import METHODS, make_config
from lamp.methods.base import Declaration, PromptConfig, PromptModule
from lamp.model import IGNORE_INDEX

DEFAULT_METHODS = [
    "none",
    "pt:length=100",
    "pt:length=25",
    "lamp:length=100,rank=8,pool=4",
    "peft-pt:length=100",
    "peft-lora:r=8",
    "lora:rank=8",
]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ISOLATE = ("auto", "process", "none")
RANDOM_CAVEAT = ": valid for time and memory, not for quality"


# ---- method specs ---------------------------------------------------------------------------------------------
@dataclass
class PeftPromptOptions:
    """PEFT PromptTuning: `length` virtual tokens, `init` vocab (sampled vocabulary rows) or random."""

    length: int = 100
    init: str = "vocab"
    logits: str = "all"

    def validate(self) -> None:
        POSITIVE_INT.check("length", self.length)
        if self.init not in ("vocab", "random"):
            raise ConfigError(f"peft-pt init {self.init!r} is not vocab or random: pass init=vocab or init=random")
        _check_logits(self.logits)


@dataclass
class LoraOptions:
    """PEFT LoRA on PEFT's default targets for the architecture (query and value projections)."""

    r: int = 8
    alpha: int = 8
    logits: str = "all"

    def validate(self) -> None:
        POSITIVE_INT.check("r", self.r)
        POSITIVE_INT.check("alpha", self.alpha)
        _check_logits(self.logits)


def _check_logits(value: str) -> None:
    if value not in ("all", "needed"):
        raise ConfigError(f"logits={value!r}: pass logits=all (PEFT's own forward) or logits=needed (as lamp)")


@dataclass
class GainOnlyConfig(PromptConfig):
    """bench's `none`: no prompt; a trainable scalar gain on the input embeddings makes backward reach the input."""

    method = "none"
    declares = Declaration(prompt_rows=False, input_embeddings=True, export=None)  # the wrapper calls embed_inputs

    def build(self, backbone: nn.Module, tokenizer: Any = None) -> PromptModule:
        return InputGain(backbone.get_input_embeddings().weight.shape[1])


class InputGain(PromptModule):
    n_virtual = 0

    def __init__(self, width: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))
        self.width = width

    def forward(self) -> torch.Tensor:
        return self.gain.new_zeros(0, self.width)

    def embed_inputs(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return inputs_embeds * self.gain.to(inputs_embeds.dtype)


PEFT_METHODS: dict[str, type] = {"peft-pt": PeftPromptOptions, "peft-lora": LoraOptions}
BENCH_METHODS = ["none", *(m for m in METHODS if m != "none"), *PEFT_METHODS]  # none: GainOnlyConfig


@dataclass(frozen=True)
class MethodSpec:
    """A parsed `name:key=value,...` method spec and its validated config."""

    text: str
    name: str
    config: Any


def _value(text: str) -> Any:
    """An option's value: an int, a finite float, else the text (nan and inf stay text, which no range accepts)."""
    for convert in (int, float):
        try:
            value = convert(text)
        except ValueError:
            continue
        return value if math.isfinite(value) else text
    return text


def parse_method(text: str) -> MethodSpec:
    """Parse and validate `name[:key=value,...]`, e.g. `lamp:length=100,rank=8,pool=4` or `lora:r=8`."""
    name, _, rest = text.strip().partition(":")
    if name not in BENCH_METHODS:
        raise ConfigError(f"unknown method {name!r} in {text!r}: choose one of {', '.join(BENCH_METHODS)}")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad option {item!r} in {text!r}: write options as key=value separated by commas")
        options[key.strip()] = _value(value.strip())
    if name == "none":
        if options:
            raise ConfigError(f"method 'none' takes no options, got {text!r}: pass plain none")
        return MethodSpec(text, name, GainOnlyConfig())
    if name in PEFT_METHODS:
        options_class = PEFT_METHODS[name]
        known = {f.name for f in dataclasses.fields(options_class)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"method {name!r} has no option {', '.join(unknown)}: its options are {', '.join(sorted(known))}"
            )
        config = options_class(**options)
        config.validate()
        return MethodSpec(text, name, config)
    return MethodSpec(text, name, make_config(name, **options))


# ---- runners: one method on one backbone ---------------------------------------------------------------------
def _kept_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Causal loss on the last `logits.shape[1]` positions (as `PromptedModel.align`)."""
    targets = labels[:, labels.shape[1] - logits.shape[1] + 1 :]
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)


class Runner:
    """What the benchmark times: `loss(batch)` (training forward) and `infer(inputs)` (no-grad forward)."""

    module: nn.Module
    n_virtual: int = 0
    note: str = ""

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.module.parameters() if p.requires_grad]}]

    def trainable_params(self) -> int:
        return sum(p.numel() for group in self.param_groups() for p in group["params"])

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def infer(self, inputs: dict[str, Any]) -> torch.Tensor:
        return self.call(**inputs).logits

    def close(self) -> None:
        """Give the backbone back as it was (PEFT's LoRA edits it in place)."""


class LampRunner(Runner):
    """Any method of lamp's registry (and `none`) through `lamp.wrap`: the trainer's own forward.

    Methods that change the backbone itself (lamp's `lora` injects layers, `full` unfreezes it) leave it changed:
    `run_bench` notices and builds a fresh backbone for the next row.
    """

    def __init__(self, backbone: nn.Module, spec: MethodSpec, compiled: bool) -> None:
        from lamp.model import wrap

        self.module = wrap(backbone, spec.config)
        self.call = torch.compile(self.module) if compiled else self.module
        self.n_virtual = self.module.n_virtual
        if spec.name == "none":
            self.note = "no prompt: backbone forward/backward down to the input embeddings through a 1-parameter gain"

    def param_groups(self) -> list[dict[str, Any]]:
        return self.module.prompt_encoder.optimizer_groups(1e-3)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.call(**batch).loss


class PeftRunner(Runner):
    """PEFT's PromptTuning or LoRA through `peft.get_peft_model`."""

    def __init__(self, backbone: nn.Module, spec: MethodSpec, kind: str, compiled: bool) -> None:
        import peft

        task_type = peft.TaskType.SEQ_2_SEQ_LM if kind == "seq2seq" else peft.TaskType.CAUSAL_LM
        options = spec.config
        if spec.name == "peft-pt":
            init = peft.PromptTuningInit.SAMPLE_VOCAB if options.init == "vocab" else peft.PromptTuningInit.RANDOM
            config = peft.PromptTuningConfig(
                task_type=task_type, num_virtual_tokens=options.length, prompt_tuning_init=init
            )
            self.n_virtual = options.length
        else:
            config = peft.LoraConfig(task_type=task_type, r=options.r, lora_alpha=options.alpha, lora_dropout=0.0)
        self.module = peft.get_peft_model(backbone, config)
        self.injected = spec.name == "peft-lora"  # LoRA layers replace the backbone's own; close() takes them out
        self.call = torch.compile(self.module) if compiled else self.module
        self.needed = options.logits == "needed" and kind == "causal"
        self.note = (
            "logits only where the loss needs them" if self.needed else "PEFT's forward: logits at every position"
        )
        if spec.name == "peft-pt" and kind == "seq2seq":
            self.note += "; PEFT also trains an unused decoder copy of the prompt (its trainable count doubles)"

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "logits_to_keep"}
        if not self.needed:
            return self.call(**inputs).loss
        labels = inputs.pop("labels")
        logits = self.call(**inputs, logits_to_keep=batch["logits_to_keep"]).logits
        return _kept_loss(logits, labels)

    def infer(self, inputs: dict[str, Any]) -> torch.Tensor:
        if not self.needed:
            inputs = {k: v for k, v in inputs.items() if k != "logits_to_keep"}
        return self.call(**inputs).logits

    def close(self) -> None:
        if self.injected:
            self.module.unload()


def make_runner(backbone: nn.Module, spec: MethodSpec, kind: str, compiled: bool = False) -> Runner:
    if spec.name in PEFT_METHODS:
        return PeftRunner(backbone, spec, kind, compiled)
    return LampRunner(backbone, spec, compiled)


# ---- the setup shared by every method ------------------------------------------------------------------------
@dataclass
class BenchSetup:
    model: str = "smollm2-135m"
    batch_size: int = 16
    seq_len: int = 64
    target_len: int = 2
    steps: int = 10
    warmup: int = 2
    dtype: str = "auto"
    device: str = "auto"
    compile: bool = False
    seed: int = 0
    threads: int = 0

    def resolve(self) -> BenchSetup:
        """Check every value and fill in `auto`; raises ConfigError with the fix."""
        for name in ("batch_size", "seq_len", "target_len", "steps"):
            POSITIVE_INT.check("--" + name.replace("_", "-"), getattr(self, name))
        for name in ("warmup", "threads"):
            COUNT.check(f"--{name}", getattr(self, name))
        SEED.check("--seed", self.seed)
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for but CUDA is not available: pass --device cpu")
        if not (device == "cpu" or device.startswith("cuda")):
            raise ConfigError(f"unknown device {device!r}: pass cpu, cuda or cuda:N")
        dtype = self.dtype
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}: choose auto, {', '.join(DTYPES)}")
        from lamp.architectures import architecture_config, is_random

        if is_random(self.model):
            architecture_config(self.model)  # an unknown architecture fails here, before any work
        return dataclasses.replace(self, device=device, dtype=dtype)

    @property
    def autocast(self) -> str:
        """On a GPU the step runs under autocast, as the trainer's bf16 mixed precision does."""
        if not self.device.startswith("cuda"):
            return "no"
        return "float16" if self.dtype == "float16" else "bfloat16"


def prompt_rows(spec: MethodSpec) -> int:
    """The rows a method puts before the input: its prompt length (LAMP: pooled, length / pool); none for LoRA,
    full fine-tuning and `none`."""
    length = getattr(spec.config, "length", None) or 0
    return length // getattr(spec.config, "pool", 1)


def check_positions(setup: BenchSetup, specs: list[MethodSpec]) -> None:
    """Refuse a --seq-len that, with a method's prompt rows, exceeds the backbone's positions, before any work
    (the backbone's config is read, not its weights)."""
    from types import SimpleNamespace

    from lamp.architectures import architecture_config, is_random
    from lamp.backbones import load_config
    from lamp.model import max_positions

    config = architecture_config(setup.model) if is_random(setup.model) else load_config(setup.model)
    limit = max_positions(SimpleNamespace(config=config))
    for spec in specs:
        rows = prompt_rows(spec)
        if limit is not None and setup.seq_len + rows > limit:
            fix = f"pass --seq-len {limit - rows} or less" if limit > rows else "use a shorter prompt"
            raise ConfigError(
                f"--seq-len {setup.seq_len} and the {rows} prompt rows of {spec.text} exceed the {limit} positions of "
                f"{setup.model}: {fix}"
            )


def load_backbone(setup: BenchSetup) -> nn.Module:
    """`random:<architecture>` built on the device, or real weights through `lamp.load_model`."""
    from lamp.architectures import build_random, is_random
    from lamp.backbones import load_model

    dtype = DTYPES[setup.dtype]
    if is_random(setup.model):
        model = build_random(setup.model, dtype=dtype, device=setup.device, seed=setup.seed)
    else:
        model = load_model(setup.model, dtype=dtype).to(setup.device)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def synthetic_batch(backbone: nn.Module, kind: str, setup: BenchSetup) -> dict[str, Any]:
    """A full batch of random token ids, collated exactly as the trainer collates (labels, logits_to_keep).

    `seq_len` tokens per example reach the model (causal: source plus a `target_len` target; seq2seq: the
    encoder's source, with a `target_len` decoder target).
    """
    from lamp.data import Encoded, collate_train

    vocab = backbone.get_input_embeddings().weight.shape[0]
    source_len = setup.seq_len - setup.target_len if kind == "causal" else setup.seq_len
    if source_len < 1:
        raise ConfigError(f"seq-len {setup.seq_len} leaves no source before a {setup.target_len}-token target")
    generator = torch.Generator().manual_seed(setup.seed)
    ids = torch.randint(
        min(3, vocab - 1), vocab, (setup.batch_size, source_len + setup.target_len), generator=generator
    )
    rows = [Encoded(row[:source_len].tolist(), row[source_len:].tolist()) for row in ids]
    batch = collate_train(rows, pad=0, kind=kind)
    return {k: (v.to(setup.device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def inference_inputs(batch: dict[str, Any], kind: str, start_id: int, all_logits: bool) -> dict[str, Any]:
    """Scoring inputs: logits at the last position (or at every position when `all_logits`)."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if kind == "causal":
        return {**inputs, "logits_to_keep": 0 if all_logits else 1}
    width = batch["labels"].shape[1] if all_logits else 1
    decoder = torch.full((batch["input_ids"].shape[0], width), start_id, device=batch["input_ids"].device)
    return {**inputs, "decoder_input_ids": decoder}


class PeakMemory:
    """CUDA max allocated, or the process's peak RSS since `reset()` (Linux clear_refs; else since start)."""

    def __init__(self, device: str, isolated: bool) -> None:
        self.cuda = device.startswith("cuda")
        self.device = device
        self.resettable = False
        if self.cuda:
            self.kind = "CUDA max allocated"
        else:
            scope = "fresh process per method" if isolated else "shared process, may include earlier rows' memory"
            self.kind = f"peak RSS while measuring ({scope})"

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:  # "5" resets the peak RSS (VmHWM) to the current RSS: the peak then covers only what follows
            Path("/proc/self/clear_refs").write_text("5")
            self.resettable = True
        except OSError:
            self.kind = self.kind.replace("while measuring", "of the process")

    def read_mb(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.resettable:
            match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
            if match:
                return int(match.group(1)) / 1024
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn: Callable[[], Any], count: int, sync: Callable[[], None]) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU times (ms) of `count` calls. On a CPU shared with other jobs, the CPU time
    (work done by this process's threads) is far steadier than the wall clock, which also counts waiting."""
    wall, cpu = [], []
    for _ in range(count):
        sync()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return wall, cpu


def measure_method(
    backbone: nn.Module, kind: str, spec: MethodSpec, setup: BenchSetup, isolated: bool
) -> dict[str, Any]:
    """Raw measurements of one method: lists of step and inference times (ms) and the peak memory."""
    runner = make_runner(backbone, spec, kind, setup.compile)
    memory = PeakMemory(setup.device, isolated)
    try:
        batch = synthetic_batch(backbone, kind, setup)
        start_id = getattr(backbone.config, "decoder_start_token_id", None) or 0
        optimizer = torch.optim.AdamW(runner.param_groups(), lr=1e-3)
        cuda = setup.device.startswith("cuda")
        sync = (lambda: torch.cuda.synchronize(setup.device)) if cuda else (lambda: None)
        autocast = torch.autocast("cuda", dtype=DTYPES[setup.autocast]) if setup.autocast != "no" else nullcontext()
        losses: list[torch.Tensor] = []

        def train_step() -> None:
            with autocast:
                loss = runner.loss(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())

        def infer(all_logits: bool) -> Callable[[], None]:
            inputs = inference_inputs(batch, kind, start_id, all_logits)

            def run() -> None:
                with torch.no_grad(), autocast:
                    runner.infer(inputs)

            return run

        memory.reset()
        runner.module.train()
        _timed(train_step, setup.warmup, sync)
        times = {"step": _timed(train_step, setup.steps, sync)}
        runner.module.eval()
        for name in ("infer", "infer_all"):
            fn = infer(name == "infer_all")
            _timed(fn, min(setup.warmup, 1), sync)
            times[name] = _timed(fn, setup.steps, sync)
        peak = memory.read_mb()
        last_loss = float(losses[-1]) if losses else float("nan")
        return {
            "method": spec.text,
            "trainable_params": runner.trainable_params(),
            "n_virtual": runner.n_virtual,
            **{f"{name}_times_ms": wall for name, (wall, _) in times.items()},
            **{f"{name}_cpu_times_ms": cpu for name, (_, cpu) in times.items()},
            "peak_mem_mb": peak,
            "mem_kind": memory.kind,
            "loss": last_loss,
            "note": runner.note,
            "load_avg": os.getloadavg()[0],
        }
    finally:
        runner.close()


# ---- orchestration -------------------------------------------------------------------------------------------
def _fingerprint(backbone: nn.Module) -> tuple:
    """The backbone's module types and trainable flags: what a method may change in place."""
    return tuple((type(m).__name__) for m in backbone.modules()) + tuple(p.requires_grad for p in backbone.parameters())


def _free(device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _measure_in_subprocess(spec: MethodSpec, setup: BenchSetup) -> dict[str, Any]:
    """One method in a fresh Python process (CPU memory peaks then belong to that method alone)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        payload = json.dumps({"setup": dataclasses.asdict(setup), "method": spec.text})
        result = subprocess.run([sys.executable, "-m", "lamp.bench", payload, str(out)], capture_output=True, text=True)
        if result.returncode != 0 or not out.is_file():
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise LampError(f"benchmark of {spec.text!r} failed in its worker process: {lines[-1]}")
        return json.loads(out.read_text())


def _worker(argv: list[str]) -> int:
    payload = json.loads(argv[0])
    setup = BenchSetup(**payload["setup"])
    spec = parse_method(payload["method"])
    if setup.threads:
        torch.set_num_threads(setup.threads)
    backbone = load_backbone(setup)
    from lamp.model import model_kind

    raw = measure_method(backbone, model_kind(backbone), spec, setup, isolated=True)
    Path(argv[1]).write_text(json.dumps(raw))
    return 0


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def summarise(raws: list[dict[str, Any]], setup: BenchSetup, weights: str, isolate: str) -> dict[str, Any]:
    """Pool the repeats of one method into one row: medians of every timed step, the largest peak."""

    def pooled(key: str) -> list[float]:
        return [t for raw in raws for t in raw[key]]

    steps = pooled("step_times_ms")
    step_ms = _median(steps)
    q1, q3 = _quantiles(steps)
    first = raws[0]
    cuda = setup.device.startswith("cuda")  # host CPU time says nothing about GPU work: left out there
    return {
        "method": first["method"],
        "trainable_params": first["trainable_params"],
        "n_virtual": first["n_virtual"],
        "step_ms": round(step_ms, 2),
        "step_ms_q1": round(q1, 2),
        "step_ms_q3": round(q3, 2),
        "step_ms_min": round(min(steps), 2),
        "step_cpu_ms": None if cuda else round(_median(pooled("step_cpu_times_ms")), 2),
        "tokens_per_s": round(setup.batch_size * setup.seq_len * 1000 / step_ms, 1),
        "peak_mem_mb": round(max(raw["peak_mem_mb"] for raw in raws), 1),
        "infer_ms": round(_median(pooled("infer_times_ms")), 2),
        "infer_all_ms": round(_median(pooled("infer_all_times_ms")), 2),
        "infer_cpu_ms": None if cuda else round(_median(pooled("infer_cpu_times_ms")), 2),
        "infer_all_cpu_ms": None if cuda else round(_median(pooled("infer_all_cpu_times_ms")), 2),
        "timed_steps": len(steps),
        "loss": round(first["loss"], 4),
        "mem_kind": first["mem_kind"],
        "note": first["note"],
        "model": setup.model,
        "weights": weights,
        "device": setup.device,
        "dtype": setup.dtype,
        "autocast": setup.autocast,
        "batch_size": setup.batch_size,
        "seq_len": setup.seq_len,
        "compile": setup.compile,
        "isolate": isolate,
        "load_avg": [round(raw["load_avg"], 2) for raw in raws],
        "torch_threads": setup.threads or torch.get_num_threads(),
    }


def run_bench(
    model: str = "smollm2-135m",
    methods: list[str] | None = None,
    batch_size: int = 16,
    seq_len: int = 64,
    steps: int = 10,
    warmup: int = 2,
    dtype: str = "auto",
    device: str = "auto",
    compile: bool = False,
    isolate: str = "auto",
    repeats: int = 1,
    target_len: int = 2,
    seed: int = 0,
    threads: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure each method on the same batch; one row per method (see the module docstring for what is timed).

    `isolate`: `process` runs each method in a fresh process (the CPU default, so RSS peaks do not carry over),
    `none` runs all in this process on one backbone (the GPU default). `repeats` rounds run the methods in
    rotated order and pool their steps, so a change in machine load lands on every method alike. `threads` sets
    torch's CPU threads (0: torch's default); on a CPU shared with other jobs, 1 thread avoids the
    oversubscription that makes multi-threaded timings erratic.
    """
    texts = list(dict.fromkeys(methods or DEFAULT_METHODS))  # a spec given twice is measured once
    specs = [parse_method(text) for text in texts]  # every spec checked before any work
    if not specs:
        raise ConfigError("no methods given: pass --methods, e.g. --methods none lamp:length=100,rank=8,pool=4")
    if isolate not in ISOLATE:
        raise ConfigError(f"unknown isolate {isolate!r}: choose one of {', '.join(ISOLATE)}")
    POSITIVE_INT.check("--repeats", repeats)
    setup = BenchSetup(
        model, batch_size, seq_len, target_len, steps, warmup, dtype, device, compile, seed, threads
    ).resolve()
    check_positions(setup, specs)
    if isolate == "auto":
        isolate = "none" if setup.device.startswith("cuda") else "process"
    previous_threads = torch.get_num_threads()
    if setup.threads:
        torch.set_num_threads(setup.threads)
    try:
        raws = _measure_all(setup, specs, isolate, repeats, progress or (lambda message: None))
    finally:
        torch.set_num_threads(previous_threads)
    from lamp.architectures import is_random

    weights = "random" if is_random(setup.model) else "pretrained"
    return [summarise(raws[spec.text], setup, weights, isolate) for spec in specs]


def _measure_all(
    setup: BenchSetup, specs: list[MethodSpec], isolate: str, repeats: int, say: Callable[[str], None]
) -> dict[str, list[dict[str, Any]]]:
    from lamp.model import model_kind
    from lamp.progress import progress

    backbone, kind, state = None, "", None
    raws: dict[str, list[dict[str, Any]]] = {spec.text: [] for spec in specs}
    bar = progress(total=repeats * len(specs), desc="bench", unit="run", leave=False)
    for round_ in range(repeats):
        shift = round_ % len(specs)
        for spec in specs[shift:] + specs[:shift]:
            with bar.external_write_mode():  # the line goes above the bar, not through it
                say(f"bench: {spec.text} (round {round_ + 1}/{repeats}, load {os.getloadavg()[0]:.2f})")
            bar.update(1)
            if isolate == "process":
                raws[spec.text].append(_measure_in_subprocess(spec, setup))
                continue
            if backbone is None or _fingerprint(backbone) != state:  # a method changed it: start afresh
                backbone = None
                _free(setup.device)
                backbone = load_backbone(setup)
                kind, state = model_kind(backbone), _fingerprint(backbone)
            raws[spec.text].append(measure_method(backbone, kind, spec, setup, isolated=False))
            _free(setup.device)
    bar.close()
    return raws


# ---- output --------------------------------------------------------------------------------------------------
def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table plus the setup and each row's caveat."""
    cpu = bool(rows) and rows[0]["step_cpu_ms"] is not None
    header = ["method", "trainable", "prompt pos", "step ms (q1-q3)", "tokens/s", "peak MB", "infer ms", "all-logits"]
    if cpu:
        header[4:4] = ["step cpu ms"]
        header += ["infer cpu", "all-logits cpu"]
    lines = [header]
    for r in rows:
        line = [
            r["method"],
            f"{r['trainable_params']:,}",
            str(r["n_virtual"]),
            f"{r['step_ms']:.1f} ({r['step_ms_q1']:.0f}-{r['step_ms_q3']:.0f})",
            f"{r['tokens_per_s']:,.0f}",
            f"{r['peak_mem_mb']:,.0f}",
            f"{r['infer_ms']:.1f}",
            f"{r['infer_all_ms']:.1f}",
        ]
        if cpu:
            line[4:4] = [f"{r['step_cpu_ms']:.1f}"]
            line += [f"{r['infer_cpu_ms']:.1f}", f"{r['infer_all_cpu_ms']:.1f}"]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    if rows:
        r = rows[0]
        loads = ", ".join(str(x) for row in rows for x in row["load_avg"])
        text += [
            "",
            f"model {r['model']} ({r['weights']} weights{RANDOM_CAVEAT if r['weights'] == 'random' else ''}), "
            f"{r['device']}, {r['dtype']}, autocast {r['autocast']}, "
            f"batch {r['batch_size']} x {r['seq_len']} tokens, {r['timed_steps']} timed steps per method, "
            f"compile {r['compile']}, {r['torch_threads']} threads",
            "step: forward + backward + AdamW step (median); infer: no-grad forward, logits at the scored position; "
            "all-logits: the same with logits at every position; tokens/s counts input tokens, not prompt positions"
            + ("; cpu: this process's CPU time (steadier than wall time on a shared CPU)" if cpu else ""),
            f"peak memory: {r['mem_kind']}",
            f"1-minute load average when each method started: {loads}",
        ]
        text += [f"{row['method']}: {row['note']}" for row in rows if row["note"]]
    return "\n".join(text)


def plot_bench(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Bar charts of step time, peak memory and inference latency per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["method"] for r in rows]
    panels = [("step_ms", "train step (ms)"), ("peak_mem_mb", "peak memory (MB)"), ("infer_ms", "inference (ms)")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.5 * len(rows) + 1.8))
    for axis, (key, label) in zip(axes, panels, strict=True):
        axis.barh(names, [r[key] for r in rows], color="tab:blue")
        axis.set(xlabel=label)
        axis.invert_yaxis()
        axis.grid(axis="x", alpha=0.3)
    for axis in axes[1:]:
        axis.set_yticklabels([])
    r = rows[0]
    figure.suptitle(f"{r['model']} ({r['weights']} weights), {r['device']}, batch {r['batch_size']}x{r['seq_len']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_outputs(rows: list[dict[str, Any]], out: str | os.PathLike) -> Path:
    """`bench.json` (the rows), `bench.txt` (the table) and `bench.png` in `out`."""
    folder = Path(out)  # each file written whole or not at all; a failed write is one line naming the path
    atomic_write(folder / "bench.json", lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=2) + "\n"))
    atomic_write(folder / "bench.txt", lambda tmp: Path(tmp).write_text(format_table(rows) + "\n"))
    atomic_write(folder / "bench.png", lambda tmp: plot_bench(rows, Path(tmp)))
    return folder


if __name__ == "__main__":
    try:
        sys.exit(_worker(sys.argv[1:]))
    except LampError as error:
        print(f"lamp bench: error: {error}", file=sys.stderr)
        sys.exit(2)
