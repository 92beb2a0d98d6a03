"""The one write path of the account partitions: an account's row loaded and stored with
its due-index entry and the partition's count of undecided proposals, the work index, and
the one policy for a unit of work over several accounts (`StagedUnit`, `commit_each`):
each account's rows and records are staged on their own, so an account whose change
cannot be stored or sent is taken out and the unit goes through without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import orjson
import structlog

from config.settings import Settings
from domain.retention import compact
from domain.schedule import next_evaluation_day
from domain.state import Account, new_account
from processors import faust_private, limits
from processors.deadletter import Unusable
from processors.metrics import Metrics
from processors.outbox import Refused
from processors.procedures import ProcedureCatalog
from processors.state import (
    NO_DAY,
    PENDING_COUNT,
    StoredAccount,
    account_key,
    due_key,
    due_key_account,
    run_prefix,
)
from processors.writes import Out, StagedWrites, UnitWrites, Writes

log = structlog.get_logger("dunning.worker")

T = TypeVar("T")
Commit = Callable[[list[Out], Writes], Awaitable[None]]
#: one account's share of a unit: (account id, its records, its rows) -> its counts
AccountWork = Callable[[str, list[Out], Writes], dict[str, int]]


class StagedUnit:
    """A unit of work over several accounts: each account's rows and records are staged
    on their own (`stage`), so that one can be taken out again (`drop`); `owner` says
    whose a record or a changelog record is (None: the unit's own, a dead letter)."""

    def __init__(self, partition: int) -> None:
        self.writes = UnitWrites(partition)
        self.outs: list[Out] = []
        self.parts: dict[str, UnitWrites] = {}
        self._owner: dict[int, str] = {}
        self._row_owner: dict[tuple[str, bytes], str] = {}

    def stage(self, account_id: str, work: Callable[[list[Out], Writes], T]) -> T:
        """Run one account's `work` on its own rows; nothing of it is kept if it raises."""
        part = StagedWrites(self.writes)
        mine: list[Out] = []
        result = work(mine, part)
        self.add(account_id, part, mine)
        return result

    def add(self, account_id: str, part: UnitWrites, outs: Iterable[Out] = ()) -> None:
        self.writes.merge(part)
        self.parts[account_id] = part
        for out in outs:
            self._owner[id(out)] = account_id
            self.outs.append(out)
        for row in part.changed_rows():
            self._row_owner.setdefault(row, account_id)

    def owner(self, out: Out) -> str | None:
        return self._owner.get(id(out)) or self._row_owner.get((out[0], out[1] or b""))

    def drop(self, account_id: str) -> None:
        self.writes.drop(self.parts.pop(account_id))


class Store:
    def __init__(self, *, settings: Settings, procedures: ProcedureCatalog, accounts: Any,
                 due_index: Any, work_index: Any, metrics: Metrics, commit: Commit) -> None:
        self.settings = settings
        self.procedures = procedures
        self.accounts = accounts
        self.due_index = due_index
        self.work_index = work_index
        self.metrics = metrics
        #: sends a unit's records and changelog, then writes its rows (`Outbox.commit`)
        self.commit = commit
        self._locks: dict[int, asyncio.Lock] = {}

    def lock(self, partition: int) -> asyncio.Lock:
        """One account partition's rows are changed by one unit of work at a time (ingest
        and the partition-work agent run side by side)."""
        lock = self._locks.get(partition)
        if lock is None:
            lock = self._locks[partition] = asyncio.Lock()
        return lock

    def db(self, table: Any, partition: int) -> Any:
        return faust_private.db_of(table, partition)

    # ------------------------------------------------------------------ accounts
    def load(self, account_id: str, w: Writes) -> StoredAccount:
        raw = w.get(self.accounts, account_key(account_id))
        if raw is None:
            return StoredAccount(new_account(account_id))
        return StoredAccount.loads(raw)

    def load_existing(self, account_id: str, w: Writes) -> StoredAccount | None:
        raw = w.get(self.accounts, account_key(account_id))
        return None if raw is None else StoredAccount.loads(raw)

    def store(self, stored: StoredAccount, next_day: int | None, w: Writes) -> None:
        """Write the row and keep the due index and the pending count in step with it."""
        account_id = stored.account.account_id
        day = NO_DAY if next_day is None else next_day
        if day != NO_DAY:
            key = due_key(day, account_id)
            # The run may have moved this account's entry without rewriting the row, so the
            # row's `index_day` can lag: make sure the entry for `day` is there.
            if w.get(self.due_index, key) is None:
                w.set(self.due_index, key, b"")
        if stored.index_day not in (NO_DAY, day):
            w.delete(self.due_index, due_key(stored.index_day, account_id))
        stored.index_day = day
        pending = len(stored.account.pending)
        if pending != stored.pending_at_load:
            count = self.pending_count(w) + pending - stored.pending_at_load
            w.set(self.work_index, PENDING_COUNT, b"%d" % count)
            stored.pending_at_load = pending
        w.set(self.accounts, account_key(account_id), stored.dumps())

    def store_decided(self, stored: StoredAccount, w: Writes) -> None:
        """Store an account after a decision (its next day computed anew)."""
        self.store(stored, self.next_day(stored.account, 0), w)

    def store_input(self, stored: StoredAccount, today: int | None, w: Writes) -> None:
        """Store an account changed by input events (compacted as of `today`, the latest
        day its events speak of), as long as its row stays within `limits.MAX_ROW_BYTES`."""
        self.compact(stored, today)
        self.store(stored, self.next_day(stored.account, 0), w)
        row = w.get(self.accounts, account_key(stored.account.account_id))
        if row is not None and len(row) > limits.MAX_ROW_BYTES:
            raise Unusable("account_too_large",
                           f"the account's row would be {len(row)} bytes, at most "
                           f"{limits.MAX_ROW_BYTES}")

    def compact(self, stored: StoredAccount, today: int | None) -> None:
        """Forget what the retention lets go (`domain.retention.compact`)."""
        if today is not None:
            stored.account = compact(stored.account, today, self.settings.retention_days)

    def pending_count(self, w: Writes) -> int:
        """Undecided proposals on the accounts of `w`'s partition, as the unit leaves it."""
        raw = w.get(self.work_index, PENDING_COUNT)
        return int(raw) if raw else 0

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

    # ------------------------------------------------------------------ work index
    def kept(self, key: bytes) -> dict[str, Any] | None:
        """A run's progress kept in the work index (orjson), or None."""
        raw = self.work_index.get(key)
        return orjson.loads(raw) if raw is not None else None

    def keep(self, key: bytes, value: dict[str, Any]) -> None:
        self.work_index[key] = orjson.dumps(value)

    def candidates(self, partition: int, as_of: int,
                   full: bool) -> Iterable[list[tuple[bytes, int]]]:
        """The accounts of this partition a run must look at, in batches, each with the day
        of the due-index entry that brought it (NO_DAY in a full scan): those whose next rule
        day has come, or every account after a procedure change or a rerun."""
        if full:
            keys = [(k, NO_DAY) for k in self.db(self.accounts, partition).keys()  # noqa: SIM118 (a RocksDB key scan)
                    if not k.startswith(b"__faust")]
        else:
            keys = self._due(partition, as_of)
        return _batches(keys, self.settings.run_batch)

    def _due(self, partition: int, as_of: int) -> list[tuple[bytes, int]]:
        keys: list[tuple[bytes, int]] = []
        limit = due_key(as_of, "\uffff")
        seen: set[str] = set()
        for key in self.db(self.due_index, partition).keys():  # noqa: SIM118 (a RocksDB key scan)
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
        return keys

    def run_account_ids(self, partition: int, run_id: str) -> list[str]:
        """The accounts of this partition with a proposal of the run (from the index)."""
        prefix = run_prefix(run_id)
        found = []
        for key in self.db(self.work_index, partition).keys(from_key=prefix):
            if not key.startswith(prefix):
                break
            found.append(key[len(prefix):].decode())
        return found

    def run_batches(self, partition: int, run_id: str) -> Iterable[list[str]]:
        """Those accounts, a batch of ids at a time."""
        return _batches(self.run_account_ids(partition, run_id), self.settings.run_batch)

    # ------------------------------------------------------------------ units of run work
    async def commit_each(self, partition: int, account_ids: list[str], work: AccountWork,
                          counts: dict[str, Any], progress: bytes) -> dict[str, str]:
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
            unit = StagedUnit(partition)
            done = [c for c in (self._stage_one(unit, a, work, left_out)
                                for a in account_ids if a not in left_out) if c is not None]
            total = _added(counts, done, failed=len(left_out))
            unit.writes.set(self.work_index, progress, orjson.dumps(total))
            try:
                await self.commit(unit.outs, unit.writes)
            except Refused as exc:
                owners = [unit.owner(out) for out, _ in exc.refused]
                accounts = {a for a in owners if a is not None}
                if not accounts or len(accounts) < len(set(owners)):
                    raise  # not one account's: the unit's own (dead-lettered by `guarded`)
                for account_id in accounts:
                    left_out[account_id] = f"refused by the broker: {exc}"[:500]
                    log.error("run records refused by the broker; the run goes on",
                              account_id=account_id[:200], partition=partition)
                continue
            counts.update(total)
            self.metrics.run_accounts_failed.inc(len(left_out))
            return left_out

    @staticmethod
    def _stage_one(unit: StagedUnit, account_id: str, work: AccountWork,
                   left_out: dict[str, str]) -> dict[str, int] | None:
        try:
            return unit.stage(account_id, lambda outs, w: work(account_id, outs, w))
        except Exception as exc:
            left_out[account_id] = f"{type(exc).__name__}: {exc}"[:500]
            log.exception("run work failed for an account; the run goes on",
                          account_id=account_id[:200], partition=unit.writes.partition)
            return None


def _added(counts: dict[str, Any], done: list[dict[str, int]], failed: int) -> dict[str, Any]:
    total = dict(counts)
    for c in done:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    total["failed"] = total.get("failed", 0) + failed
    return total


def _batches(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
