"""Measuring one method on one backbone: the backbone and the synthetic batch every method shares, the timed train
step (forward with labels, backward, AdamW step) and inference, and the peak memory (`lamp.devices.PeakMemory`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from lamp.architectures import build_random, is_random
from lamp.backbones import ModelKind, load_model
from lamp.bench.config import BenchConfig, MethodSpec
from lamp.bench.runners import make_runner
from lamp.data import Encoded, collate_train
from lamp.devices import DTYPES, PeakMemory


def load_backbone(config: BenchConfig) -> nn.Module:
    """`random:<architecture>` built on the device, or real weights through `lamp.load_model`; frozen."""
    dtype = DTYPES[config.dtype]
    if is_random(config.model):
        model = build_random(config.model, dtype=dtype, device=config.device, seed=config.seed)
    else:
        model = load_model(config.model, dtype=dtype).to(config.device)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def synthetic_batch(backbone: nn.Module, kind: ModelKind, config: BenchConfig) -> dict[str, Any]:
    """A full batch of random token ids, collated exactly as the trainer collates (labels, logits_to_keep).

    `seq_len` tokens per example reach the model (causal: source plus a `target_len` target; seq2seq: the
    encoder's source, with a `target_len` decoder target).
    """
    vocab = backbone.get_input_embeddings().weight.shape[0]
    source_len = config.seq_len - config.target_len if kind == "causal" else config.seq_len
    generator = torch.Generator().manual_seed(config.seed)
    ids = torch.randint(
        min(3, vocab - 1), vocab, (config.batch_size, source_len + config.target_len), generator=generator
    )
    rows = [Encoded(row[:source_len].tolist(), row[source_len:].tolist()) for row in ids]
    batch = collate_train(rows, pad=0, kind=kind)
    return {k: (v.to(config.device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def inference_inputs(batch: dict[str, Any], kind: ModelKind, start_id: int, all_logits: bool) -> dict[str, Any]:
    """Scoring inputs: logits at the last position (or at every position when `all_logits`)."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if kind == "causal":
        return {**inputs, "logits_to_keep": 0 if all_logits else 1}
    width = batch["labels"].shape[1] if all_logits else 1
    decoder = torch.full((batch["input_ids"].shape[0], width), start_id, device=batch["input_ids"].device)
    return {**inputs, "decoder_input_ids": decoder}


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
    backbone: nn.Module, kind: ModelKind, spec: MethodSpec, config: BenchConfig, isolated: bool
) -> dict[str, Any]:
    """Raw measurements of one method: lists of step and inference times (ms) and the peak memory."""
    runner = make_runner(backbone, spec, kind, config.compile)
    memory = PeakMemory(config.device, isolated)
    try:
        batch = synthetic_batch(backbone, kind, config)
        start_id = getattr(backbone.config, "decoder_start_token_id", None) or 0
        optimizer = torch.optim.AdamW(runner.param_groups(), lr=1e-3)
        cuda = config.device.startswith("cuda")
        sync = (lambda: torch.cuda.synchronize(config.device)) if cuda else (lambda: None)
        autocast = torch.autocast("cuda", dtype=DTYPES[config.autocast]) if config.autocast != "no" else nullcontext()
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
        _timed(train_step, config.warmup, sync)
        times = {"step": _timed(train_step, config.steps, sync)}
        runner.module.eval()
        for name in ("infer", "infer_all"):
            fn = infer(name == "infer_all")
            _timed(fn, min(config.warmup, 1), sync)
            times[name] = _timed(fn, config.steps, sync)
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
