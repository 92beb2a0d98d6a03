"""The ingest agent: billing events (the four account-scoped input topics) folded into
account state, one unit of work per account partition of a batch. The letter service's
delivery outcomes (`dunning.letter-deliveries`) come the same way: each is remembered by
its id and chained onto the account's history (`LetterDeliveryRecorded`), as an import's
`DunningLevelImported` is.

The error policy covers the whole unit, and each failure costs only what it is about: an
event that cannot be used is dead-lettered; an account whose new row cannot be stored
(packing overflows, the row outgrows `limits.MAX_ROW_BYTES`, anything else that fails in
storing it) has its events of the batch folded again one at a time, and those that break
it are dead-lettered; a row the broker refuses dead-letters its account's events of the
batch. The rest is applied.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

import structlog

from domain.events import DunningHistoryImported, LetterDelivery
from domain.history import DunningLevelImported, LetterDeliveryRecorded
from domain.ingest import delivery_history, evolve, import_history
from domain.retention import event_day
from processors import convert
from processors.errors import ErrorPolicy, check_key, known_failure
from processors.metrics import Metrics
from processors.outbox import Outbox, Refused
from processors.state import StoredAccount
from processors.store import StagedUnit, Store
from processors.writes import Out, StagedWrites, UnitWrites, Writes
from topics import catalogue as cat

log = structlog.get_logger("dunning.worker")

Decode = Callable[[Any, tuple[str, ...]], tuple[str, dict[str, Any]]]
#: A history record an input event writes: an imported level, or a letter's outcome.
Recorded = DunningLevelImported | LetterDeliveryRecorded


class _Unit:
    """What one ingest unit has done so far."""

    def __init__(self, partition: int) -> None:
        self.staged = StagedUnit(partition)
        self.rows: dict[str, StoredAccount] = {}
        #: account -> its events applied in this unit, and the latest day they speak of
        self.folded: dict[str, list[Any]] = {}
        self.days: dict[str, int | None] = {}
        self.changed: dict[str, None] = {}
        #: account -> the history records of its events applied in this unit (imports,
        #: letter outcomes)
        self.recorded: dict[str, list[Recorded]] = {}
        self.dead: set[int] = set()  # ids of the messages dead-lettered


class Ingest:
    def __init__(self, *, store: Store, outbox: Outbox, errors: ErrorPolicy,
                 metrics: Metrics, decode: Decode | None = None) -> None:
        self.store = store
        self.outbox = outbox
        self.errors = errors
        self.metrics = metrics
        self.decode = decode or errors.decode
        #: (physical topic, partition) -> offset after the last input event applied.
        self.applied: dict[tuple[str, int], int] = {}

    async def on_inputs(self, messages: list[Any]) -> None:
        """A batch of input events: per account partition, every event is folded into its
        account in memory, then the changed rows go out in one unit."""
        by_partition: dict[int, list[Any]] = {}
        for message in messages:
            by_partition.setdefault(message.partition, []).append(message)
        for partition, mine in by_partition.items():
            async with self.store.lock(partition):
                await self.apply_unit(partition, mine)
            for message in mine:
                self.applied[(message.topic, message.partition)] = message.offset + 1

    async def apply_unit(self, partition: int, messages: list[Any]) -> None:
        """One unit of work: a batch of one account partition's input events, each folded
        into its account in memory, each changed account stored on its own, the rows out
        with the batch's dead letters in one commit."""
        unit = _Unit(partition)
        for message in messages:
            try:
                account_id, change = self._fold(message, unit.rows, unit.days,
                                                unit.staged.writes, unit.recorded)
            except Exception as exc:
                self._dead(unit, message, *self.errors.reason(message, exc))
                continue
            unit.folded.setdefault(account_id, []).append(message)
            if change:
                unit.changed[account_id] = None
        for account_id in unit.changed:
            self._stage_account(unit, account_id)
        try:
            await self.store.commit(unit.staged.outs, unit.staged.writes)
        except Refused as exc:
            await self._commit_refused(unit, exc)
        self._count(messages, unit.dead)

    def _dead(self, unit: _Unit, message: Any, code: str, detail: str) -> None:
        unit.staged.outs.append(self.errors.dead_letter(message, code, detail))
        unit.dead.add(id(message))

    def _count(self, messages: list[Any], dead: set[int]) -> None:
        for message in messages:
            topic = self.errors.logical(message.topic)
            if id(message) in dead:
                self.metrics.records.labels(topic, "dead_lettered").inc()
            else:
                self.metrics.records.labels(topic, "applied").inc()
                self.metrics.applied.labels(topic).inc()

    def _fold(self, message: Any, rows: dict[str, StoredAccount],
              days: dict[str, int | None], w: Writes,
              recorded: dict[str, list[Recorded]]) -> tuple[str, bool]:
        """Fold one input event into its account (in `rows`): the account id, and whether
        the account changed (an event applied before, with the same body, changes nothing).
        `days` keeps the latest day each account's events speak of, `recorded` the history
        records of the events that changed an account (imports, letter outcomes)."""
        topic = self.errors.logical(message.topic)
        rtype, record = self.decode(message, cat.BY_NAME[topic].records)
        account_id = record["account_id"]
        check_key(message.key, account_id)
        stored = rows.get(account_id) or self.store.load(account_id, w)
        domain_event = convert.input_event(rtype, record)
        digest = hashlib.blake2b(repr(domain_event).encode(), digest_size=8).digest()
        updated = evolve(stored.account, domain_event, digest)
        rows[account_id] = stored
        day = event_day(domain_event)
        if day is not None:
            latest = days.get(account_id)
            days[account_id] = day if latest is None else max(latest, day)
        if updated is stored.account:
            return account_id, False
        if isinstance(domain_event, DunningHistoryImported):
            level = import_history(stored.account, updated, domain_event)
            if level is not None:
                recorded.setdefault(account_id, []).append(level)
        elif isinstance(domain_event, LetterDelivery):
            recorded.setdefault(account_id, []).append(delivery_history(domain_event))
        stored.account = updated
        return account_id, True

    def _chain(self, stored: StoredAccount, recorded: list[Recorded]) -> list[Out]:
        """The history records of an account's events (imports, letter outcomes), chained
        onto its history in the order the events came."""
        return [self.outbox.history(stored, *convert.history_of(r)) for r in recorded]

    def _stage_account(self, unit: _Unit, account_id: str) -> None:
        part: UnitWrites = StagedWrites(unit.staged.writes)
        stored = unit.rows[account_id]
        try:
            history = self._chain(stored, unit.recorded.get(account_id, []))
            self.store.store_input(stored, unit.days.get(account_id), part)
        except Exception as exc:
            part, history = self._salvage(unit, account_id, exc)
        unit.staged.add(account_id, part, history)

    def _salvage(self, unit: _Unit, account_id: str,
                 exc: Exception) -> tuple[UnitWrites, list[Out]]:
        """An account whose new row could not be stored (`exc`): its events of the unit are
        folded again from the stored row, one at a time, each stored on trial; one whose
        change cannot be stored is dead-lettered and the account stays as it was before
        it. Returns the rows and history records of the events that stand."""
        messages = unit.folded[account_id]
        log.warning("account change not storable: its events are tried one by one",
                    account_id=account_id[:200], events=len(messages),
                    error=f"{type(exc).__name__}: {exc}"[:300])
        accepted = StagedWrites(unit.staged.writes)
        # as the unit found it (the unit has none of its rows)
        stored = self.store.load(account_id, unit.staged.writes)
        rows = {account_id: stored}
        days: dict[str, int | None] = {}
        history: list[Out] = []
        for message in messages:
            before = copy.copy(stored)
            before.history_refs = dict(stored.history_refs)
            trial = StagedWrites(accepted)
            recorded: dict[str, list[Recorded]] = {}
            try:
                _, change = self._fold(message, rows, days, trial, recorded)
                if change:
                    chained = self._chain(stored, recorded.get(account_id, []))
                    self.store.store_input(stored, days.get(account_id), trial)
            except Exception as failure:
                code, detail = known_failure(failure) or (
                    "unstorable", f"{type(failure).__name__}: {failure}")
                self._dead(unit, message, code, detail)
                stored = rows[account_id] = before
                continue
            accepted.merge(trial)
            if change:
                history += chained
        return accepted, history

    async def _commit_refused(self, unit: _Unit, exc: Refused) -> None:
        """The broker refused some of a unit's records (`exc`; nothing was written, and the
        dead letters that went out stay out): a refused dead letter goes again cut down
        (`cut_dead_letter`), a refused row dead-letters its account's events of the unit
        (`refused_by_broker`), and the other accounts' rows are committed again."""
        again: list[Out] = []
        offending: dict[str, str] = {}
        for out, why in exc.refused:
            if self.errors.is_dead_letter(out):
                again.append(self.errors.cut_dead_letter(out, why))
                continue
            account_id = unit.staged.owner(out)
            if account_id is None:
                raise RuntimeError(f"a record of no account of the unit was refused: {why}")
            offending.setdefault(account_id, why)
        for account_id, why in offending.items():
            log.warning("account row refused by the broker: its events are dead-lettered",
                        account_id=account_id[:200], reason=why[:300])
            for message in unit.folded[account_id]:
                if id(message) not in unit.dead:
                    again.append(self.errors.dead_letter(
                        message, "refused_by_broker", f"the account's new row was not sent: "
                        f"{why}"))
                    unit.dead.add(id(message))
            unit.staged.drop(account_id)
        await self.store.commit(again, unit.staged.writes)
