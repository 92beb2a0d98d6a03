"""`worker_env`: the environment a worker subprocess starts with, and that the worker's
`Settings.from_env()` reads back as the settings it was made from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from config.settings import Settings
from config.worker_env import worker_env

SETTINGS = Settings(embedded_port=19999, app_id="dunning-t", partitions=3, topic_prefix="t.",
                    state_dir=Path("/tmp/state-t"), web_port=6099, auto_approve=True)
COMMON = {
    "DUNNING_EMBEDDED_PORT": "19999", "DUNNING_APP_ID": "dunning-t", "DUNNING_PARTITIONS": "3",
    "DUNNING_TOPIC_PREFIX": "t.", "DUNNING_STATE_DIR": "/tmp/state-t",
    "DUNNING_WEB_PORT": "6099", "DUNNING_LOG_FORMAT": "json",
}


@pytest.fixture(autouse=True)
def environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DUNNING_AUTO_APPROVE", "DUNNING_RUN_BATCH", "DUNNING_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOME_OTHER", "kept")
    monkeypatch.setenv("DUNNING_WEB_PORT", "1")  # overridden


def test_the_common_variables_over_this_environment() -> None:
    env = worker_env(SETTINGS)
    assert env["SOME_OTHER"] == "kept"
    assert {k: env[k] for k in COMMON} == COMMON
    assert "DUNNING_AUTO_APPROVE" not in env


def test_auto_approve_and_extras() -> None:
    env = worker_env(SETTINGS, with_auto_approve=True, DUNNING_RUN_BATCH="7", X="y")
    assert env["DUNNING_AUTO_APPROVE"] == "true"
    assert env["DUNNING_RUN_BATCH"] == "7" and env["X"] == "y"
    no = replace(SETTINGS, auto_approve=False)
    assert worker_env(no, with_auto_approve=True)["DUNNING_AUTO_APPROVE"] == "false"
    assert worker_env(SETTINGS, DUNNING_LOG_FORMAT="console")["DUNNING_LOG_FORMAT"] == "console"


def test_the_worker_reads_back_the_same_settings() -> None:
    back = Settings.from_env(worker_env(SETTINGS, with_auto_approve=True))
    for name in ("embedded_port", "app_id", "partitions", "topic_prefix", "state_dir",
                 "web_port", "auto_approve"):
        assert getattr(back, name) == getattr(SETTINGS, name), name
