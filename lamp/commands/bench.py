"""`lamp bench`: trainable parameters, train-step time, peak memory and inference latency per method."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EPILOG = """\
methods: none (no prompt: the floor), any method of lamp's registry with its config options (pt:length=N,
lamp:length=N,rank=R,pool=K, lora:rank=R, dept:..., dpt:..., full), and stock PEFT through get_peft_model:
peft-pt:length=N[,init=vocab|random] and peft-lora:r=R[,alpha=A], both with logits=all (PEFT's forward, the
default) or logits=needed (logits only where the loss needs them, as lamp).
models: smollm2-135m (offline weights), a folder or hub id, or random:ARCH for random weights of a published
architecture (valid for time and memory, not for quality): random:t5-small random:t5-base random:t5-large
random:t5-3b random:t5-11b random:llama2-7b random:smollm2-135m (and random:tiny-t5, random:tiny-llama for smoke tests).
"""


def add_parser(subparsers: Any) -> None:
    from lamp.bench import DEFAULT_METHODS, ISOLATE

    parser = subparsers.add_parser(
        "bench",
        help="measure speed and memory of prompt methods (and PEFT's PT and LoRA) on one batch",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="smollm2-135m", help="backbone (default: smollm2-135m; random:ARCH)")
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, metavar="SPEC", help="methods to compare")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per step (default: 16)")
    parser.add_argument("--seq-len", type=int, default=64, help="input tokens per example (default: 64)")
    parser.add_argument("--target-len", type=int, default=2, help="labelled target tokens per example (default: 2)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method and round (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over all methods, pooled (default: 1)")
    parser.add_argument("--dtype", default="auto", help="weights: auto (bfloat16 on GPU, float32 on CPU), float32...")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model the step calls")
    parser.add_argument(
        "--isolate", default="auto", choices=ISOLATE, help="process: a fresh process per method (CPU default)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON list")
    parser.add_argument("--out", default="runs/bench", help="folder for bench.json, bench.txt, bench.png")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lamp.bench import format_table, run_bench, write_outputs
    from lamp.export import check_output_folder

    check_output_folder(Path(args.out), "bench")  # before measuring, not after
    rows = run_bench(
        model=args.model,
        methods=args.methods,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        steps=args.steps,
        warmup=args.warmup,
        dtype=args.dtype,
        device=args.device,
        compile=args.compile,
        isolate=args.isolate,
        repeats=args.repeats,
        target_len=args.target_len,
        seed=args.seed,
        threads=args.threads,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    folder = write_outputs(rows, args.out)
    if args.json:
        print(json.dumps(rows))
    else:
        print(format_table(rows))
        print(f"\nsaved {folder / 'bench.json'}, {folder / 'bench.txt'}, {folder / 'bench.png'}")
    return 0
