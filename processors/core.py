"""The worker's processing core, put together: one store (the write path), one outbox,
one error policy, and the agents' logic (`Ingest`, `Control`, `ProposalRun`,
`ActivityRun`) over them. `processors.app` gives it the Faust tables and calls its
`on_*` methods from the agents.

`decode` and `commit` are the two seams a caller may replace (the bulk loader of the
benchmarks folds generated events without a broker): the agents reach the codec's door
and the broker through them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka import TopicPartition

from config.settings import Settings
from processors import messages as m
from processors.activity_run import ActivityRun
from processors.control import Control
from processors.errors import ErrorPolicy
from processors.ingest import Ingest
from processors.metrics import Metrics
from processors.outbox import Outbox
from processors.procedures import ProcedureCatalog
from processors.proposal_run import ProposalRun
from processors.scheduler import ScheduleTimer, clock_of, register_gauges
from processors.store import Store
from processors.writes import Out, Writes
from schemas.codec import Codec
from topics import catalogue as cat


class Worker:
    def __init__(
        self, *, app: Any, settings: Settings, codec: Codec, procedures: ProcedureCatalog,
        accounts: Any, due_index: Any, work_index: Any, runs: Any, topic: Any = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.codec = codec
        self.procedures = procedures
        self.accounts = accounts
        self.due_index = due_index
        self.work_index = work_index
        self.runs = runs
        self.metrics = Metrics()
        self.outbox = Outbox(app, settings, codec, (accounts, due_index, work_index))
        self.errors = ErrorPolicy(settings, codec, self.metrics, self.outbox)
        self.store = Store(settings=settings, procedures=procedures, accounts=accounts,
                           due_index=due_index, work_index=work_index, metrics=self.metrics,
                           commit=self.commit)
        self.ingest = Ingest(store=self.store, outbox=self.outbox, errors=self.errors,
                             metrics=self.metrics, decode=self.decode)
        self.control = Control(settings=settings, runs=runs, outbox=self.outbox,
                               errors=self.errors, metrics=self.metrics)
        self.activities = ActivityRun(store=self.store, outbox=self.outbox,
                                      metrics=self.metrics)
        #: the run schedule's timer; `processors.app` tells it whether this worker owns
        #: the control partition
        self.schedule_timer = ScheduleTimer(
            runs=runs, outbox=self.outbox, clock=clock_of(settings), owns_control=lambda: False,
            end_offsets=self.control.end_offsets,
            payment_runs=TopicPartition(settings.topic(cat.PAYMENT_RUNS), 0))
        register_gauges(self.metrics, self.schedule_timer)
        self.proposal_run = ProposalRun(store=self.store, outbox=self.outbox, codec=codec,
                                        metrics=self.metrics, activities=self.activities,
                                        applied_offset=self.applied_offset)
        #: (physical input topic, partition) -> its end offset as last seen, None when
        #: not read here (the ingest reader's, set by `processors.app`)
        self.input_ends: Callable[[str, int], int | None] = lambda topic, partition: None
        self.partition_work: dict[type[Any], Callable[[int, Any], Awaitable[None]]] = {
            m.Slice: self.proposal_run.slice,
            m.Approve: self.activities.approve,
            m.Reject: self.activities.reject,
            m.ApproveRun: self.activities.approve_run,
            m.DeleteRun: self.activities.delete_run,
            m.Reverse: self.activities.reverse,
        }

    # ------------------------------------------------------------------ the seams
    def decode(self, message: Any, allowed: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        return self.errors.decode(message, allowed)

    async def commit(self, outs: list[Out], writes: Writes) -> None:
        await self.outbox.commit(outs, writes)

    # ------------------------------------------------------------------ views' needs
    @property
    def applied(self) -> dict[tuple[str, int], int]:
        return self.ingest.applied

    def logical(self, physical: str) -> str:
        return self.errors.logical(physical)

    def applied_offset(self, topic: str, partition: int) -> int:
        """The offset after the last input event applied (since the reader's committed
        position of the partition, loaded when the partition was assigned)."""
        return self.ingest.applied.get((topic, partition), 0)

    # ------------------------------------------------------------------ the agents
    async def on_inputs(self, messages: list[Any]) -> None:
        """A batch of input records (`processors.reader`); their positions are committed
        once this returns."""
        await self.ingest.on_inputs(messages)

    async def apply_unit(self, partition: int, messages: list[Any]) -> None:
        """One ingest unit of work (a batch of one partition's input events)."""
        await self.ingest.apply_unit(partition, messages)

    async def on_control(self, events: list[faust.EventT],
                         enter: Callable[[Any], None]) -> None:
        await self.control.on_control(events, enter)

    async def on_partition_work(self, event: faust.EventT) -> None:
        await self.errors.guarded(event.message, self.handle_partition_work)

    async def handle_partition_work(self, message: Any) -> None:
        work = m.decode(message.value)
        handler = self.partition_work.get(type(work))
        if handler is None:
            raise ValueError(f"{work.kind} is not partition work")
        await handler(message.partition, work)
