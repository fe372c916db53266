"""Imports go one way: a module of lamp imports (at module level or inside a function, outside TYPE_CHECKING) only
modules of its own layer or of the layers below it, as docs/architecture.md draws them."""

from __future__ import annotations

import ast
from pathlib import Path

import lamp

ROOT = Path(lamp.__file__).parent
LAYERS = [  # bottom to top; a module belongs to the first layer with a prefix of its dotted name
    ("foundation", ["lamp.errors", "lamp.checks", "lamp.config_files", "lamp.cli_options", "lamp.progress",
                    "lamp.devices", "lamp.metrics", "lamp.plots", "lamp.tracking", "lamp.hub_logs"]),
    ("tasks", ["lamp.tasks"]),
    ("methods", ["lamp.methods"]),
    ("backbones", ["lamp.backbones", "lamp.architectures"]),
    ("files", ["lamp.adapter", "lamp.run_folder"]),
    ("wrapper", ["lamp.model"]),
    ("batches and scorers", ["lamp.data", "lamp.scoring"]),
    ("uses of a wrapped model", ["lamp.evaluation", "lamp.export", "lamp.inspection", "lamp.predict"]),
    ("training", ["lamp.train", "lamp.floors"]),
    ("harnesses", ["lamp.compare", "lamp.bench"]),
    ("commands", ["lamp.commands", "lamp.cli", "lamp.__main__"]),
]  # fmt: skip


def layer(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` but those inside an `if TYPE_CHECKING:` block (annotations only, never imported)."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        found += [node, *runtime_nodes(node)]
    return found


def lamp_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every lamp module imported, at module level or inside a function; `from lamp import x` names
    lamp.x when x is a module. `import lamp` (the version number, read at call time) and TYPE_CHECKING blocks are
    left out."""
    found = []
    for node in runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lamp":
            for alias in node.names:
                nested = f"{node.module}.{alias.name}"
                is_module = (ROOT.parent / Path(*nested.split("."))).with_suffix(".py").is_file() or (
                    ROOT.parent / Path(*nested.split("."))
                ).is_dir()
                found.append((node.lineno, nested if is_module else node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("lamp.")]
    return found


def test_imports_go_one_way():
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        name = module_name(path)
        if name == "lamp":  # the public names re-export every layer
            continue
        for line, imported in lamp_imports(ast.parse(path.read_text())):
            if layer(imported) > layer(name):
                problems.append(
                    f"{name}:{line} imports {imported} ({LAYERS[layer(imported)][0]}, above {LAYERS[layer(name)][0]})"
                )
    assert not problems, "\n".join(problems)


def test_imports_are_absolute():
    """lamp imports itself by absolute names only: the layer check above and tests/test_no_method_names.py read
    `lamp.` names, so a relative import (`from .methods import lora`) would pass both unseen."""
    relative = [
        f"{module_name(path)}:{node.lineno}"
        for path in sorted(ROOT.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert not relative, f"write these imports with absolute names (from lamp.x import y): {relative}"


def test_the_check_sees_imports_inside_functions():
    """The check itself: module-level and function-local imports are both read; `from lamp import x` names the
    module lamp.x; TYPE_CHECKING blocks are left out."""
    sample = (
        "from typing import TYPE_CHECKING\n"
        "from lamp.errors import ConfigError\n"
        "if TYPE_CHECKING:\n"
        "    from lamp.train import TrainConfig\n"
        "def f():\n"
        "    from lamp import compare\n"
        "    import lamp.model\n"
    )
    assert lamp_imports(ast.parse(sample)) == [(2, "lamp.errors"), (6, "lamp.compare"), (7, "lamp.model")]
