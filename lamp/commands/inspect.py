"""`lamp inspect`: pictures and numbers of a saved prompt (token cosine similarity, singular values, token norms
before and after pooling), optionally beside a second adapter's."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lamp.checks import non_empty_path


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect", help="plot a prompt's structure and print its summary", description=__doc__
    )
    parser.add_argument("--adapter", required=True, help="lamp adapter folder")
    parser.add_argument("--compare", help="a second adapter folder to show beside it (e.g. vanilla PT vs LAMP)")
    parser.add_argument(
        "--out", type=non_empty_path, help="folder for the PNGs and summary (default: inspect/ beside the adapter)"
    )
    parser.add_argument("--model", help="backbone to load the adapters on (default: the one each adapter names)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lamp.inspection import FILES, SUMMARY_JSON, SUMMARY_TEXT, inspect_adapters

    out = Path(args.out) if args.out else Path(args.adapter).resolve().parent / "inspect"
    adapters = [args.adapter] + ([args.compare] if args.compare else [])
    inspect_adapters(adapters, out, backbone=args.model)
    print((out / SUMMARY_TEXT).read_text(), end="")
    print(f"\nwrote {', '.join(str(out / name) for name in (*FILES, SUMMARY_TEXT, SUMMARY_JSON))}")
    return 0
