"""A day in the life (issue 12, item 8): weeks of daily payment runs on the real broker, a
seeded random story of billing events in shuffled order, clerks' decisions and reversals,
and worker restarts (SIGTERM, kill -9), with every invariant checked after every day
(`tests/integration/daylife.py` says which). Knobs: DUNNING_DAYS, DUNNING_ACCOUNTS,
DUNNING_SEED, DUNNING_RESTARTS; the same story runs on its own broker with
`python -m tests.integration.daylife --days 60 --accounts 500 --seed 7`."""

from __future__ import annotations

import pytest

from tests.integration.conftest import new_story
from tests.integration.daylife import Config, DayInTheLife
from tests.integration.harness import audit_cli as cli

pytestmark = pytest.mark.broker


def test_weeks_of_daily_runs_with_restarts_keep_every_invariant(
        broker, tmp_path, monkeypatch, capsys):
    cfg = Config.from_env()
    story = new_story(broker, tmp_path, run_batch=4)

    def verify(settings, url):
        """`dunning audit verify --worker URL`, as test_audit runs it."""
        code, out, err = cli(monkeypatch, capsys, settings, "verify", "--worker", url)
        return code == 0, out.splitlines() + [line for line in err.splitlines()
                                              if "rror" in line]

    result = DayInTheLife(story, cfg, verify=verify).run()
    with capsys.disabled():
        print("\n" + result.summary_text())
    assert not result.failures, result.failure_text()
