"""Trainer overhead: `lamp.train.train`'s full step against a bare forward/backward/AdamW loop on the same batches.

The trainer's step is timed between its `callback` calls, so it includes everything the loop does per step (data
order, collation, moving the batch, autocast, clipping, scheduler, logging). The batches it trains on are recorded
and replayed by the bare loop, which runs between two trainer runs (a sandwich, so a change in machine load shows
up as a gap between them). The overhead is the median over steps of (faster trainer run) / bare time, on the wall
clock and on this process's CPU time (steadier on a CPU shared with other jobs).

    .venv/bin/python benchmarks/trainer_overhead.py --steps 12 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

import torch

import lamp.data
from lamp.backbones import load_model
from lamp.methods import make_config
from lamp.model import wrap
from lamp.train import TrainConfig, train


class Stop(Exception):
    """Raised from the callback to end training before its final evaluation."""


def trainer_steps(config: TrainConfig, steps: int) -> tuple[list[tuple[float, float]], list[dict[str, Any]]]:
    """(wall, CPU) times of steps 2..steps of `train(config)` (ms) and every batch it trained on, in order."""
    batches: list[dict[str, Any]] = []
    collate = lamp.data.collate_train

    def recording(*args: Any, **kwargs: Any) -> dict[str, Any]:
        batch = collate(*args, **kwargs)
        batches.append(batch)
        return batch

    stamps: list[tuple[float, float]] = []

    def callback(step: int, state: dict[str, Any]) -> None:
        stamps.append((time.perf_counter(), time.process_time()))
        if step == steps:
            raise Stop

    lamp.data.collate_train = recording  # train() imports it from lamp.data when it starts
    try:
        train(config, callback)
    except Stop:
        pass
    finally:
        lamp.data.collate_train = collate
    times = [((b[0] - a[0]) * 1000, (b[1] - a[1]) * 1000) for a, b in zip(stamps, stamps[1:], strict=False)]
    return times, batches[:steps]


def bare_steps(config: TrainConfig, batches: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(wall, CPU) times of the same batches through wrap + forward/backward/AdamW only (ms), the first untimed."""
    torch.manual_seed(config.seed)
    model = wrap(load_model(config.model), make_config(config.method, **config.prompt_options()))
    optimizer = torch.optim.AdamW(model.prompt_encoder.optimizer_groups(config.lr), lr=config.lr)
    model.train()
    times = []
    for batch in batches:
        start, start_cpu = time.perf_counter(), time.process_time()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(((time.perf_counter() - start) * 1000, (time.process_time() - start_cpu) * 1000))
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="polarity")
    parser.add_argument("--method", default="lamp")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--data-dir")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            task=args.task,
            model=args.model,
            method=args.method,
            batch_size=args.batch_size,
            max_steps=args.steps + 1,  # stopped after `steps`, before the last step's evaluation
            eval_every=10**9,
            zero_shot=False,
            data_dir=args.data_dir,
            out=out,
            overwrite=True,
        )
        # Trainer, bare loop, trainer again: the first run also records the batches (their lengths vary with
        # dynamic padding), and a change in machine load shows up as a gap between the two trainer runs.
        first, batches = trainer_steps(config, args.steps)
        load.append(os.getloadavg()[0])
        bare = bare_steps(config, batches)
        load.append(os.getloadavg()[0])
        second, _ = trainer_steps(config, args.steps)
        load.append(os.getloadavg()[0])
    result: dict[str, Any] = {"steps_compared": len(bare)}
    for i, clock in enumerate(("wall", "cpu")):
        trained = [min(a[i], b[i]) for a, b in zip(first, second, strict=True)]
        ratios = [t / b[i] for t, b in zip(trained, bare, strict=True)]
        result[clock] = {
            "trainer_step_ms_median_first": round(statistics.median(t[i] for t in first), 1),
            "trainer_step_ms_median_second": round(statistics.median(t[i] for t in second), 1),
            "bare_step_ms_median": round(statistics.median(t[i] for t in bare), 1),
            "overhead_median_pct": round((statistics.median(ratios) - 1) * 100, 1),
            "ratios": [round(r, 3) for r in ratios],
        }
    result["tokens_per_batch"] = [int(b["attention_mask"].sum()) for b in batches[1:]]
    result["load_avg"] = load
    result["threads"] = torch.get_num_threads()
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
