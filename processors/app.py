"""The Faust app: topics, tables and agents, wired in one place.

Agents stay thin: each hands its events to the processing core (`processors.core.Worker`:
one module per agent's logic, `processors.ingest`, `.control`, `.proposal_run`,
`.activity_run`). The tables are those declared in `topics.tables`. Three agents:

* `ingest` (the four account-scoped input topics, and `dunning.letter-deliveries`): billing
  events → account state, letter outcomes → the account's history. Not a
  Faust agent but a task over the worker's own consumer (`processors.reader`), started and
  stopped by Faust's rebalance signals, so the events skip Faust's per-event stream cost.
* `control` (payment runs, decisions, run progress, the run schedule; one partition, so
  one worker): starts proposal runs, routes decisions to the account partitions, counts
  finished slices. A timer beside it (`schedule_timer`, every second) tells it when a
  scheduled start is due (`processors.scheduler`), in the worker that owns its partition.
* `partition_work` (co-partitioned with the input topics): a run slice over the accounts of
  one partition, and the decisions addressed to that partition.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, cast

import faust
import structlog
from mode import CrashingSupervisor

from config.settings import EMBEDDED, Settings
from processors import faust_private
from processors.core import Worker
from processors.procedures import ProcedureCatalog
from processors.reader import InputReader
from schemas.codec import Codec
from topics import broker_quirks
from topics import catalogue as cat
from topics import tables as tbl

log = structlog.get_logger("dunning.worker")

#: Control records (payment runs, decisions, run progress) handled per batch, and how long
#: to wait for them: short, as every hop of a run passes here.
CONTROL_BATCH = 500
CONTROL_WITHIN = 0.005
#: Seconds between two beats of the run schedule's timer.
SCHEDULE_BEAT = 1.0


def as_current_event(event: faust.EventT | None) -> None:
    """Make `event` the current event of this task, as Faust's table API (the runs table)
    needs and `take_events` does not do for each event of a batch
    (`faust_private.set_current_event`)."""
    faust_private.set_current_event(event)


def app_settings(settings: Settings, *, store: str = "rocksdb://",
                 datadir: str = "worker") -> dict[str, Any]:
    """The Faust settings of a worker (the benchmarks' baselines use the same ones)."""
    return dict(
        broker=settings.faust_broker,
        store=store,
        datadir=str(settings.state_dir / datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        key_serializer="raw",
        value_serializer="raw",
        table_standby_replicas=0,
        # Short session and rebalance timeouts: the embedded broker holds a join for about
        # half the rebalance timeout, and a restarted worker waits up to a session timeout.
        broker_session_timeout=10.0,
        broker_rebalance_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        producer_linger_ms=5,
        producer_max_batch_size=512 * 1024,
        stream_buffer_maxsize=8192,
        consumer_max_fetch_size=4 * 1024 * 1024,
        logging_config=None,
        # An agent that crashes anyway (outside `crash_stops_worker`) crashes the worker
        # instead of restarting in place.
        agent_supervisor=CrashingSupervisor,
        loghandlers=[],
        **cast(dict[str, Any], settings.faust_options()),
    )


@contextlib.asynccontextmanager
async def crash_stops_worker(name: str) -> AsyncIterator[None]:
    """Around an agent's or a task's loop: an exception that escapes it (a bug: the
    agents dead-letter what they cannot use) ends the worker process at once, exit
    status 1, with one log line saying why, so that its supervisor (systemd, Kubernetes)
    starts it again, and the failed batch, whose offsets were never committed, is read
    again. Faust's own default restarts the agent in the same process and goes on after
    the batch (`take_events` acknowledges a batch even when its consumer raised), and a
    task would just end: a live worker with a dead part. Not a graceful stop either:
    that commits the acknowledged offsets, that batch's among them, and Faust's crash path
    can hang waiting for its consumer thread. Ending the process is what a kill does,
    which the state is made to survive (the rows of a unit are written only after the
    broker has their changelog)."""
    try:
        yield
    except Exception as exc:
        log.critical("agent crashed: the worker stops with exit status 1 so that its "
                     "supervisor starts it again", agent=name,
                     error=f"{type(exc).__name__}: {exc}"[:500], exc_info=exc)
        exit_now(1)


@contextlib.contextmanager
def unless_handled(events: list[faust.EventT]) -> Iterator[None]:
    """Around the handling of a batch from `take_events`: Faust's `take_events`
    acknowledges the batch in a `finally`, so a batch whose handling did not finish (a
    SIGTERM cancels the agent in the middle of it) had its offsets committed by the
    graceful stop and was never read again: input lost. A batch that does not finish
    has its messages marked as acknowledged already, which Faust's consumer then skips
    (`Consumer.ack` tests `message.acked`), so their offsets are not committed and the
    next start reads them again (applying them is idempotent)."""
    try:
        yield
    except BaseException:
        for event in events:
            faust_private.mark_acked(event.message)
        raise


def exit_now(status: int) -> None:
    """End the process now (no clean-up, no offset commit), its logs written out first."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


class App(faust.App):
    """Faust's app, with work of ours that must end first when it stops (`before_stop`):
    Faust's own `on_stop` stops the consumer and closes the tables before it stops its
    services, and an app task (the ingest reader) is cancelled only after all of that, in
    the middle of a batch whose writes then find no producer and no tables."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_stop: list[Callable[[], Awaitable[None]]] = []

    async def on_stop(self) -> None:
        for stop in self.before_stop:
            await stop()
        await super().on_stop()


def create_app(settings: Settings) -> faust.App:
    broker_quirks.install_faust_recovery_fix(settings.kafka_client_kwargs())
    if settings.broker == EMBEDDED:
        broker_quirks.install_faust_fetch_wait()
    app = App(settings.app_id, **app_settings(settings))

    def table(spec: tbl.TableSpec) -> Any:
        # Keys and values are bytes; the app-wide raw serializers apply to the changelog.
        return app.Table(
            spec.name, key_type=bytes, value_type=bytes, default=None,
            partitions=spec.partition_count(settings.partitions),
            options=settings.rocksdb_options(),  # a fresh dict: Faust's store pops from it
        )

    codec = Codec.from_settings(settings)
    procedures = ProcedureCatalog(settings, codec)
    worker = Worker(
        app=app, settings=settings, codec=codec, procedures=procedures,
        accounts=table(tbl.ACCOUNTS), due_index=table(tbl.DUE_INDEX),
        work_index=table(tbl.WORK_INDEX), runs=table(tbl.RUNS),
    )
    app.dunning = worker  # type: ignore[attr-defined]
    _agents(app, settings, worker, procedures)

    from processors import web

    web.register(app, worker)
    return app


def _agents(app: App, settings: Settings, worker: Worker,
            procedures: ProcedureCatalog) -> None:
    def topic(*names: str, **kw: Any) -> faust.TopicT:
        return app.topic(
            *(settings.topic(n) for n in names), key_type=bytes, value_type=bytes,
            key_serializer="raw", value_serializer="raw", **kw,
        )

    @app.task
    async def follow_procedures() -> None:
        async with crash_stops_worker("follow_procedures"):
            await procedures.follow()

    _ingest(app, settings, worker)

    @app.agent(topic(cat.PAYMENT_RUNS, cat.DECISIONS, cat.RUN_PROGRESS, cat.SCHEDULES),
               concurrency=1)
    async def control(stream: faust.StreamT) -> None:
        async with crash_stops_worker("control"):
            batches = stream.take_events(CONTROL_BATCH, within=CONTROL_WITHIN)  # type: ignore[attr-defined]
            async for batch in batches:
                events = list(batch)
                with unless_handled(events):
                    await worker.on_control(events, enter=as_current_event)

    _schedule_timer(app, settings, worker)

    @app.agent(topic(cat.PARTITION_WORK), concurrency=1)
    async def partition_work(stream: faust.StreamT) -> None:
        async with crash_stops_worker("partition_work"):
            async for event in stream.events():
                await worker.on_partition_work(event)


def _schedule_timer(app: App, settings: Settings, worker: Worker) -> None:
    """The run schedule's timer, acting in the worker that owns the control partition
    (its tables recovered), and nowhere else."""
    control_tp = (settings.topic(cat.RUN_PROGRESS), 0)

    def owns_control() -> bool:
        recovery = getattr(app.tables, "recovery", None)
        if recovery is None or not recovery.completed.is_set():
            return False
        return any(tuple(tp) == control_tp for tp in app.assignor.assigned_actives())

    worker.schedule_timer.owns_control = owns_control

    @app.timer(SCHEDULE_BEAT)
    async def schedule_timer() -> None:
        await worker.schedule_timer.beat()


def _ingest(app: App, settings: Settings, worker: Worker) -> None:
    """The ingest reader (`processors.reader`) as an app task, told of every rebalance by
    Faust's signals; the worker's lag gauge asks it for the input partitions' ends."""
    reader = InputReader(settings, worker.on_inputs, worker.applied)
    worker.input_ends = reader.highwater
    app.before_stop.append(reader.stop)
    work_topic = settings.topic(cat.PARTITION_WORK)

    async def stop_reading(sender: Any, *revoked: Any, **_: Any) -> None:
        await reader.on_partitions_revoked()

    def note_assignment(sender: Any, *assigned: Any, **_: Any) -> None:
        reader.on_partitions_assigned(
            app.consumer_generation_id,
            {tp.partition for tp in assigned[0] if tp.topic == work_topic})

    def start_reading(sender: Any, *_: Any, **__: Any) -> None:
        reader.on_rebalance_complete(app.consumer_generation_id)

    # mode's signal stubs accept no receiver of ours (async, or with the sender's args)
    cast(Any, app.on_partitions_revoked).connect(stop_reading)
    cast(Any, app.on_partitions_assigned).connect(note_assignment)
    cast(Any, app.on_rebalance_complete).connect(start_reading)

    @app.task
    async def ingest() -> None:
        async with crash_stops_worker("ingest"):
            await reader.run()
