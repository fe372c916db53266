"""Throughput of one backbone serving several tasks: mixed-task batches vs the adapters run one after another.

Three adapters on SmolLM2-135M with prompts of different lengths (LAMP l=100 k=4: 25 rows; PT: 20 rows; LAMP l=40
k=4: 10 rows), untrained (speed does not depend on the values), `--per-task` test rows of each task. Every mode runs
the same `lamp.predict_rows` code with rank classification:
  mixed          all rows in one stream, batches mixing tasks (rows of similar length batched together)
  mixed-arrival  the same stream batched in arrival order (a shuffled mix), as a server sees requests
  sequential     each adapter on its own task's rows, one task after another
It also checks that the three modes predict the same labels.

    .venv/bin/python benchmarks/multitask.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time

import torch

import lamp
from lamp.tasks import load_splits

ADAPTERS = {
    "polarity": lamp.LampConfig(length=100, rank=8, pool=4),
    "sst2": lamp.PromptTuningConfig(length=20),
    "rte": lamp.LampConfig(length=40, rank=4, pool=4),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data-dir", default=os.environ.get("LAMP_DATA_DIR", "../shared/data"))
    parser.add_argument("--per-task", type=int, default=64, help="test rows per task")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode (the median is reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    backbone = lamp.load_model(args.model)
    tokenizer = lamp.load_tokenizer(args.model)
    adapters = {task: lamp.wrap(backbone, config).eval() for task, config in ADAPTERS.items()}
    rows = []
    for task in ADAPTERS:
        examples = load_splits(task, args.data_dir, seed=42)["test"][: args.per_task]
        rows += [{"task": task, "source": e.source, "id": f"{task}-{i}"} for i, e in enumerate(examples)]
    random.Random(0).shuffle(rows)

    def mixed(by_length: bool) -> list[dict]:
        return lamp.predict_rows(adapters, rows, tokenizer, args.batch_size, by_length=by_length)

    def sequential() -> list[dict]:
        out = []
        for task, model in adapters.items():
            out += lamp.predict_rows({task: model}, [r for r in rows if r["task"] == task], tokenizer, args.batch_size)
        return out

    # Load-independent work: forward calls and (prompt + input) positions the backbone processes, padding included.
    work = {"calls": 0, "positions": 0}

    def count(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        work["calls"] += 1
        work["positions"] += kwargs["inputs_embeds"].shape[0] * kwargs["inputs_embeds"].shape[1]

    modes = {"mixed": lambda: mixed(True), "mixed-arrival": lambda: mixed(False), "sequential": sequential}
    predictions, timings, counts = {}, {name: [] for name in modes}, {}
    with torch.inference_mode():
        for name, run in modes.items():
            handle = backbone.register_forward_pre_hook(count, with_kwargs=True)
            work.update(calls=0, positions=0)
            predictions[name] = {r["id"]: r["prediction"] for r in run()}  # warm-up, and the answers to compare
            handle.remove()
            counts[name] = dict(work)
        for _ in range(args.repeats):  # interleaved, so a change in machine load hits every mode alike
            for name, run in modes.items():
                started = time.perf_counter()
                run()
                timings[name].append(time.perf_counter() - started)
    disagree = {
        name: sum(p != predictions["sequential"][k] for k, p in got.items()) for name, got in predictions.items()
    }

    lengths = [len(tokenizer(r["source"])["input_ids"]) for r in rows]
    print(
        f"{args.model}, {len(rows)} rows ({args.per_task} per task: {', '.join(ADAPTERS)}), batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads, source tokens mean {statistics.mean(lengths):.0f} max {max(lengths)}, "
        f"device {next(backbone.parameters()).device}"
    )
    results = {}
    for name, seconds in timings.items():
        median = statistics.median(seconds)
        results[name] = {
            "seconds": seconds,
            "examples_per_s": len(rows) / median,
            "disagreements": disagree[name],
            **counts[name],
        }
        print(
            f"  {name:14s} {len(rows) / median:7.2f} examples/s  (median {median:.2f} s of {args.repeats}: "
            f"{', '.join(f'{s:.2f}' for s in seconds)}); {counts[name]['calls']} forward calls, "
            f"{counts[name]['positions']:,} positions; predictions differing from sequential: {disagree[name]}"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
