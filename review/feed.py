"""The review store kept up to date: every partition of the topics it shows, read with a
consumer of its own (no group, nothing committed), from the position the store last
saved; each batch and its positions in one SQLite transaction."""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from config.settings import Settings
from review.store import TOPICS, ReviewStore
from schemas.codec import Codec
from topics.broker_quirks import true_end_offsets
from topics.clients import partitions_of

log = structlog.get_logger("dunning.review")


class Feed:
    def __init__(self, settings: Settings, store: ReviewStore) -> None:
        self.settings = settings
        self.store = store
        self.codec = Codec.from_settings(settings)
        #: set once everything published before the start has been read
        self.ready = asyncio.Event()
        self.records = 0
        self.unreadable = 0

    async def run(self, stop: asyncio.Event) -> None:
        kwargs = self.settings.kafka_client_kwargs()
        consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False,  # type: ignore[arg-type]
                                    auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                    max_partition_fetch_bytes=4 << 20)
        await consumer.start()
        try:
            tps = [tp for t in TOPICS
                   for tp in await partitions_of(consumer, self.settings.topic(t))]
            consumer.assign(tps)
            saved = self.store.positions()
            for tp in tps:
                if (tp.topic, tp.partition) in saved:
                    consumer.seek(tp, saved[(tp.topic, tp.partition)])
                else:
                    await consumer.seek_to_beginning(tp)
            ends = await true_end_offsets(kwargs, tps)
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                if batch:
                    self._apply(batch)
                if not self.ready.is_set() and await self._caught_up(consumer, ends):
                    self.ready.set()
                    log.info("review store caught up", records=self.records)
        finally:
            await consumer.stop()

    async def _caught_up(self, consumer: AIOKafkaConsumer,
                         ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    def _apply(self, batch: dict[TopicPartition, list]) -> None:
        with self.store.transaction():
            for tp, records in batch.items():
                for rec in records:
                    if rec.value is None:
                        continue
                    try:
                        rtype, record = self.codec.decode(rec.value)
                        self.store.apply(rtype, record)
                    except Exception as exc:  # counted and logged; dead letters are the
                        self.unreadable += 1  # worker's business, not the page's
                        log.warning("record not shown", topic=tp.topic, offset=rec.offset,
                                    error=f"{type(exc).__name__}: {exc}"[:200])
                    else:
                        self.records += 1
                if records:
                    self.store.set_position(tp.topic, tp.partition, records[-1].offset + 1)
