from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from letters.config import LetterSettings
from letters.service import LetterService
from tests.unit.letters.helpers import SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    server = SmtpServer()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[[LetterSettings], LetterService]]:
    """Letter services on `tmp_path / "state"`, closed after the test."""
    made: list[LetterService] = []

    def make(cfg: LetterSettings) -> LetterService:
        svc = LetterService(Settings(state_dir=tmp_path / "state"), cfg)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()
