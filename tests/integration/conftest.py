"""A provisioned namespace (topics, procedures) and a running worker, shared by the tests
of one module: worker start-ups are the slow part of the suite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import Settings
from domain.procedures import parse_procedures
from processors.convert import procedure_record
from tests.integration.harness import Worker, make_settings, provision, read, send

PROCEDURES = Path(__file__).parents[2] / "dunning" / "data" / "procedures.yaml"


def publish_procedures(settings: Settings, text: str | None = None) -> None:
    data = yaml.safe_load(text if text is not None else PROCEDURES.read_text())
    send(settings, "dunning.procedures",
         [("DunningProcedureDefined", procedure_record(p)) for p in parse_procedures(data)])


@dataclass
class Story:
    """One isolated namespace on the session broker, with its worker(s)."""

    settings: Settings
    worker: Worker

    def send(self, topic: str, records: list[tuple[str, dict[str, Any]]]) -> None:
        send(self.settings, topic, records)

    def read(self, topic: str, idle: float = 0.3) -> list[Any]:
        return read(self.settings, topic, idle)

    def records(self, topic: str, rtype: str | None = None) -> list[dict[str, Any]]:
        return [r.record for r in self.read(topic)
                if r.record is not None and (rtype is None or r.record_type == rtype)]


def new_story(broker: Any, tmp: Path, **kw: Any) -> Story:
    name = uuid.uuid4().hex[:8]
    settings = make_settings(broker, name, tmp / name, **kw)
    provision(settings)
    publish_procedures(settings)
    return Story(settings, Worker(settings))


@contextmanager
def running_story(broker: Any, tmp: Path, procedures: str | None = None) -> Iterator[Story]:
    """A new story whose worker runs while the block does; `procedures` (a procedures
    file's text) are published before the worker starts."""
    s = new_story(broker, tmp)
    if procedures is not None:
        publish_procedures(s.settings, procedures)
    s.worker.start()
    try:
        yield s
    finally:
        s.worker.stop()


@pytest.fixture(scope="module")
def story(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    with running_story(broker, tmp_path_factory.mktemp("story")) as s:
        yield s


__all__ = ["Story", "new_story", "publish_procedures", "replace", "running_story"]
