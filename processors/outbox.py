"""What leaves the worker: records sent in batches, a unit's commit (its records and its
rows' changelog sent, then the rows written), and the history chain.

Ordering that keeps commands neither lost nor re-made: the records a unit produces are
sent and their delivery awaited *before* the table rows change. A worker killed between
the two sends the same records again (same ids) when the event is redelivered; a worker
killed after both finds the work done in its state.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from aiokafka import errors as kafka_errors

from config.settings import Settings
from processors import faust_private, limits, messages
from processors.state import StoredAccount
from processors.writes import Out, Writes
from schemas.codec import Codec
from topics import catalogue as cat
from topics.clients import partition_of

#: What a broker says about a record it will not take (whatever the batch or the moment).
REFUSALS = (
    kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError,
    kafka_errors.RecordTooLargeError, kafka_errors.CorruptRecordException,
    kafka_errors.InvalidMessageError, kafka_errors.InvalidTimestampError,
    kafka_errors.PolicyViolationError, kafka_errors.UnsupportedForMessageFormatError,
)

Offsets = dict[tuple[str, int], int]


class Refused(Exception):
    """Records that were not sent, each with why (`refused`); the others were, and
    `offsets` has the last offset of each topic partition they went to."""

    def __init__(self, refused: list[tuple[Out, str]], offsets: Offsets) -> None:
        super().__init__(f"{len(refused)} record(s) not sent: {refused[0][1]}")
        self.refused = refused
        self.offsets = offsets


def _note_offset(last: Offsets, meta: Any, n: int) -> None:
    tp = (meta.topic, meta.partition)
    last[tp] = max(last.get(tp, -1), meta.offset + n - 1)


def _size_refusal(out: Out) -> str | None:
    size = (len(out[1]) if out[1] else 0) + (len(out[2]) if out[2] else 0)
    if size > limits.MAX_SEND_BYTES:
        return (f"{size} bytes, more than the {limits.MAX_SEND_BYTES} the worker sends in "
                "one record")
    return None


class Outbox:
    def __init__(self, app: Any, settings: Settings, codec: Codec,
                 tables: Iterable[Any] = ()) -> None:
        self.app = app
        self.settings = settings
        self.codec = codec
        #: changelog topic -> table, for a refused commit's changelog repair
        self.tables = {t.changelog_topic.get_topic_name(): t for t in tables}
        self._partition_counts: dict[str, int] = {}

    # ------------------------------------------------------------------ records
    def record(self, topic: str, rtype: str, record: dict[str, Any], key: str | None,
               partition: int | None = None, raw: bool = False) -> Out:
        """An Avro record of the contract on `topic` (logical name); `raw`: `record` holds
        the values `Codec.encode_raw` takes (the same bytes, faster)."""
        encode = self.codec.encode_raw if raw else self.codec.encode
        return (self.settings.topic(topic), key.encode() if key is not None else None,
                encode(rtype, record), partition)

    def message(self, topic: str, message: messages.Message, key: str | None,
                partition: int | None = None) -> Out:
        """An internal message on `topic` (logical name)."""
        return (self.settings.topic(topic), key.encode() if key is not None else None,
                messages.encode(message), partition)

    def history(self, stored: StoredAccount, rtype: str, payload: dict[str, Any],
                raw: bool = False) -> Out:
        """Chain a history record onto the account's log: per-account sequence and the hash
        of the previous record. A record written before keeps its place, byte for byte.
        `raw`: `payload` holds the values `Codec.encode_raw` takes (the same bytes)."""
        account = stored.account
        event_id = payload["event_id"]
        ref = stored.history_refs.get(event_id)
        seq, prev = ref if ref else (account.history_seq + 1, account.history_head)
        record = {**payload, "account_id": account.account_id, "seq": seq, "prev_hash": prev}
        value = (self.codec.encode_raw if raw else self.codec.encode)(rtype, record)
        if not ref:
            stored.history_refs[event_id] = [seq, prev]
            stored.account = replace(
                account, history_seq=seq,
                history_head=hashlib.sha256(value[len(self.codec.header(rtype)):]).hexdigest(),
            )
        return (self.settings.topic(cat.HISTORY), account.account_id.encode(), value, None)

    # ------------------------------------------------------------------ sending
    async def partition_of(self, producer: Any, topic: str, key: bytes | None) -> int:
        """Where the default Kafka partitioner (murmur2) puts `key`, as upstream producers
        do, so an account's records share one partition number; 0 without a key."""
        if not key:
            return 0
        count = self._partition_counts.get(topic)
        if count is None:
            count = self._partition_counts[topic] = len(await producer.partitions_for(topic))
        return partition_of(key, count)

    async def send(self, outs: Iterable[Out]) -> Offsets:
        """Send and wait until the broker has every record. Records are grouped into one
        batch per topic partition (several times faster than one send per record).

        A record is never lost in silence, nor does it stop the worker: one larger than
        `limits.MAX_SEND_BYTES`, or one the broker refuses (too large, corrupt, against
        its policy; a refused batch is sent again record by record to find which), is not
        sent, the others are, and `Refused` says which were not and why. Any other error
        (the broker gone, a timeout) is raised as it is."""
        producer = faust_private.producer_of(self.app)
        groups: dict[tuple[str, int], list[Out]] = {}
        refused: list[tuple[Out, str]] = []
        for out in outs:
            why = _size_refusal(out)
            if why is not None:
                refused.append((out, why))
                continue
            partition = out[3]
            if partition is None:
                partition = await self.partition_of(producer, out[0], out[1])
            groups.setdefault((out[0], partition), []).append(out)
        last: Offsets = {}
        again = await self._send_batches(producer, groups, last)
        if again:  # one record at a time: which of the refused batch's records is it?
            refused += await self._send_one_by_one(producer, again, last)
        if refused:
            raise Refused(refused, last)
        return last

    async def _send_batches(self, producer: Any, groups: dict[tuple[str, int], list[Out]],
                            last: Offsets) -> list[tuple[str, int, Out]]:
        """Each group in as few batches as they take; the records of refused batches."""
        sent: list[tuple[str, int, list[Out]]] = []
        futures = []
        for (topic, partition), records in groups.items():
            batch = producer.create_batch()
            taken: list[Out] = []
            for out in records:
                if batch.append(key=out[1], value=out[2], timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    sent.append((topic, partition, taken))
                    batch = producer.create_batch()
                    batch.append(key=out[1], value=out[2], timestamp=None)
                    taken = []
                taken.append(out)
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            sent.append((topic, partition, taken))
        again: list[tuple[str, int, Out]] = []
        if futures:
            results = await asyncio.gather(*futures, return_exceptions=True)
            for result, (topic, partition, taken) in zip(results, sent, strict=True):
                if isinstance(result, REFUSALS):
                    again.extend((topic, partition, out) for out in taken)
                elif isinstance(result, BaseException):
                    raise result
                else:
                    _note_offset(last, result, len(taken))
        return again

    async def _send_one_by_one(self, producer: Any, again: list[tuple[str, int, Out]],
                               last: Offsets) -> list[tuple[Out, str]]:
        futures = []
        for topic, partition, out in again:
            batch = producer.create_batch()
            batch.append(key=out[1], value=out[2], timestamp=None)
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        results = await asyncio.gather(*futures, return_exceptions=True)
        refused: list[tuple[Out, str]] = []
        for result, (_, _, out) in zip(results, again, strict=True):
            if isinstance(result, REFUSALS):
                refused.append((out, f"refused by the broker: {type(result).__name__}: "
                                     f"{result}"))
            elif isinstance(result, BaseException):
                raise result
            else:
                _note_offset(last, result, 1)
        return refused

    # ------------------------------------------------------------------ commit
    async def commit(self, outs: list[Out], writes: Writes) -> None:
        """Send a unit's records with its rows' changelog, then write the rows locally.

        All or nothing for the rows: when the broker refuses some of the records
        (`Refused`), no row is written, and the changelog records that did go out are
        followed by the rows' current values, so the changelog says what the local store
        says. The caller deals with what the refused records came from."""
        changelog: list[Out] = []
        if writes:
            # Faust's own buffered changelog records go to the broker first, so each
            # table's changelog keeps the order in which its rows changed.
            await self.app.producer.buffer.flush()
            changelog = writes.changelog()
        try:
            offsets = await self.send([*outs, *changelog])
        except Refused as exc:
            if changelog:
                await self._restore_changelog(changelog, exc, writes.partition)
            raise
        writes.apply(offsets)

    async def _restore_changelog(self, changelog: list[Out], exc: Refused,
                                 partition: int) -> None:
        """After a refused commit: the rows' current values after those of their changelog
        records that went out."""
        refused = {id(out) for out, _ in exc.refused}
        await self.send([
            (out[0], out[1], faust_private.db_of(self.tables[out[0]], partition).get(out[1]),
             out[3])
            for out in changelog if id(out) not in refused])
