"""`lamp train`: flags generated from TrainConfig's fields, plus a YAML --config with the same keys."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import typing
from pathlib import Path
from typing import Any

from lamp.config_files import load_yaml
from lamp.errors import ConfigError


def _field_docs() -> dict[str, str]:
    """Attribute docstrings of TrainConfig (the string after each field) become the flags' help."""
    import inspect

    from lamp.train import TrainConfig

    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = after.value.value
    return docs


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    if value.lower() in ("true", "false"):  # YAML and shell habits: true/false as well as True/False
        return key, value.lower() == "true"
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def add_config_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One flag per dataclass field, typed from its annotation; defaults stay None so YAML can fill them."""
    docs = _field_docs()
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"{docs.get(f.name, '')} (default: {default})".replace("%", "%%")  # argparse formats help
        kind = hints[f.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif f.name == "method_options":
            parser.add_argument(
                "--set", dest=f.name, type=_option, action="append", metavar="KEY=VALUE", help=help_text
            )
        else:
            base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
            parser.add_argument(flag, type=base, default=None, metavar=f.name.upper(), help=help_text)


def config_from_args(args: argparse.Namespace, config_class: type) -> Any:
    """YAML values first, then command-line flags on top.

    With --resume on a folder that holds a run, the run's saved settings come first and only the values given
    explicitly (YAML keys, flags) go on top: train() then refuses those that contradict the run.
    """
    values: dict[str, Any] = {}
    if args.config:
        known = sorted(f.name for f in dataclasses.fields(config_class))
        values.update(load_yaml(args.config, "config file", keys=known))
    for f in dataclasses.fields(config_class):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = dict(value) if f.name == "method_options" else value
    if values.get("resume") is True:
        values = _with_saved_run(values, config_class)
    try:
        return config_class(**values)
    except TypeError as error:
        raise ConfigError(f"bad configuration: {error}") from None


def _with_saved_run(values: dict[str, Any], config_class: type) -> dict[str, Any]:
    """The explicit `values` over the settings of the run they resume (none when the folder holds no run yet)."""
    from lamp.train import saved_config

    out = Path(values.get("out", config_class.out))
    saved = saved_config(out) if out.is_dir() else None
    if not saved:
        return values
    known = {f.name for f in dataclasses.fields(config_class)} - {"out", "resume", "overwrite"}
    merged = {**{k: v for k, v in saved.items() if k in known}, **values}
    if isinstance(saved.get("method_options"), dict) and isinstance(values.get("method_options"), dict):
        merged["method_options"] = {**saved["method_options"], **values["method_options"]}  # --set adds to them
    return merged


def add_parser(subparsers: Any) -> None:
    from lamp.train import TrainConfig

    parser = subparsers.add_parser(
        "train",
        help="train a prompt on a task (no arguments: LAMP on SmolLM2-135M, polarity, offline)",
        description="Train a prompt method on a task and score the best checkpoint on test.",
    )
    parser.add_argument("--config", help="YAML file with the same keys as the flags (flags override it)")
    add_config_flags(parser, TrainConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lamp.train import TrainConfig, train

    config = config_from_args(args, TrainConfig)
    results = train(config)
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return 0
    out = Path(config.out)
    zero, test = results["zero_shot"], results["test"]
    print(f"\n{results['method']} on {results['task']} ({results['model']}), {results['trainable_params']:,} trainable")
    if zero is not None:
        print(f"  zero-shot test score (the backbone with no prompt): {zero['score']:.2f}")
    print(f"  trained test score (best validation step {results['best_step']}): {test['score']:.2f}   {test}")
    print(f"  {results['steps']} steps in {results['wall_s']:.0f} s, peak memory {results['peak_mem_mb']:.0f} MB")
    print(
        f"  saved: adapter {out / 'adapter'}, results {out / 'results.json'}, log {out / 'log.jsonl'}, "
        f"plot {out / 'training.png'}"
    )
    return 0
