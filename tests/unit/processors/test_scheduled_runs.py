"""processors.control and processors.scheduler under a run schedule: a payment run waits
for its start, the timer's tick starts it once (`scheduled_at` on ProposalRunStarted), a
tick with none waiting is recorded as missed, approvals wait for the activity time, the
activity run `together` executes every proposal of the run; without a schedule nothing
changes (no `auto_approve` in the slice message, no `scheduled_at`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from domain.run import RunStatus
from domain.run_calendar import epoch, parse_schedule
from processors import convert
from processors import messages as m
from processors.scheduler import SCHEDULE_KEY, ScheduleTimer, load_state
from tests.integration import events as e
from tests.unit.processors.fakes import D, Event, Message, Rig

SET_AT = epoch(datetime(2026, 11, 30, tzinfo=UTC))  # a Monday
SIX = SET_AT + 6 * 3600


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return Rig(tmp_path, partitions=2)


def control(rig: Rig, *records: tuple[str, tuple[str, dict[str, Any]]]) -> None:
    events = [Event(rig.message(topic, rec, offset)) for offset, (topic, rec) in
              enumerate(records)]
    asyncio.run(rig.control.on_control(events, enter=lambda event: None))


def tick(rig: Rig, now: int, payment_runs_end: int | None = None) -> None:
    topic = rig.settings.topic("dunning.internal.run-progress")
    event = Event(Message(topic, b"tick", m.encode(m.Tick(now, payment_runs_end)), 0))
    asyncio.run(rig.control.on_control([event], enter=lambda event: None))


def apply(rig: Rig, **body: Any) -> None:
    s = parse_schedule({"schedule": {"time_zone": "UTC", "proposal_run": "06:00", **body}},
                       set_at=SET_AT)
    control(rig, ("dunning.schedules", ("RunScheduleSet", convert.schedule_record(s, "S-1"))))


def runs(rig: Rig, rtype: str) -> list[dict[str, Any]]:
    return [r for t, r in rig.outbox.records("dunning.runs") if t == rtype]


def slices(rig: Rig) -> list[m.Slice]:
    return [w for w in (m.decode(o[2]) for o in rig.outbox.on(
        "dunning.internal.partition-work") if o[2] is not None) if isinstance(w, m.Slice)]


def work(rig: Rig) -> list[m.Message]:
    return [m.decode(o[2]) for o in rig.outbox.on("dunning.internal.partition-work")
            if o[2] is not None]


def test_without_a_schedule_a_payment_run_starts_at_once_as_before(rig: Rig) -> None:
    control(rig, ("billing.payment-runs", e.payment_run("PR-1", D)))
    (started,) = runs(rig, "ProposalRunStarted")
    assert started["scheduled_at"] is None and started["ticks_caught_up"] == 0
    raw = [o[2] for o in rig.outbox.on("dunning.internal.partition-work")]
    assert all(b"auto_approve" not in r for r in raw if r is not None)
    assert b"scheduled_at" not in rig.tables["runs"].get(b"PR-1")  # type: ignore[operator]
    assert rig.tables["runs"].get(SCHEDULE_KEY) is None  # no schedule row is written


def test_a_payment_run_waits_for_its_start_and_starts_once(rig: Rig) -> None:
    apply(rig)
    control(rig, ("billing.payment-runs", e.payment_run("PR-1", D)))
    assert runs(rig, "ProposalRunStarted") == [] and slices(rig) == []
    assert rig.control.get_run("PR-1").status is RunStatus.WAITING  # type: ignore[union-attr]
    tick(rig, SIX - 1)
    assert runs(rig, "ProposalRunStarted") == []
    tick(rig, SIX)
    tick(rig, SIX + 1)  # a restart at the scheduled second: the start is recorded
    (started,) = runs(rig, "ProposalRunStarted")
    assert started["scheduled_at"] == datetime(2026, 11, 30, 6, tzinfo=UTC)
    assert len(slices(rig)) == 2 and not any(s.auto_approve for s in slices(rig))
    run = rig.control.get_run("PR-1")
    assert run is not None and run.status is RunStatus.RUNNING and run.scheduled_at == SIX
    # a redelivered payment run carries on with the same start
    control(rig, ("billing.payment-runs", ("PaymentRunCompleted", {
        **e.payment_run("PR-1", D)[1], "event_id": run.trigger})))
    assert {r["scheduled_at"] for r in runs(rig, "ProposalRunStarted")} == {
        datetime(2026, 11, 30, 6, tzinfo=UTC)}


def test_a_tick_with_no_payment_run_is_a_missed_start(rig: Rig) -> None:
    apply(rig)
    tick(rig, SIX + 3 * 86400)  # Mon..Thu: four starts due at once
    (missed,) = runs(rig, "ScheduledStartMissed")
    assert missed["scheduled_at"] == datetime(2026, 12, 3, 6, tzinfo=UTC)
    assert (missed["reason"], missed["ticks_caught_up"]) == ("no_payment_run", 3)
    state = load_state(rig.tables["runs"].get(SCHEDULE_KEY))
    assert (state.missed, state.caught_up) == (1, 3)


def test_the_latest_payment_run_starts_and_the_earlier_is_skipped(rig: Rig) -> None:
    apply(rig)
    control(rig, ("billing.payment-runs", e.payment_run("PR-1", D)),
            ("billing.payment-runs", e.payment_run("PR-2", D.replace(day=2))))
    tick(rig, SIX)
    assert [r["payment_run_id"] for r in runs(rig, "ProposalRunStarted")] == ["PR-2"]
    assert rig.control.get_run("PR-1").status is RunStatus.SKIPPED  # type: ignore[union-attr]
    # the skipped one can still be run on request, at once
    control(rig, ("dunning.decisions", e.decision(
        "ProposalRunRequested", payment_run_id="PR-1", requested_by="clerk")))
    assert [r["run_id"] for r in runs(rig, "ProposalRunStarted")] == ["PR-2/1", "PR-1/1"]


def test_approvals_wait_for_the_activity_time(rig: Rig) -> None:
    apply(rig, activity_run="at 18:00")
    control(rig, ("billing.payment-runs", e.payment_run("PR-1", D)))
    tick(rig, SIX)
    control(rig, ("dunning.decisions", e.decision("RunApproved", run_id="PR-1/1",
                                                  decided_by="clerk")),
            ("dunning.decisions", e.decision("ProposalApproved", proposal_id="P-9",
                                             decided_by="clerk")))
    assert not any(isinstance(w, m.ApproveRun | m.Approve) for w in work(rig))
    # approved means approved: the run can no longer be deleted
    control(rig, ("dunning.decisions", e.decision("RunDeleted", run_id="PR-1/1",
                                                  decided_by="clerk")))
    assert [r["reason"] for r in runs(rig, "RunDecisionRefused")] == ["run_executed"]
    tick(rig, SIX + 12 * 3600)
    released = [w for w in work(rig) if isinstance(w, m.ApproveRun | m.Approve)]
    assert released == [m.ApproveRun("PR-1/1")] * 2 + [m.Approve("P-9")] * 2


def test_together_the_run_executes_every_proposal(rig: Rig) -> None:
    apply(rig, activity_run="together")
    control(rig, ("billing.payment-runs", e.payment_run("PR-1", D)))
    tick(rig, SIX)
    assert [s.auto_approve for s in slices(rig)] == [True, True]
    assert orjson.loads(m.encode(slices(rig)[0]))["auto_approve"] is True


def test_the_timer_sends_a_tick_only_when_a_start_is_due(rig: Rig) -> None:
    now = [SIX - 10]

    async def ends(tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 7 for tp in tps}

    def timer_owning(owns: bool) -> ScheduleTimer:
        return ScheduleTimer(runs=rig.tables["runs"], outbox=rig.outbox,
                             clock=lambda: now[0], owns_control=lambda: owns,
                             end_offsets=ends, payment_runs=TopicPartition("pr", 0))

    timer = timer_owning(True)
    apply(rig)
    assert not asyncio.run(timer.tick())
    now[0] = SIX
    assert asyncio.run(timer.tick())
    assert not asyncio.run(timer.tick())  # sent a moment ago: not again yet
    ticks = [m.decode(o[2]) for o in rig.outbox.on("dunning.internal.run-progress")
             if o[2] is not None]
    assert ticks == [m.Tick(SIX, 7)]
    gauges = dict((tuple(k), v) for k, v in timer.gauges())
    assert gauges[("proposal", "next_start")] == SIX
    elsewhere = timer_owning(False)
    assert not asyncio.run(elsewhere.tick()) and list(elsewhere.gauges()) == []


def test_a_tick_waits_for_a_payment_run_published_before_it(rig: Rig) -> None:
    apply(rig)
    control(rig, ("billing.payment-runs", e.payment_run("PR-1", D)))  # offset 0
    # PR-2 is on the topic (offset 1) when the tick is sent, not read yet
    tick(rig, SIX, payment_runs_end=2)
    assert runs(rig, "ProposalRunStarted") == []
    events = [Event(rig.message("billing.payment-runs",
                                e.payment_run("PR-2", D.replace(day=2)), 1))]
    asyncio.run(rig.control.on_control(events, enter=lambda event: None))
    tick(rig, SIX, payment_runs_end=2)
    assert [r["payment_run_id"] for r in runs(rig, "ProposalRunStarted")] == ["PR-2"]
