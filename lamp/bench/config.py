"""What `lamp bench` measures: `BenchConfig` (every setting, checked on construction; its fields are the command's
flags) and the method specs (`name[:key=value,...]`) it parses through the one registry."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from lamp.architectures import architecture_config, is_random, skeleton_model
from lamp.backbones import load_config
from lamp.checks import COUNT, POSITIVE_INT, SEED, check_choices, choices, text_hint
from lamp.cli_options import parse_value
from lamp.devices import DTYPES
from lamp.errors import ConfigError, did_you_mean
from lamp.methods import BENCH_DEFAULTS, REGISTRY, Harness, PromptConfig, check_options
from lamp.model import config_kind, config_positions, config_width

ISOLATE = ("auto", "process", "none")  # --isolate: none runs every method in this process
EVERY_HARNESS = tuple(Harness)  # bench measures every registered method, PEFT's own models among them


@dataclass(frozen=True)
class MethodSpec:
    """A parsed `name:key=value,...` method spec and its validated config."""

    text: str
    name: str
    config: PromptConfig


MAX_BATCH_TOKENS = 2**31 - 1
"""The most tokens one synthetic batch may hold: int32's limit, which torch's kernels index within."""


def parse_method(text: str) -> MethodSpec:
    """Parse and validate `name[:key=value,...]`, e.g. `lamp:length=100,rank=8,pool=4` or `peft-lora:r=8`: any
    registered method (`lamp.methods.REGISTRY`) with its config's options; ConfigError in one line otherwise."""
    name, _, rest = text.strip().partition(":")
    if name not in REGISTRY:
        raise ConfigError(
            f"unknown method {name!r} in {text!r}{did_you_mean([name], REGISTRY)}: choose one of {', '.join(REGISTRY)}"
        )
    options: dict[str, Any] = {}
    for item in rest.split(",") if rest.strip() else []:
        if not item.strip():  # `length=4,,rank=2`: a missing option, not nothing
            raise ConfigError(f"empty option in {text!r}: write options as key=value separated by single commas")
        key, sep, value = item.partition("=")
        if not sep and options:  # `target_modules=q_proj,v_proj`: the comma ended the value
            raise ConfigError(
                f"bad option {item!r} in {text!r}: options are separated by commas, so a value holds none; give "
                "several module names as one regex, e.g. 'lora:target_modules=.*(q_proj|v_proj)'"
            )
        if not sep or not key:
            raise ConfigError(f"bad option {item!r} in {text!r}: write options as key=value separated by commas")
        if key.strip() in options:  # the last would win silently while the row's label shows both
            raise ConfigError(f"option {key.strip()!r} is given twice in {text!r}: keep one")
        options[key.strip()] = parse_value(value.strip())  # as --set: 8, 3e-4, true, text
    check_options(name, options, EVERY_HARNESS)
    try:
        config = REGISTRY[name].config(**options)
    except ConfigError as error:  # `rank 100 exceeds length 4`, among several specs: say which
        raise ConfigError(f"{text}: {error}") from None
    if getattr(config, "init", None) in ("text", "task"):  # the worker would fail on it after the others ran
        raise ConfigError(
            f"init={config.init} in {text!r} starts the prompt from words, and lamp bench times synthetic inputs "
            "without a tokenizer or task; an init does not change what a step costs: drop init"
        )
    return MethodSpec(text, name, config)


@dataclass
class BenchConfig:
    """Everything `lamp bench` measures with; checked on construction (ConfigError naming the flag and the fix)."""

    model: str = "smollm2-135m"
    """backbone: a name, folder or hub id, or random:ARCH for random weights of a published architecture"""
    methods: list[str] = field(default_factory=lambda: list(BENCH_DEFAULTS))
    """method specs NAME[:KEY=VALUE,...] to compare"""
    batch_size: int = 16
    """examples per step"""
    seq_len: int = 64
    """input tokens per example"""
    target_len: int = 2
    """labelled target tokens per example"""
    steps: int = 10
    """timed steps per method and round"""
    warmup: int = 2
    """untimed steps first"""
    repeats: int = 1
    """rounds over all methods in rotated order, their steps pooled"""
    dtype: str = field(default="auto", metadata=choices("auto", *DTYPES))
    """weights: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16 or float16"""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N"""
    compile: bool = False
    """torch.compile the model the step calls"""
    isolate: str = field(default="auto", metadata=choices(*ISOLATE))
    """process: a fresh process per method (the CPU default); none: one process and backbone (the GPU default)"""
    threads: int = 0
    """torch CPU threads (0: torch's choice; 1 avoids oversubscription on a shared CPU)"""
    seed: int = 0
    """seed of the random weights and the synthetic batch"""

    def __post_init__(self) -> None:
        # values from YAML arrive untyped: `device: 5` or `methods: lamp` (read letter by letter) must not go on
        for name, example in (("model", "smollm2-135m or random:tiny-llama"), ("device", "cpu or cuda")):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                value = getattr(self, name)
                raise ConfigError(f"--{name} must be text, e.g. {example}, got {value!r}{text_hint(value)}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"--compile must be true or false, got {self.compile!r}")
        if not isinstance(self.methods, list | tuple) or not all(isinstance(m, str) for m in self.methods):
            raise ConfigError(
                f"--methods must be a list of method specs, e.g. [none, 'lamp:length=100,rank=8,pool=4'], "
                f"got {self.methods!r}"
            )
        # every spec checked before any work; a configuration given twice (in any spelling: options in another
        # order) is measured once, as first given
        self.specs: list[MethodSpec] = []
        for spec in map(parse_method, self.methods):
            if all((spec.name, spec.config) != (seen.name, seen.config) for seen in self.specs):
                self.specs.append(spec)
        self.methods = [spec.text for spec in self.specs]
        if not self.specs:
            raise ConfigError("no methods given: pass --methods, e.g. --methods none lamp:length=100,rank=8,pool=4")
        check_choices(self)  # dtype, isolate
        POSITIVE_INT.check("--repeats", self.repeats)
        for name in ("batch_size", "seq_len", "target_len", "steps"):
            POSITIVE_INT.check("--" + name.replace("_", "-"), getattr(self, name))
        for name in ("warmup", "threads"):
            COUNT.check(f"--{name}", getattr(self, name))
        tokens = self.batch_size * (self.seq_len + self.target_len)
        if tokens > MAX_BATCH_TOKENS:  # past it torch's index arithmetic overflows (a traceback, not an error line)
            raise ConfigError(
                f"--batch-size {self.batch_size} x (--seq-len {self.seq_len} + --target-len {self.target_len}) is "
                f"{tokens:.3g} tokens in one batch, more than the {MAX_BATCH_TOKENS:,} a tensor index takes: pass "
                "smaller sizes"
            )
        cpus = os.cpu_count() or 1  # torch (OpenMP) crashes on far more threads than CPUs
        if self.threads > cpus:
            raise ConfigError(
                f"--threads {self.threads} exceeds this machine's {cpus} CPU{'s' * (cpus != 1)}: pass at most {cpus}"
            )
        SEED.check("--seed", self.seed)
        if not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ConfigError(f"unknown device {self.device!r}: pass cpu, cuda or cuda:N")

    def resolve(self) -> BenchConfig:
        """This config with `auto` filled in for this machine, the methods checked against the backbone."""
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for but CUDA is not available: pass --device cpu")
        dtype = self.dtype
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        isolate = self.isolate
        if isolate == "auto":
            isolate = "none" if device.startswith("cuda") else "process"
        resolved = dataclasses.replace(self, device=device, dtype=dtype, isolate=isolate)
        resolved.check_backbone()
        return resolved

    @property
    def autocast(self) -> str:
        """On a GPU the step runs under autocast, as the trainer's bf16 mixed precision does."""
        if not self.device.startswith("cuda"):
            return "no"
        return "float16" if self.dtype == "float16" else "bfloat16"

    def check_backbone(self) -> None:
        """Refuse, before any work (the backbone's config is read, not its weights): an unknown random architecture;
        a causal backbone's --seq-len that leaves no source before --target-len; a --seq-len that, with a method's
        prompt rows, exceeds the backbone's positions; a method that does not fit the backbone
        (`PromptConfig.check_fits`: a rank above its width, DePT's offset past its positions; `check_modules`: a LoRA
        target that names no layer)."""
        config = architecture_config(self.model) if is_random(self.model) else load_config(self.model)
        limit, width = config_positions(config), config_width(config)
        if config_kind(config) == "causal" and self.seq_len <= self.target_len:
            raise ConfigError(
                f"--seq-len {self.seq_len} leaves no source token before a {self.target_len}-token target on a causal "
                f"backbone: pass a --seq-len above {self.target_len}, or a shorter --target-len"
            )
        for spec in self.specs:
            rows = spec.config.n_virtual()
            if limit is not None and self.seq_len + rows > limit:
                fix = f"pass --seq-len {limit - rows} or less" if limit > rows else "use a shorter prompt"
                raise ConfigError(
                    f"--seq-len {self.seq_len} and the {rows} prompt rows of {spec.text} exceed the {limit} positions "
                    f"of {self.model}: {fix}"
                )
            try:
                spec.config.check_fits(limit, width)
                spec.config.check_modules(functools.partial(skeleton_model, config))
            except ConfigError as error:
                raise ConfigError(f"{spec.text}: {error}") from None
