"""Shared code never names a method: outside `lamp/methods/` (the methods and their registry) no source file holds a
registered method's name as a string literal, imports a method's own file, or uses a method's config or module
class. Shared code reads what a method changes from its config's declaration (`lamp.methods.Declaration`)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import lamp.methods
from lamp.methods import REGISTRY

ROOT = Path(lamp.__file__).parent
METHOD_FILES = {path.stem for path in (ROOT / "methods").glob("*.py")} - {"__init__", "base"}

# Files allowed to name methods for a while (e.g. mid-refactor); keep it empty.
# `test_the_exceptions_are_still_needed` says when a listed file is clean.
TO_BE_REMOVED: set[str] = set()
PUBLIC_NAMES = {"lamp/__init__.py"}
"""The package's public names re-export, from the registry, the configs users build directly (lamp.LampConfig,
lamp.PromptTuningConfig); it holds no logic."""
OTHER_MEANINGS = [  # (file, literal, text on its line): the same word meaning something else than a method
    ("lamp/cli.py", "lamp", "prog="),  # the program's name
    ("lamp/backbones.py", "lamp", '".cache"'),  # the cache folder, named after the program
    ("lamp/tasks/sources.py", "lamp", '".cache"'),
    ("lamp/tracking.py", "lamp", "PROJECT"),  # the trackers' project, named after the program
    ("lamp/tracking.py", "none", ""),  # --report-to none: no tracker
    ("lamp/train.py", "none", "report_to"),
    ("lamp/export.py", "pt", '"format"'),  # safetensors' metadata: PyTorch tensors
    ("lamp/bench/config.py", "none", "isolate"),  # --isolate none: every method in one process
]


def method_classes() -> set[str]:
    """The names of the classes defined in the methods' own files (their configs and modules among them)."""
    names = {cls.__name__ for entry in REGISTRY.values() for cls in entry}
    for stem in METHOD_FILES:
        module = __import__(f"lamp.methods.{stem}", fromlist=["_"])
        names |= {n for n, obj in vars(module).items() if inspect.isclass(obj) and obj.__module__ == module.__name__}
    return names


def shared_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "methods" not in p.relative_to(ROOT).parts)


def method_mentions(source: str, relative: str, classes: set[str]) -> list[str]:
    """Each place in `source` (the file `relative`, e.g. lamp/train.py) that names a method: `line: what`."""
    lines, tree = source.splitlines(), ast.parse(source)
    foreign = set()  # names bound by imports from other libraries (peft's PromptTuningConfig is not lamp's)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                origin = (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
                if origin.split(".")[0] != "lamp":
                    foreign.add((alias.asname or alias.name).split(".")[0])
                    continue
                parts = origin.split(".") + ([alias.name] if isinstance(node, ast.ImportFrom) else [])
                if parts[:2] == ["lamp", "methods"] and len(parts) > 2 and parts[2] in METHOD_FILES:
                    found.append(f"{node.lineno}: imports a method's own file, {'.'.join(parts[:3])}")
                elif alias.name in classes and relative not in PUBLIC_NAMES:
                    found.append(f"{node.lineno}: imports {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in REGISTRY:
            line = lines[node.lineno - 1]
            other = any(f == relative and w == node.value and text in line for f, w, text in OTHER_MEANINGS)
            if not other:
                found.append(f"{node.lineno}: the method name {node.value!r}")
        elif isinstance(node, ast.Name) and node.id in classes and node.id not in foreign:
            found.append(f"{node.lineno}: {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in classes:
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if not (isinstance(root, ast.Name) and root.id in foreign):
                found.append(f"{node.lineno}: .{node.attr}")
    return found


def test_shared_code_names_no_method():
    classes = method_classes()
    assert {"LampConfig", "LoraModule", "NoPrompt"} <= classes
    problems = {}
    for path in shared_files():
        relative = path.relative_to(ROOT.parent).as_posix()
        if relative not in TO_BE_REMOVED:
            found = method_mentions(path.read_text(), relative, classes)
            if found:
                problems[relative] = found
    assert not problems, problems


def test_the_check_sees_a_method_name():
    """The check itself: a method's file, a literal method name and a method's class are each found; a class of the
    same name from another library is not."""
    sample = (
        "from lamp.methods.lora import LoraModule\n"
        "from peft import LoraConfig\n"
        "def f(config, m):\n"
        "    return config.method == 'dept' or isinstance(m, LoraModule) or LoraConfig\n"
    )
    found = method_mentions(sample, "lamp/sample.py", method_classes())
    assert found == [
        "1: imports a method's own file, lamp.methods.lora",
        "4: the method name 'dept'",
        "4: LoraModule",
    ]


def test_the_exceptions_are_still_needed():
    """A file of TO_BE_REMOVED that names no method any more comes off the list (so it stays clean)."""
    classes = method_classes()
    clean = [f for f in sorted(TO_BE_REMOVED) if not method_mentions((ROOT.parent / f).read_text(), f, classes)]
    assert not clean, f"remove {clean} from TO_BE_REMOVED"


def test_lists_name_files_that_exist():
    for relative in TO_BE_REMOVED | PUBLIC_NAMES | {f for f, _, _ in OTHER_MEANINGS}:
        assert (ROOT.parent / relative).is_file(), relative
