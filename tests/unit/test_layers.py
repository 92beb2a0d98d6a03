"""The house's layering, read from the code's own imports.

Each package sits on a floor; a module may import from its own package and from packages
on lower floors, never from a higher floor or from another package on its own floor, and
no set of modules may import each other in a circle (imports inside functions count: they
are imports all the same). Tests and benchmarks stand outside the house and may import
anything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).parents[2]

#: Lowest floor first. `domain` imports nothing of ours; `dunning` (the console script) is
#: the roof and may use everything.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("domain",),
    ("config",),
    ("schemas",),
    ("topics",),
    ("processors",),
    ("letters", "audit"),
    ("review",),
    ("dunning",),
)
FLOOR_OF = {pkg: n for n, floor in enumerate(FLOORS) for pkg in floor}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in FLOOR_OF for p in (ROOT / pkg).rglob("*.py")}


def imports_of(path: Path, name: str, known: Iterable[str]) -> set[str]:
    """The project modules `path` (module `name`) imports, wherever in the file."""
    known = set(known)
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names]
            if not any(t in known for t in targets):
                targets.append(base)
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = project_modules()
    return {name: imports_of(path, name, mods) for name, path in mods.items()}


def upward_or_sideways(edges: Mapping[str, set[str]]) -> list[str]:
    bad = []
    for src, dsts in sorted(edges.items()):
        top = src.split(".")[0]
        for dst in sorted(dsts):
            other = dst.split(".")[0]
            if other != top and FLOOR_OF[other] >= FLOOR_OF[top]:
                bad.append(f"{src} -> {dst}")
    return bad


def circles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_floor():
    tops = {p.name for p in ROOT.iterdir()
            if p.is_dir() and (p / "__init__.py").exists() and p.name not in ("tests", "bench")}
    assert tops == set(FLOOR_OF)


def test_no_import_from_a_higher_or_the_same_floor():
    assert upward_or_sideways(graph()) == []


def test_no_circle_of_imports():
    assert circles(graph()) == []


def test_the_checks_see_what_they_are_for(tmp_path: Path):
    """The checks themselves: made-up imports are read, an upward import and a circle found."""
    source = tmp_path / "mod.py"
    source.write_text("from domain import state\nimport topics.clients\n"
                      "def f():\n    from config.settings import Settings\n")
    known = {"domain", "domain.state", "topics", "topics.clients", "config", "config.settings"}
    assert imports_of(source, "letters.mod", known) == {
        "domain.state", "topics.clients", "config.settings"}
    edges = {"domain.state": {"processors.app"}, "processors.app": {"domain.state"},
             "letters.cli": {"audit.cli"}, "audit.cli": set()}
    assert upward_or_sideways(edges) == ["domain.state -> processors.app",
                                         "letters.cli -> audit.cli"]
    assert circles(edges) == [["domain.state", "processors.app"]]
