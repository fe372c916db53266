"""`lamp train`: flags generated from TrainConfig's fields, nested --method.NAME flags for the method's options,
plus a YAML --config with the same keys."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any

from lamp.cli_options import add_config_flags, build, flag_values, key_value, key_value_pairs, parse_value, yaml_values
from lamp.errors import ConfigError


def _set_flag(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    """method_options is given as repeatable --set KEY=VALUE pairs."""
    parser.add_argument("--set", dest=name, type=key_value, action="append", metavar="KEY=VALUE", help=help_text)


def add_train_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """TrainConfig's flags, with method_options as --set."""
    add_config_flags(parser, config_class, custom={"method_options": _set_flag})


METHOD_FLAG = "method."
"""Prefix of the nested method-option flags (--method.rank 8) and of their argparse destinations."""


def add_method_flags(parser: argparse.ArgumentParser) -> None:
    """--method.NAME VALUE for every option of every registered method; the chosen method's config checks them."""
    from lamp.methods import METHODS

    owners: dict[str, list[str]] = {}
    kinds: dict[str, Any] = {}
    for method, entry in METHODS.items():
        hints = typing.get_type_hints(entry.config)
        for f in dataclasses.fields(entry.config):
            owners.setdefault(f.name, []).append(method)
            kinds.setdefault(f.name, hints[f.name])
    group = parser.add_argument_group(
        "method options", "Any option of the --method's config, e.g. --method.rank 8 (the same as --set rank=8)."
    )
    for name, methods in owners.items():
        text = kinds[name] in (str, str | None)  # text stays text (an init phrase "1 2" is not a tuple)
        flags = dict.fromkeys([f"--{METHOD_FLAG}{name}", f"--{METHOD_FLAG}{name.replace('_', '-')}"])
        group.add_argument(
            *flags,
            dest=METHOD_FLAG + name,
            type=str if text else parse_value,
            default=None,
            metavar="VALUE",
            help=f"option of {', '.join(methods)}",
        )


def _method_options(source: dict[str, Any], nested: dict[str, Any] | None = None) -> Any:
    """The method options one source (a YAML file, or the flags) gives: its method_options (--set), its nested
    options (--method.NAME) and its shorthands (--length...), popped from `source`; two values for one option are
    refused. A method_options that is not a mapping is returned as it is, for TrainConfig to refuse."""
    from lamp.train import SHORTHANDS, with_shorthands

    options = source.pop("method_options", None)
    shorthands = {name: source.pop(name) for name in SHORTHANDS if name in source}
    if options is not None and not isinstance(options, dict):
        return options
    options = with_shorthands(dict(options or {}), nested or {})
    return with_shorthands(options, shorthands)


def config_from_args(args: argparse.Namespace, config_class: type) -> Any:
    """YAML values first, then command-line flags on top (method options one by one).

    With --resume on a folder that holds a run, the run's saved settings come first and only the values given
    explicitly (YAML keys, flags) go on top: train() then refuses those that contradict the run.
    """
    from lamp.tasks.user import DATA_OPTIONS, refuse_built_in_with_data
    from lamp.train import ACTIONS, TASK_SPEC

    loaded = yaml_values(args.config, config_class, extra_keys=(TASK_SPEC,))
    for action in ACTIONS:  # from the command line only: a file kept beside runs must not act on the next one
        if loaded.pop(action, None) is True:
            raise ConfigError(
                f"{args.config}: {action}: true is not read from a --config file (what a command does to its --out "
                f"folder is given on the command line): pass --{action} and drop the key"
            )
    if loaded.pop(TASK_SPEC, None) is not None and loaded.get("task") == config_class.task:
        # a run's own record (RUN/train_config.json) of a task from data flags: those flags, recorded beside it,
        # rebuild the spec, and its `task` is the unset default, not the built-in task of that name
        del loaded["task"]
    flags = flag_values(args, config_class)
    if "method_options" in flags:
        flags["method_options"] = key_value_pairs(flags["method_options"], "--set")
    nested = {
        key[len(METHOD_FLAG) :]: value
        for key, value in vars(args).items()
        if key.startswith(METHOD_FLAG) and value is not None
    }
    from_yaml, from_flags = _method_options(loaded, {}), _method_options(flags, nested)
    values = {**loaded, **flags}
    if not isinstance(from_yaml, dict) or not isinstance(from_flags, dict):
        values["method_options"] = from_flags if not isinstance(from_flags, dict) else from_yaml
    elif from_yaml or from_flags:
        values["method_options"] = {**from_yaml, **from_flags}  # a flag wins over the YAML file, option by option
    if "task" in values:  # given, even as the default's name (TrainConfig cannot tell `--task polarity` from none)
        refuse_built_in_with_data(values["task"], {key: values.get(key) for key in DATA_OPTIONS})
    if values.get("resume") is True and values.get("overwrite") is not True:  # both: TrainConfig names the conflict
        values = _with_saved_run(values, config_class)
    return build(config_class, values)


def _with_saved_run(values: dict[str, Any], config_class: type) -> dict[str, Any]:
    """The explicit `values` over the settings of the run they resume (none when the folder holds no run yet); the
    given method options add to the run's, unless another method is given."""
    from lamp.train import ACTIONS, saved_config

    out = Path(values.get("out", config_class.out))
    saved = saved_config(out) if out.is_dir() else None
    if not saved:
        return values
    known = {f.name for f in dataclasses.fields(config_class)} - {"out", *ACTIONS}
    merged = {**{k: v for k, v in saved.items() if k in known}, **values}
    same_method = values.get("method", saved.get("method")) == saved.get("method")
    options = values.get("method_options", {})
    if not same_method:  # the run's options belong to its own method: a contradiction check_resume names alone
        merged["method_options"] = options
    elif isinstance(saved.get("method_options"), dict) and isinstance(options, dict):
        merged["method_options"] = {**saved["method_options"], **options}  # --set adds to them
    return merged


def add_parser(subparsers: Any) -> None:
    from lamp.train import TrainConfig

    parser = subparsers.add_parser(
        "train",
        help="train a prompt on a task (no arguments: LAMP on SmolLM2-135M, polarity, offline)",
        description="Train a prompt method on a task and score the best checkpoint on test.",
    )
    parser.add_argument(
        "--config",
        help="YAML or JSON file with the same keys as the flags (flags override it), e.g. a run's own "
        "RUN/train_config.json; its relative paths are read from the working directory, as flags are (a task "
        "file's, from the task file's folder); --resume and --overwrite are taken from the command line only",
    )
    add_train_flags(parser, TrainConfig)
    add_method_flags(parser)
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
