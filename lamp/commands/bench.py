"""`lamp bench`: trainable parameters, train-step time, peak memory and inference latency per method. Flags come
from BenchConfig's fields (`lamp.cli_options`, the path every command takes), and a YAML --config with the same
keys."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lamp.checks import non_empty_path
from lamp.cli_options import add_config_flags, config_from_args

EPILOG = """\
methods: every registered method with its config's options: none (no prompt: the floor), lamp's methods
(pt:length=N, lamp:length=N,rank=R,pool=K, lora:rank=R, dept:..., dpt:..., full), and stock PEFT through
get_peft_model: peft-pt:length=N[,init=vocab|random] and peft-lora:r=R[,alpha=A], both with logits=all (PEFT's
forward, the default) or logits=needed (logits only where the loss needs them, as lamp).
models: smollm2-135m (offline weights), a folder or hub id, or random:ARCH for random weights of a published
architecture (valid for time and memory, not for quality): random:t5-small random:t5-base random:t5-large
random:t5-3b random:t5-11b random:llama2-7b random:smollm2-135m (and random:tiny-t5, random:tiny-llama for smoke tests).
"""


def add_parser(subparsers: Any) -> None:
    from lamp.bench import BenchConfig

    parser = subparsers.add_parser(
        "bench",
        help="measure speed and memory of prompt methods (and PEFT's PT and LoRA) on one batch",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        help="YAML file with the measurement flags' keys (model, methods, batch_size, ...; not out or json); "
        "flags override it",
    )
    add_config_flags(parser, BenchConfig, custom={"methods": _methods_flag})
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON list")
    parser.add_argument(
        "--out",
        default="runs/bench",
        type=non_empty_path,
        help="folder for bench.json, bench.txt, bench.png (default: runs/bench)",
    )
    parser.set_defaults(func=run)


def _methods_flag(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    from lamp.methods import BENCH_DEFAULTS

    parser.add_argument(  # several specs after one flag
        "--methods", nargs="+", metavar="SPEC", help=f"methods to compare (default: {' '.join(BENCH_DEFAULTS)})"
    )


def run(args: argparse.Namespace) -> int:
    import lamp.bench
    from lamp.export import check_output_folder

    config = config_from_args(args, lamp.bench.BenchConfig)  # every setting and spec checked before any work
    check_output_folder(Path(args.out), "bench")  # before measuring, not after
    rows = lamp.bench.run_bench(config, progress=lambda message: print(message, file=sys.stderr, flush=True))
    folder = lamp.bench.write_outputs(rows, args.out)
    if args.json:
        print(json.dumps(rows))
    else:
        print(lamp.bench.format_table(rows))
        print(f"\nsaved {folder / 'bench.json'}, {folder / 'bench.txt'}, {folder / 'bench.png'}")
    return 0
