"""domain.run_calendar: the run schedule's calendar (time zone with its clock changes,
weekdays, holidays), what is due at a given now, and the control state's decisions: the
latest payment run waiting starts at its tick and not before, one run for a downtime of
several ticks, a tick with none waiting is a missed start, approvals held for the activity
tick."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.dates import to_day
from domain.run_calendar import (
    ActivityMode,
    CalendarState,
    ScheduleError,
    Waiting,
    apply_schedule,
    due,
    epoch,
    hold_approval,
    is_due,
    next_start,
    next_starts,
    on_tick,
    parse_schedule,
    schedule_from_dict,
    schedule_to_dict,
    wait_for_tick,
)

BERLIN = ZoneInfo("Europe/Berlin")
#: Monday 2026-11-30, 00:00 in Berlin: the schedule was applied then.
SET_AT = epoch(datetime(2026, 11, 30, tzinfo=BERLIN))


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, tz: Any = BERLIN) -> int:
    return epoch(datetime(y, mo, d, h, mi, s, tzinfo=tz))


def schedule(set_at: int = SET_AT, **body: Any) -> Any:
    base = {"time_zone": "Europe/Berlin", "proposal_run": "06:00"}
    return parse_schedule({"schedule": {**base, **body}}, set_at=set_at)


def local(tick: int) -> datetime:
    return datetime.fromtimestamp(tick, BERLIN)


# ------------------------------------------------------------------ the file
def test_a_schedule_file_is_read_with_its_defaults() -> None:
    s = schedule()
    assert (s.schedule_id, s.proposal_time, s.activity, s.activity_time) == (
        "default", 6 * 60, ActivityMode.AT_ONCE, None)
    assert s.weekdays == frozenset(range(5)) and s.holidays == frozenset()
    s = schedule(weekdays=["mon", "Saturday"], holidays=["2026-12-25"], activity_run="at 18:30")
    assert s.weekdays == {0, 5} and s.holidays == {to_day(date(2026, 12, 25))}
    assert (s.activity, s.activity_time) == (ActivityMode.AT, 18 * 60 + 30)
    assert schedule(activity_run="together").activity is ActivityMode.TOGETHER
    assert schedule_from_dict(schedule_to_dict(s)) == s


@pytest.mark.parametrize("body, where", [
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"proposal_run": "6:00"}, "proposal_run"),
    ({"proposal_run": "24:00"}, "proposal_run"),
    ({"activity_run": "at 18"}, "activity_run"),
    ({"activity_run": "later"}, "activity_run"),
    ({"weekdays": []}, "weekdays"),
    ({"weekdays": ["funday"]}, "weekdays"),
    ({"holidays": ["2026-13-01"]}, "holidays"),
    ({"id": "a b"}, "id"),
    ({"colour": "blue"}, "unknown keys"),
])
def test_a_bad_schedule_is_refused_and_says_where(body: dict[str, Any], where: str) -> None:
    with pytest.raises(ScheduleError, match=where):
        schedule(**body)


def test_a_file_without_a_schedule_mapping_is_refused() -> None:
    with pytest.raises(ScheduleError):
        parse_schedule({"procedures": []}, set_at=0)


# ------------------------------------------------------------------ the calendar
def test_business_days_at_local_time_skipping_weekends_and_holidays() -> None:
    s = schedule(holidays=["2026-12-02"])
    ticks, after = [], SET_AT
    for _ in range(5):
        after = next_start(s, 360, after)  # type: ignore[assignment]
        ticks.append(local(after))
    assert [t.date().isoformat() for t in ticks] == [
        "2026-11-30", "2026-12-01", "2026-12-03", "2026-12-04", "2026-12-07"]
    assert {(t.hour, t.minute) for t in ticks} == {(6, 0)}


def test_the_local_time_stays_across_a_clock_change() -> None:
    s = schedule(weekdays=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                 set_at=at(2026, 3, 27))
    before = next_start(s, 360, at(2026, 3, 28, 5))
    after = next_start(s, 360, before)  # type: ignore[arg-type]
    assert datetime.fromtimestamp(before, UTC).hour == 5  # type: ignore[arg-type]  # CET
    assert datetime.fromtimestamp(after, UTC).hour == 4  # type: ignore[arg-type]  # CEST
    assert after - before == 23 * 3600  # type: ignore[operator]  # the short day


def test_a_time_in_the_spring_gap_starts_after_the_change_and_an_ambiguous_one_once() -> None:
    every = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    s = schedule(weekdays=every, proposal_run="02:30", set_at=at(2026, 3, 28, 12))
    gap = next_start(s, 150, s.set_at)
    assert datetime.fromtimestamp(gap, UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # type: ignore[arg-type]
    assert local(gap).hour == 3  # type: ignore[arg-type]  # 03:30 CEST
    s = schedule(weekdays=every, proposal_run="02:30", set_at=at(2026, 10, 24, 12))
    first = next_start(s, 150, s.set_at)
    assert datetime.fromtimestamp(first, UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # type: ignore[arg-type]
    assert due(s, 150, s.set_at, at(2026, 10, 25, 12)) == (first, 1)


def test_due_counts_the_ticks_in_between_and_none_before_its_time() -> None:
    s = schedule()
    assert due(s, 360, SET_AT, at(2026, 11, 30, 5, 59, 59)) is None
    assert due(s, 360, SET_AT, at(2026, 11, 30, 6)) == (at(2026, 11, 30, 6), 1)
    # Monday 06:00 done; by Thursday 07:00 three more (Tue, Wed, Thu)
    assert due(s, 360, at(2026, 11, 30, 6), at(2026, 12, 3, 7)) == (at(2026, 12, 3, 6), 3)


@given(st.integers(0, 60 * 24 * 60), st.integers(0, 40 * 24 * 3600))
def test_due_and_next_start_agree(minutes_after: int, span: int) -> None:
    s = schedule(holidays=["2026-12-08", "2026-12-24"])
    after = SET_AT + minutes_after * 60
    until = after + span
    got = due(s, 360, after, until)
    first = next_start(s, 360, after)
    assert first is not None and first > after
    if got is None:
        assert first > until
        return
    latest, count = got
    assert first <= latest <= until and count >= 1
    assert next_start(s, 360, latest) > until  # type: ignore[operator]
    assert local(latest).weekday() < 5 and local(latest).hour == 6


# ------------------------------------------------------------------ the state
def state_with(s: Any, *waiting: Waiting) -> CalendarState:
    state, _ = apply_schedule(CalendarState(), s)
    for w in waiting:
        state = wait_for_tick(state, w)
    return state


PR1 = Waiting("PR-1", to_day(date(2026, 11, 29)), "E-1")
PR2 = Waiting("PR-2", to_day(date(2026, 11, 30)), "E-2")


def test_a_run_starts_at_its_tick_and_not_before() -> None:
    state = state_with(schedule(), PR1)
    assert not is_due(state, at(2026, 11, 30, 5, 59, 59))
    same, decision = on_tick(state, at(2026, 11, 30, 5, 59, 59))
    assert decision.start is None and same == state
    assert is_due(state, at(2026, 11, 30, 6))
    state, decision = on_tick(state, at(2026, 11, 30, 6))
    assert (decision.start, decision.scheduled_at, decision.caught_up) == (
        PR1, at(2026, 11, 30, 6), 0)
    assert state.waiting == () and state.last_start == at(2026, 11, 30, 6)
    # the same tick again (a restart at 06:00:01): nothing new
    again, decision = on_tick(state, at(2026, 11, 30, 6, 0, 1))
    assert decision.start is None and not decision.missed and again == state


def test_the_latest_payment_run_starts_and_covers_the_earlier_ones() -> None:
    state, decision = on_tick(state_with(schedule(), PR2, PR1), at(2026, 11, 30, 6))
    assert decision.start == PR2 and decision.covered == (PR1,)


def test_a_tick_with_no_payment_run_waiting_is_a_missed_start() -> None:
    state, decision = on_tick(state_with(schedule()), at(2026, 11, 30, 6, 5))
    assert decision.missed and decision.start is None
    assert (state.missed, state.last_missed) == (1, at(2026, 11, 30, 6))
    # a payment run that comes after its tick waits for the next one
    state = wait_for_tick(state, PR1)
    assert not is_due(state, at(2026, 11, 30, 12))
    _, decision = on_tick(state, at(2026, 12, 1, 6))
    assert decision.start == PR1 and decision.scheduled_at == at(2026, 12, 1, 6)


def test_a_downtime_over_three_ticks_starts_one_run_and_says_so() -> None:
    state = state_with(schedule(), PR1, PR2)
    state, decision = on_tick(state, at(2026, 12, 2, 9))  # Mon, Tue and Wed 06:00 due
    assert decision.start == PR2 and decision.caught_up == 2
    assert decision.scheduled_at == at(2026, 12, 2, 6) and state.caught_up == 2
    assert not is_due(state, at(2026, 12, 2, 23))


def test_approvals_are_held_until_the_activity_tick() -> None:
    s = schedule(activity_run="at 18:00")
    state = hold_approval(hold_approval(state_with(s), "A"), "A")
    state = hold_approval(state, "B")
    assert state.held == ("A", "B")
    assert not is_due(replace_proposal_done(state), at(2026, 11, 30, 17, 59))
    state, decision = on_tick(state, at(2026, 11, 30, 18))
    assert decision.release == ("A", "B") and state.held == ()
    assert next_starts(state) == {
        "proposal": at(2026, 12, 1, 6), "activity": at(2026, 12, 1, 18)}


def replace_proposal_done(state: CalendarState) -> CalendarState:
    """The state with today's proposal tick done (only the activity tick is left)."""
    return replace(state, proposal_done=at(2026, 11, 30, 6))


def test_a_new_schedule_releases_what_it_no_longer_holds_back() -> None:
    state = hold_approval(state_with(schedule(activity_run="at 18:00"), PR1, PR2), "A")
    unscheduled = parse_schedule({"schedule": {"time_zone": "UTC"}},
                                 set_at=SET_AT + 3600)
    state, decision = apply_schedule(state, unscheduled)
    assert decision.release == ("A",) and decision.start == PR2 and decision.covered == (PR1,)
    assert state.waiting == () and state.held == () and not state.proposals_scheduled
    assert not is_due(state, SET_AT + 30 * 86400)


def test_a_schedule_applied_later_starts_no_tick_before_it() -> None:
    late = SET_AT + timedelta(hours=7) // timedelta(seconds=1)  # 07:00, after the 06:00 tick
    state = state_with(schedule(set_at=late), PR1)
    assert not is_due(state, at(2026, 11, 30, 23))
    assert on_tick(state, at(2026, 12, 1, 6))[1].start == PR1


@given(st.lists(st.tuples(st.integers(1, 3 * 86400), st.booleans()), min_size=1,
                max_size=30))
def test_every_start_is_decided_once_and_never_before_its_time(steps: list[Any]) -> None:
    """Whatever the beats of the timer (gaps of a second to three days) and whenever the
    payment runs come: every start up to the last beat is decided exactly once (a run, a
    missed start, or caught up by one of them), in order, never before its time."""
    s = schedule(holidays=["2026-12-08"])
    state, now, decided, n = state_with(s), SET_AT, [], 0
    for gap, payment_run in steps:
        now += gap
        if payment_run:
            n += 1
            state = wait_for_tick(state, Waiting(f"PR-{n}", n, f"E-{n}"))
        state, d = on_tick(state, now)
        if d.scheduled_at is not None:
            assert d.scheduled_at <= now and (d.start is None) == d.missed
            decided.append((d.scheduled_at, d.caught_up, d.missed))
    all_ticks = due(s, 360, SET_AT, now)
    assert sum(1 + caught for _, caught, _ in decided) == (all_ticks[1] if all_ticks else 0)
    assert [t for t, _, _ in decided] == sorted({t for t, _, _ in decided})
    assert state.caught_up == sum(caught for _, caught, _ in decided)
    assert state.missed == sum(missed for _, _, missed in decided)
