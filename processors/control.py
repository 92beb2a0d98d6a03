"""The control agent (payment runs, decisions, run progress, the run schedule; one
partition, so one worker): starts proposal runs, routes decisions to the account
partitions, counts the partitions' reports, and keeps each run's lifecycle
(`domain.run.Run`) in the runs table.

Under a run schedule (`dunning.schedules`, `domain.run_calendar`) a completed payment run
waits for the next scheduled start, and the timer's `Tick` starts it
(`processors.scheduler`); approvals may be held for the activity run's time. The
schedule's state is a row of the runs table, written with the runs it starts.

A run decision that cannot be carried out is a business outcome, recorded on dunning.runs
for the clerk (`RunDecisionRefused`), never dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiokafka import TopicPartition

from domain.ids import proposal_run_id
from domain.run import (
    Refusal,
    Run,
    RunStatus,
    new_attempt,
    superseded_attempt,
    waiting_run,
)
from domain.run_calendar import (
    ActivityMode,
    CalendarState,
    TickDecision,
    Waiting,
    apply_schedule,
    behind,
    hold_approval,
    on_tick,
    read_payment_runs,
    started_now,
    wait_for_tick,
)
from processors import convert
from processors import messages as m
from processors.deadletter import Unusable
from processors.errors import ErrorPolicy
from processors.metrics import Metrics
from processors.outbox import Outbox
from processors.scheduler import SCHEDULE_KEY, dump_state, load_state
from processors.writes import Out
from topics import broker_quirks
from topics import catalogue as cat

log = structlog.get_logger("dunning.worker")

#: the end offsets of topic partitions (the run barrier's targets)
EndOffsets = Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]]


# ---------------------------------------------------------------- the runs table's rows
def dump_run(run: Run, started_at: float) -> bytes:
    """A run's row: the orjson of its fields, in the shape rows had before the run was a
    type (so rows of either version read in the other); a scheduled run's start is added
    (only then: the rows of runs without a schedule stay as they were)."""
    scheduled = {} if run.scheduled_at is None else {
        "scheduled_at": run.scheduled_at, "ticks_caught_up": run.ticks_caught_up}
    return orjson.dumps({**scheduled,
        "payment_run_id": run.payment_run_id, "run_id": run.run_id, "attempt": run.attempt,
        "as_of": run.as_of, "trigger": run.trigger, "status": run.status.value,
        "slices": {str(p): c for p, c in run.slices.items()},
        "approved_slices": {str(p): c for p, c in run.approved_slices.items()},
        "executed": run.executed, "not_executed": run.not_executed,
        "completed": run.completed, "activity_done": run.activity_done,
        "started_at": started_at,
    })


def load_run(raw: bytes) -> tuple[Run, float]:
    """A run's row (of this version or the one before), and when the run started."""
    d = orjson.loads(raw)

    def counts(slices: dict[str, dict[str, Any]]) -> dict[int, dict[str, int]]:
        return {int(p): {k: v for k, v in c.items() if isinstance(v, int)
                         and k != "partition"} for p, c in slices.items()}

    run = Run(d["payment_run_id"], d["run_id"], d["attempt"], d["as_of"], d["trigger"],
              RunStatus(d["status"]), counts(d.get("slices", {})),
              counts(d.get("approved_slices", {})), d.get("executed", 0),
              d.get("not_executed", 0), bool(d.get("completed")),
              bool(d.get("activity_done")), scheduled_at=d.get("scheduled_at"),
              ticks_caught_up=d.get("ticks_caught_up", 0))
    return run, d.get("started_at", 0.0)


class Control:
    def __init__(self, *, settings: Any, runs: Any, outbox: Outbox, errors: ErrorPolicy,
                 metrics: Metrics, end_offsets: EndOffsets | None = None) -> None:
        self.settings = settings
        self.runs = runs
        self.outbox = outbox
        self.errors = errors
        self.metrics = metrics
        self.end_offsets = end_offsets or self._true_end_offsets
        self._started: dict[str, float] = {}
        self.on_record: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "PaymentRunCompleted": self.payment_run_completed,
            "ProposalRunRequested": self.proposal_run_requested,
            "ProposalApproved": self.proposal_approved,
            "ProposalRejected": self.proposal_rejected,
            "RunApproved": self.run_approved,
            "RunDeleted": self.run_deleted,
            "NoticeReversalRequested": self.reversal_requested,
            "RunScheduleSet": self.schedule_set,
        }

    async def _true_end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return await broker_quirks.true_end_offsets(self.settings.kafka_client_kwargs(), tps)

    async def on_control(self, events: list[Any], enter: Callable[[Any], None]) -> None:
        """A batch of control records, each handled in order as the stream's current event
        (`enter`); their dead letters go out together at the end, before Faust
        acknowledges the batch (one send per bad record held a flood of them to about a
        hundred a second)."""
        dead: list[Out] = []
        for event in events:
            enter(event)
            await self.errors.guarded(event.message, self.handle, dead)
        enter(None)
        if dead:
            await self.errors.send_dead_letters(dead)

    async def handle(self, message: Any) -> None:
        topic = self.errors.logical(message.topic)
        if topic == cat.RUN_PROGRESS:
            progress = m.decode(message.value)
            if isinstance(progress, m.Tick):
                await self.tick(progress.now, progress.payment_runs_end)
                return
            if not isinstance(progress, m.Executed | m.SliceDone | m.ApproveDone):
                raise Unusable("unknown_record_type", f"{progress.kind} is not run progress")
            await self.progress(progress)
            return
        try:
            rtype, record = self.errors.decode(message, cat.BY_NAME[topic].records)
            await self.on_record[rtype](record)
        finally:
            if topic == cat.PAYMENT_RUNS:  # used or dead-lettered: read
                self.read_payment_runs(message.offset + 1)

    def read_payment_runs(self, offset: int) -> None:
        """Under a schedule, how far the payment runs are read (for the ticks' wait)."""
        state = self.calendar()
        if state.schedule is not None and (state.payment_runs_read or 0) < offset:
            self.put_calendar(read_payment_runs(state, offset))

    # ------------------------------------------------------------------ the runs table
    def get_run(self, payment_run_id: str) -> Run | None:
        raw = self.runs.get(payment_run_id.encode())
        if raw is None:
            return None
        run, started_at = load_run(raw)
        self._started.setdefault(run.run_id, started_at)
        return run

    def put_run(self, run: Run) -> None:
        started_at = self._started.setdefault(run.run_id, time.time())
        self.runs[run.payment_run_id.encode()] = dump_run(run, started_at)

    def run_by_id(self, run_id: str) -> Run:
        """The run; for an earlier attempt of a payment run (deleted, since it was run
        again) one saying so (`superseded`): its progress and decisions can still arrive,
        for one when a restarted worker handles them again."""
        payment_run_id = run_id.rpartition("/")[0]
        run = self.get_run(payment_run_id) if payment_run_id else None
        earlier = superseded_attempt(run_id, run)
        if earlier is not None:
            return earlier
        if run is None or run.run_id != run_id:
            raise Unusable("unknown_run", f"no proposal run {run_id!r}")
        if not run.started:
            raise Unusable("unknown_run", f"no proposal run {run_id!r} yet: its payment run "
                           f"is {run.status.value} (the run schedule)")
        return run

    # ------------------------------------------------------------------ the schedule
    def calendar(self) -> CalendarState:
        return load_state(self.runs.get(SCHEDULE_KEY))

    def put_calendar(self, state: CalendarState) -> None:
        self.runs[SCHEDULE_KEY] = dump_state(state)

    # ------------------------------------------------------------------ runs
    async def payment_run_completed(self, record: dict[str, Any]) -> None:
        payment_run_id = record["run_id"]
        run = self.get_run(payment_run_id)
        if run is not None and run.trigger != record["event_id"]:
            log.info("payment run seen before: nothing new", payment_run_id=payment_run_id)
            return
        if run is not None and not run.started:
            return  # waiting for the schedule, or covered by a later payment run
        as_of = convert.day(record["as_of_date"])
        if run is None and self.calendar().proposals_scheduled:
            self.wait_for_schedule(payment_run_id, as_of, record["event_id"])
            return
        attempt = 1 if run is None else run.attempt
        await self.start_run(payment_run_id, as_of, attempt, record["event_id"])

    def wait_for_schedule(self, payment_run_id: str, as_of: int, trigger: str) -> None:
        """A payment run completed under a schedule: it waits for the next start."""
        self.put_run(waiting_run(payment_run_id, proposal_run_id(payment_run_id, 1), as_of,
                                 trigger))
        self.put_calendar(wait_for_tick(self.calendar(),
                                        Waiting(payment_run_id, as_of, trigger)))
        log.info("payment run waits for the scheduled start", payment_run_id=payment_run_id)

    async def proposal_run_requested(self, record: dict[str, Any]) -> None:
        run = self.get_run(record["payment_run_id"])
        if run is None:
            raise Unusable("unknown_run", f"no payment run {record['payment_run_id']!r}")
        if run.trigger == record["event_id"]:
            # this request started the current attempt (handled again after a restart):
            # carry on with it, as a redelivered PaymentRunCompleted does
            await self.start_run(run.payment_run_id, run.as_of, run.attempt,
                                 record["event_id"])
            return
        refusal = run.rerun_refusal()
        if refusal is not None:
            await self.refuse("ProposalRunRequested", record, run.run_id, refusal)
            return
        if not run.started:  # waiting for the schedule (or covered): at once, on request
            self.put_calendar(started_now(self.calendar(), run.payment_run_id))
            await self.start_run(run.payment_run_id, run.as_of, 1, record["event_id"])
            return
        await self.start_run(run.payment_run_id, run.as_of, run.attempt + 1,
                             record["event_id"])

    async def start_run(self, payment_run_id: str, as_of: int, attempt: int,
                        trigger: str, scheduled_at: int | None = None,
                        ticks_caught_up: int = 0) -> None:
        run_id = proposal_run_id(payment_run_id, attempt)
        n = self.settings.partitions
        ends = await self.end_offsets([TopicPartition(self.settings.topic(t), p)
                                       for t in cat.ACCOUNT_INPUTS for p in range(n)])
        run = self.get_run(payment_run_id)
        if run is None or run.run_id != run_id or not run.started:
            self._started[run_id] = time.time()
            run = new_attempt(payment_run_id, run_id, attempt, as_of, trigger, scheduled_at,
                              ticks_caught_up)
            self.put_run(run)
        outs = [self.outbox.record(cat.RUNS, "ProposalRunStarted", convert.run_started(
            run_id, payment_run_id, as_of, run.scheduled_at, run.ticks_caught_up), run_id)]
        # The schedule's activity run `together`: the run executes every proposal.
        auto = self.calendar().activity is ActivityMode.TOGETHER
        for p in range(n):
            targets = {tp.topic: off for tp, off in ends.items() if tp.partition == p}
            # A rerun after a deletion looks at every account: the deleted attempt moved
            # the due index of the accounts it evaluated past this as-of day.
            outs.append(self.outbox.message(cat.PARTITION_WORK, m.Slice(
                run_id, as_of, targets, full=attempt > 1, auto_approve=auto), None, p))
        await self.outbox.send(outs)
        log.info("proposal run started", run_id=run_id, as_of=as_of,
                 scheduled_at=run.scheduled_at)

    # ------------------------------------------------------------------ scheduled starts
    async def schedule_set(self, record: dict[str, Any]) -> None:
        schedule = convert.schedule(record)
        state, decision = apply_schedule(self.calendar(), schedule)
        log.info("run schedule in force", schedule_id=schedule.schedule_id,
                 proposal_time=record["proposal_time"], activity=record["activity_mode"],
                 activity_time=record["activity_time"])
        await self.carry_out(state, decision)

    async def tick(self, now: int, payment_runs_end: int | None = None) -> None:
        """The timer says something is due at `now`: what, the domain decides; a tick
        handled again finds its start done (`proposal_done`) and does nothing new. A tick
        sent before a payment run published before it was read waits (the timer sends it
        again)."""
        state = self.calendar()
        if behind(state, payment_runs_end):
            log.info("schedule tick waits for the payment runs to be read",
                     read=state.payment_runs_read, end=payment_runs_end)
            return
        state, decision = on_tick(state, now)
        await self.carry_out(state, decision)

    async def carry_out(self, state: CalendarState, d: TickDecision) -> None:
        """Start the run a tick or a schedule decided, record a missed start, release the
        held approvals; then store the schedule's state (a crash before that: the tick is
        handled again, with the same ids)."""
        for w in d.covered:
            run = self.get_run(w.payment_run_id)
            if run is not None and not run.started:
                run.status = RunStatus.SKIPPED
                self.put_run(run)
            log.info("payment run covered by a later one", payment_run_id=w.payment_run_id,
                     by=d.start.payment_run_id if d.start else None)
        if d.start is not None:
            if d.caught_up:
                log.warning("scheduled start caught up after a downtime",
                            ticks_caught_up=d.caught_up, scheduled_at=d.scheduled_at)
            await self.start_run(d.start.payment_run_id, d.start.as_of, 1, d.start.trigger,
                                 d.scheduled_at, d.caught_up)
        elif d.missed and d.scheduled_at is not None and state.schedule is not None:
            log.warning("scheduled start missed: no completed payment run waiting",
                        scheduled_at=d.scheduled_at, ticks_caught_up=d.caught_up)
            await self.outbox.send([self.outbox.record(
                cat.RUNS, "ScheduledStartMissed", convert.start_missed(
                    state.schedule.schedule_id, d.scheduled_at, d.caught_up),
                state.schedule.schedule_id)])
        if d.release:
            log.info("activity run: held approvals carried out", approvals=len(d.release))
            await self.outbox.send(
                self.outbox.message(cat.PARTITION_WORK, m.decode(held.encode()), None, p)
                for held in d.release for p in range(self.settings.partitions))
        self.put_calendar(state)

    def held(self, message: m.PartitionWork) -> bool:
        """Hold an approval for the activity run's time (activity `at` a time); False: it
        is carried out at once."""
        state = self.calendar()
        if state.activity is not ActivityMode.AT:
            return False
        self.put_calendar(hold_approval(state, m.encode(message).decode()))
        log.info("approval held for the scheduled activity run", kind=message.kind)
        return True

    # ------------------------------------------------------------------ decisions
    async def broadcast(self, message: m.PartitionWork) -> None:
        await self.outbox.send(self.outbox.message(cat.PARTITION_WORK, message, None, p)
                               for p in range(self.settings.partitions))

    async def proposal_approved(self, record: dict[str, Any]) -> None:
        approve = m.Approve(record["proposal_id"])
        if not self.held(approve):
            await self.broadcast(approve)

    async def proposal_rejected(self, record: dict[str, Any]) -> None:
        await self.broadcast(m.Reject(record["proposal_id"], record.get("decided_by") or "",
                                      record.get("reason")))

    async def reversal_requested(self, record: dict[str, Any]) -> None:
        if not record.get("notice_id") and not record.get("run_id"):
            raise Unusable("invalid", "a reversal names a notice_id or a run_id")
        item_ids = record.get("item_ids")
        await self.broadcast(m.Reverse(
            record["event_id"], record.get("notice_id"), record.get("run_id"),
            list(item_ids) if item_ids else None, record.get("requested_by"),
            record.get("reason")))

    async def refuse(self, decision: str, record: dict[str, Any], run_id: str,
                     refusal: Refusal) -> None:
        log.info("run decision refused", decision=decision, run_id=run_id,
                 reason=refusal.reason)
        self.metrics.decisions_refused.labels(refusal.reason).inc()
        await self.outbox.send([self.outbox.record(
            cat.RUNS, "RunDecisionRefused", convert.run_decision_refused(
                decision, record, run_id, refusal.reason, refusal.detail), run_id)])

    async def run_approved(self, record: dict[str, Any]) -> None:
        run = self.run_by_id(record["run_id"])
        refusal = run.approve()
        if refusal is not None:
            await self.refuse("RunApproved", record, run.run_id, refusal)
            return
        self.put_run(run)
        # Each partition's approval comes after its slice on the same partition-work
        # partition, so an approval while the run is still running waits for the slice.
        approve = m.ApproveRun(record["run_id"])
        if not self.held(approve):
            await self.broadcast(approve)

    async def run_deleted(self, record: dict[str, Any]) -> None:
        run = self.run_by_id(record["run_id"])
        if run.deleted_before():
            return  # deleted before: nothing more to do
        refusal = run.delete()
        if refusal is not None:
            await self.refuse("RunDeleted", record, run.run_id, refusal)
            return
        self.put_run(run)
        await self.broadcast(m.DeleteRun(record["run_id"]))

    # ------------------------------------------------------------------ progress
    async def progress(self, msg: m.Progress) -> None:
        run = self.run_by_id(msg.run_id)
        if run.superseded:
            return  # a deleted attempt's slices, handled again: nothing depends on them
        run.count(msg.notices, msg.not_executed)
        out: list[Out] = []
        if isinstance(msg, m.SliceDone):
            totals = run.slice_done(msg.partition, msg.counts(), self.settings.partitions)
            if totals is not None:
                out += self._completed(run, totals)
        elif isinstance(msg, m.ApproveDone):
            totals = run.activity_slice_done(msg.partition, msg.counts(),
                                             self.settings.partitions)
            if totals is not None:
                out.append(self.outbox.record(cat.RUNS, "ActivityRunCompleted",
                                              convert.activity_done(run.run_id, totals),
                                              run.run_id))
                log.info("activity run completed", run_id=run.run_id, **totals)
        # the records first, then the run's row: a progress message handled again after a
        # crash in between sends the same records (same ids) again, never none
        await self.outbox.send(out)
        self.put_run(run)

    def _completed(self, run: Run, totals: dict[str, int]) -> list[Out]:
        out = [self.outbox.record(cat.RUNS, "ProposalRunCompleted", convert.run_completed(
            run.run_id, run.payment_run_id, run.as_of, totals), run.run_id)]
        if totals["notices"]:
            out.append(self.outbox.record(cat.RUNS, "ActivityRunCompleted",
                                          convert.activity_done(run.run_id, totals, auto=True),
                                          run.run_id))
        seconds = time.time() - self._started.get(run.run_id, time.time())
        self.metrics.run_seconds.observe(seconds)
        log.info("proposal run completed", run_id=run.run_id, **totals,
                 seconds=round(seconds, 3))
        return out
