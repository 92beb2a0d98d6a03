"""Publishing and reading records: used by the command line, the demo and the tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from config.settings import Settings
from schemas.codec import Codec
from topics.broker_quirks import true_end_offsets
from topics.catalogue import BY_NAME

#: The key fields of a topic the catalogue does not know.
DEFAULT_KEY = ("account_id",)


_PARTITIONER = DefaultPartitioner()


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the Kafka default partitioner (murmur2 of the key) gives `key` among
    `partitions`: where upstream producers, `dunning produce` and the worker put it."""
    every = list(range(partitions))
    return int(_PARTITIONER(key, every, every))


def key_for(topic: str, record: dict[str, Any]) -> bytes | None:
    """The key of a record on a catalogue topic: its first key field that is set. A key
    field ``a|b`` is the fields ``a`` and ``b`` joined by ``|`` (dates in ISO form)."""
    spec = BY_NAME.get(topic)
    for name in spec.key if spec is not None else DEFAULT_KEY:
        values = [record.get(n) for n in name.split("|")]
        if all(values):
            return "|".join(str(v) for v in values).encode()
    return None


class WrongTopic(ValueError):
    pass


def check_topic(topic: str, rtype: str) -> None:
    spec = BY_NAME.get(topic)
    if spec is None:
        raise WrongTopic(f"unknown topic {topic!r}")
    if rtype not in spec.records:
        raise WrongTopic(f"{rtype} does not belong on {topic} ({', '.join(spec.records)})")


async def publish(
    settings: Settings, topic: str, records: Iterable[tuple[str, dict[str, Any]]],
    codec: Codec | None = None,
) -> int:
    """Encode and publish `(record_type, record)` pairs to a catalogue topic; returns count."""
    codec = codec or Codec.from_settings(settings)
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), linger_ms=5)  # type: ignore[arg-type]
    await producer.start()
    try:
        futures = []
        n = 0
        for rtype, record in records:
            check_topic(topic, rtype)
            futures.append(await producer.send(
                settings.topic(topic), codec.encode(rtype, record), key=key_for(topic, record)))
            n += 1
        await asyncio.gather(*futures)
        return n
    finally:
        await producer.stop()


async def publish_raw(settings: Settings, topic: str, value: bytes, key: bytes | None) -> None:
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs())  # type: ignore[arg-type]
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(topic), value, key=key)
    finally:
        await producer.stop()


class UnknownTopic(LookupError):
    pass


async def partitions_of(consumer: AIOKafkaConsumer, name: str) -> list[TopicPartition]:
    """The partitions of a topic, from fresh metadata (a new client knows none yet)."""
    if name not in await consumer.topics():
        raise UnknownTopic(f"no topic {name!r} on the broker; run `dunning topics apply`")
    parts = consumer.partitions_for_topic(name) or set()
    return [TopicPartition(name, p) for p in sorted(parts)]


@dataclass
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    record_type: str | None
    record: dict[str, Any] | None
    error: str | None = None


async def read(
    settings: Settings, topic: str, *, from_beginning: bool = True, idle_timeout: float = 1.0,
    codec: Codec | None = None, until_end: bool = True,
) -> AsyncIterator[Received]:
    """Records of a topic; stops after `idle_timeout` seconds without a new one once the end
    seen at the start was reached (or at once when `until_end` is false)."""
    codec = codec or Codec.from_settings(settings)
    name = settings.topic(topic)
    kwargs = settings.kafka_client_kwargs()
    consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False,  # type: ignore[arg-type]
                                auto_offset_reset="earliest" if from_beginning else "latest",
                                fetch_max_wait_ms=100)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, name)
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
            ends = await true_end_offsets(kwargs, tps) if until_end else {}
        else:
            await consumer.seek_to_end(*tps)
            ends = {}
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            for tp, recs in batch.items():
                for rec in recs:
                    last = loop.time()
                    rtype = record = error = None
                    if rec.value is not None:
                        try:
                            rtype, record = codec.decode(rec.value)
                        except Exception as exc:  # shown to the reader, not fatal
                            error = str(exc)
                    yield Received(topic, tp.partition, rec.offset, rec.key, rec.value,
                                   rtype, record, error)
            reached = True
            for tp in tps:
                if ends.get(tp, 0) > await consumer.position(tp):
                    reached = False
            if reached and loop.time() - last >= idle_timeout:
                return
    finally:
        await consumer.stop()


async def read_all(settings: Settings, topic: str, idle_timeout: float = 0.5) -> list[Received]:
    return [r async for r in read(settings, topic, idle_timeout=idle_timeout)]


async def latest_by_key(
    settings: Settings, name: str, partitions: Iterable[int] | None = None,
) -> AsyncIterator[tuple[int, dict[bytes, bytes | None]]]:
    """A compacted topic (physical `name`: a table's changelog, say) as it stands: per
    partition, one at a time, each key's latest value (None: deleted), read to the
    partition's true end as the read begins. Only one partition's keys are held at once.
    Read-only: no group, nothing committed."""
    kwargs = settings.kafka_client_kwargs()
    consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False,  # type: ignore[arg-type]
                                auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, name)
        if partitions is not None:
            wanted = set(partitions)
            tps = [tp for tp in tps if tp.partition in wanted]
        ends = await true_end_offsets(kwargs, tps)
        for tp in tps:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            latest: dict[bytes, bytes | None] = {}
            idle = 0  # a compacted tail may leave the position short of the end
            while await consumer.position(tp) < ends[tp] and idle < 10:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
                records = batch.get(tp, ())
                idle = 0 if records else idle + 1
                for rec in records:
                    if rec.key is not None:
                        latest[rec.key] = rec.value
            yield tp.partition, latest
    finally:
        await consumer.stop()
