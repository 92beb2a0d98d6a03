"""Fixtures shared by every test package: one embedded broker per test session (per
pytest-xdist worker: the README's command runs the tests on two)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from topics.broker import EmbeddedBroker, free_port


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A real Tansu broker on a free loopback port, for the whole session."""
    state = tmp_path_factory.mktemp("broker")
    b = EmbeddedBroker(Path(state), free_port())
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def unique() -> str:
    """A fresh name part, so tests never share topics or app ids."""
    return uuid.uuid4().hex[:8]

