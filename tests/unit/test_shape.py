"""The shape the redesign promised, kept by the test command: short functions in the
processing core, and Faust's and aiokafka's private parts touched in two named modules
only (`processors/faust_private.py` for the worker, `topics/broker_quirks.py` for the
patches that work around the embedded broker)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
MAX_LINES = 60
#: The modules allowed to reach into faust/aiokafka internals; each says why, per name.
PRIVATE_API_MODULES = {ROOT / "processors" / "faust_private.py",
                       ROOT / "topics" / "broker_quirks.py"}
#: Private attributes of faust, mode and aiokafka objects the worker needs, and the one
#: public-looking flag (`message.acked`) that Faust's consumer reads without documenting it.
PRIVATE_NAMES = {"_ensure_producer", "_db_for_partition", "_dbs",
                 "_current_event", "_client", "_fetch_max_wait_ms", "_create_worker_consumer",
                 "_producer", "_fetcher", "_coordinator", "acked"}
LIBRARIES = ("faust", "mode", "aiokafka")


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def long_functions(paths: list[Path], limit: int = MAX_LINES) -> list[str]:
    out = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > limit:
                    out.append(f"{_name(path)}:{node.lineno} {node.name} {n} lines")
    return out


def private_uses(path: Path) -> list[str]:
    """Code (not docstrings or comments) that touches a private faust/aiokafka name."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            out.append((node.lineno, f".{node.attr}"))
        elif (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES
              and any(a.name.startswith("_") for a in node.names)):
            out.append((node.lineno, f"from {node.module} import _"))
    return [f"{_name(path)}:{line} {what}" for line, what in sorted(out)]


def test_no_function_over_sixty_lines_in_domain_or_processors():
    paths = sorted([*(ROOT / "domain").rglob("*.py"), *(ROOT / "processors").rglob("*.py")])
    assert long_functions(paths) == []


def test_the_length_check_counts_lines(tmp_path: Path):
    f = tmp_path / "m.py"
    f.write_text("def short():\n    return 1\n\n\ndef long():\n" + "    x = 1\n" * 61)
    assert [r.split()[1:] for r in long_functions([f])] == [["long", "62", "lines"]]


def test_private_faust_and_aiokafka_names_only_in_their_modules():
    packages = ("processors", "topics", "config", "schemas", "domain", "letters", "audit",
                "dunning", "bench")
    offenders = [use for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))
                 if p not in PRIVATE_API_MODULES for use in private_uses(p)]
    assert offenders == []
    for module in PRIVATE_API_MODULES:  # the allowed modules really are where they live
        assert private_uses(module), module


def test_the_private_check_sees_code_not_prose(tmp_path: Path):
    f = tmp_path / "m.py"
    f.write_text('"""Faust reads `message.acked`."""\n# app.producer._ensure_producer()\n'
                 "def f(m, c):\n    m.acked = True\n    return c._client\n"
                 "from aiokafka.util import _x\n")
    assert [u.split(" ", 1)[1] for u in private_uses(f)] == [
        ".acked", "._client", "from aiokafka.util import _"]
