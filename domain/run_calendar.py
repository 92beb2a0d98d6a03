"""When scheduled runs start (issue 20): the run schedule, its calendar, and what is due at
a given moment.

A :class:`RunSchedule` says, in one time zone, at which local time proposal runs start
(`proposal_time`; None: at once, as the payment run completes) and when approved runs are
executed (`activity`: at once, at a local time, or together with the proposal run), on
which weekdays, minus a list of holidays (local dates). A *tick* is one such start, as
integer epoch seconds (UTC).

Everything here is pure: "now" and the time the schedule was set are arguments (the
processors' timer keeps the clock). Local times follow the zone's rules: on the day the
clocks go forward a time in the gap (02:30 in Europe/Berlin) starts at the same wall-clock
distance after the change (03:30); on the day they go back, an ambiguous time starts at
its first occurrence.

:class:`CalendarState` is what the control worker keeps about the schedule (the ticks done,
the payment runs waiting, the approvals held); `on_tick` decides a tick (RULES.md,
decision 11): the latest completed payment run not yet dunned starts, the ones before it
are covered by it, a tick with none waiting is a missed start, and several ticks due at
once (after a downtime) start one run, counting the others as caught up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.dates import from_day, to_day

__all__ = [
    "ActivityMode",
    "CalendarState",
    "RunSchedule",
    "ScheduleError",
    "TickDecision",
    "Waiting",
    "apply_schedule",
    "behind",
    "due",
    "hold_approval",
    "is_due",
    "next_start",
    "on_tick",
    "next_starts",
    "parse_schedule",
    "read_payment_runs",
    "schedule_from_dict",
    "schedule_to_dict",
    "started_now",
    "wait_for_tick",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
#: How far `due` looks back (a longer downtime counts only these days' ticks) and
#: `next_start` looks ahead (a calendar with no business day in two years has none).
LOOK_BACK_DAYS = 3700
LOOK_AHEAD_DAYS = 732
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class ScheduleError(ValueError):
    """A schedule that is malformed; the message says where."""


class ActivityMode(StrEnum):
    #: an approval is executed at once (the behaviour without a schedule)
    AT_ONCE = "at_once"
    #: approvals are held and executed at `activity_time`, everything approved by then
    AT = "at"
    #: the activity run follows the proposal run: every proposal is executed by its run,
    #: as with a procedure's `auto_approve`, and the run can no longer be deleted
    TOGETHER = "together"


@dataclass(frozen=True)
class RunSchedule:
    schedule_id: str
    time_zone: str
    #: local start time of proposal runs as minutes after midnight; None: at once
    proposal_time: int | None
    activity: ActivityMode
    #: local time of the activity run (minutes after midnight), with `ActivityMode.AT`
    activity_time: int | None
    #: weekday numbers (Monday 0) on which runs start
    weekdays: frozenset[int]
    #: local dates (day numbers) on which no run starts
    holidays: frozenset[int]
    #: when the schedule was set (epoch seconds): no tick before it is due
    set_at: int
    set_by: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


# ------------------------------------------------------------------ parsing
def _minutes(value: Any, where: str) -> int:
    m = _TIME.match(value) if isinstance(value, str) else None
    if m is None:
        raise ScheduleError(f"{where}: a local time is HH:MM (00:00 to 23:59), not {value!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


def _zone(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ScheduleError(f"time_zone: an IANA time zone name, not {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"time_zone: unknown time zone {name!r}") from exc
    return name


def _weekdays(value: Any) -> frozenset[int]:
    if value is None:
        return frozenset(range(5))
    if not isinstance(value, list) or not value:
        raise ScheduleError(f"weekdays: a non-empty list of {', '.join(WEEKDAYS)}")
    out = set()
    for v in value:
        name = str(v).lower()[:3]
        if name not in WEEKDAYS or not str(v).lower().startswith(name):
            raise ScheduleError(f"weekdays: {v!r} is not one of {', '.join(WEEKDAYS)}")
        out.add(WEEKDAYS.index(name))
    return frozenset(out)


def _holidays(value: Any) -> frozenset[int]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise ScheduleError("holidays: a list of dates YYYY-MM-DD")
    out = set()
    for v in value:
        try:
            out.add(to_day(v if isinstance(v, date) else date.fromisoformat(str(v))))
        except ValueError as exc:
            raise ScheduleError(f"holidays: {v!r} is not a date YYYY-MM-DD") from exc
    return frozenset(out)


def _activity(value: Any) -> tuple[ActivityMode, int | None]:
    if value is None or value == "at_once":
        return ActivityMode.AT_ONCE, None
    if value == "together":
        return ActivityMode.TOGETHER, None
    if isinstance(value, str) and value.startswith("at "):
        return ActivityMode.AT, _minutes(value[3:].strip(), "activity_run")
    raise ScheduleError(f"activity_run: at_once, together or 'at HH:MM', not {value!r}")


def parse_schedule(data: Any, *, set_at: int, set_by: str = "") -> RunSchedule:
    """The schedule of a schedule file (`{"schedule": {...}}`, CONTRACT.md section 8),
    checked whole; `set_at` is when it is applied (epoch seconds)."""
    body = data.get("schedule") if isinstance(data, dict) else None
    if not isinstance(body, dict):
        raise ScheduleError("the file holds one mapping 'schedule:'")
    known = {"id", "time_zone", "weekdays", "holidays", "proposal_run", "activity_run"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ScheduleError(f"unknown keys: {', '.join(map(str, unknown))}")
    schedule_id = str(body.get("id", "default"))
    if not _ID.match(schedule_id):
        raise ScheduleError(f"id: 1 to 100 of A-Z a-z 0-9 . _ -, not {schedule_id!r}")
    proposal = body.get("proposal_run")
    activity, activity_time = _activity(body.get("activity_run"))
    return RunSchedule(
        schedule_id=schedule_id, time_zone=_zone(body.get("time_zone")),
        proposal_time=None if proposal is None else _minutes(proposal, "proposal_run"),
        activity=activity, activity_time=activity_time, weekdays=_weekdays(body.get("weekdays")),
        holidays=_holidays(body.get("holidays")), set_at=set_at, set_by=set_by)


def hhmm(minutes: int | None) -> str | None:
    return None if minutes is None else f"{minutes // 60:02d}:{minutes % 60:02d}"


def schedule_to_dict(s: RunSchedule) -> dict[str, Any]:
    """JSON-safe fields (the state row; the Avro record has the same names)."""
    return {"schedule_id": s.schedule_id, "time_zone": s.time_zone,
            "proposal_time": hhmm(s.proposal_time), "activity_mode": s.activity.value,
            "activity_time": hhmm(s.activity_time),
            "weekdays": [WEEKDAYS[d] for d in sorted(s.weekdays)],
            "holidays": [from_day(d).isoformat() for d in sorted(s.holidays)],
            "set_at": s.set_at, "set_by": s.set_by}


def schedule_from_dict(d: dict[str, Any]) -> RunSchedule:
    """The inverse of `schedule_to_dict` (checked like a file)."""
    activity = d["activity_mode"]
    if activity == ActivityMode.AT:
        activity = f"at {d['activity_time']}"
    body = {"id": d["schedule_id"], "time_zone": d["time_zone"], "weekdays": d["weekdays"],
            "holidays": d["holidays"], "proposal_run": d["proposal_time"],
            "activity_run": activity}
    return parse_schedule({"schedule": body}, set_at=d["set_at"], set_by=d.get("set_by", ""))


# ------------------------------------------------------------------ the calendar
def epoch(moment: datetime) -> int:
    """Whole seconds since 1970 of an aware datetime."""
    return (moment - EPOCH) // SECOND


def _local_day(s: RunSchedule, at: int) -> int:
    return to_day(datetime.fromtimestamp(at, s.zone).date())


def _tick_of(s: RunSchedule, day: int, minutes: int) -> int | None:
    """The tick of a local day at a local time; None when no run starts that day."""
    d = from_day(day)
    if d.weekday() not in s.weekdays or day in s.holidays:
        return None
    local = datetime.combine(d, time(minutes // 60, minutes % 60), tzinfo=s.zone)
    # a time in the spring-forward gap: fold=0 takes the offset before the change, so the
    # instant is as far after the change as the time is after its start
    return epoch(local)


def due(s: RunSchedule, minutes: int, after: int, until: int) -> tuple[int, int] | None:
    """The ticks at local time `minutes` in (after, until]: (the latest, how many), or
    None when there is none."""
    if until <= after:
        return None
    first = max(_local_day(s, after) - 1, _local_day(s, until) - LOOK_BACK_DAYS)
    latest, count = None, 0
    for day in range(first, _local_day(s, until) + 2):
        tick = _tick_of(s, day, minutes)
        if tick is not None and after < tick <= until:
            latest, count = tick, count + 1
    return None if latest is None else (latest, count)


def next_start(s: RunSchedule, minutes: int, after: int) -> int | None:
    """The first tick at local time `minutes` after `after` (None: none in two years)."""
    start = _local_day(s, after) - 1
    for day in range(start, start + LOOK_AHEAD_DAYS):
        tick = _tick_of(s, day, minutes)
        if tick is not None and tick > after:
            return tick
    return None


# ------------------------------------------------------------------ the control state
@dataclass(frozen=True)
class Waiting:
    """A completed payment run waiting for the next proposal tick."""

    payment_run_id: str
    as_of: int
    trigger: str


@dataclass(frozen=True)
class CalendarState:
    schedule: RunSchedule | None = None
    #: the last proposal / activity tick handled (epoch seconds)
    proposal_done: int | None = None
    activity_done: int | None = None
    #: payment runs completed and not yet dunned, in the order they arrived
    waiting: tuple[Waiting, ...] = ()
    #: approvals held for the activity tick (opaque to the domain: the caller's messages)
    held: tuple[str, ...] = ()
    last_start: int | None = None
    last_missed: int | None = None
    missed: int = 0
    caught_up: int = 0
    #: the offset after the last record of `billing.payment-runs` the control agent has
    #: handled under a schedule (None: none yet)
    payment_runs_read: int | None = None

    @property
    def proposals_scheduled(self) -> bool:
        return self.schedule is not None and self.schedule.proposal_time is not None

    @property
    def activity(self) -> ActivityMode:
        return self.schedule.activity if self.schedule is not None else ActivityMode.AT_ONCE


@dataclass(frozen=True)
class TickDecision:
    #: the payment run to start now, and the earlier ones it covers
    start: Waiting | None = None
    covered: tuple[Waiting, ...] = ()
    #: the proposal tick decided (the run's `scheduled_at`, or the missed start)
    scheduled_at: int | None = None
    #: proposal ticks due at once besides the one decided (a downtime): caught up
    caught_up: int = 0
    missed: bool = False
    #: held approvals to carry out now, in the order they were taken
    release: tuple[str, ...] = ()


def apply_schedule(state: CalendarState, s: RunSchedule) -> tuple[CalendarState, TickDecision]:
    """A schedule is applied: no tick before it is due; what it no longer holds back
    (approvals held when activities are no longer `at` a time; payment runs waiting when
    proposal runs are no longer scheduled) is released now."""
    new = replace(state, schedule=s,
                  proposal_done=max(state.proposal_done or s.set_at, s.set_at),
                  activity_done=max(state.activity_done or s.set_at, s.set_at))
    release: tuple[str, ...] = ()
    if s.activity is not ActivityMode.AT and state.held:
        release, new = state.held, replace(new, held=())
    start, covered = _latest(state.waiting) if s.proposal_time is None else (None, ())
    if start is not None:
        new = replace(new, waiting=())
    return new, TickDecision(start=start, covered=covered, release=release)


def wait_for_tick(state: CalendarState, w: Waiting) -> CalendarState:
    return replace(state, waiting=(*(x for x in state.waiting
                                     if x.payment_run_id != w.payment_run_id), w))


def started_now(state: CalendarState, payment_run_id: str) -> CalendarState:
    """A waiting payment run was started by hand (a rerun request)."""
    return replace(state, waiting=tuple(w for w in state.waiting
                                        if w.payment_run_id != payment_run_id))


def read_payment_runs(state: CalendarState, offset: int) -> CalendarState:
    """The control agent has handled `billing.payment-runs` up to `offset` (exclusive)."""
    return replace(state, payment_runs_read=max(offset, state.payment_runs_read or 0))


def behind(state: CalendarState, payment_runs_end: int | None) -> bool:
    """A payment run published before the tick is not handled yet: the tick waits for it
    (a payment run that completes at 05:59:59 is dunned at 06:00). Not known (no payment
    run handled since the schedule was first applied): not behind."""
    return (payment_runs_end is not None and state.payment_runs_read is not None
            and state.payment_runs_read < payment_runs_end)


def hold_approval(state: CalendarState, message: str) -> CalendarState:
    """Hold an approval for the activity tick (once: the same one again is the same)."""
    return state if message in state.held else replace(state, held=(*state.held, message))


def _latest(waiting: tuple[Waiting, ...]) -> tuple[Waiting | None, tuple[Waiting, ...]]:
    """The latest payment run (the latest as-of date; of equal ones the last to arrive),
    and the others."""
    if not waiting:
        return None, ()
    best = max(range(len(waiting)), key=lambda i: (waiting[i].as_of, i))
    return waiting[best], waiting[:best] + waiting[best + 1:]


def is_due(state: CalendarState, now: int) -> bool:
    s = state.schedule
    if s is None:
        return False
    return bool((s.proposal_time is not None
                 and due(s, s.proposal_time, state.proposal_done or s.set_at, now))
                or (s.activity is ActivityMode.AT and s.activity_time is not None
                    and due(s, s.activity_time, state.activity_done or s.set_at, now)))


def on_tick(state: CalendarState, now: int) -> tuple[CalendarState, TickDecision]:
    """What is due at `now`: a proposal tick (the latest waiting payment run starts, or
    the start is missed), then an activity tick (the held approvals are released)."""
    s = state.schedule
    decision = TickDecision()
    if s is None:
        return state, decision
    if s.proposal_time is not None:
        ticks = due(s, s.proposal_time, state.proposal_done or s.set_at, now)
        if ticks is not None:
            tick, count = ticks
            start, covered = _latest(state.waiting)
            decision = TickDecision(start=start, covered=covered, scheduled_at=tick,
                                    caught_up=count - 1, missed=start is None)
            state = replace(state, proposal_done=tick, waiting=(),
                            last_start=tick if start else state.last_start,
                            last_missed=state.last_missed if start else tick,
                            missed=state.missed + (start is None),
                            caught_up=state.caught_up + count - 1)
    if s.activity is ActivityMode.AT and s.activity_time is not None:
        ticks = due(s, s.activity_time, state.activity_done or s.set_at, now)
        if ticks is not None:
            decision = replace(decision, release=state.held)
            state = replace(state, activity_done=ticks[0], held=())
    return state, decision


def next_starts(state: CalendarState) -> dict[str, int]:
    """The next proposal and activity ticks not yet handled (one in the past is overdue:
    due, and not handled yet)."""
    s = state.schedule
    out: dict[str, int] = {}
    if s is None:
        return out
    for name, minutes, done in (("proposal", s.proposal_time, state.proposal_done),
                                ("activity", s.activity_time, state.activity_done)):
        if minutes is not None:
            tick = next_start(s, minutes, done or s.set_at)
            if tick is not None:
                out[name] = tick
    return out
