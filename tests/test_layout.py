"""The package layout's rules, read from the imports of every library module (function-level imports included):
no import circles, the library never imports recipes or benchmarks, models import nothing of training, data, CLI,
export or evaluation, noise knows no model, the loadable export depends on models, front ends and config only
(and the checkpoint module's state check)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seqae"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(name: str) -> str | None:
    """The library module an import names (a submodule when it exists, else its package), or None if not ours."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(path: Path) -> set[str]:
    """Every module of ours that `path` imports, anywhere in the file; other imports as their top-level name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(resolve(a.name) or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from seqae.models.fast import native` imports the submodule
                found.add(resolve(f"{node.module}.{alias.name}") or resolve(node.module) or node.module.split(".")[0])
    return found


GRAPH = {name: {m for m in imports_of(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_rules_see_the_library():
    assert len(MODULES) > 40 and "seqae.models.builder" in GRAPH["seqae.tasks.text"]
    assert "seqae.models.fast.native" in GRAPH["seqae.models.fast.dropout"]  # `from package import module`


def test_no_import_circles():
    state: dict[str, str] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node}->{nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(("layer", "allowed"), [
    ("seqae.models", ("seqae.models", "seqae.config")),
    ("seqae.noise", ("seqae.noise", "seqae.config")),
    ("seqae.frontend", ("seqae.frontend", "seqae.config")),
    ("seqae.export.encoder", ("seqae.export", "seqae.models", "seqae.frontend", "seqae.config", "seqae.checkpoint")),
    ("seqae.export.decoder", ("seqae.export", "seqae.models", "seqae.frontend", "seqae.config", "seqae.checkpoint")),
    ("seqae.export.onnx", ("seqae.export", "seqae.models", "seqae.frontend", "seqae.config", "seqae.checkpoint")),
    ("seqae.export.card", ("seqae.export", "seqae.models", "seqae.frontend", "seqae.config", "seqae.checkpoint")),
    ("seqae.data", ("seqae.data", "seqae.frontend", "seqae.config")),
    ("seqae.tasks", ("seqae.tasks", "seqae.data", "seqae.noise", "seqae.models", "seqae.frontend", "seqae.config",
                     "seqae.eval.tokens", "seqae.eval.metrics", "seqae.eval.speech")),
])
def test_each_layer_imports_only_what_is_below_it(layer, allowed):
    bad = sorted(f"{name} imports {m}" for name, deps in GRAPH.items() if within(name, layer)
                 for m in deps if not within(m, *allowed))
    assert not bad, "\n".join(bad)


def test_the_library_never_imports_recipes_or_benchmarks():
    bad = sorted(f"{name} imports {m}" for name, path in MODULES.items() for m in imports_of(path)
                 if m.split(".")[0] in ("recipes", "benchmarks", "tests"))
    assert not bad, "\n".join(bad)


def test_only_the_entry_point_imports_the_command_line():
    bad = sorted(name for name, deps in GRAPH.items() if "seqae.cli" in deps and name != "seqae.__main__")
    assert not bad, bad


def readme_layout() -> set[str]:
    """The files the README's Layout block names, as paths under the repository (folders from the indentation)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8").split("## Layout", 1)[1]
    block = text.split("```", 2)[1].splitlines()
    named, folder, top = set(), "seqae/", "seqae/"
    for line in block[2:]:  # after the opening fence's language line and "seqae/"
        indent = len(line) - len(line.lstrip())
        first = line.split()[0] if line.strip() else ""
        if indent in (2, 4) and first.endswith("/"):
            folder = (top if indent == 4 else "seqae/") + first
            top = folder if indent == 2 else top
            line = line.replace(first, "", 1)
        elif indent == 2:
            folder = top = "seqae/"
        named.update(folder + name for name in re.findall(r"\b\w+\.(?:py|c)\b", line))
    return named


def test_the_readme_layout_names_every_module_and_only_modules_that_exist():
    named = readme_layout()
    files = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*") if p.suffix in (".py", ".c")}
    plumbing = {"seqae/__init__.py", "seqae/__main__.py", "seqae/version.py"} | {
        f for f in files if f.endswith("/__init__.py")}
    assert sorted(named - files) == [], "named in README.md's Layout but not in the tree"
    assert sorted(files - plumbing - named) == [], "in the tree but not in README.md's Layout"
