"""`lamp export`: write a lamp adapter in another library's format (today: a stock PEFT prompt-tuning adapter)."""

from __future__ import annotations

import argparse
from typing import Any

FORMATS = ("peft",)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export", help="export an adapter as a stock PEFT prompt-tuning adapter", description=__doc__
    )
    parser.add_argument("--adapter", required=True, help="lamp adapter folder (from lamp train: OUT/adapter)")
    parser.add_argument("--format", choices=FORMATS, default="peft", help="output format (default: peft)")
    parser.add_argument("--out", required=True, help="folder to write (PeftModel.from_pretrained reads it)")
    parser.add_argument("--model", help="backbone to load the adapter on (default: the one named in the adapter)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lamp.export import export_peft

    out = export_peft(args.adapter, args.out, backbone=args.model)
    print(f"wrote a PEFT prompt-tuning adapter to {out}: peft.PeftModel.from_pretrained(backbone, {str(out)!r})")
    return 0
