"""`lamp export`: write an adapter as what serves its method without lamp: a stock PEFT adapter (prompt methods:
prompt tuning; LoRA: LoRA) or, for full fine-tuning, a transformers model folder."""

from __future__ import annotations

import argparse
from typing import Any

from lamp.checks import non_empty_path

FORMATS = ("peft", "model")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export", help="export an adapter as a stock PEFT adapter or a transformers model folder", description=__doc__
    )
    parser.add_argument("--adapter", required=True, help="lamp adapter folder (from lamp train: OUT/adapter)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="output format; default: the method's own (peft, or model for full fine-tuning). model on a LoRA "
        "adapter writes the backbone with LoRA merged into its weights (PEFT's merge_and_unload)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=non_empty_path,
        help="folder to write (PeftModel / AutoModel.from_pretrained read it)",
    )
    parser.add_argument("--model", help="backbone to load the adapter on (default: the one named in the adapter)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lamp.export import export_adapter

    _, line = export_adapter(args.adapter, args.out, backbone=args.model, export_format=args.format)
    print(f"wrote {line}")
    return 0
