"""The embedded broker's end-offset quirk, handled here and nowhere else.

Tansu answers ListOffsets "latest" with the base offset of the partition's last record
batch + 1. When that batch holds several records, the end offset is under-reported, so
"read up to the end" stops early. Two places in this project need a true end offset:

* the proposal-run barrier (every input event published before a `PaymentRunCompleted`
  must be applied before the run starts), and
* Faust's changelog recovery, which reads each changelog partition up to its highwater:
  with the under-reported highwater, a table rebuilt from its changelog loses its newest
  updates.

`true_end_offsets` asks for the reported end, then reads the partition from one before it
to the end and returns the offset after the last record it finds. On Apache Kafka the
reported end is already right, and the read finds the one record before it: the answer is
the same, at the cost of one fetch per partition.

A second quirk: a fetch over several partitions waits its whole `fetch_max_wait` even when
records arrive meanwhile (a single-partition fetch returns at once). Faust asks for 1.5 s,
so every hop of a proposal run (payment run -> slices -> progress -> completion) took about
half a second. `install_faust_fetch_wait` shortens the wait for the embedded broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def true_end_offsets(
    client_kwargs: Mapping[str, Any], partitions: Iterable[TopicPartition], *,
    timeout_ms: int = 5000,
) -> dict[TopicPartition, int]:
    """The offset after the last record of each partition, whatever the broker reports.

    A fetch from one before the reported end returns the partition's last batch whole (and
    anything after it), so one answer per partition is enough."""
    tps = list(partitions)
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(
        **client_kwargs,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        reported: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        result: dict[TopicPartition, int] = {}
        pending: set[TopicPartition] = set()
        for tp in tps:
            end = reported.get(tp, 0)
            result[tp] = end
            if end > 0:
                consumer.seek(tp, end - 1)
                pending.add(tp)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while pending and loop.time() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=50)
            for tp, records in batch.items():
                if records:
                    result[tp] = max(result[tp], records[-1].offset + 1)
                    pending.discard(tp)
        if pending:
            raise TimeoutError(f"no answer reading the end of {sorted(map(str, pending))}")
        return result
    finally:
        await consumer.stop()


def install_faust_recovery_fix(client_kwargs: Mapping[str, Any]) -> None:
    """Make Faust's changelog recovery read to the true end of every changelog partition.

    Faust asks its consumer for highwaters (end offsets) of the changelog partitions it
    recovers; we answer with `true_end_offsets`. Installed once, before the worker starts.
    """
    from faust.transport.drivers import aiokafka as faust_aiokafka

    consumer_cls = faust_aiokafka.Consumer
    if getattr(consumer_cls, "_dunning_true_highwaters", False):
        return
    original = consumer_cls.highwaters

    async def highwaters(self: Any, *partitions: Any) -> Mapping[Any, int]:
        reported = dict(await original(self, *partitions))
        tps = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        true = await true_end_offsets(client_kwargs, tps)
        for tp in partitions:
            end = true.get(TopicPartition(tp.topic, tp.partition))
            if end is not None and end > (reported.get(tp) or 0):
                reported[tp] = end
        return reported

    consumer_cls.highwaters = highwaters  # type: ignore[method-assign]
    consumer_cls._dunning_true_highwaters = True  # type: ignore[attr-defined]


#: The worker consumer's fetch wait on the embedded broker (Faust's own is 1500 ms).
EMBEDDED_FETCH_WAIT_MS = 50


def install_faust_fetch_wait(fetch_max_wait_ms: int = EMBEDDED_FETCH_WAIT_MS) -> None:
    """Give Faust's worker consumer a short fetch wait (see the module's docstring)."""
    from faust.transport.drivers import aiokafka as faust_aiokafka

    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_cls, "_dunning_fetch_wait", None) == fetch_max_wait_ms:
        return
    original = getattr(thread_cls, "_dunning_original_create", thread_cls._create_worker_consumer)

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by the fetcher at start()
        return consumer

    thread_cls._dunning_original_create = original  # type: ignore[attr-defined]
    thread_cls._create_worker_consumer = create  # type: ignore[method-assign]
    thread_cls._dunning_fetch_wait = fetch_max_wait_ms  # type: ignore[attr-defined]
