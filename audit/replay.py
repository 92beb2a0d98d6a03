"""Read `dunning.history` from the beginning, check the chains, rebuild the accounts.

The topic is read one partition at a time, from its first offset to the end it had when
the replay started (`topics.broker_quirks.true_end_offsets`: the embedded broker
under-reports ends). An account's records all live on one partition (the topic is keyed
by account), so each partition's accounts are complete when the partition is done: they
are handed out then and forgotten, which keeps memory to one partition's history.
"""

from __future__ import annotations

import gc
import hashlib
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition

from audit.chain import ChainChecker, Verdict
from audit.live import compare, fetch_accounts
from audit.problems import KINDS, Location, Problem
from audit.rebuild import (
    HISTORY_TYPES,
    AccountHistory,
    RawValueError,
    Rebuilder,
    typed,
)
from config.settings import Settings
from schemas.codec import Codec, CodecError
from topics.broker_quirks import true_end_offsets
from topics.catalogue import HISTORY
from topics.clients import partitions_of

#: No new record for this long while a partition is not read to its end: give up.
STALL_SECONDS = 60.0


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a partition is read.

    A replay builds many small objects that all stay alive until the partition is done;
    the collector would walk them again and again (about 40 % of the replay's time). The
    reading loop makes almost no cyclic garbage, and collection resumes afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class ReplayError(RuntimeError):
    """The topic cannot be read to its end."""


class Progress:
    """`replay: 45,000 / 100,000 records (45 %), 38,211 records/s` on a stream (stderr).

    On a terminal the line is rewritten in place; otherwise one line every `every_s`."""

    def __init__(self, stream: TextIO | None = None, label: str = "replay",
                 every_s: float | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s if every_s is not None else (0.25 if self.tty else 2.0)
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self._next = 0.0
        self.finished_s: float | None = None

    def start(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self._next = self.started + self.every_s
        self._write(f"{self.label}: {total:,} records to read", final=not self.tty)

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every_s
            self._write(self.line(now))

    @property
    def seconds(self) -> float:
        end = self.finished_s if self.finished_s is not None else time.monotonic()
        return max(end - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.done / self.seconds

    def line(self, now: float | None = None) -> str:
        seconds = max((now or time.monotonic()) - self.started, 1e-9)
        pct = f" ({100 * self.done // self.total} %)" if self.total else ""
        return (f"{self.label}: {self.done:,} / {self.total:,} records{pct}, "
                f"{self.done / seconds:,.0f} records/s")

    def finish(self) -> None:
        self.finished_s = time.monotonic()
        self._write(f"{self.label}: {self.done:,} records in {self.seconds:.2f} s, "
                    f"{self.rate:,.0f} records/s", final=True)

    def _write(self, text: str, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class Silent(Progress):
    def _write(self, text: str, final: bool = False) -> None:
        pass


@dataclass
class Summary:
    """What a replay found, over the whole topic."""

    topic: str
    records: int = 0
    accounts: int = 0
    applied: int = 0
    duplicates: int = 0
    broken_accounts: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    compared: int = 0  # accounts compared with the worker
    worker: str | None = None

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [
            f"{self.topic}: {self.records:,} records of {self.accounts:,} accounts in "
            f"{self.seconds:.2f} s ({self.rate:,.0f} records/s)",
            f"  chains: {self.accounts - self.broken_accounts:,} intact, "
            f"{self.broken_accounts:,} broken; {self.duplicates:,} duplicate records "
            "(byte-identical redeliveries, harmless)",
        ]
        if self.worker is not None:
            differing = len({p.account_id for p in self.problems if p.kind == "live"})
            out.append(f"  live state ({self.worker}): {self.compared:,} accounts compared, "
                       f"{differing:,} differ")
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        for kind, n in sorted(counts.items()):
            out.append(f"  {n:,} × {KINDS.get(kind, kind)}")
        out += [f"PROBLEM {p}" for p in self.problems]
        out.append("OK" if self.ok else f"FAILED: {len(self.problems):,} problem(s)")
        return out


class Replay:
    """One pass over the history topic. Iterate `partitions()`; read `summary` after."""

    def __init__(self, settings: Settings, *, topic: str = HISTORY, account: str | None = None,
                 as_of: date | None = None, progress: Progress | None = None,
                 keep_records: bool = False, codec: Codec | None = None) -> None:
        self.settings = settings
        self.topic = settings.topic(topic)
        self.account = account
        self.account_key = account.encode() if account is not None else None
        self.as_of = as_of
        self.progress = progress if progress is not None else Silent()
        self.keep_records = keep_records
        self.codec = codec or Codec.from_settings(settings)
        self.checker = ChainChecker()
        self.summary = Summary(self.topic)
        self._headers: dict[str, int] = {}
        self._account_partition: dict[str, int] = {}

    async def partitions(self) -> AsyncIterator[list[AccountHistory]]:
        """The rebuilt accounts of each partition (sorted by id), partition by partition."""
        kwargs = self.settings.kafka_client_kwargs()
        consumer = AIOKafkaConsumer(
            **kwargs, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=100, max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024)
        await consumer.start()
        started = time.monotonic()
        try:
            tps = await partitions_of(consumer, self.topic)
            begins = await consumer.beginning_offsets(tps)
            ends = await true_end_offsets(kwargs, tps)
            self.progress.start(sum(max(0, ends[tp] - begins[tp]) for tp in tps))
            for tp in tps:
                if ends[tp] <= begins[tp]:
                    continue
                rebuilder = Rebuilder(self.as_of, keep_records=self.keep_records)
                await self._read_partition(consumer, tp, begins[tp], ends[tp], rebuilder)
                yield self._close_partition(rebuilder)
        finally:
            await consumer.stop()
            self.summary.seconds = time.monotonic() - started
            self.progress.finish()

    async def run(self) -> list[AccountHistory]:
        """The whole replay in memory (tests, exports, small topics)."""
        return [acc async for part in self.partitions() for acc in part]

    def feed_partition(
        self, records: Iterable[tuple[int, int, bytes | None, bytes | None]]
    ) -> list[AccountHistory]:
        """One partition's records already in memory, `(partition, offset, key, value)` in
        offset order: exactly what reading that partition does, without a broker."""
        rebuilder = Rebuilder(self.as_of, keep_records=self.keep_records)
        with paused_gc():
            for partition, offset, key, value in records:
                self._handle(partition, offset, key, value, rebuilder)
        return self._close_partition(rebuilder)

    async def _read_partition(self, consumer: AIOKafkaConsumer, tp: TopicPartition,
                              begin: int, end: int, rebuilder: Rebuilder) -> None:
        consumer.assign([tp])
        consumer.seek(tp, begin)
        with paused_gc():
            await self._read_until(consumer, tp, begin, end, rebuilder)

    async def _read_until(self, consumer: AIOKafkaConsumer, tp: TopicPartition,
                          begin: int, end: int, rebuilder: Rebuilder) -> None:
        position = begin
        last_progress = time.monotonic()
        while position < end:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=20_000)
            records = batch.get(tp, [])
            for rec in records:
                if rec.offset >= end:
                    break
                self._handle(tp.partition, rec.offset, rec.key, rec.value, rebuilder)
            if records:
                last_progress = time.monotonic()
                self.progress.advance(len([r for r in records if r.offset < end]))
            position = await consumer.position(tp)
            if time.monotonic() - last_progress > STALL_SECONDS:
                raise ReplayError(f"{self.topic} partition {tp.partition}: no record for "
                                  f"{STALL_SECONDS:.0f} s at offset {position}, end {end}")

    def _header_len(self, record_type: str) -> int:
        n = self._headers.get(record_type)
        if n is None:
            n = self._headers[record_type] = len(self.codec.header(record_type))
        return n

    def _handle(self, partition: int, offset: int, key: bytes | None, value: bytes | None,
                rebuilder: Rebuilder) -> None:
        if self.account_key is not None and key != self.account_key:
            return
        self.summary.records += 1
        where = Location(self.topic, partition, offset)
        key_text = key.decode(errors="replace") if key is not None else None
        if value is None:
            self._unusable(key_text, "empty", "a record without a value (tombstone)", where)
            return
        try:
            rtype, record = self.codec.decode_raw(value)
        except CodecError as exc:
            self._unusable(key_text, "undecodable", str(exc), where)
            return
        if rtype not in HISTORY_TYPES:
            self._unusable(key_text, "not_history", f"a {rtype} record on the history topic",
                           where, rtype)
            return
        try:
            record = typed(rtype, record)
        except RawValueError as exc:
            self._unusable(key_text, "undecodable", f"{rtype}: {exc}", where, rtype)
            return
        account_id: str = record["account_id"]
        if key_text != account_id:
            self.checker.problems.append(Problem(
                "key_mismatch", account_id, f"the record's key is {key_text!r}", record["seq"],
                where, rtype, record["event_id"]))
        body = value[self._header_len(rtype):]
        body_hash = hashlib.sha256(body).hexdigest()
        verdict = self.checker.check(
            account_id, record["seq"], record["prev_hash"], hashlib.sha256(value).digest(),
            body_hash, where, rtype, record["event_id"])
        if verdict is Verdict.ACCEPT:
            if rebuilder.apply(rtype, record, where, body_hash):
                self.summary.applied += 1
        else:
            rebuilder.account(account_id)  # the account exists, even if nothing applies

    def _unusable(self, account_id: str | None, kind: str, detail: str, where: Location,
                  record_type: str | None = None) -> None:
        if account_id is None:
            self.checker.problems.append(Problem(kind, None, detail, None, where, record_type))
            return
        self.checker.broken(account_id, kind, detail, where, record_type)

    def _close_partition(self, rebuilder: Rebuilder) -> list[AccountHistory]:
        ids = sorted(set(rebuilder.accounts) | set(self.checker.accounts))
        self.checker.finish(ids)
        accounts = []
        for account_id in ids:
            acc = rebuilder.account(account_id)
            st = self.checker.state(account_id)
            acc.seq, acc.head, acc.duplicates = st.last_seq, st.head, st.duplicates
            acc.chain_intact = st.intact
            accounts.append(acc)
        chain_problems = self.checker.problems
        self.checker.problems = []
        by_account: dict[str | None, list[Problem]] = {}
        for p in chain_problems:
            by_account.setdefault(p.account_id, []).append(p)
        for acc in accounts:
            acc.problems[:0] = by_account.get(acc.account_id, [])
        self.summary.problems += chain_problems + rebuilder.problems
        self.summary.accounts += len(accounts)
        self.summary.broken_accounts += sum(1 for a in accounts if not a.chain_intact)
        self.summary.duplicates += sum(a.duplicates for a in accounts)
        # Forget the partition's chain state; remember only where each account lives.
        for account_id in ids:
            st = self.checker.accounts.pop(account_id)
            if st.partition is not None:
                previous = self._account_partition.setdefault(account_id, st.partition)
                if previous != st.partition:
                    self.summary.problems.append(Problem(
                        "split", account_id, f"records on partitions {previous} and "
                        f"{st.partition}: records of one account must stay on one partition"))
        return accounts


async def verify(settings: Settings, *, worker: str | None, topic: str = HISTORY,
                 progress: Progress | None = None) -> Summary:
    """Replay the whole topic, check every chain and, with `worker` (a base URL), compare
    every account with the worker's live state."""
    replay = Replay(settings, topic=topic, progress=progress)
    summary = replay.summary
    summary.worker = worker
    async for accounts in replay.partitions():
        if worker is None or not accounts:
            continue
        live = await fetch_accounts(worker, [a.account_id for a in accounts])
        for acc in accounts:
            summary.problems += compare(acc, live.get(acc.account_id))
            summary.compared += 1
    return summary


def jsonable_summary(summary: Summary) -> dict[str, Any]:
    return {
        "topic": summary.topic, "records": summary.records, "accounts": summary.accounts,
        "duplicates": summary.duplicates, "broken_accounts": summary.broken_accounts,
        "seconds": round(summary.seconds, 3), "records_per_second": round(summary.rate),
        "worker": summary.worker, "compared": summary.compared, "ok": summary.ok,
        "problems": [p.as_json() for p in summary.problems],
    }
