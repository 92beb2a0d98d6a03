"""What the agents do with one event: decode, call one domain function, store, send.

Ordering that keeps commands neither lost nor re-made: the records an event produces are
sent and their delivery awaited *before* the table rows change. A worker killed between
the two sends the same records again (same ids) when the event is redelivered; a worker
killed after both finds the work done in its state.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import faust
import orjson
import structlog
from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.partitioner import murmur2
from faust.types import TP

from config.settings import Settings
from domain.activity_run import Notice, execute, execute_approved, not_executed
from domain.errors import Rejected
from domain.ids import proposal_run_id
from domain.ingest import evolve
from domain.proposal_run import propose
from domain.reversal import reversal_refused, reverse
from domain.review import (
    drop_run,
    executed_run,
    notices_of_run,
    record_proposals,
    reject,
    run_executed,
)
from domain.schedule import next_evaluation_day
from domain.state import Account, new_account
from processors import convert, limits
from processors.deadletter import Unusable, dead_letter_record, log_unusable
from processors.metrics import Metrics
from processors.procedures import ProcedureCatalog
from processors.state import (
    NO_DAY,
    PENDING_COUNT,
    StoredAccount,
    account_key,
    due_key,
    due_key_account,
    notice_key,
    proposal_key,
    run_key,
    run_prefix,
)
from processors.writes import Writes, db_of
from schemas.codec import Codec, CodecError
from topics import broker_quirks
from topics import catalogue as cat

log = structlog.get_logger("dunning.worker")

Out = tuple[str, bytes | None, bytes | None, int | None]  # topic, key, value, partition

#: What a broker says about a record it will not take (whatever the batch or the moment).
REFUSALS = (
    kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError,
    kafka_errors.RecordTooLargeError, kafka_errors.CorruptRecordException,
    kafka_errors.InvalidMessageError, kafka_errors.InvalidTimestampError,
    kafka_errors.PolicyViolationError, kafka_errors.UnsupportedForMessageFormatError,
)


class Refused(Exception):
    """Records that were not sent, each with why (`refused`); the others were, and
    `offsets` has the last offset of each topic partition they went to."""

    def __init__(self, refused: list[tuple[Out, str]],
                 offsets: dict[tuple[str, int], int]) -> None:
        super().__init__(f"{len(refused)} record(s) not sent: {refused[0][1]}")
        self.refused = refused
        self.offsets = offsets


def _note_offset(last: dict[tuple[str, int], int], meta: Any, n: int) -> None:
    tp = (meta.topic, meta.partition)
    last[tp] = max(last.get(tp, -1), meta.offset + n - 1)


class UnitWrites(Writes):
    """The row changes of an ingest unit, made of each changed account's own (`merge`),
    so that an account whose change cannot be stored or sent can be taken out (`drop`)."""

    def merge(self, part: Writes) -> None:
        self._rows.update(part._rows)

    def drop(self, part: Writes) -> None:
        for key in part._rows:
            self._rows.pop(key, None)

    def changed_rows(self) -> list[tuple[str, bytes]]:
        """(changelog topic, key) of every row changed."""
        return [(table.changelog_topic.get_topic_name(), key)
                for (_, key), (table, _) in self._rows.items()]


class StagedWrites(UnitWrites):
    """Row changes staged on top of others (`base`), which they read through to."""

    def __init__(self, base: Writes) -> None:
        super().__init__(base.partition)
        self.base = base

    def get(self, table: Any, key: bytes) -> bytes | None:
        pending = self._rows.get((id(table), key))
        if pending is not None:
            return pending[1]
        return self.base.get(table, key)


REPLAY_HEADER = "dunning-replay-of"


def replayed_dead_letter(message: Any) -> str | None:
    """The id of the dead letter this record is a replay of (`dunning dead-letters replay`
    sets the header), or None."""
    headers = message.headers or ()
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == REPLAY_HEADER and value:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def check_key(key: bytes | None, account_id: str) -> None:
    """The key of an account-scoped record is the UTF-8 of its account id, byte for byte
    (CONTRACT.md): the partition the producer chose is then the account's. No key, a key
    that is not UTF-8 or that names another account: `key_mismatch`."""
    if key == account_id.encode():
        return
    if key is None:
        why = "a record without a key"
    else:
        try:
            why = f"key {key.decode()[:80]!r}"
        except UnicodeDecodeError:
            why = f"key {key[:80]!r} (not UTF-8)"
    raise Unusable("key_mismatch", f"{why} is not the account_id {account_id[:80]!r}")


def pending_of_run(account: Account, run_id: str) -> list[str]:
    return [p.proposal_id for p in account.pending if p.run_id == run_id]


class Handlers:
    def __init__(
        self, *, app: faust.App, settings: Settings, codec: Codec,
        procedures: ProcedureCatalog, accounts: Any, due_index: Any, work_index: Any,
        runs: Any, topic: Callable[..., Any],
    ) -> None:
        self.app = app
        self.settings = settings
        self.codec = codec
        self.procedures = procedures
        self.accounts = accounts
        self.due_index = due_index
        self.work_index = work_index
        self.runs = runs
        #: (physical topic, partition) -> offset after the last input event applied.
        self.applied: dict[tuple[str, int], int] = {}
        self.metrics = Metrics()
        self._logical = {settings.topic(t.name): t.name for t in cat.CATALOGUE}
        self._partition_counts: dict[str, int] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    # ------------------------------------------------------------------ plumbing
    def logical(self, physical: str) -> str:
        return self._logical.get(physical, physical)

    def out(self, topic: str, rtype: str, record: dict[str, Any], key: str | None,
            partition: int | None = None) -> Out:
        return (
            self.settings.topic(topic),
            key.encode() if key is not None else None,
            self.codec.encode(rtype, record),
            partition,
        )

    def internal(self, topic: str, payload: dict[str, Any], key: str | None,
                 partition: int | None = None) -> Out:
        return (
            self.settings.topic(topic),
            key.encode() if key is not None else None,
            orjson.dumps(payload),
            partition,
        )

    async def send(self, outs: Iterable[Out]) -> dict[tuple[str, int], int]:
        """Send and wait until the broker has every record. Records are grouped into one
        batch per topic partition (several times faster than one send per record); keyed
        records go where the default Kafka partitioner (murmur2) puts them, as upstream
        producers' records do, so an account's records share one partition number.

        A record is never lost in silence, nor does it stop the worker: one larger than
        `limits.MAX_SEND_BYTES`, or one the broker refuses (too large, corrupt, against
        its policy; a refused batch is sent again record by record to find which), is not
        sent, the others are, and `Refused` says which were not and why. Any other error
        (the broker gone, a timeout) is raised as it is."""
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]  # noqa: SLF001
        groups: dict[tuple[str, int], list[Out]] = {}
        refused: list[tuple[Out, str]] = []
        for out in outs:
            topic, key, value, partition = out
            size = (len(key) if key else 0) + (len(value) if value else 0)
            if size > limits.MAX_SEND_BYTES:
                refused.append((out, f"{size} bytes, more than the {limits.MAX_SEND_BYTES} "
                                     "the worker sends in one record"))
                continue
            if partition is None:
                count = self._partition_counts.get(topic)
                if count is None:
                    count = self._partition_counts[topic] = len(
                        await producer.partitions_for(topic))
                partition = (murmur2(key) & 0x7FFFFFFF) % count if key else 0
            groups.setdefault((topic, partition), []).append(out)
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
        last: dict[tuple[str, int], int] = {}
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
        if again:  # one record at a time: which of the refused batch's records is it?
            futures = []
            for topic, partition, out in again:
                batch = producer.create_batch()
                batch.append(key=out[1], value=out[2], timestamp=None)
                futures.append(await producer.send_batch(batch, topic, partition=partition))
            results = await asyncio.gather(*futures, return_exceptions=True)
            for result, (_, _, out) in zip(results, again, strict=True):
                if isinstance(result, REFUSALS):
                    refused.append((out, f"refused by the broker: {type(result).__name__}: "
                                         f"{result}"))
                elif isinstance(result, BaseException):
                    raise result
                else:
                    _note_offset(last, result, 1)
        if refused:
            raise Refused(refused, last)
        return last

    def lock(self, partition: int) -> asyncio.Lock:
        """One account partition's rows are changed by one unit of work at a time (ingest
        and the partition-work agent run side by side)."""
        lock = self._locks.get(partition)
        if lock is None:
            lock = self._locks[partition] = asyncio.Lock()
        return lock

    async def commit(self, outs: list[Out], writes: Writes) -> None:
        """Send a unit's records with its rows' changelog, then write the rows locally.

        All or nothing for the rows: when the broker refuses some of the records
        (`Refused`), no row is written, and the changelog records that did go out are
        followed by the rows' current values, so the changelog says what the local store
        says. The caller dead-letters what the refused records came from."""
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
        tables = {t.changelog_topic.get_topic_name(): t
                  for t in (self.accounts, self.due_index, self.work_index)}
        await self.send([(out[0], out[1], db_of(tables[out[0]], partition).get(out[1]), out[3])
                         for out in changelog if id(out) not in refused])

    async def send_dead_letters(self, outs: list[Out]) -> None:
        """Dead letters, together; one the broker refuses goes again cut
        (`cut_dead_letter`)."""
        try:
            await self.send(outs)
        except Refused as exc:
            await self.send([self.cut_dead_letter(out, why) for out, why in exc.refused])

    def dead_letter_out(self, message: Any, code: str, detail: str) -> Out:
        self.metrics.dead_letters.labels(code).inc()
        log_unusable(code, detail, topic=message.topic, partition=message.partition,
                     offset=message.offset)
        record = dead_letter_record(
            topic=self.logical(message.topic), partition=message.partition,
            offset=message.offset, key=message.key, value=message.value, code=code,
            detail=detail,
        )
        replay_of = replayed_dead_letter(message)
        if replay_of:  # a replayed dead letter that failed again keeps its id
            record["event_id"] = replay_of
        return self.out(cat.DEAD_LETTERS, "DeadLetter", record, self.logical(message.topic))

    def cut_dead_letter(self, out: Out, why: str) -> Out:
        """A dead letter too large to be sent (`why`), with the first
        `limits.DEAD_LETTER_KEEP` bytes of the input's key and value; its detail gives the
        size and SHA-256 of the whole value."""
        topic, key, value, partition = out
        assert value is not None
        _, record = self.codec.decode(value)
        keep = limits.DEAD_LETTER_KEEP
        original = record["value"]
        record["value"] = original[:keep]
        if record["key"] is not None:
            record["key"] = record["key"][:keep]
        record["detail"] = (
            f"value cut to its first {keep} of {len(original)} bytes (sha256 "
            f"{hashlib.sha256(original).hexdigest()}): the whole dead letter was not sent "
            f"({why}); {record['detail']}")[:2000]
        return (topic, key, self.codec.encode("DeadLetter", record), partition)

    def reason(self, message: Any, exc: Exception) -> tuple[str, str]:
        """The one error policy's reason for an input that failed with `exc`."""
        if isinstance(exc, Unusable | Rejected):
            return exc.code, exc.detail
        if isinstance(exc, Refused):
            return "refused_by_broker", f"a record it made was not sent: {exc}"
        # a bug, not bad input: keep the evidence, go on
        log.exception("event failed", topic=message.topic, partition=message.partition,
                      offset=message.offset)
        return "processing_error", f"{type(exc).__name__}: {exc}"

    async def guarded(self, event: faust.EventT, work: Callable[[Any], Any],
                      dead: list[Out] | None = None) -> None:
        """The one error policy: nothing escapes an agent loop. Every record is counted
        once, by topic, as applied or dead-lettered. With `dead`, the dead letter is added
        to it for the caller to send with its batch; else it is sent at once."""
        message = event.message
        topic = self.logical(message.topic)
        try:
            await work(message)
        except Exception as exc:
            out = self.dead_letter_out(message, *self.reason(message, exc))
            if dead is None:
                await self.send_dead_letters([out])
            else:
                dead.append(out)
            self.metrics.records.labels(topic, "dead_lettered").inc()
            return
        self.metrics.records.labels(topic, "applied").inc()

    def decode(self, message: Any, allowed: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        """The door of every input and control record: its size, its framing and body, its
        type, then every limit of `processors.limits` (on the raw values, before anything
        is built from them). The record comes out as `Codec.decode` gives it."""
        if message.value is None:
            raise Unusable("empty", "a record without a value (a tombstone)")
        limits.check_size(message.value)
        try:
            rtype, raw = self.codec.decode_raw(message.value)
        except CodecError as exc:
            raise Unusable("undecodable", str(exc)) from exc
        if rtype not in allowed:
            raise Unusable(
                "unknown_record_type",
                f"{rtype} is not a record of {self.logical(message.topic)}",
            )
        return rtype, limits.check(rtype, raw)

    # ------------------------------------------------------------------ state
    def load(self, account_id: str, w: Writes | None = None) -> StoredAccount:
        key = account_key(account_id)
        raw = w.get(self.accounts, key) if w is not None else self.accounts.get(key)
        if raw is None:
            return StoredAccount(new_account(account_id))
        return StoredAccount.loads(raw)

    def store(self, stored: StoredAccount, next_day: int | None,
              w: Writes | None = None) -> None:
        """Write the row and keep the due index in step with it (through `w` when given,
        else through the Faust table API)."""
        account_id = stored.account.account_id
        day = NO_DAY if next_day is None else next_day
        if day != NO_DAY:
            key = due_key(day, account_id)
            # The run may have moved this account's entry without rewriting the row, so the
            # row's `index_day` can lag: make sure the entry for `day` is there.
            present = w.get(self.due_index, key) if w is not None else self.due_index.get(key)
            if present is None:
                self._set(self.due_index, key, b"", w)
        if stored.index_day not in (NO_DAY, day):
            self._del(self.due_index, due_key(stored.index_day, account_id), w)
        stored.index_day = day
        pending = len(stored.account.pending)
        if pending != stored.pending_at_load:
            count = self.pending_count(w) + pending - stored.pending_at_load
            self._set(self.work_index, PENDING_COUNT, b"%d" % count, w)
            stored.pending_at_load = pending
        self._set(self.accounts, account_key(account_id), stored.dumps(), w)

    def pending_count(self, w: Writes | None) -> int:
        """Undecided proposals on the accounts of `w`'s partition, as the unit leaves it."""
        raw = (w.get(self.work_index, PENDING_COUNT) if w is not None
               else self.work_index.get(PENDING_COUNT))
        return int(raw) if raw else 0

    @staticmethod
    def _set(table: Any, key: bytes, value: bytes, w: Writes | None) -> None:
        if w is not None:
            w.set(table, key, value)
        else:
            table[key] = value

    @staticmethod
    def _del(table: Any, key: bytes, w: Writes | None) -> None:
        if w is not None:
            w.delete(table, key)
        else:
            del table[key]

    def reindex(self, account_id: str, old: int, new: int | None, w: Writes) -> None:
        """Move one due-index entry of an account (the run's side of the index: the row's
        own `index_day` may then lag behind, and `store` tidies up after it)."""
        if old == (NO_DAY if new is None else new):
            return
        if old != NO_DAY:
            w.delete(self.due_index, due_key(old, account_id))
        if new is not None:
            w.set(self.due_index, due_key(new, account_id), b"")

    def next_day(self, account: Account, after: int) -> int | None:
        """Lower bound of the next day a rule can fire; 0 (always look) while the
        procedures are not known yet."""
        procs = self.procedures.get()
        if not self.procedures.ready.is_set():
            return 0
        procedure = account.master.dunning_procedure if account.master else None
        if procedure is not None and procedure not in procs:
            return after  # reported by every run until the procedure exists
        return next_evaluation_day(account, procs, after)

    # ------------------------------------------------------------------ ingest
    async def on_inputs(self, events: list[faust.EventT]) -> None:
        """A batch of input events (`stream.take_events`): per account partition, every
        event is folded into its account in memory, then the changed rows go out in one
        unit. Faust acknowledges the events once this returns."""
        by_partition: dict[int, list[Any]] = {}
        for event in events:
            by_partition.setdefault(event.message.partition, []).append(event.message)
        for partition, messages in by_partition.items():
            async with self.lock(partition):
                await self._apply_inputs(partition, messages)
            for message in messages:
                self.applied[(message.topic, message.partition)] = message.offset + 1

    async def _apply_inputs(self, partition: int, messages: list[Any]) -> None:
        """One unit of work: a batch of one account partition's input events. Each event is
        folded into its account in memory, each changed account is stored on its own, and
        the rows go out with the batch's dead letters in one commit.

        The error policy covers the whole unit, and each failure costs only what it is
        about: an event that cannot be used is dead-lettered; an account whose new row
        cannot be stored (packing overflows, the row outgrows `limits.MAX_ROW_BYTES`,
        anything else that fails in storing it) has its events of the batch folded again
        one at a time, and those that break it are dead-lettered; a row the broker
        refuses dead-letters its account's events of the batch. The rest is applied."""
        w = UnitWrites(partition)
        outs: list[Out] = []
        rows: dict[str, StoredAccount] = {}
        folded: dict[str, list[Any]] = {}  # account -> its events applied in this unit
        changed: dict[str, None] = {}
        dead: set[int] = set()  # ids of the messages dead-lettered
        for message in messages:
            try:
                account_id, change = self._apply_input(message, rows, w)
            except Exception as exc:
                outs.append(self.dead_letter_out(message, *self.reason(message, exc)))
                dead.add(id(message))
                continue
            folded.setdefault(account_id, []).append(message)
            if change:
                changed[account_id] = None
        parts: dict[str, UnitWrites] = {}
        for account_id in changed:
            part: UnitWrites = StagedWrites(w)
            try:
                self._store_input(rows[account_id], part)
            except Exception as exc:
                part = self._salvage(account_id, folded[account_id], w, exc, outs, dead)
            w.merge(part)
            parts[account_id] = part
        try:
            await self.commit(outs, w)
        except Refused as exc:
            await self._commit_refused(exc, outs, w, parts, folded, dead)
        for message in messages:
            topic = self.logical(message.topic)
            if id(message) in dead:
                self.metrics.records.labels(topic, "dead_lettered").inc()
            else:
                self.metrics.records.labels(topic, "applied").inc()
                self.metrics.applied.labels(topic).inc()

    def _apply_input(self, message: Any, rows: dict[str, StoredAccount],
                     w: Writes) -> tuple[str, bool]:
        """Fold one input event into its account (in `rows`): the account id, and whether
        the account changed (an event applied before, with the same body, changes nothing)."""
        topic = self.logical(message.topic)
        rtype, record = self.decode(message, cat.BY_NAME[topic].records)
        account_id = record["account_id"]
        check_key(message.key, account_id)
        stored = rows.get(account_id) or self.load(account_id, w)
        domain_event = convert.input_event(rtype, record)
        digest = hashlib.blake2b(repr(domain_event).encode(), digest_size=8).digest()
        updated = evolve(stored.account, domain_event, digest)
        rows[account_id] = stored
        if updated is stored.account:
            return account_id, False
        stored.account = updated
        return account_id, True

    def _store_input(self, stored: StoredAccount, w: Writes) -> None:
        """Store an account changed by input events, as long as its row stays within
        `limits.MAX_ROW_BYTES`."""
        self.store(stored, self.next_day(stored.account, 0), w)
        row = w.get(self.accounts, account_key(stored.account.account_id))
        if row is not None and len(row) > limits.MAX_ROW_BYTES:
            raise Unusable("account_too_large",
                           f"the account's row would be {len(row)} bytes, at most "
                           f"{limits.MAX_ROW_BYTES}")

    def _salvage(self, account_id: str, messages: list[Any], w: Writes, exc: Exception,
                 outs: list[Out], dead: set[int]) -> UnitWrites:
        """An account whose new row could not be stored (`exc`): its events of the unit are
        folded again from the stored row, one at a time, each stored on trial; one whose
        change cannot be stored is dead-lettered and the account stays as it was before
        it. Returns the rows of the events that stand."""
        log.warning("account change not storable: its events are tried one by one",
                    account_id=account_id[:200], events=len(messages),
                    error=f"{type(exc).__name__}: {exc}"[:300])
        accepted = StagedWrites(w)
        stored = self.load(account_id, w)  # as the unit found it (w has none of its rows)
        rows = {account_id: stored}
        for message in messages:
            before = copy.copy(stored)
            trial = StagedWrites(accepted)
            try:
                _, change = self._apply_input(message, rows, trial)
                if change:
                    self._store_input(stored, trial)
            except Exception as failure:
                if isinstance(failure, Unusable | Rejected):
                    code, detail = failure.code, failure.detail
                else:
                    code, detail = "unstorable", f"{type(failure).__name__}: {failure}"
                outs.append(self.dead_letter_out(message, code, detail))
                dead.add(id(message))
                stored = rows[account_id] = before
                continue
            accepted.merge(trial)
        return accepted

    async def _commit_refused(self, exc: Refused, outs: list[Out], w: UnitWrites,
                              parts: dict[str, UnitWrites], folded: dict[str, list[Any]],
                              dead: set[int]) -> None:
        """The broker refused some of a unit's records (`exc`; nothing was written, and the
        dead letters that went out stay out): a refused dead letter goes again cut down
        (`cut_dead_letter`), a refused row dead-letters its account's events of the unit
        (`refused_by_broker`), and the other accounts' rows are committed again."""
        letters = self.settings.topic(cat.DEAD_LETTERS)
        owners = {row: account_id for account_id, part in parts.items()
                  for row in part.changed_rows()}
        again: list[Out] = []
        offending: dict[str, str] = {}
        for out, why in exc.refused:
            if out[0] == letters:
                again.append(self.cut_dead_letter(out, why))
                continue
            account_id = owners.get((out[0], out[1] or b""))
            if account_id is None:
                raise RuntimeError(f"a record of no account of the unit was refused: {why}")
            offending.setdefault(account_id, why)
        for account_id, why in offending.items():
            log.warning("account row refused by the broker: its events are dead-lettered",
                        account_id=account_id[:200], reason=why[:300])
            for message in folded[account_id]:
                if id(message) not in dead:
                    again.append(self.dead_letter_out(
                        message, "refused_by_broker", f"the account's new row was not sent: "
                        f"{why}"))
                    dead.add(id(message))
            w.drop(parts[account_id])
        await self.commit(again, w)

    # ------------------------------------------------------------------ control
    async def on_control(self, events: list[faust.EventT],
                         enter: Callable[[Any], None]) -> None:
        """A batch of control records (`stream.take_events`), each handled in order as the
        stream's current event (`enter`); their dead letters go out together at the end,
        before Faust acknowledges the batch (one send per bad record held a flood of them
        to about a hundred a second)."""
        dead: list[Out] = []
        for event in events:
            enter(event)
            await self.guarded(event, self._control, dead)
        enter(None)
        if dead:
            await self.send_dead_letters(dead)

    async def _control(self, message: Any) -> None:
        topic = self.logical(message.topic)
        if topic == cat.RUN_PROGRESS:
            await self._progress(orjson.loads(message.value))
            return
        rtype, record = self.decode(message, cat.BY_NAME[topic].records)
        handler = getattr(self, f"_on_{rtype}")
        await handler(record)

    def get_run(self, payment_run_id: str) -> dict[str, Any] | None:
        raw = self.runs.get(payment_run_id.encode())
        return orjson.loads(raw) if raw is not None else None

    def put_run(self, run: dict[str, Any]) -> None:
        self.runs[run["payment_run_id"].encode()] = orjson.dumps(run)

    def run_by_id(self, run_id: str) -> dict[str, Any]:
        """The run's row; for an earlier attempt of a payment run (deleted, since it was
        run again) a row saying so (`superseded`): its progress and decisions can still
        arrive, for one when a restarted worker handles them again."""
        payment_run_id, _, attempt = run_id.rpartition("/")
        run = self.get_run(payment_run_id) if payment_run_id else None
        if run is not None and run["run_id"] != run_id and attempt.isdigit() \
                and 0 < int(attempt) < run["attempt"]:
            return {"run_id": run_id, "payment_run_id": payment_run_id,
                    "attempt": int(attempt), "status": "deleted", "superseded": True,
                    "executed": 0}
        if run is None or run["run_id"] != run_id:
            raise Unusable("unknown_run", f"no proposal run {run_id!r}")
        return run

    async def _on_PaymentRunCompleted(self, record: dict[str, Any]) -> None:
        payment_run_id = record["run_id"]
        run = self.get_run(payment_run_id)
        if run is not None and run["trigger"] != record["event_id"]:
            log.info("payment run seen before: nothing new", payment_run_id=payment_run_id)
            return
        attempt = 1 if run is None else run["attempt"]
        await self.start_run(payment_run_id, convert.day(record["as_of_date"]), attempt,
                             record["event_id"])

    async def start_run(self, payment_run_id: str, as_of: int, attempt: int,
                        trigger: str) -> None:
        run_id = proposal_run_id(payment_run_id, attempt)
        n = self.settings.partitions
        tps = [TopicPartition(self.settings.topic(t), p) for t in cat.ACCOUNT_INPUTS
               for p in range(n)]
        ends = await broker_quirks.true_end_offsets(self.settings.kafka_client_kwargs(), tps)
        run = self.get_run(payment_run_id)
        if run is None or run["run_id"] != run_id:
            run = {
                "payment_run_id": payment_run_id, "run_id": run_id, "attempt": attempt,
                "as_of": as_of, "trigger": trigger, "status": "running", "slices": {},
                "approved_slices": {}, "executed": 0, "started_at": time.time(),
            }
            self.put_run(run)
        outs = [self.out(cat.RUNS, "ProposalRunStarted",
                         convert.run_started(run_id, payment_run_id, as_of), run_id)]
        for p in range(n):
            targets = {tp.topic: off for tp, off in ends.items() if tp.partition == p}
            outs.append(self.internal(cat.PARTITION_WORK, {
                "kind": "slice", "run_id": run_id, "as_of": as_of, "targets": targets,
                # A rerun after a deletion looks at every account: the deleted attempt
                # moved the due index of the accounts it evaluated past this as-of day.
                "full": attempt > 1,
            }, None, p))
        await self.send(outs)
        log.info("proposal run started", run_id=run_id, as_of=as_of)

    async def broadcast(self, payload: dict[str, Any]) -> None:
        await self.send(self.internal(cat.PARTITION_WORK, payload, None, p)
                        for p in range(self.settings.partitions))

    async def _on_ProposalApproved(self, record: dict[str, Any]) -> None:
        await self.broadcast({"kind": "approve", **convert.plain(record)})

    async def _on_ProposalRejected(self, record: dict[str, Any]) -> None:
        await self.broadcast({"kind": "reject", **convert.plain(record)})

    async def refuse(self, decision: str, record: dict[str, Any], run_id: str, reason: str,
                     detail: str) -> None:
        """A run decision that cannot be carried out is a business outcome: it is recorded
        on dunning.runs for the clerk (`RunDecisionRefused`), never dead-lettered."""
        log.info("run decision refused", decision=decision, run_id=run_id, reason=reason)
        self.metrics.decisions_refused.labels(reason).inc()
        await self.send([self.out(cat.RUNS, "RunDecisionRefused", convert.run_decision_refused(
            decision, record, run_id, reason, detail), run_id)])

    async def _on_RunApproved(self, record: dict[str, Any]) -> None:
        run = self.run_by_id(record["run_id"])
        if run["status"] == "deleted":
            await self.refuse("RunApproved", record, run["run_id"], "run_deleted",
                              f"run {run['run_id']} was deleted")
            return
        run["status"] = "approved"
        self.put_run(run)
        # Each partition's approval comes after its slice on the same partition-work
        # partition, so an approval while the run is still running waits for the slice.
        await self.broadcast({"kind": "approve_run", **convert.plain(record)})

    async def _on_RunDeleted(self, record: dict[str, Any]) -> None:
        run = self.run_by_id(record["run_id"])
        if run["status"] == "deleted":
            return  # deleted before: nothing more to do
        if (run["executed"] > 0 or run.get("not_executed", 0) > 0
                or run["status"] in ("approved", "executed")):
            await self.refuse("RunDeleted", record, run["run_id"], "run_executed",
                              f"run {run['run_id']} has approved or executed proposals: "
                              "reverse its notices, or decide its other proposals one by one")
            return
        run["status"] = "deleted"
        self.put_run(run)
        await self.broadcast({"kind": "delete_run", **convert.plain(record)})

    async def _on_ProposalRunRequested(self, record: dict[str, Any]) -> None:
        run = self.get_run(record["payment_run_id"])
        if run is None:
            raise Unusable("unknown_run", f"no payment run {record['payment_run_id']!r}")
        if run["trigger"] == record["event_id"]:
            # this request started the current attempt (handled again after a restart):
            # carry on with it, as a redelivered PaymentRunCompleted does
            await self.start_run(run["payment_run_id"], run["as_of"], run["attempt"],
                                 record["event_id"])
            return
        if run["status"] != "deleted":
            await self.refuse("ProposalRunRequested", record, run["run_id"], "run_not_deleted",
                              f"run {run['run_id']} is {run['status']}: delete it first")
            return
        await self.start_run(run["payment_run_id"], run["as_of"], run["attempt"] + 1,
                             record["event_id"])

    async def _on_NoticeReversalRequested(self, record: dict[str, Any]) -> None:
        if not record.get("notice_id") and not record.get("run_id"):
            raise Unusable("invalid", "a reversal names a notice_id or a run_id")
        await self.broadcast({"kind": "reverse", **convert.plain(record)})

    async def _progress(self, msg: dict[str, Any]) -> None:
        run = self.run_by_id(msg["run_id"])
        if run.get("superseded"):
            return  # a deleted attempt's slices, handled again: nothing depends on them
        n = self.settings.partitions
        out: list[Out] = []
        run["executed"] += msg.get("notices", 0)
        run["not_executed"] = run.get("not_executed", 0) + msg.get("not_executed", 0)
        if msg["kind"] == "slice_done":
            run["slices"][str(msg["partition"])] = msg
            if len(run["slices"]) == n and not run.get("completed"):
                run["completed"] = True
                if run["status"] == "running":
                    run["status"] = "executed" if run["executed"] else "proposed"
                totals = {k: sum(s.get(k, 0) for s in run["slices"].values())
                          for k in ("evaluated", "proposals", "unknown", "notices", "commands",
                                    "pending", "failed")}
                out.append(self.out(cat.RUNS, "ProposalRunCompleted", convert.run_completed(
                    run["run_id"], run["payment_run_id"], run["as_of"], totals), run["run_id"]))
                if totals["notices"]:
                    out.append(self.out(cat.RUNS, "ActivityRunCompleted", convert.activity_done(
                        run["run_id"], totals, auto=True), run["run_id"]))
                seconds = time.time() - run["started_at"]
                self.metrics.run_seconds.observe(seconds)
                log.info("proposal run completed", run_id=run["run_id"], **totals,
                         seconds=round(seconds, 3))
        elif msg["kind"] == "approve_done":
            run["approved_slices"][str(msg["partition"])] = msg
            if len(run["approved_slices"]) == n and not run.get("activity_done"):
                run["activity_done"] = True
                totals = {k: sum(s.get(k, 0) for s in run["approved_slices"].values())
                          for k in ("notices", "commands", "not_executed")}
                out.append(self.out(cat.RUNS, "ActivityRunCompleted", convert.activity_done(
                    run["run_id"], totals), run["run_id"]))
                log.info("activity run completed", run_id=run["run_id"], **totals)
        # the records first, then the run's row: a progress message handled again after a
        # crash in between sends the same records (same ids) again, never none
        await self.send(out)
        self.put_run(run)

    # ------------------------------------------------------------------ partition work
    async def on_partition_work(self, event: faust.EventT) -> None:
        await self.guarded(event, self._partition_work)

    async def _partition_work(self, message: Any) -> None:
        msg = orjson.loads(message.value)
        handler = getattr(self, f"_work_{msg['kind']}")
        await handler(message.partition, msg)

    def partition_db(self, table: Any, partition: int) -> Any:
        return table.data._db_for_partition(partition)  # noqa: SLF001

    def applied_offset(self, topic: str, partition: int) -> int:
        mem = self.applied.get((topic, partition), 0)
        committed = self.app.consumer._committed_offset.get(  # type: ignore[attr-defined]  # noqa: SLF001
            TP(topic, partition))
        return max(mem, committed or 0)

    async def wait_applied(self, partition: int, targets: dict[str, int]) -> None:
        """The run barrier: every input event published before the payment run, on every
        input topic of this partition, is in the account state."""
        while True:
            lagging = {t: off for t, off in targets.items()
                       if self.applied_offset(t, partition) < off}
            if not lagging:
                return
            await asyncio.sleep(0.02)

    async def _work_slice(self, partition: int, msg: dict[str, Any]) -> None:
        run_id, as_of = msg["run_id"], msg["as_of"]
        done_key = b"s|" + run_id.encode()
        done = self.work_index.get(done_key)
        if done is not None:
            await self.send([self.internal(cat.RUN_PROGRESS, orjson.loads(done), run_id)])
            return
        started = time.monotonic()
        await self.wait_applied(partition, msg["targets"])
        await self.procedures.ready.wait()
        barrier_s = time.monotonic() - started
        procs = self.procedures.get()
        version_key = b"v|index"
        full = msg.get("full") or (
            self.work_index.get(version_key) != self.procedures.version.encode())
        # Groups with an undecided proposal of an earlier run are left out of this one
        # (RULES.md "Undecided proposals"; the due index skips them until decided).
        # The slice's counts so far, kept with each unit's rows (`commit_each`), so a slice
        # done again after a crash counts what the first attempt committed too.
        progress = b"k|" + run_id.encode()
        kept = self.work_index.get(progress)
        counts: dict[str, Any] = orjson.loads(kept) if kept is not None else {
            "evaluated": 0, "proposals": 0, "unknown": 0, "notices": 0, "commands": 0,
            "failed": 0, "pending": self.pending_count(Writes(partition))}
        for keys in self._candidates(partition, as_of, full):
            async with self.lock(partition):
                await self._evaluate(partition, keys, run_id, as_of, procs, counts, progress)
            await asyncio.sleep(0)
        counts.update(kind="slice_done", run_id=run_id, partition=partition)
        self.work_index[version_key] = self.procedures.version.encode()
        self.work_index[done_key] = orjson.dumps(counts)
        seconds = time.monotonic() - started
        self.metrics.slice_seconds.observe(seconds)
        log.info("run slice done", run_id=run_id, partition=partition, full=bool(full),
                 evaluated=counts["evaluated"], proposals=counts["proposals"],
                 barrier_s=round(barrier_s, 3), seconds=round(seconds, 3))
        self.metrics.accounts_evaluated.inc(counts["evaluated"])
        self.metrics.proposals.inc(counts["proposals"])
        await self.send([self.internal(cat.RUN_PROGRESS, counts, run_id)])

    async def commit_each(
        self, partition: int, account_ids: list[str],
        work: Callable[[str, list[Out], Writes], dict[str, int]], counts: dict[str, Any],
        progress: bytes,
    ) -> dict[str, str]:
        """One unit of run work over several accounts: `work(account_id, outs, w)` stages
        each account's records and rows and returns its counts. An account whose work
        raises, or whose records or rows the broker refuses, is left out (counted as
        `failed`) and the unit is done again without it (a refused commit writes no row),
        so one account never stops a run. `counts` plus the committed accounts' counts are
        written to the work index at `progress` in the same unit, then into `counts`: a
        unit done again after a crash is never counted twice. Returns the accounts left
        out, with why (each is logged)."""
        left_out: dict[str, str] = {}
        while True:
            w = UnitWrites(partition)
            outs: list[Out] = []
            owner: dict[int, str] = {}
            owner_of_row: dict[bytes, str] = {}
            done: list[dict[str, int]] = []
            for account_id in account_ids:
                if account_id in left_out:
                    continue
                part = StagedWrites(w)
                mine: list[Out] = []
                try:
                    done.append(work(account_id, mine, part))
                except Exception as exc:
                    left_out[account_id] = f"{type(exc).__name__}: {exc}"[:500]
                    log.exception("run work failed for an account; the run goes on",
                                  account_id=account_id[:200], partition=partition)
                    continue
                w.merge(part)
                for out in mine:
                    owner[id(out)] = account_id
                for _, key in part.changed_rows():
                    owner_of_row.setdefault(key, account_id)
                outs.extend(mine)
            total = dict(counts)
            for c in done:
                for k, v in c.items():
                    total[k] = total.get(k, 0) + v
            total["failed"] = total.get("failed", 0) + len(left_out)
            w.set(self.work_index, progress, orjson.dumps(total))
            try:
                await self.commit(outs, w)
            except Refused as exc:
                refused = [owner.get(id(out)) or owner_of_row.get(out[1] or b"")
                           for out, _ in exc.refused]
                accounts = {a for a in refused if a is not None}
                if not accounts or len(accounts) < len(set(refused)):
                    raise  # not one account's: the unit's own (dead-lettered by `guarded`)
                for account_id in accounts:
                    left_out[account_id] = f"refused by the broker: {exc}"[:500]
                    log.error("run records refused by the broker; the run goes on",
                              account_id=account_id[:200], partition=partition)
                continue
            counts.update(total)
            self.metrics.run_accounts_failed.inc(len(left_out))
            return left_out

    async def _evaluate(self, partition: int, keys: list[tuple[bytes, int]], run_id: str,
                        as_of: int, procs: Any, counts: dict[str, Any],
                        progress: bytes) -> None:
        """One batch of a run slice: propose, record, publish, move the due index."""
        days = {key.decode(): day for key, day in keys}

        def work(account_id: str, outs: list[Out], w: Writes) -> dict[str, int]:
            raw = w.get(self.accounts, account_key(account_id))
            if raw is None:
                return {}
            return self._evaluate_account(StoredAccount.loads(raw), days[account_id], run_id,
                                          as_of, procs, outs, w)

        await self.commit_each(partition, list(days), work, counts, progress)

    def _evaluate_account(self, stored: StoredAccount, key_day: int, run_id: str, as_of: int,
                          procs: Any, outs: list[Out], w: Writes) -> dict[str, int]:
        account = stored.account
        c = {"evaluated": 1, "proposals": 0, "unknown": 0, "notices": 0, "commands": 0}
        evaluation = propose(account, procs, as_of, run_id)
        if evaluation.unknown_procedure:
            c["unknown"] = 1
        if not evaluation.proposals:
            # Nothing to do: only the account's place in the due index moves; the row
            # itself is not rewritten.
            self.reindex(account.account_id, key_day, self.next_day(account, as_of + 1), w)
            return c
        account = record_proposals(account, evaluation.proposals)
        for proposal in evaluation.proposals:
            c["proposals"] += 1
            outs.append((self.settings.topic(cat.PROPOSALS), account.account_id.encode(),
                         self.codec.encode_raw("DunningProposed",
                                               convert.proposal_record(proposal, raw=True)),
                         None))
            w.set(self.work_index, proposal_key(proposal.proposal_id),
                  account.account_id.encode())
        w.set(self.work_index, run_key(run_id, account.account_id), b"")
        stored.account = account
        for proposal in evaluation.proposals:
            if self.settings.auto_approve or procs[proposal.procedure_id].auto_approve:
                c["commands"] += self._execute(stored, proposal.proposal_id, outs, w)[0]
                c["notices"] += 1
        if key_day not in (NO_DAY, stored.index_day):
            self.reindex(account.account_id, key_day, None, w)
        self.store(stored, self.next_day(stored.account, as_of + 1), w)
        return c

    def _candidates(self, partition: int, as_of: int,
                    full: bool) -> Iterable[list[tuple[bytes, int]]]:
        """The accounts of this partition a run must look at, in batches, each with the day
        of the due-index entry that brought it (NO_DAY in a full scan): those whose next rule
        day has come, or every account after a procedure change or a rerun."""
        acc_db = self.partition_db(self.accounts, partition)
        keys: list[tuple[bytes, int]] = []
        if full:
            keys = [(k, NO_DAY) for k in acc_db.keys()  # noqa: SIM118 (a RocksDB key scan)
                    if not k.startswith(b"__faust")]
        else:
            due_db = self.partition_db(self.due_index, partition)
            limit = due_key(as_of, "\uffff")
            seen: set[str] = set()
            for key in due_db.keys():  # noqa: SIM118 (a RocksDB key scan)
                if key > limit:
                    break
                if not key[:1].isdigit():
                    continue
                day, account_id = due_key_account(key)
                if account_id in seen:  # an older entry the run moved; drop it
                    del self.due_index[key]
                    continue
                seen.add(account_id)
                keys.append((account_key(account_id), day))
        size = self.settings.run_batch
        for start in range(0, len(keys), size):
            yield keys[start:start + size]

    def _load_candidates(self, keys: list[tuple[bytes, int]],
                         w: Writes) -> list[tuple[StoredAccount, int]]:
        out = []
        for key, day in keys:
            raw = w.get(self.accounts, key)
            if raw is not None:
                out.append((StoredAccount.loads(raw), day))
        return out

    # ------------------------------------------------------------------ stage 2
    def _execute(self, stored: StoredAccount, proposal_id: str, outs: list[Out],
                 w: Writes) -> tuple[int, str]:
        """Execute one pending (or already executed) proposal; append its records.
        Returns the number of commands and the run id."""
        account, notice = execute(stored.account, proposal_id)
        stored.account = account
        commands = convert.command_outputs(account, notice)
        for topic, rtype, record in commands:
            outs.append(self.out(topic, rtype, record, account.account_id))
        rtype, payload = convert.notice_history(account, notice)
        outs.append(self.history(stored, rtype, payload))
        w.set(self.work_index, notice_key(notice.notice_id), account.account_id.encode())
        self.metrics.notices.inc()
        self.metrics.commands.inc(len(commands))
        return len(commands), notice.run_id

    def history(self, stored: StoredAccount, rtype: str, payload: dict[str, Any]) -> Out:
        """Chain a history record onto the account's log: per-account sequence and the hash
        of the previous record. A record written before keeps its place, byte for byte."""
        account = stored.account
        event_id = payload["event_id"]
        ref = stored.history_refs.get(event_id)
        seq, prev = ref if ref else (account.history_seq + 1, account.history_head)
        record = {**payload, "account_id": account.account_id, "seq": seq, "prev_hash": prev}
        value = self.codec.encode(rtype, record)
        if not ref:
            stored.history_refs[event_id] = [seq, prev]
            stored.account = replace(
                account, history_seq=seq,
                history_head=hashlib.sha256(value[len(self.codec.header(rtype)):]).hexdigest(),
            )
        return (self.settings.topic(cat.HISTORY), account.account_id.encode(), value, None)

    def _approve(self, stored: StoredAccount, proposal_id: str, outs: list[Out],
                 w: Writes) -> tuple[int, int, int]:
        """The outcome of one approved proposal: its notice, or a `ProposalNotExecuted`
        history record when the account changed since the run (RULES.md "Decisions of
        this project"). Returns (notices, not executed, commands)."""
        account, outcome = execute_approved(stored.account, proposal_id)
        if isinstance(outcome, Notice):
            return 1, 0, self._execute(stored, proposal_id, outs, w)[0]
        stored.account = account
        rtype, payload = convert.not_executed_history(account, outcome)
        outs.append(self.history(stored, rtype, payload))
        self.metrics.not_executed.labels(outcome.reason).inc()
        log.info("approved proposal not executed", proposal_id=proposal_id,
                 run_id=outcome.run_id, reason=outcome.reason)
        return 0, 1, 0

    def _account_for(self, partition: int, key: bytes, w: Writes) -> StoredAccount | None:
        account_id = w.get(self.work_index, key)
        if account_id is None:
            return None
        return self.load(account_id.decode(), w)

    def _run_of_proposal(self, account: Account, proposal_id: str) -> str | None:
        for p in account.pending:
            if p.proposal_id == proposal_id:
                return p.run_id
        return None

    async def _work_approve(self, partition: int, msg: dict[str, Any]) -> None:
        async with self.lock(partition):
            w = Writes(partition)
            stored = self._account_for(partition, proposal_key(msg["proposal_id"]), w)
            if stored is None:
                return  # another partition's proposal
            run_id = (self._run_of_proposal(stored.account, msg["proposal_id"])
                      or executed_run(stored.account, msg["proposal_id"]))
            if run_id is None:
                # decided before (rejected, not executed, or its run deleted): that
                # decision stands and was recorded then
                self.metrics.decisions_ignored.inc()
                log.info("approval of a proposal decided before", proposal_id=msg["proposal_id"])
                return
            outs: list[Out] = []
            # (executed before: the same records again, same ids)
            executed, not_executed, _ = self._approve(stored, msg["proposal_id"], outs, w)
            self.store(stored, self.next_day(stored.account, 0), w)
            outs.append(self.internal(cat.RUN_PROGRESS, {
                "kind": "executed", "run_id": run_id, "notices": executed,
                "not_executed": not_executed}, run_id))
            await self.commit(outs, w)

    async def _work_reject(self, partition: int, msg: dict[str, Any]) -> None:
        async with self.lock(partition):
            w = Writes(partition)
            stored = self._account_for(partition, proposal_key(msg["proposal_id"]), w)
            if stored is None:
                return
            try:
                account, rejected = reject(stored.account, msg["proposal_id"],
                                                   msg["decided_by"], msg.get("reason") or "")
            except Rejected as exc:  # executed before: the notice stands (reverse it)
                self.metrics.decisions_ignored.inc()
                log.info("rejection of an executed proposal", proposal_id=msg["proposal_id"],
                         reason=exc.code)
                return
            stored.account = account
            outs: list[Out] = []
            if rejected is not None:
                rtype, payload = convert.rejection_history(account, rejected)
                outs.append(self.history(stored, rtype, payload))
            # decided: the group can be proposed again, so its next day is computed anew
            self.store(stored, self.next_day(stored.account, 0), w)
            await self.commit(outs, w)

    def _run_account_ids(self, partition: int, run_id: str) -> list[str]:
        """The accounts of this partition with a proposal of the run (from the index)."""
        db = self.partition_db(self.work_index, partition)
        prefix = run_prefix(run_id)
        found = []
        for key in db.keys(from_key=prefix):
            if not key.startswith(prefix):
                break
            found.append(key[len(prefix):].decode())
        return found

    def _run_batches(self, partition: int, run_id: str) -> Iterable[list[str]]:
        """Those accounts, a batch of ids at a time."""
        ids = self._run_account_ids(partition, run_id)
        size = self.settings.run_batch
        for start in range(0, len(ids), size):
            yield ids[start:start + size]

    async def _work_approve_run(self, partition: int, msg: dict[str, Any]) -> None:
        run_id = msg["run_id"]
        # kept with each unit's rows: an approval done again after a crash (the partition
        # finds only what is still pending) still reports every outcome once
        progress = b"a|" + run_id.encode()
        kept = self.work_index.get(progress)
        totals: dict[str, Any] = orjson.loads(kept) if kept is not None else {
            "notices": 0, "commands": 0, "not_executed": 0}

        def work(account_id: str, outs: list[Out], w: Writes) -> dict[str, int]:
            stored = self.load(account_id, w)
            c = {"notices": 0, "commands": 0, "not_executed": 0}
            for proposal_id in pending_of_run(stored.account, run_id):
                executed, not_executed, commands = self._approve(stored, proposal_id, outs, w)
                c["notices"] += executed
                c["not_executed"] += not_executed
                c["commands"] += commands
            self.store(stored, self.next_day(stored.account, 0), w)
            return c

        for ids in self._run_batches(partition, run_id):
            async with self.lock(partition):
                failed = await self.commit_each(partition, ids, work, totals, progress)
                if failed:
                    await self._not_executed_after_error(partition, run_id, failed, totals,
                                                         progress)
            await asyncio.sleep(0)
        await self.send([self.internal(cat.RUN_PROGRESS, {
            "kind": "approve_done", "run_id": run_id, "partition": partition, **totals},
            run_id)])

    async def _not_executed_after_error(self, partition: int, run_id: str,
                                        failed: dict[str, str], totals: dict[str, Any],
                                        progress: bytes) -> None:
        """The run's proposals on accounts whose execution failed are decided without a
        notice (`processing_error`), so each still gets one outcome; an account where even
        that fails keeps them pending, logged."""
        def work(account_id: str, outs: list[Out], w: Writes) -> dict[str, int]:
            stored = self.load(account_id, w)
            n = 0
            for proposal in [p for p in stored.account.pending if p.run_id == run_id]:
                account, outcome = not_executed(
                    stored.account, proposal, "processing_error", failed[account_id])
                stored.account = account
                rtype, payload = convert.not_executed_history(account, outcome)
                outs.append(self.history(stored, rtype, payload))
                self.metrics.not_executed.labels("processing_error").inc()
                n += 1
            self.store(stored, self.next_day(stored.account, 0), w)
            return {"not_executed": n}

        await self.commit_each(partition, list(failed), work, totals, progress)

    async def _work_delete_run(self, partition: int, msg: dict[str, Any]) -> None:
        for ids in self._run_batches(partition, msg["run_id"]):
            async with self.lock(partition):
                w = Writes(partition)
                for account_id in ids:
                    stored = self.load(account_id, w)
                    if run_executed(stored.account, msg["run_id"]):
                        continue  # an executed notice cannot be deleted, only reversed
                    stored.account = drop_run(stored.account, msg["run_id"])
                    self.store(stored, self.next_day(stored.account, 0), w)
                    w.delete(self.work_index, run_key(msg["run_id"], account_id))
                await self.commit([], w)

    async def _work_reverse(self, partition: int, msg: dict[str, Any]) -> None:
        if msg.get("notice_id"):
            account_id = self.partition_db(self.work_index, partition).get(
                notice_key(msg["notice_id"]))
            batches = [[account_id.decode()]] if account_id is not None else []
        else:
            batches = list(self._run_batches(partition, msg["run_id"]))
        item_ids = tuple(msg["item_ids"]) if msg.get("item_ids") else None
        requested_by = msg.get("requested_by") or ""
        for ids in batches:
            async with self.lock(partition):
                w = Writes(partition)
                outs: list[Out] = []
                for account_id in ids:
                    stored = self.load(account_id, w)
                    notice_ids = ([msg["notice_id"]] if msg.get("notice_id") else
                                  list(notices_of_run(stored.account, msg["run_id"])))
                    for notice_id in notice_ids:
                        reversal_id = convert.reversal_id(msg["event_id"], notice_id)
                        try:
                            account, reversal = reverse(
                                stored.account, notice_id, item_ids, reversal_id,
                                requested_by, msg.get("reason") or "")
                        except Rejected as exc:
                            # this notice stays; the others of the request go ahead
                            refused = reversal_refused(
                                stored.account, notice_id, reversal_id, requested_by, exc)
                            rtype, payload = convert.reversal_refused_history(
                                stored.account, refused)
                            outs.append(self.history(stored, rtype, payload))
                            self.metrics.reversals_refused.labels(exc.code).inc()
                            continue
                        stored.account = account
                        if reversal.history is None:
                            continue  # nothing left to reverse
                        for topic, rtype, record in convert.reversal_outputs(account, reversal):
                            outs.append(self.out(topic, rtype, record, account.account_id))
                        rtype, payload = convert.reversal_history(account, reversal)
                        outs.append(self.history(stored, rtype, payload))
                    self.store(stored, self.next_day(stored.account, 0), w)
                await self.commit(outs, w)
