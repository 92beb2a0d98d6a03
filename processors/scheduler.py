"""The periodic agent of scheduled runs (issue 20): the clock, the timer, and the schedule's
row in the runs table.

The timer runs in every worker and acts only in the one that owns the control partition
(`dunning.internal.run-progress` partition 0, with the runs table). Once a second it reads
the clock (`Clock`: the system's, or a file's for tests) and the schedule's state row, asks
the domain whether a start is due (`domain.run_calendar.is_due`), and if so publishes a
`Tick(now)` to the control agent, which decides and records the start in the runs table
with the run it starts (`processors.control`). A tick handled again (a restart, a
rebalance, two timers during a hand-over) finds the start recorded and does nothing new,
so a run due at 06:00 starts once even when the worker restarts at 06:00:01.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiokafka import TopicPartition

from domain.run_calendar import (
    CalendarState,
    Waiting,
    is_due,
    next_starts,
    schedule_from_dict,
    schedule_to_dict,
)
from processors import messages as m
from processors.metrics import Metrics
from processors.outbox import Outbox
from topics import catalogue as cat

log = structlog.get_logger("dunning.worker")

#: The schedule's row in the runs table: not UTF-8, so never a payment run id.
SCHEDULE_KEY = b"\xffschedule"
#: Epoch seconds now.
Clock = Callable[[], int]
#: The end offsets of topic partitions (`processors.control.Control.end_offsets`).
EndOffsets = Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]]
#: A tick is sent again only this long after the last one (the control agent may still be
#: handling it).
RESEND_SECONDS = 3.0


def system_clock() -> int:
    return int(time.time())


def file_clock(path: Path) -> Clock:
    """A clock that says what the file says (epoch seconds): the integration tests move
    it (`DUNNING_CLOCK_FILE`)."""
    def now() -> int:
        return int(path.read_text().strip())
    return now


def clock_of(settings: Any) -> Clock:
    return file_clock(settings.clock_file) if settings.clock_file else system_clock


# ------------------------------------------------------------------ the state row
def dump_state(state: CalendarState) -> bytes:
    return orjson.dumps({
        "schedule": None if state.schedule is None else schedule_to_dict(state.schedule),
        "proposal_done": state.proposal_done, "activity_done": state.activity_done,
        "waiting": [[w.payment_run_id, w.as_of, w.trigger] for w in state.waiting],
        "held": list(state.held), "last_start": state.last_start,
        "last_missed": state.last_missed, "missed": state.missed,
        "caught_up": state.caught_up, "payment_runs_read": state.payment_runs_read,
    })


def load_state(raw: bytes | None) -> CalendarState:
    if raw is None:
        return CalendarState()
    d = orjson.loads(raw)
    return CalendarState(
        schedule=None if d["schedule"] is None else schedule_from_dict(d["schedule"]),
        proposal_done=d["proposal_done"], activity_done=d["activity_done"],
        waiting=tuple(Waiting(*w) for w in d["waiting"]), held=tuple(d["held"]),
        last_start=d["last_start"], last_missed=d["last_missed"], missed=d["missed"],
        caught_up=d["caught_up"], payment_runs_read=d.get("payment_runs_read"))


# ------------------------------------------------------------------ the timer
class ScheduleTimer:
    def __init__(self, *, runs: Any, outbox: Outbox, clock: Clock,
                 owns_control: Callable[[], bool], end_offsets: EndOffsets,
                 payment_runs: TopicPartition) -> None:
        self.runs = runs
        self.outbox = outbox
        self.clock = clock
        self.owns_control = owns_control
        self.end_offsets = end_offsets
        self.payment_runs = payment_runs
        self._sent_at = -RESEND_SECONDS
        #: the state as last read here (for the gauges)
        self.state = CalendarState()

    async def tick(self) -> bool:
        """One beat of the timer; True when it published a tick."""
        if not self.owns_control():
            self.state = CalendarState()
            return False
        now = self.clock()
        self.state = load_state(self.runs.get(SCHEDULE_KEY))
        if not is_due(self.state, now) or time.monotonic() - self._sent_at < RESEND_SECONDS:
            return False
        self._sent_at = time.monotonic()
        end = (await self.end_offsets([self.payment_runs]))[self.payment_runs]
        await self.outbox.send([self.outbox.message(cat.RUN_PROGRESS, m.Tick(now, end),
                                                    "tick")])
        log.info("schedule tick", now=now, payment_runs_end=end)
        return True

    async def beat(self) -> None:
        """`tick`, with any error logged: a failed beat is tried again a second later
        (the tables may be recovering, the broker away)."""
        try:
            await self.tick()
        except Exception as exc:
            log.warning("schedule timer beat failed", error=f"{type(exc).__name__}: {exc}")

    def gauges(self) -> Iterable[tuple[list[str], float]]:
        state = self.state
        if state.schedule is None:
            return []
        out: list[tuple[list[str], float]] = [
            ([run, "next_start"], tick) for run, tick in next_starts(state).items()]
        for what, value in (("last_start", state.last_start),
                            ("last_missed", state.last_missed)):
            if value is not None:
                out.append((["proposal", what], value))
        return out

    def counts(self) -> Iterable[tuple[list[str], float]]:
        state = self.state
        if state.schedule is None:
            return []
        return [(["missed_starts"], state.missed), (["ticks_caught_up"], state.caught_up),
                (["payment_runs_waiting"], len(state.waiting)),
                (["approvals_held"], len(state.held))]


def register_gauges(metrics: Metrics, timer: ScheduleTimer) -> None:
    """The schedule's gauges, on the worker that owns the control partition (none
    elsewhere, and none without a schedule)."""
    metrics.add_gauges(
        "dunning_schedule_seconds", "The run schedule's starts, epoch seconds: the next "
        "proposal and activity start, the last proposal start and the last missed one",
        ["run", "start"], timer.gauges)
    metrics.add_gauges(
        "dunning_schedule", "The run schedule: missed_starts (scheduled starts at which no "
        "completed payment run was waiting: alert-worthy, a payment run that never came), "
        "ticks_caught_up (starts not taken while no worker ran, caught up by one run), "
        "payment_runs_waiting, approvals_held (for the activity run)", ["count"],
        timer.counts)
