"""The project's own promises about its code, checked by the test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_ruff_finds_nothing():
    proc = run("ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_finds_nothing():
    proc = run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_domain_is_pure():
    """No Kafka, no I/O, no clock, no float in domain/."""
    forbidden = re.compile(
        r"^\s*(import|from)\s+(faust|aiokafka|mode|socket|requests|aiohttp|urllib|structlog|"
        r"msgpack|yaml)\b|datetime\.now|date\.today|time\.time\(|utcnow|float\(", re.M)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "domain").rglob("*.py")
                 if forbidden.search(p.read_text())]
    assert offenders == []
