"""The one YAML reader of the package: `lamp train --config`, `lamp compare --config` recipes and task YAML files."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lamp.errors import ConfigError, did_you_mean, file_problem, shown_path


class _UniqueKeys(yaml.SafeLoader):
    """`yaml.safe_load`'s loader, refusing a key given twice in one mapping: the YAML spec requires unique keys, and
    PyYAML would keep the last one silently (a recipe's second `lr:` replacing the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may repeat keys on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):  # an unhashable key fails in PyYAML's own check
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice: keep one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """YAML 1.2's integers: 010 is ten (YAML 1.1: eight), 0o10 eight, 0x10 sixteen."""
        text = self.construct_scalar(node)
        base = {"0o": 8, "0x": 16}.get(text[:2], 10)  # the resolver allows no sign before 0o and 0x
        try:
            return int(text[2:] if base != 10 else text, base)
        except ValueError:  # past Python's 4,300-digit limit on converting text to int
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(text)} digits is too long: use a smaller number", node.start_mark
            ) from None


YAML_NUMBER = r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
"""A decimal number as YAML 1.2's core schema reads it (an integer, a fraction, an exponent; no inf or nan)."""

# The YAML 1.2 core schema (what JSON and YAML 1.2 tools read) for booleans and numbers, in place of PyYAML's YAML
# 1.1 rules, which read `lr: 1e-4` as text, `max_steps: 010` as 8, `1:30` as 90, `1_000` as 1000, `0b11` as 3 and the
# words yes / no / on / off as booleans: silent wrong values in a config. Null, timestamps and the rest are PyYAML's.
_CORE_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float")}
_UniqueKeys.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _CORE_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _pattern, _firsts in (
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    ("float", YAML_NUMBER, "-+0123456789."),
    ("float", r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)", "-+."),
):
    _UniqueKeys.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), list(_firsts))
_UniqueKeys.add_constructor("tag:yaml.org,2002:int", _UniqueKeys.construct_yaml_int)


def load_yaml(
    path: str | os.PathLike[str],
    what: str = "YAML file",
    fix: str = "pass the path of a YAML file",
    keys: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The mapping a YAML file holds ({} for an empty one).

    what: how the file is named when it is missing, e.g. "config file" or "recipe"; fix: what to do then.
    keys: the keys the file may hold, in the order the error lists them (None: any key).
    Raises ConfigError, in one line, for a missing file, a parse error (with its line number), text that is not
    UTF-8, a top level that is not a mapping, and keys outside `keys`.
    """
    file, name = Path(path).expanduser(), shown_path(path)
    problem = file_problem(file)
    if problem is not None:
        raise ConfigError(f"{what} {name} {problem}: {fix}")
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeys) or {}  # a SafeLoader
    except yaml.MarkedYAMLError as error:
        where = f"line {error.problem_mark.line + 1}: " if error.problem_mark else ""
        raise ConfigError(f"{name} is not valid YAML ({where}{error.problem or error.context})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{name} is not valid YAML ({str(error).splitlines()[0]})") from None
    except RecursionError:  # PyYAML's composer recurses once per nested [ or {
        raise ConfigError(f"{name} is not valid YAML (nested too deeply): simplify it") from None
    listed = f" (keys: {', '.join(keys)})" if keys else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must hold a mapping of key: value{listed}")
    unknown = sorted(set(data) - set(keys), key=str) if keys else []
    if unknown:
        raise ConfigError(
            f"{name}: unknown keys {', '.join(map(str, unknown))}{did_you_mean(unknown, keys)}; known keys are "
            f"{', '.join(keys)}"
        )
    return data
