"""The ingest reader: the four account input topics and the letter service's delivery
outcomes (`topics.catalogue.INGESTED`) read in batches by the worker's own aiokafka
consumer (`getmany`), without Faust's per-event stream machinery.

Faust's stream hands an agent one event at a time through its conductor, a channel queue
and the stream iterator (several asyncio waits and a task per event); an agent that only
decodes and counts manages about 7,000 events a second here, less than a tenth of what
`getmany` and decoding do (`python -m bench.ingest`). Ingest is the one agent whose work
per event is small, so that cost was most of it.

What stays Faust's: the consumer group, the assignment, the tables and their recovery. The
input topics are co-partitioned with the tables and `dunning.internal.partition-work`, so
the account partitions this worker owns are the partition-work partitions Faust assigned
it; the reader reads exactly those partitions of the topics it reads (manual
`assign`), and only once Faust has recovered their tables:

* `on_partitions_revoked` (a rebalance begins, Faust awaits it): reading stops, the batch
  in hand is finished and its positions committed before Faust hands the tables over;
* `on_partitions_assigned`: the new partitions and the consumer generation they belong to;
* `on_rebalance_complete` (Faust has recovered the tables): if no newer rebalance has
  begun, the reader assigns the input partitions, starts at the committed positions (the
  earliest offset for a partition never read) and reads on.

Positions are committed to a consumer group of the reader's own, `<app id>-ingest`
(`Settings.ingest_group`), which is never joined (Faust's group `<app id>` holds the
members), after the batch they end has been applied, at most every `COMMIT_EVERY`
seconds, on a rebalance and at a graceful stop: at least once, as before; applying an
event again changes nothing (`domain.ingest.evolve`). The committed positions are also
the run barrier's knowledge after a restart (`Ingest.applied`), and the group shows the
workers' ingest lag to the usual Kafka tools.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from config.settings import EMBEDDED, Settings
from topics import broker_quirks
from topics import catalogue as cat

log = structlog.get_logger("dunning.worker")

#: Input events handed to ingest per batch, and how long to wait for them.
BATCH = 2000
WITHIN_MS = 50
#: Seconds between two commits of the positions (Faust's `broker_commit_interval`).
COMMIT_EVERY = 1.0
COMMIT_TIMEOUT = 10.0

Handle = Callable[[list[ConsumerRecord]], Awaitable[None]]


class InputReader:
    def __init__(self, settings: Settings, handle: Handle,
                 applied: dict[tuple[str, int], int]) -> None:
        self.settings = settings
        self.handle = handle
        #: (physical topic, partition) -> offset after the last event applied (shared
        #: with `Ingest.applied`, which moves it as batches are applied)
        self.applied = applied
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: frozenset[int] = frozenset()
        self._ready = asyncio.Event()
        self._busy = asyncio.Lock()
        self._assigned: tuple[int, frozenset[int]] | None = None
        self._wanted: frozenset[int] = frozenset()
        self._stopped = False
        self._uncommitted: dict[TopicPartition, int] = {}
        self._committed_at = 0.0

    def new_consumer(self) -> AIOKafkaConsumer:
        # The embedded broker makes a fetch over several partitions wait its whole
        # fetch_max_wait, so it gets the short one Faust's fetcher gets there (elsewhere
        # aiokafka's default).
        quirk = {"fetch_max_wait_ms": broker_quirks.EMBEDDED_FETCH_WAIT_MS} \
            if self.settings.broker == EMBEDDED else {}
        return AIOKafkaConsumer(
            **self.settings.kafka_client_kwargs(), group_id=self.settings.ingest_group,
            client_id=self.settings.ingest_group, enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=1024 * 1024,
            fetch_max_bytes=8 * 1024 * 1024, **quirk)

    # ------------------------------------------------------------------ Faust's signals
    async def on_partitions_revoked(self) -> None:
        """A rebalance begins: stop reading; the batch in hand is finished first and its
        positions committed, before Faust hands the tables over."""
        self._ready.clear()
        self._assigned = None
        self._wanted = frozenset()
        async with self._busy:
            await self.commit()
            if self.consumer is not None:
                self.consumer.assign([])
            self.partitions = frozenset()

    def on_partitions_assigned(self, generation: int, work_partitions: set[int]) -> None:
        """The account partitions of this generation's assignment (read once Faust has
        recovered their tables)."""
        self._assigned = (generation, frozenset(work_partitions))

    def on_rebalance_complete(self, generation: int) -> None:
        """Faust has recovered the tables: read the assigned partitions (the loop takes
        them up), unless a newer rebalance has begun in the meantime."""
        if self._assigned is None or self._assigned[0] != generation:
            return
        self._wanted = self._assigned[1]
        if self._wanted and not self._stopped:
            self._ready.set()

    async def _take(self, partitions: frozenset[int]) -> None:
        """Read `partitions` of the input topics from their committed positions on."""
        assert self.consumer is not None
        tps = [TopicPartition(self.settings.topic(t), p)
               for t in cat.INGESTED for p in sorted(partitions)]
        self.consumer.assign(tps)
        for key in [k for k in self.applied if k[1] not in partitions]:
            del self.applied[key]
        for tp in tps:
            await self._start_at(tp)
        self.partitions = partitions
        log.info("ingest reading", partitions=sorted(partitions))

    async def _start_at(self, tp: TopicPartition) -> None:
        assert self.consumer is not None
        committed = await self.consumer.committed(tp)
        if committed is None:
            await self.consumer.seek_to_beginning(tp)
            return
        self.consumer.seek(tp, committed)
        key = (tp.topic, tp.partition)
        self.applied[key] = max(self.applied.get(key, 0), committed)

    async def stop(self) -> None:
        """The app stops (before Faust stops its consumer, tables and producer): as when
        its partitions are revoked, and none are taken up again."""
        self._stopped = True
        await self.on_partitions_revoked()

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        self.consumer = self.new_consumer()
        await self.consumer.start()
        try:
            while True:
                await self._ready.wait()
                async with self._busy:
                    if not self._ready.is_set():
                        continue
                    if self._wanted != self.partitions:
                        await self._take(self._wanted)
                    await self._one_batch()
                await asyncio.sleep(0)
        finally:
            await self.commit()
            await self.consumer.stop()

    async def _one_batch(self) -> None:
        assert self.consumer is not None
        batch = await self.consumer.getmany(timeout_ms=WITHIN_MS, max_records=BATCH)
        messages = [m for records in batch.values() for m in records]
        if messages:
            await self.handle(messages)
            for tp, records in batch.items():
                self._uncommitted[tp] = records[-1].offset + 1
        if time.monotonic() - self._committed_at >= COMMIT_EVERY:
            await self.commit()

    async def commit(self) -> None:
        """Commit the positions after the batches applied so far. A commit that fails is
        logged, not raised: those events are read again and change nothing."""
        self._committed_at = time.monotonic()
        if not self._uncommitted or self.consumer is None:
            return
        assigned = self.consumer.assignment()
        offsets = {tp: off for tp, off in self._uncommitted.items() if tp in assigned}
        self._uncommitted = {}
        if not offsets:
            return
        try:
            await asyncio.wait_for(self.consumer.commit(offsets), COMMIT_TIMEOUT)
        except (TimeoutError, KafkaError) as exc:
            log.warning("ingest positions not committed: those events are read again",
                        error=f"{type(exc).__name__}: {exc}"[:300])

    def highwater(self, topic: str, partition: int) -> int | None:
        """The end offset of an input partition the reader reads, as its last fetch saw it."""
        if self.consumer is None or partition not in self.partitions:
            return None
        try:
            return self.consumer.highwater(TopicPartition(topic, partition))
        except Exception:  # noqa: BLE001 - reassigned between the check and the call
            return None
