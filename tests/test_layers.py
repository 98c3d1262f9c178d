"""Imports flow one way: every import in yolorep (function-level ones included) is parsed, and the module graph must
have no cycle, respect the layer order, and never go up through the ``yolorep`` facade."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "yolorep"

# Lower layers never import higher ones; modules of one layer may import each other (without cycles).
LAYERS = (
    ("yolorep.version", "yolorep.errors", "yolorep.atomic", "yolorep.logs", "yolorep.confined"),
    (
        "yolorep.checks",
        "yolorep.assets",
        "yolorep.options",
        "yolorep.config",
        "yolorep.ops",
        "yolorep.plots",
        "yolorep.label_plots",
    ),
    ("yolorep.nn",),
    ("yolorep.loss", "yolorep.datasets", "yolorep.foreign"),
    ("yolorep.evaluation", "yolorep.track"),
    ("yolorep.engine",),
    ("yolorep.benchmark",),
    ("yolorep.demo", "yolorep.cli", "yolorep.cli_track", "yolorep.__main__", "yolorep.api"),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """Every yolorep module ``name`` imports anywhere in its file, resolved to the deepest existing module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{name}: not in any layer of tests/test_layers.py; add it where it belongs")


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return cycles


def test_the_parser_sees_function_level_imports():
    assert "yolorep.nn.model" in GRAPH["yolorep"]  # imported inside build_model()
    assert "yolorep.benchmark" in GRAPH["yolorep.demo"]  # imported inside demo()


def test_no_import_cycles():
    assert _cycles() == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_flow_down_the_layers(name):
    if name == "yolorep":  # the facade sits on top and may reach anything
        return
    upward = sorted(t for t in GRAPH[name] if t == "yolorep" or _layer(t) > _layer(name))
    assert not upward, f"{name} (layer {_layer(name)}) imports {upward} from above its layer"


def test_nn_never_imports_opencv_or_the_engine():
    for name, path in MODULES.items():
        if name.startswith("yolorep.nn"):
            tree = ast.parse(path.read_text())
            modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not {m for m in modules if m.split(".")[0] == "cv2"}, name
            assert not {t for t in GRAPH[name] if t.startswith(("yolorep.engine", "yolorep.datasets"))}, name
