"""The one dataclass -> command-line/YAML path of every command: one flag per field of an options dataclass, its
help taken from the field's attribute docstring (the string literal after the field), and `--config FILE` with the
same keys read first, flags on top.

    @dataclass
    class Options:
        batch_size: int = 32
        \"\"\"examples per batch\"\"\"

    add_config_flags(parser, Options)              # --batch-size BATCH_SIZE  examples per batch (default: 32)
    options = config_from_args(args, Options)      # YAML values (args.config), then the flags given
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lamp.config_files import load_yaml
from lamp.errors import ConfigError

FlagAdder = Callable[[argparse.ArgumentParser, str, str], None]
"""A field's own flag: called with (parser, field name, help text) instead of the generic flag."""

Merge = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
"""How the YAML values and the flag values combine into the dataclass's keywords (default: flags on top)."""


def field_docs(config_class: type) -> dict[str, str]:
    """Attribute docstrings of `config_class` (the string after each field), by field name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(config_class)))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = after.value.value
    return docs


def parse_value(text: str) -> Any:
    """A typed value from the command line: true/false (any case), a Python literal (8, 3e-4, ['q', 'v']), or text."""
    if text.lower() in ("true", "false"):  # YAML and shell habits: true/false as well as True/False
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def key_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE from the command line (`--set rank=8`), the value typed by `parse_value`; argparse reports a
    missing '=' as a usage error."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    if not key.strip():  # '=3' would ask for an option named ''
        raise argparse.ArgumentTypeError(f"{text!r} lacks the option's name: write NAME=VALUE, e.g. rank=8")
    return key.strip(), parse_value(value)


def config_keys(config_class: type) -> dict[str, Any]:
    """name -> type of every keyword `config_class` takes: its fields and its init-only shorthands (InitVar)."""
    hints = typing.get_type_hints(config_class)
    return {name: getattr(hints[name], "type", hints[name]) for name in config_class.__dataclass_fields__}


def add_config_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config_class: type,
    custom: Mapping[str, FlagAdder] | None = None,
) -> None:
    """One flag per dataclass field (and init-only shorthand), in field order, typed from its annotation, with the
    field's docstring and default as help; defaults stay None so that YAML can fill them. `custom`: fields that
    add their own flag (e.g. train's --set for method_options)."""
    docs = field_docs(config_class)
    fields = config_class.__dataclass_fields__
    defaults = {name: f.default for name, f in fields.items()}
    for name, kind in config_keys(config_class).items():
        flag = "--" + name.replace("_", "-")
        default = defaults[name] if defaults[name] is not dataclasses.MISSING else None
        shown = "" if default is None else f" (default: {default})"  # None: the docstring says what unset means
        help_text = f"{docs.get(name, '')}{shown}".replace("%", "%%")  # argparse formats help
        if custom and name in custom:
            custom[name](parser, name, help_text)
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
            if typing.get_origin(base) is list:  # a list field takes one or more values: --seeds 0 1 2
                (item,) = typing.get_args(base)
                # repeated, the last one stands, as for every flag (argparse's rule; scripts append overrides)
                parser.add_argument(flag, type=item, nargs="+", default=None, metavar=name.upper(), help=help_text)
            else:
                allowed = fields[name].metadata.get("choices") if name in fields else None
                metavar = None if allowed else name.upper()  # argparse shows {a,b,c} for a flag with choices
                parser.add_argument(flag, type=base, default=None, choices=allowed, metavar=metavar, help=help_text)


def key_value_pairs(pairs: list[tuple[str, Any]], flag: str) -> dict[str, Any]:
    """Repeated `flag` KEY=VALUE pairs (`key_value`) as a mapping; one key given twice with two values is refused
    (argparse would keep the last silently), the same value twice is taken."""
    options: dict[str, Any] = {}
    for key, value in pairs:
        if options.setdefault(key, value) != value:
            raise ConfigError(f"{flag} {key}={options[key]!r} and {flag} {key}={value!r} disagree: pass one")
    return options


def yaml_values(
    path: str | None, config_class: type, what: str = "config file", extra_keys: Sequence[str] = ()
) -> dict[str, Any]:
    """The keys a YAML file gives (none without a path); a key that is neither a keyword of `config_class` nor one of
    `extra_keys` is refused."""
    return load_yaml(path, what, keys=sorted({*config_keys(config_class), *extra_keys})) if path else {}


def flag_values(args: argparse.Namespace, config_class: type) -> dict[str, Any]:
    """The keywords of `config_class` given on the command line (flags left out are None and are skipped)."""
    return {name: getattr(args, name) for name in config_keys(config_class) if getattr(args, name, None) is not None}


def build(config_class: type, values: Mapping[str, Any]) -> Any:
    """`config_class(**values)`; a wrong keyword is a ConfigError (the class's own checks raise theirs)."""
    try:
        return config_class(**values)
    except TypeError as error:
        raise ConfigError(f"bad configuration: {error}") from None


def config_from_args(args: argparse.Namespace, config_class: type, merge: Merge | None = None) -> Any:
    """`config_class` from the YAML file `args.config` (if any) with the flags given on top; `merge` combines the
    two when a command needs more than flags-on-top (train: method options one by one, --resume)."""
    loaded = yaml_values(getattr(args, "config", None), config_class)
    flags = flag_values(args, config_class)
    return build(config_class, merge(loaded, flags) if merge else {**loaded, **flags})


def counted(n: int, noun: str) -> str:
    """'1 task', '3 tasks': a count in a command's output line."""
    return f"{n} {noun}{'s' * (n != 1)}"
