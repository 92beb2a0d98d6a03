"""Rebuild each account's dunning history from its history records, in chain order.

Records are decoded Avro dicts (`Decimal` amounts, `date` dates). What is rebuilt per
account: the notices (with the items' old and new levels and dates, amounts and command
ids, and which of their items were reversed since), the reversals, the rejected
proposals, and each item's level, last-dunned and interest-until date: the `new_*` values
of the last record that changed the item. Items that were never dunned are not in the
history; their level is 0. The charge and interest items a notice keeps (RULES.md
decision 12: `DunningNoticeIssued.claims`), with what reversals took back and the open
amount the last notice that listed them showed.

`as_of`: records whose `recorded_for` is after that date are not applied (a reversal is
recorded for the as-of date of the notice it reverses, see docs/DOMAIN.md).

Without `as_of`, every record is also checked against the history before it: the item
values it says it started from (`old_*`) must be the ones the earlier records left, a
reversal must name a notice of the account and items of that notice not reversed yet, and
no event id may appear twice in one chain. A record that fails is reported
(`inconsistent`) and still applied, so the rebuilt state follows what the log says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from audit.problems import Location, Problem
from domain.history import in_effect
from domain.history_fold import (
    ItemDunning,
    apply_change,
    reversal_findings,
    reversed_after,
    set_level,
)
from schemas.codec import EPOCH_ORDINAL

HISTORY_TYPES = ("DunningNoticeIssued", "DunningNoticeReversed", "history.ProposalRejected",
                 "ItemLevelChanged", "ProposalNotExecuted", "NoticeReversalRefused",
                 "DunningLevelImported", "LetterDeliveryRecorded")

# ---------------------------------------------------------------------- raw records
# The replay decodes on the codec's raw path (`Codec.decode_raw`: amounts as unscaled
# ints at scale 3, dates as days since 1970-01-01), which is about a third cheaper than
# full decoding, and turns the few typed fields of a history record into `Decimal` and
# `date` here. Dates and amounts repeat a lot, so both are cached.
_DAYS: dict[int, date] = {}
_AMOUNTS: dict[int, Decimal] = {}
_CACHE_MAX = 1 << 16


class RawValueError(ValueError):
    """A raw value that is no date or amount."""


def _day(n: int | None) -> date | None:
    if n is None:
        return None
    d = _DAYS.get(n)
    if d is None:
        try:
            d = date.fromordinal(n + EPOCH_ORDINAL)
        except (ValueError, OverflowError) as exc:
            raise RawValueError(f"{n} is not a date (days since 1970-01-01)") from exc
        if len(_DAYS) < _CACHE_MAX:
            _DAYS[n] = d
    return d


def _amount(n: int) -> Decimal:
    a = _AMOUNTS.get(n)
    if a is None:
        a = Decimal(n).scaleb(-3)
        if len(_AMOUNTS) < _CACHE_MAX:
            _AMOUNTS[n] = a
    return a


def _typed_items(items: list[dict[str, Any]]) -> None:
    for it in items:
        it["old_last_dunned"] = _day(it["old_last_dunned"])
        it["new_last_dunned"] = _day(it["new_last_dunned"])
        it["old_interest_until"] = _day(it["old_interest_until"])
        it["new_interest_until"] = _day(it["new_interest_until"])
        it["interest"] = _amount(it["interest"])
        for part in it.get("interest_parts") or ():
            part["from"], part["to"] = _day(part["from"]), _day(part["to"])
            part["base_amount"] = _amount(part["base_amount"])
            part["amount"] = _amount(part["amount"])
            part["rate_percent"] = Decimal(part["rate_percent"]).scaleb(-6)


def _part_line(p: dict[str, Any]) -> str:
    """One sub-period of an item's interest (RULES.md section 9), as the report shows it."""
    return (f"{p['from'].isoformat()}..{p['to'].isoformat()} {p['days']} days {p['day_count']} "
            f"{Decimal(p['rate_percent']).normalize():f} % on {p['base_amount']}: {p['amount']}")


def typed(record_type: str, record: dict[str, Any]) -> dict[str, Any]:
    """A history record from `Codec.decode_raw` as `Codec.decode` gives it (in place)."""
    day = _day(record["recorded_for"])
    assert day is not None
    record["recorded_for"] = day
    if record_type in ("DunningNoticeIssued", "DunningNoticeReversed"):
        record["charge"] = _amount(record["charge"])
        record["interest"] = _amount(record["interest"])
        if record_type == "DunningNoticeIssued":
            record["total_due"] = _amount(record["total_due"])
            for claim in record.get("claims") or ():
                claim["amount"] = _amount(claim["amount"])
                claim["open_amount"] = _amount(claim["open_amount"])
                claim["due_date"] = _day(claim["due_date"])
        _typed_items(record["items"])
    elif record_type == "DunningLevelImported":
        for name in ("old_last_dunned", "new_last_dunned", "old_interest_until",
                     "new_interest_until", "notice_date"):
            record[name] = _day(record[name])
    elif record_type == "LetterDeliveryRecorded" and isinstance(record["at"], int):
        try:
            record["at"] = _EPOCH + timedelta(milliseconds=record["at"])
        except OverflowError as exc:
            raise RawValueError(f"{record['at']} is not a timestamp") from exc
    return record


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


ItemState = ItemDunning
"""An item's level, last-dunned and interest-until date as the history left them (the
domain's fold, :mod:`domain.history_fold`, with `date` days)."""


@dataclass(frozen=True, slots=True)
class ItemChange:
    """One `NoticeItemChange`: what a notice or reversal did to one item."""

    item_id: str
    listed: bool
    old_level: int
    new_level: int
    old_last_dunned: date | None
    new_last_dunned: date | None
    old_interest_until: date | None
    new_interest_until: date | None
    interest: Decimal
    interest_parts: tuple[str, ...] = ()
    """The sub-periods of the item's interest, one line each (RULES.md section 9)."""
    interest_reason: str | None = None

    @classmethod
    def of(cls, r: dict[str, Any]) -> ItemChange:
        return cls(r["item_id"], r["listed"], r["old_level"], r["new_level"],
                   r.get("old_last_dunned"), r.get("new_last_dunned"),
                   r.get("old_interest_until"), r.get("new_interest_until"), r["interest"],
                   tuple(_part_line(p) for p in r.get("interest_parts") or ()),
                   r.get("interest_reason"))


@dataclass(slots=True)
class Notice:
    seq: int
    event_id: str
    notice_id: str
    proposal_id: str
    run_id: str
    procedure_id: str
    dunning_group: str
    currency: str
    level: int
    as_of: date
    activities: list[str]
    charge: Decimal
    interest: Decimal
    total_due: Decimal
    items: list[ItemChange]
    command_ids: list[str]
    reversed_items: list[str] = field(default_factory=list)
    reversal_ids: list[str] = field(default_factory=list)

    @property
    def in_effect(self) -> bool:
        """True while at least one listed item is not reversed (the domain's rule)."""
        return in_effect(self.items, self.reversed_items)


@dataclass(slots=True)
class Reversal:
    seq: int
    event_id: str
    reversal_id: str
    notice_id: str
    run_id: str
    as_of: date
    currency: str | None
    item_ids: list[str]
    charge: Decimal
    interest: Decimal
    items: list[ItemChange]
    command_ids: list[str]
    reason: str
    requested_by: str


@dataclass(slots=True)
class Rejection:
    seq: int
    event_id: str
    proposal_id: str
    run_id: str
    as_of: date
    decided_by: str
    reason: str


@dataclass(slots=True)
class Outcome:
    """A decision that changed nothing: an approved proposal not executed
    (``ProposalNotExecuted``, ``subject`` the proposal id) or a notice a reversal could
    not reverse (``NoticeReversalRefused``, ``subject`` the notice id)."""

    seq: int
    event_id: str
    record_type: str
    subject: str
    run_id: str
    as_of: date
    reason: str
    detail: str
    by: str


@dataclass(slots=True)
class LevelChange:
    seq: int
    event_id: str
    item_id: str
    as_of: date
    old_level: int
    new_level: int
    reason: str


@dataclass(slots=True)
class ImportedLevel:
    """A level imported from another system (`DunningLevelImported`): not earned here."""

    seq: int
    event_id: str
    import_event_id: str
    item_id: str
    as_of: date
    change: ItemChange
    notice_date: date | None


@dataclass(slots=True)
class Delivery:
    """What happened to a letter (`LetterDeliveryRecorded`, decision 14): `outcome`
    `sent` (detail: the address), `failed` (the reason) or `printed` (the batch)."""

    seq: int
    event_id: str
    delivery_event_id: str
    command_id: str
    notice_id: str
    outcome: str
    detail: str
    attempt: int
    permanent: bool
    next_step: str | None
    fallback: bool
    at: datetime
    as_of: date

    @property
    def reached(self) -> bool:
        """The customer was reached: the e-mail was taken, or the letter was printed."""
        return self.outcome in ("sent", "printed")


@dataclass(slots=True)
class ClaimItem:
    """A notice's charge or interest kept as an item of the account (`DunningNoticeIssued.
    claims`, RULES.md decision 12): what it claims, what reversals took back, and its open
    amount as the last notice that listed it showed it (payments are not on the history)."""

    item_id: str
    kind: str
    notice_id: str
    seq: int
    amount: Decimal
    due_date: date | None
    reversed: Decimal = Decimal(0)
    listed_open: Decimal | None = None
    listed_by: str | None = None

    @property
    def claimed(self) -> Decimal:
        """What it claims after the reversals."""
        return self.amount - self.reversed


@dataclass(frozen=True, slots=True)
class RecordRef:
    """One record of the account's chain, as evidence: where it is and its hashes."""

    seq: int
    record_type: str
    event_id: str
    recorded_for: date
    where: Location
    hash: str
    prev_hash: str
    applied: bool


@dataclass(slots=True)
class AccountHistory:
    """The rebuilt dunning history of one account."""

    account_id: str
    as_of: date | None = None
    #: last seq of the chain read in order, and its hash (filled in by the replay)
    seq: int = 0
    head: str = ""
    chain_intact: bool = True
    duplicates: int = 0
    records: list[RecordRef] = field(default_factory=list)
    notices: dict[str, Notice] = field(default_factory=dict)
    reversals: list[Reversal] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    #: approved proposals not executed and refused reversals (they change no item)
    outcomes: list[Outcome] = field(default_factory=list)
    level_changes: list[LevelChange] = field(default_factory=list)
    imported: list[ImportedLevel] = field(default_factory=list)
    #: what happened to the letters of its notices, in chain order
    deliveries: list[Delivery] = field(default_factory=list)
    items: dict[str, ItemDunning[date]] = field(default_factory=dict)
    #: charge and interest items of notices (RULES.md decision 12), by item id
    claims: dict[str, ClaimItem] = field(default_factory=dict)
    #: records not applied because they are recorded for a date after `as_of`
    after_as_of: int = 0
    problems: list[Problem] = field(default_factory=list)
    #: (record type, record, ref) of every record of the intact chain, when kept
    raw: list[tuple[str, dict[str, Any], RecordRef]] | None = None

    @property
    def currency(self) -> str | None:
        return next((n.currency for n in self.notices.values()), None)


class Rebuilder:
    """Applies history records, in chain order, to per-account histories."""

    def __init__(self, as_of: date | None = None, *, keep_records: bool = False) -> None:
        self.as_of = as_of
        self.keep_records = keep_records
        self.check = as_of is None
        self.accounts: dict[str, AccountHistory] = {}
        self.problems: list[Problem] = []
        self._events: dict[str, dict[str, int]] = {}

    def account(self, account_id: str) -> AccountHistory:
        acc = self.accounts.get(account_id)
        if acc is None:
            acc = self.accounts[account_id] = AccountHistory(
                account_id, self.as_of, raw=[] if self.keep_records else None)
        return acc

    def apply(self, record_type: str, record: dict[str, Any], where: Location,
              body_hash: str) -> bool:
        """Apply one record that extends its account's intact chain; False if it is
        recorded after `as_of` (then only its reference is kept)."""
        acc = self.account(record["account_id"])
        recorded_for: date = record["recorded_for"]
        applied = self.as_of is None or recorded_for <= self.as_of
        ref = RecordRef(record["seq"], record_type, record["event_id"], recorded_for, where,
                        body_hash, record["prev_hash"], applied)
        acc.records.append(ref)
        if acc.raw is not None:
            acc.raw.append((record_type, record, ref))
        if not applied:
            acc.after_as_of += 1
            return False
        ctx = _Context(self, acc, ref)
        if self.check:
            seen = self._events.setdefault(acc.account_id, {})
            if ref.event_id in seen:
                ctx.problem(f"event {ref.event_id} was already recorded at seq "
                            f"{seen[ref.event_id]}")
            seen[ref.event_id] = ref.seq
        if record_type == "DunningNoticeIssued":
            self._issued(ctx, record)
        elif record_type == "DunningNoticeReversed":
            self._reversed(ctx, record)
        elif record_type == "history.ProposalRejected":
            acc.rejected.append(Rejection(ref.seq, ref.event_id, record["proposal_id"],
                                          record["run_id"], recorded_for, record["decided_by"],
                                          record["reason"]))
        elif record_type == "ItemLevelChanged":
            self._level_changed(ctx, record)
        elif record_type == "DunningLevelImported":
            self._imported(ctx, record)
        elif record_type == "LetterDeliveryRecorded":
            self._delivery(ctx, record)
        elif record_type in ("ProposalNotExecuted", "NoticeReversalRefused"):
            subject = record.get("proposal_id") or record.get("notice_id") or ""
            acc.outcomes.append(Outcome(ref.seq, ref.event_id, record_type, subject,
                                        record["run_id"], recorded_for, record["reason"],
                                        record.get("detail") or "",
                                        record.get("requested_by") or ""))
        return True

    def forget(self, account_ids: list[str]) -> None:
        for account_id in account_ids:
            self.accounts.pop(account_id, None)
            self._events.pop(account_id, None)

    # ------------------------------------------------------------------ record types
    def _issued(self, ctx: _Context, r: dict[str, Any]) -> None:
        acc, ref = ctx.acc, ctx.ref
        if self.check and r["notice_id"] in acc.notices:
            ctx.problem(f"notice {r['notice_id']} was already issued at seq "
                        f"{acc.notices[r['notice_id']].seq}")
        changes = [ItemChange.of(i) for i in r["items"]]
        acc.notices[r["notice_id"]] = Notice(
            ref.seq, ref.event_id, r["notice_id"], r["proposal_id"], r["run_id"],
            r["procedure_id"], r["dunning_group"], r["currency"], r["level"], ref.recorded_for,
            list(r["activities"]), r["charge"], r["interest"], r["total_due"], changes,
            list(r["command_ids"]))
        for change in changes:
            ctx.change(change)
        if r.get("claims"):
            self._claims(ctx, r)

    def _claims(self, ctx: _Context, r: dict[str, Any]) -> None:
        """The charge and interest items a notice keeps, and those of earlier notices it
        lists (with their open amount then)."""
        claims = ctx.acc.claims
        for c in r["claims"]:
            if c["notice_id"] == r["notice_id"]:
                claims[c["item_id"]] = ClaimItem(c["item_id"], c["kind"], c["notice_id"],
                                                 ctx.ref.seq, c["amount"], c["due_date"])
                continue
            known = claims.get(c["item_id"])
            if known is None:
                if self.check:
                    ctx.problem(f"lists {c['kind']} item {c['item_id']}, which no notice of "
                                "the account's history keeps")
                continue
            if self.check and c["open_amount"] > known.claimed:
                ctx.problem(f"lists {c['item_id']} open {c['open_amount']}, more than the "
                            f"{known.claimed} it claims")
            known.listed_open, known.listed_by = c["open_amount"], r["notice_id"]

    def _reversed(self, ctx: _Context, r: dict[str, Any]) -> None:
        acc, ref = ctx.acc, ctx.ref
        notice = acc.notices.get(r["notice_id"])
        changes = [ItemChange.of(i) for i in r["items"]]
        if notice is None:
            if self.check:
                ctx.problem(f"reverses notice {r['notice_id']}, which the account's history "
                            "does not hold")
        else:
            if self.check:
                for item_id, what in reversal_findings(notice.items, notice.reversed_items,
                                                       r["item_ids"]):
                    ctx.problem(f"item {item_id} is not on notice {notice.notice_id}"
                                if what == "not_on_notice" else
                                f"item {item_id} of notice {notice.notice_id} was already "
                                "reversed")
            notice.reversed_items = reversed_after(notice.reversed_items, r["item_ids"])
            notice.reversal_ids.append(r["reversal_id"])
            _reverse_claims(acc.claims, notice.notice_id, r["charge"], r["interest"])
        acc.reversals.append(Reversal(
            ref.seq, ref.event_id, r["reversal_id"], r["notice_id"], r["run_id"],
            ref.recorded_for, r.get("currency") or (notice.currency if notice else None),
            list(r["item_ids"]), r["charge"], r["interest"], changes, list(r["command_ids"]),
            r["reason"], r["requested_by"]))
        for change in changes:
            ctx.change(change)

    def _level_changed(self, ctx: _Context, r: dict[str, Any]) -> None:
        acc, ref = ctx.acc, ctx.ref
        before = set_level(acc.items, r["item_id"], r["old_level"], r["new_level"], ref.seq)
        if self.check and before is not None:
            ctx.problem(f"item {r['item_id']}: the record says it was at level "
                        f"{r['old_level']}, the history before it left level {before.level}"
                        + _by(before))
        acc.level_changes.append(LevelChange(ref.seq, ref.event_id, r["item_id"],
                                             ref.recorded_for, r["old_level"],
                                             r["new_level"], r["reason"]))


    def _imported(self, ctx: _Context, r: dict[str, Any]) -> None:
        change = ItemChange(r["item_id"], False, r["old_level"], r["new_level"],
                            r["old_last_dunned"], r["new_last_dunned"],
                            r["old_interest_until"], r["new_interest_until"], Decimal(0))
        ctx.acc.imported.append(ImportedLevel(ctx.ref.seq, ctx.ref.event_id,
                                              r["import_event_id"], r["item_id"],
                                              ctx.ref.recorded_for, change, r["notice_date"]))
        ctx.change(change)

    def _delivery(self, ctx: _Context, r: dict[str, Any]) -> None:
        """A letter's outcome: it changes no item; its notice must be one of the account's
        and the letter one of that notice's commands."""
        notice = ctx.acc.notices.get(r["notice_id"])
        if self.check and notice is None:
            ctx.problem(f"a letter outcome for notice {r['notice_id']}, which the account's "
                        "history does not hold")
        elif self.check and notice is not None and r["command_id"] not in notice.command_ids:
            ctx.problem(f"a letter outcome for command {r['command_id']}, which notice "
                        f"{notice.notice_id} did not emit")
        ctx.acc.deliveries.append(Delivery(
            ctx.ref.seq, ctx.ref.event_id, r["delivery_event_id"], r["command_id"],
            r["notice_id"], r["outcome"], r["detail"], r["attempt"], r["permanent"],
            r.get("next_step"), r["fallback"], r["at"], ctx.ref.recorded_for))


def _reverse_claims(claims: dict[str, ClaimItem], notice_id: str, charge: Decimal,
                    interest: Decimal) -> None:
    """A reversal takes back what it reverses of the notice's charge and interest items."""
    for kind, amount in (("charge", charge), ("interest", interest)):
        claim = claims.get(f"{notice_id}/{kind}")
        if claim is not None and amount:
            claim.reversed += amount


def _by(item: ItemState) -> str:
    return f" (seq {item.changed_by})" if item.changed_by is not None else " (never dunned)"


def _show(values: tuple[int, date | None, date | None]) -> str:
    level, last, until = values
    return (f"level {level}, last dunned {last.isoformat() if last else '-'}, "
            f"interest until {until.isoformat() if until else '-'}")


@dataclass(slots=True)
class _Context:
    rebuilder: Rebuilder
    acc: AccountHistory
    ref: RecordRef

    def problem(self, detail: str) -> None:
        p = Problem("inconsistent", self.acc.account_id, detail, self.ref.seq, self.ref.where,
                    self.ref.record_type, self.ref.event_id)
        self.rebuilder.problems.append(p)
        self.acc.problems.append(p)

    def change(self, ch: ItemChange) -> None:
        before = apply_change(self.acc.items, ch, self.ref.seq)
        if self.rebuilder.check and before is not None:
            old = (ch.old_level, ch.old_last_dunned, ch.old_interest_until)
            self.problem(f"item {ch.item_id}: the record starts from {_show(old)}; the history "
                         f"before it left {_show(before.values())}{_by(before)}")
