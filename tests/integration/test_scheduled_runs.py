"""Scheduled runs (issue 20) on the real broker, with the worker's schedule clock in a
file the test moves (`DUNNING_CLOCK_FILE`): a run starts at its time and not before, and
not before its payment run; a start due at a second starts once across a restart at that
second; a downtime over three starts is caught up by one run, which says so; approved runs
are executed at the activity time, for what was approved by then; together, the run
executes its proposals and can no longer be deleted; the command line shows the schedule
and its starts.

One story, in order (the tests share the worker and the clock). The schedule is daily at
06:00 UTC; the clock starts on Monday 2030-01-07."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from config.worker_env import worker_env
from domain.run_calendar import epoch, parse_schedule
from processors.convert import schedule_record
from tests.integration import events as e
from tests.integration.conftest import new_story
from tests.integration.harness import dig, wait_for

DAY0 = datetime(2030, 1, 7, tzinfo=UTC)
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DUE = date(2029, 12, 1)
ROOT = Path(__file__).parents[2]


def t(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return epoch(DAY0 + timedelta(days=day, hours=hour, minutes=minute, seconds=second))


def as_dt(tick: int) -> datetime:
    return datetime.fromtimestamp(tick, UTC)


class Clock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, now: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(str(now))
        os.replace(tmp, self.path)


@pytest.fixture(scope="module")
def sched(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scheduled")
    clock = Clock(tmp / "clock")
    clock.set(t(0, 5))
    s = new_story(broker, tmp, partitions=2, clock_file=clock.path)
    s.clock = clock
    s.worker.start()
    try:
        yield s
    finally:
        s.worker.stop()


def apply(story, set_at: int, **body) -> None:
    s = parse_schedule({"schedule": {"time_zone": "UTC", "weekdays": EVERY_DAY,
                                     "proposal_run": "06:00", **body}},
                       set_at=set_at, set_by="test")
    story.send("dunning.schedules", [("RunScheduleSet",
                                      schedule_record(s, f"S-{set_at}"))])


def gauge(story, count: str) -> float:
    """The schedule's gauges, as the timer last read its state (once a second)."""
    return story.worker.metric("dunning_schedule", count=count)


def next_start(story, run: str = "proposal") -> float:
    return story.worker.metric("dunning_schedule_seconds", run=run, start="next_start")


def started(story, payment_run_id):
    return [r for r in story.records("dunning.runs", "ProposalRunStarted")
            if r["payment_run_id"] == payment_run_id]


def completed(story, run_id):
    return [r for r in story.records("dunning.runs", "ProposalRunCompleted")
            if r["run_id"] == run_id]


def quiet(seconds: float = 3.0) -> None:
    """Several beats of the timer (one a second) and the control agent's turn."""
    time.sleep(seconds)


def explain(story):
    return lambda: story.worker.log()


def test_a_run_starts_at_its_time_not_before_and_not_before_its_payment_run(sched):
    s = sched
    s.send("billing.accounts", [e.account("S1")])
    s.send("billing.invoices", [e.invoice("S1", "S1-I", [("S1-x", "100.00", DUE)])])
    wait_for(lambda: s.worker.account("S1"), what="S1 ingested")
    apply(s, t(0))
    wait_for(lambda: next_start(s) == t(0, 6), what="the schedule in force",
             explain=explain(s))
    # 06:00 comes and no payment run has completed: a missed start, no run
    s.clock.set(t(0, 6))
    missed = wait_for(lambda: s.records("dunning.runs", "ScheduledStartMissed"),
                      what="a missed start", explain=explain(s))
    assert [m["scheduled_at"] for m in missed] == [as_dt(t(0, 6))]
    wait_for(lambda: gauge(s, "missed_starts") == 1, what="the missed-start gauge")
    # the payment run completes after its start: it waits for the next one
    s.clock.set(t(0, 6, 30))
    s.send("billing.payment-runs", [e.payment_run("PR-1", DAY0.date())])
    wait_for(lambda: gauge(s, "payment_runs_waiting") == 1, what="PR-1 waiting")
    s.clock.set(t(1, 5, 59, 59))
    quiet()
    assert started(s, "PR-1") == []
    s.clock.set(t(1, 6))
    (run,) = wait_for(lambda: started(s, "PR-1"), what="PR-1 started", explain=explain(s))
    assert run["scheduled_at"] == as_dt(t(1, 6)) and run["ticks_caught_up"] == 0
    assert run["as_of_date"] == DAY0.date()  # the as-of date stays the payment run's
    wait_for(lambda: completed(s, "PR-1/1"), what="PR-1 completed")
    wait_for(lambda: gauge(s, "payment_runs_waiting") == 0, what="none waiting")
    assert s.worker.metric("dunning_schedule_seconds", run="proposal",
                           start="last_start") == t(1, 6)


def test_a_start_due_at_its_second_starts_once_across_a_restart(sched):
    s = sched
    s.send("billing.payment-runs", [e.payment_run("PR-2", DAY0.date() + timedelta(days=1))])
    wait_for(lambda: gauge(s, "payment_runs_waiting") == 1, what="PR-2 waiting")
    s.clock.set(t(2, 6))
    wait_for(lambda: started(s, "PR-2"), timeout=30, what="PR-2 started")
    s.worker.kill()  # at the scheduled second, maybe before its tick was acknowledged
    s.clock.set(t(2, 6, 0, 1))
    s.worker.start()
    wait_for(lambda: completed(s, "PR-2/1"), what="PR-2 completed", explain=explain(s))
    wait_for(lambda: next_start(s) == t(3, 6), what="the next start", explain=explain(s))
    quiet()
    runs = started(s, "PR-2")
    assert {r["event_id"] for r in runs} == {runs[0]["event_id"]}  # once (a resend: same id)
    assert {r["run_id"] for r in runs} == {"PR-2/1"}
    assert not [m for m in s.records("dunning.runs", "ScheduledStartMissed")
                if m["scheduled_at"] == as_dt(t(2, 6))]


def test_a_downtime_over_three_starts_is_caught_up_by_one_run(sched):
    s = sched
    s.send("billing.payment-runs", [e.payment_run("PR-3", DAY0.date() + timedelta(days=2)),
                                    e.payment_run("PR-4", DAY0.date() + timedelta(days=3))])
    wait_for(lambda: gauge(s, "payment_runs_waiting") == 2, what="PR-3 and PR-4 waiting")
    assert s.worker.stop() == 0, s.worker.log()
    s.clock.set(t(5, 7))  # the starts of days 3, 4 and 5 passed while no worker ran
    s.worker.start()
    (run,) = wait_for(lambda: started(s, "PR-4"), what="the catch-up run", explain=explain(s))
    assert run["scheduled_at"] == as_dt(t(5, 6)) and run["ticks_caught_up"] == 2
    wait_for(lambda: completed(s, "PR-4/1"), what="PR-4 completed")
    quiet()
    assert started(s, "PR-3") == []  # covered by the later payment run
    assert len([r for r in s.records("dunning.runs", "ProposalRunStarted")
                if r["scheduled_at"] is not None and r["scheduled_at"] > as_dt(t(2, 6))]) == 1
    wait_for(lambda: gauge(s, "ticks_caught_up") == 2, what="the caught-up gauge")
    assert "scheduled start caught up after a downtime" in s.worker.log()


def level(story, acc, item):
    return dig(story.worker.account(acc), "items", item, "level")


def test_approved_runs_are_executed_at_the_activity_time(sched):
    s = sched
    s.clock.set(t(5, 8))
    apply(s, t(5, 8), activity_run="at 18:00")
    wait_for(lambda: next_start(s, "activity") == t(5, 18), what="the activity time",
             explain=explain(s))
    # PR-1's run proposed S1; approved at 09:00, it waits for 18:00
    s.clock.set(t(5, 9))
    s.send("dunning.decisions", [e.decision("RunApproved", run_id="PR-1/1", decided_by="t")])
    wait_for(lambda: gauge(s, "approvals_held") == 1, what="the approval held")
    quiet()
    assert level(s, "S1", "S1-x") == 0
    assert not [r for r in s.records("dunning.runs", "ActivityRunCompleted")
                if r["run_id"] == "PR-1/1"]
    # a new account's item, dunned by the next run, approved after 18:00
    s.send("billing.accounts", [e.account("S2")])
    s.send("billing.invoices", [e.invoice("S2", "S2-I", [("S2-x", "100.00", DUE)])])
    wait_for(lambda: s.worker.account("S2"), what="S2 ingested")
    s.send("billing.payment-runs", [e.payment_run("PR-5", DAY0.date() + timedelta(days=5))])
    wait_for(lambda: gauge(s, "payment_runs_waiting") == 1, what="PR-5 waiting")
    s.clock.set(t(5, 18))
    wait_for(lambda: level(s, "S1", "S1-x") == 1, what="S1 executed at 18:00",
             explain=explain(s))
    assert [r["notices"] for r in s.records("dunning.runs", "ActivityRunCompleted")
            if r["run_id"] == "PR-1/1"] == [1]
    s.clock.set(t(6, 6))
    wait_for(lambda: completed(s, "PR-5/1"), what="PR-5 completed", explain=explain(s))
    s.clock.set(t(6, 6, 30))
    s.send("dunning.decisions", [e.decision("RunApproved", run_id="PR-5/1", decided_by="t")])
    wait_for(lambda: gauge(s, "approvals_held") == 1, what="PR-5's approval held")
    quiet()
    assert level(s, "S2", "S2-x") == 0  # approved after 18:00 yesterday: today at 18:00
    s.clock.set(t(6, 18))
    wait_for(lambda: level(s, "S2", "S2-x") == 1, what="S2 executed at 18:00",
             explain=explain(s))
    assert s.records("dunning.dead-letters") == []


def test_together_the_run_executes_its_proposals_and_cannot_be_deleted(sched):
    s = sched
    s.clock.set(t(6, 19))
    apply(s, t(6, 19), activity_run="together")
    wait_for(lambda: next_start(s) == t(7, 6) and next_start(s, "activity") == 0,
             what="the schedule together", explain=explain(s))
    s.send("billing.accounts", [e.account("S3")])
    s.send("billing.invoices", [e.invoice("S3", "S3-I", [("S3-x", "100.00", DUE)])])
    wait_for(lambda: s.worker.account("S3"), what="S3 ingested")
    s.send("billing.payment-runs", [e.payment_run("PR-6", DAY0.date() + timedelta(days=6))])
    wait_for(lambda: gauge(s, "payment_runs_waiting") == 1, what="PR-6 waiting")
    s.clock.set(t(7, 6))
    wait_for(lambda: completed(s, "PR-6/1"), what="PR-6 completed", explain=explain(s))
    assert level(s, "S3", "S3-x") == 1  # executed by the run itself
    s.send("dunning.decisions", [e.decision("RunDeleted", run_id="PR-6/1", decided_by="t")])
    refused = wait_for(lambda: [r for r in s.records("dunning.runs", "RunDecisionRefused")
                                if r["run_id"] == "PR-6/1"], what="the deletion refused")
    assert refused[0]["reason"] == "run_executed"
    # the auditor sees why the run of S3's notice started when it did
    (body,) = [json.loads(line) for line in
               cli(s, "audit", "replay", "--account", "S3").splitlines()]
    (notice,) = body["notices"]
    assert notice["run_id"] == "PR-6/1"
    assert notice["run_scheduled_at"] == as_dt(t(7, 6)).isoformat()
    assert notice["run_ticks_caught_up"] == 0


def cli(story, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dunning", *args], cwd=ROOT,
                          env=worker_env(story.settings), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_command_line_shows_the_schedule_and_its_starts(sched):
    s = sched
    out = cli(s, "runs", "list")
    assert "ScheduledStartMissed" in out
    assert f"last scheduled start {as_dt(t(7, 6)).isoformat()}" in out
    assert "schedule: next proposal start" in out
    out = cli(s, "schedule", "apply", str(ROOT / "examples" / "schedule.yaml"), "--by", "ops")
    assert "published schedule default" in out and "next proposal starts" in out
    out = cli(s, "schedule", "show")
    assert "time zone Europe/Berlin" in out and "activity runs: at 18:00" in out
    assert "set " in out and "by ops" in out
