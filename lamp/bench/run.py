"""Running the benchmark: every method on the same batch, in this process on one backbone or in a fresh process
each, over rotated rounds; the raw measurements pooled into one row per method."""

from __future__ import annotations

import gc
import os
import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lamp.architectures import is_random
from lamp.bench.config import BenchConfig
from lamp.bench.isolation import measure_in_subprocess
from lamp.bench.measure import load_backbone, measure_method
from lamp.model import model_kind
from lamp.progress import progress


def _fingerprint(backbone: nn.Module) -> tuple:
    """The backbone's module types and trainable flags: what a method may change in place."""
    return tuple((type(m).__name__) for m in backbone.modules()) + tuple(p.requires_grad for p in backbone.parameters())


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def summarise(raws: list[dict[str, Any]], config: BenchConfig, weights: str) -> dict[str, Any]:
    """Pool the repeats of one method into one row: medians of every timed step, the largest peak."""

    def pooled(key: str) -> list[float]:
        return [t for raw in raws for t in raw[key]]

    steps = pooled("step_times_ms")
    step_ms = _median(steps)
    q1, q3 = _quantiles(steps)
    first = raws[0]
    cuda = config.device.startswith("cuda")  # host CPU time says nothing about GPU work: left out there
    return {
        "method": first["method"],
        "trainable_params": first["trainable_params"],
        "n_virtual": first["n_virtual"],
        "step_ms": round(step_ms, 2),
        "step_ms_q1": round(q1, 2),
        "step_ms_q3": round(q3, 2),
        "step_ms_min": round(min(steps), 2),
        "step_cpu_ms": None if cuda else round(_median(pooled("step_cpu_times_ms")), 2),
        "tokens_per_s": round(config.batch_size * config.seq_len * 1000 / step_ms, 1),
        "peak_mem_mb": round(max(raw["peak_mem_mb"] for raw in raws), 1),
        "infer_ms": round(_median(pooled("infer_times_ms")), 2),
        "infer_all_ms": round(_median(pooled("infer_all_times_ms")), 2),
        "infer_cpu_ms": None if cuda else round(_median(pooled("infer_cpu_times_ms")), 2),
        "infer_all_cpu_ms": None if cuda else round(_median(pooled("infer_all_cpu_times_ms")), 2),
        "timed_steps": len(steps),
        "loss": round(first["loss"], 4),
        "mem_kind": first["mem_kind"],
        "note": first["note"],
        "model": config.model,
        "weights": weights,
        "device": config.device,
        "dtype": config.dtype,
        "autocast": config.autocast,
        "batch_size": config.batch_size,
        "seq_len": config.seq_len,
        "compile": config.compile,
        "isolate": config.isolate,
        "load_avg": [round(raw["load_avg"], 2) for raw in raws],
        "torch_threads": config.threads or torch.get_num_threads(),
    }


def run_bench(config: BenchConfig, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Measure each of `config.methods` on the same batch; one row per method (what is timed: `lamp.bench`).

    `isolate`: `process` runs each method in a fresh process (the CPU default, so RSS peaks do not carry over),
    `none` runs all in this process on one backbone (the GPU default). `repeats` rounds run the methods in
    rotated order and pool their steps, so a change in machine load lands on every method alike. `threads` sets
    torch's CPU threads (0: torch's default); on a CPU shared with other jobs, 1 thread avoids the
    oversubscription that makes multi-threaded timings erratic. `progress` receives one line per run.
    """
    config = config.resolve()
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        raws = _measure_all(config, progress or (lambda message: None))
    finally:
        torch.set_num_threads(previous_threads)
    weights = "random" if is_random(config.model) else "pretrained"
    return [summarise(raws[spec.text], config, weights) for spec in config.specs]


def _measure_all(config: BenchConfig, say: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    specs, repeats = config.specs, config.repeats
    backbone, kind, state = None, "", None
    raws: dict[str, list[dict[str, Any]]] = {spec.text: [] for spec in specs}
    bar = progress(total=repeats * len(specs), desc="bench", unit="run", leave=False)
    for round_ in range(repeats):
        shift = round_ % len(specs)
        for spec in specs[shift:] + specs[:shift]:
            with bar.external_write_mode():  # the line goes above the bar, not through it
                say(f"bench: {spec.text} (round {round_ + 1}/{repeats}, load {os.getloadavg()[0]:.2f})")
            bar.update(1)
            if config.isolate == "process":
                raws[spec.text].append(measure_in_subprocess(spec, config))
                continue
            if backbone is None or _fingerprint(backbone) != state:  # a method changed it: start afresh
                backbone = None
                _free(config.device)
                backbone = load_backbone(config)
                kind, state = model_kind(backbone), _fingerprint(backbone)
            raws[spec.text].append(measure_method(backbone, kind, spec, config, isolated=False))
            _free(config.device)
    bar.close()
    return raws
