"""What every command of the `dunning` console script shares."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from config.settings import Settings, SettingsError
from topics.broker import ensure_broker
from topics.clients import publish

T = TypeVar("T")


def settings() -> Settings:
    """The settings from the environment; a settings error ends the command in one line."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"dunning: {exc}") from exc


def read_yaml(path: str, parse: Callable[[Any], T],
              errors: tuple[type[Exception], ...]) -> T:
    """A YAML file, checked whole by `parse` before anything is published; a file that
    cannot be read or used (`errors`) ends the command in one line naming it."""
    caught: tuple[type[Exception], ...] = (OSError, yaml.YAMLError, *errors)
    try:
        return parse(yaml.safe_load(Path(path).read_text()))
    except caught as exc:
        raise SystemExit(f"dunning: {path}: {exc}") from exc


def publish_records(s: Settings, topic: str,
                    records: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Publish to a catalogue topic once the broker is there; how many."""
    ensure_broker(s)
    return asyncio.run(publish(s, topic, records))
