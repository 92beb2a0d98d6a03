"""The ingest fold: how one input event changes an account (RULES.md "Account state
(ingest)").

:func:`evolve` applies an event at most once by its ``event_id`` and hands the account's
facts to :mod:`domain.settlement`, which derives the items' status and open amounts from
the set of facts, never from the order they arrived in.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from domain.errors import Rejected
from domain.events import (
    AccountUpserted,
    DueDateChanged,
    DunningHistoryImported,
    DunningLockReleased,
    DunningLockSet,
    InputEvent,
    InstallmentPlanCancelled,
    InstallmentPlanCreated,
    InvoiceCancelled,
    InvoiceIssued,
    LetterDelivery,
    PaymentReceived,
    PaymentReversed,
)
from domain.history import DunningLevelImported, LetterDeliveryRecorded
from domain.ids import history_event_id
from domain.money import MINOR_UNITS
from domain.retention import event_day
from domain.settlement import materialize, resettled
from domain.state import (
    IN_PLAN,
    OPEN,
    SEEN_ENTRY_SIZE,
    Account,
    ImportedLevel,
    Invoice,
    Item,
    Lock,
    Master,
    Payment,
    Plan,
    with_changes,
)

MAX_IMPORTED_LEVEL = 99
"""The highest level an import may name (a procedure's levels are not known at ingest:
a level above the procedure's highest counts as its highest, as after a procedure
change)."""

_SEEN_KEY = 8
_SEEN_DIGEST = 4
_SEEN_SIZE = SEEN_ENTRY_SIZE
assert _SEEN_SIZE == _SEEN_KEY + _SEEN_DIGEST


def _hash(data: bytes, size: int) -> bytes:
    return hashlib.blake2b(data, digest_size=size).digest()


def _find_seen(seen: bytes, key: bytes) -> int:
    i = seen.find(key)
    while i >= 0:
        if i % _SEEN_SIZE == 0:
            return i
        i = seen.find(key, i + 1)
    return -1


def evolve(account: Account, event: InputEvent, digest: bytes) -> Account:
    """``account`` after ``event``, applied at most once by ``event_id``.

    ``digest`` identifies the event's content (the processor hashes the record). An
    event id seen before with the same digest returns ``account`` itself, unchanged; with
    another digest it raises ``Rejected("duplicate_event_id")``. Input that makes no
    sense raises :class:`Rejected` and leaves the account as it was.
    """
    key = _hash(event.event_id.encode(), _SEEN_KEY)
    dig = _hash(digest, _SEEN_DIGEST)
    seen = account.seen
    if seen:
        pos = _find_seen(seen, key)
        if pos >= 0:
            if seen[pos + _SEEN_KEY : pos + _SEEN_SIZE] == dig:
                return account
            raise Rejected(
                "duplicate_event_id",
                f"event id {event.event_id!r} was applied before with other content",
            )
    if event.account_id != account.account_id:
        raise Rejected(
            "wrong_account",
            f"event for account {event.account_id!r} given to account {account.account_id!r}",
        )
    day = event_day(event)
    if day is not None and day < account.horizon:
        raise Rejected(
            "before_retention_horizon",
            f"event {event.event_id!r} is of a day before the account's retention horizon "
            f"({account.horizon}): it may have been applied and forgotten",
        )
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise Rejected("unknown_event", f"no rule for {type(event).__name__}")
    changes = handler(account, event)
    if day is None:
        changes["seen"] = seen + key + dig
    else:
        changes["seen"], changes["seen_days"] = _remember(seen, account.seen_days, key + dig, day)
    return with_changes(account, changes)


def _remember(
    seen: bytes, days: tuple[tuple[int, int], ...], entry: bytes, day: int
) -> tuple[bytes, tuple[tuple[int, int], ...]]:
    """``seen`` and ``seen_days`` with ``entry`` added to the group of ``day``."""
    at = 0
    for i, (d, n) in enumerate(days):
        if d >= day:
            if d == day:
                at += n
                new = (*days[:i], (d, n + 1), *days[i + 1 :])
            else:
                new = (*days[:i], (day, 1), *days[i:])
            break
        at += n
    else:
        new = (*days, (day, 1))
    pos = at * _SEEN_SIZE
    return seen[:pos] + entry + seen[pos:], new


def _currency(currency: str) -> None:
    if currency not in MINOR_UNITS:
        raise Rejected("unknown_currency", f"unknown currency {currency!r}")


def _positive(what: str, amount: int) -> None:
    if amount <= 0:
        raise Rejected("non_positive_amount", f"{what} must be positive, got {amount}")


def _insert_id(values: tuple[str, ...], value: str) -> tuple[str, ...]:
    if value in values:
        return values
    return tuple(sorted((*values, value)))


def _on_account_upserted(account: Account, e: AccountUpserted) -> dict[str, Any]:
    _currency(e.currency)
    if not e.dunning_procedure:
        raise Rejected("missing_field", "dunning_procedure must not be empty")
    master = Master(
        name=e.name,
        language=e.language,
        currency=e.currency,
        dunning_procedure=e.dunning_procedure,
        postal_address=e.postal_address,
        email=e.email or None,
    )
    if master == account.master:
        return {}
    return {"master": master}


def _on_lock_set(account: Account, e: DunningLockSet) -> dict[str, Any]:
    if e.valid_from > e.valid_to:
        raise Rejected("invalid_lock_period", f"lock {e.lock_id!r}: valid_from is after valid_to")
    lock = Lock(e.lock_id, e.reason, e.valid_from, e.valid_to, e.item_id or None)
    locks = [x for x in account.locks if x.lock_id != e.lock_id]
    locks.append(lock)
    locks.sort(key=lambda x: x.lock_id)
    return {"locks": tuple(locks)}


def _on_lock_released(account: Account, e: DunningLockReleased) -> dict[str, Any]:
    locks = tuple(x for x in account.locks if x.lock_id != e.lock_id)
    if len(locks) == len(account.locks):
        return {}
    return {"locks": locks}


def _instalment_ids(account: Account) -> set[str]:
    return {i.item_id for p in account.plans for i in p.installments}


def _on_invoice_issued(account: Account, e: InvoiceIssued) -> dict[str, Any]:
    _currency(e.currency)
    if not e.items:
        raise Rejected("empty_invoice", f"invoice {e.invoice_id!r} has no items")
    item_ids = [x.item_id for x in e.items]
    if len(set(item_ids)) != len(item_ids):
        raise Rejected("duplicate_item_id", f"invoice {e.invoice_id!r} names an item twice")
    for x in e.items:
        _positive(f"item {x.item_id!r} amount", x.amount)
    for inv in account.invoices:
        if inv.invoice_id == e.invoice_id:
            if _same_invoice(account, inv, e):
                return {}
            raise Rejected(
                "invoice_conflict", f"invoice {e.invoice_id!r} was issued before with other content"
            )
    known = {it.item_id for it in account.items} | _instalment_ids(account)
    clash = sorted(set(item_ids) & known)
    if clash:
        raise Rejected("duplicate_item_id", f"item id {clash[0]!r} is already used on the account")
    pending_due = dict(account.due_changes)
    new_items = list(account.items)
    for x in e.items:
        new_items.append(
            Item(
                item_id=x.item_id,
                invoice_id=e.invoice_id,
                currency=e.currency,
                amount=x.amount,
                due_day=pending_due.pop(x.item_id, x.due_date),
                procedure=x.dunning_procedure or None,
                group=x.dunning_group or "",
                plan_id=None,
                status=OPEN,
                open_amount=0,
            )
        )
    invoices = tuple(
        sorted(
            (*account.invoices, Invoice(e.invoice_id, e.currency, e.issued_on)), key=_invoice_key
        )
    )
    return resettled(
        account,
        invoices=invoices,
        items=_with_imports(account, materialize(new_items, account.plans, pending_due)),
        due_changes=tuple(sorted(pending_due.items())),
    )


def _same_invoice(account: Account, inv: Invoice, e: InvoiceIssued) -> bool:
    """Whether ``e`` issues ``inv`` again with the same content (a redelivery)."""
    return (
        inv.currency == e.currency
        and inv.issued_day == e.issued_on
        and sorted(
            (it.item_id, it.amount, it.procedure, it.group)
            for it in account.items
            if it.invoice_id == e.invoice_id and it.plan_id is None
        )
        == sorted(
            (x.item_id, x.amount, x.dunning_procedure or None, x.dunning_group or "")
            for x in e.items
        )
    )


def _invoice_key(inv: Invoice) -> str:
    return inv.invoice_id


def _on_invoice_cancelled(account: Account, e: InvoiceCancelled) -> dict[str, Any]:
    if e.invoice_id in account.cancelled_invoices:
        return {}
    return resettled(
        account, cancelled_invoices=_insert_id(account.cancelled_invoices, e.invoice_id)
    )


def _payment_key(p: Payment) -> tuple[int, str]:
    return (p.received_day, p.payment_id)


def _on_payment_received(account: Account, e: PaymentReceived) -> dict[str, Any]:
    _currency(e.currency)
    _positive(f"payment {e.payment_id!r} amount", e.amount)
    allocations = tuple(e.allocations or ())
    for a in allocations:
        _positive(f"allocation to {a.item_id!r}", a.amount)
    if sum(a.amount for a in allocations) > e.amount:
        raise Rejected(
            "allocations_exceed_amount",
            f"payment {e.payment_id!r}: allocations add up to more than its amount",
        )
    payment = Payment(e.payment_id, e.amount, e.currency, e.received_on, allocations)
    for p in account.payments:
        if p.payment_id == e.payment_id:
            if p == payment:
                return {}
            raise Rejected(
                "payment_conflict",
                f"payment {e.payment_id!r} was received before with other content",
            )
    payments = tuple(sorted((*account.payments, payment), key=_payment_key))
    return resettled(account, payments=payments)


def _on_payment_reversed(account: Account, e: PaymentReversed) -> dict[str, Any]:
    if e.payment_id in account.reversed_payments:
        return {}
    return resettled(account, reversed_payments=_insert_id(account.reversed_payments, e.payment_id))


def _on_due_date_changed(account: Account, e: DueDateChanged) -> dict[str, Any]:
    items = account.items
    for index, it in enumerate(items):
        if it.item_id == e.item_id:
            if it.due_day == e.due_date:
                return {}
            changed = (*items[:index], replace(it, due_day=e.due_date), *items[index + 1 :])
            return resettled(account, items=changed)
    pending = dict(account.due_changes)
    pending[e.item_id] = e.due_date
    return {"due_changes": tuple(sorted(pending.items()))}


def _on_plan_created(account: Account, e: InstallmentPlanCreated) -> dict[str, Any]:
    where = f"instalment plan {e.plan_id!r}"
    sources = tuple(e.item_ids)
    if not sources:
        raise Rejected("empty_plan", f"{where} names no source item")
    if not e.installments:
        raise Rejected("empty_plan", f"{where} has no instalment")
    if len(set(sources)) != len(sources):
        raise Rejected("duplicate_item_id", f"{where} names a source item twice")
    inst_ids = [i.item_id for i in e.installments]
    if len(set(inst_ids)) != len(inst_ids):
        raise Rejected("duplicate_item_id", f"{where} names an instalment twice")
    for i in e.installments:
        _positive(f"{where} instalment {i.item_id!r} amount", i.amount)
    plan = Plan(e.plan_id, sources, tuple(e.installments))
    for p in account.plans:
        if p.plan_id == e.plan_id:
            if p == plan:
                return {}
            raise Rejected("plan_conflict", f"{where} was created before with other content")
    known = {it.item_id: it for it in account.items}
    used = set(known) | _instalment_ids(account) | set(sources)
    clash = sorted(set(inst_ids) & used)
    if clash:
        raise Rejected("duplicate_item_id", f"{where}: instalment id {clash[0]!r} is already used")
    currencies = {known[s].currency for s in sources if s in known}
    if len(currencies) > 1:
        raise Rejected(
            "plan_currency_mismatch",
            f"{where}: source items are in {', '.join(sorted(currencies))}",
        )
    for s in sources:
        it = known.get(s)
        if it is None:
            continue
        if it.plan_id is not None:
            raise Rejected("nested_plan", f"{where}: source {s!r} is itself an instalment")
        if it.status == IN_PLAN:
            raise Rejected("item_in_active_plan", f"{where}: source {s!r} is in an active plan")
    pending_due = dict(account.due_changes)
    plans = tuple(sorted((*account.plans, plan), key=_plan_key))
    items = _with_imports(account, materialize(list(account.items), plans, pending_due))
    return resettled(
        account,
        plans=plans,
        items=items,
        due_changes=tuple(sorted(pending_due.items())),
    )


def _plan_key(p: Plan) -> str:
    return p.plan_id


def _on_plan_cancelled(account: Account, e: InstallmentPlanCancelled) -> dict[str, Any]:
    if e.plan_id in account.cancelled_plans:
        return {}
    return resettled(account, cancelled_plans=_insert_id(account.cancelled_plans, e.plan_id))


def _with_imports(account: Account, items: list[Item]) -> list[Item]:
    """``items`` (the account's and those an event added: invoice items, instalments)
    with the imported levels of the added ones; the account's keep theirs."""
    if not account.imports:
        return items
    imported = {imp.item_id: imp for imp in account.imports}
    had = {it.item_id for it in account.items}
    return [it if it.item_id in had else _imported_item(imported.get(it.item_id), it)
            for it in items]


def _imported_item(imp: ImportedLevel | None, it: Item) -> Item:
    """``it`` with the values of its imported level, if it has one."""
    if imp is None:
        return it
    return replace(
        it,
        level=imp.level,
        last_dunned_day=imp.last_dunned_day,
        interest_until_day=imp.interest_until_day,
    )


def _import_key(imp: ImportedLevel) -> tuple[int, int, int, int]:
    """Which of two imports of one item stands, whatever order they came in: the later
    last-dunned day, then the higher level, then the later dates."""
    return (
        imp.last_dunned_day,
        imp.level,
        -1 if imp.interest_until_day is None else imp.interest_until_day,
        -1 if imp.notice_day is None else imp.notice_day,
    )


def _dunned_here(account: Account, item_id: str, old: ImportedLevel | None) -> bool:
    """Whether this engine has put the item on a notice: one of the account's notices
    lists it, or (once retention forgot that notice) its dunning values are not those its
    import, or none, gave it."""
    if any(line.item_id == item_id for n in account.notices for line in n.lines):
        return True
    given = (0, None, None) if old is None else (old.level, old.last_dunned_day,
                                                 old.interest_until_day)
    return any((it.level, it.last_dunned_day, it.interest_until_day) != given
               for it in account.items if it.item_id == item_id)


def check_import(e: DunningHistoryImported) -> None:
    where = f"imported level of item {e.item_id!r}"
    if not 1 <= e.level <= MAX_IMPORTED_LEVEL:
        raise Rejected("invalid_import", f"{where}: level {e.level} is not 1..{MAX_IMPORTED_LEVEL}")
    if e.notice_date is not None and e.notice_date < e.last_dunned_date:
        raise Rejected("invalid_import", f"{where}: notice_date is before last_dunned_date")


def _on_history_imported(account: Account, e: DunningHistoryImported) -> dict[str, Any]:
    """An imported level (RULES.md 10, "Imported levels"): kept on the account, and given
    to the item (now or when its invoice arrives). The later of two imports of an item
    stands; an item this engine has dunned already refuses an import."""
    check_import(e)
    imp = ImportedLevel(e.item_id, e.level, e.last_dunned_date, e.interest_until_date,
                        e.notice_date)
    others = [x for x in account.imports if x.item_id != e.item_id]
    old = next((x for x in account.imports if x.item_id == e.item_id), None)
    if old is not None and _import_key(old) >= _import_key(imp):
        return {}
    if _dunned_here(account, e.item_id, old):
        raise Rejected(
            "item_already_dunned",
            f"item {e.item_id!r} has a notice of this engine: its level is not imported",
        )
    imports = tuple(sorted((*others, imp), key=lambda x: x.item_id))
    items = account.items
    for index, it in enumerate(items):
        if it.item_id == e.item_id:
            changed = (*items[:index], _imported_item(imp, it), *items[index + 1 :])
            return {"imports": imports, "items": changed}
    return {"imports": imports}


def import_history(before: Account, after: Account,
                   e: DunningHistoryImported) -> DunningLevelImported | None:
    """The history record of an import that changed the account (`before` -> `after`,
    by :func:`evolve`): the item's level is imported, not earned. None when the import
    changed nothing (applied before, or an earlier import of the item stands)."""
    new = next((x for x in after.imports if x.item_id == e.item_id), None)
    old = next((x for x in before.imports if x.item_id == e.item_id), None)
    if new is None or new == old:
        return None
    return DunningLevelImported(
        event_id=history_event_id("DunningLevelImported", e.event_id),
        account_id=after.account_id, import_event_id=e.event_id, item_id=e.item_id,
        old_level=0 if old is None else old.level, new_level=new.level,
        old_last_dunned=None if old is None else old.last_dunned_day,
        new_last_dunned=new.last_dunned_day,
        old_interest_until=None if old is None else old.interest_until_day,
        new_interest_until=new.interest_until_day, notice_date=new.notice_day,
        as_of_date=new.last_dunned_day)


#: The outcomes of a letter, and the next steps of a failed e-mail (decision 14).
DELIVERY_OUTCOMES = ("sent", "failed", "printed")
NEXT_STEPS = ("retry", "print", "wait")
_EPOCH_DAY = 719_163  # date(1970, 1, 1).toordinal()
_DAY_MS = 86_400_000


def check_delivery(e: LetterDelivery) -> None:
    """A delivery outcome that makes sense, or ``Rejected("invalid_delivery")``."""
    where = f"delivery of letter {e.command_id!r}"
    if e.outcome not in DELIVERY_OUTCOMES:
        raise Rejected("invalid_delivery", f"{where}: unknown outcome {e.outcome!r}")
    if e.outcome == "failed" and e.next_step not in NEXT_STEPS:
        raise Rejected("invalid_delivery", f"{where}: next_step {e.next_step!r} is not "
                       f"one of {', '.join(NEXT_STEPS)}")
    if e.outcome != "printed" and e.attempt < 1:
        raise Rejected("invalid_delivery", f"{where}: attempt {e.attempt} is not 1 or more")
    if not e.command_id or not e.notice_id:
        raise Rejected("invalid_delivery", f"{where}: command_id and notice_id must be set")


def _on_letter_delivery(account: Account, e: LetterDelivery) -> dict[str, Any]:
    """A letter's outcome changes no state a run reads: the account only remembers its
    id (by :func:`evolve`), so the history records it once (:func:`delivery_history`)."""
    check_delivery(e)
    return {}


def delivery_history(e: LetterDelivery) -> LetterDeliveryRecorded:
    """The history record of a letter's outcome, recorded for the day it happened."""
    return LetterDeliveryRecorded(
        event_id=history_event_id("LetterDeliveryRecorded", e.event_id),
        account_id=e.account_id, delivery_event_id=e.event_id, command_id=e.command_id,
        notice_id=e.notice_id, outcome=e.outcome, detail=e.detail, attempt=e.attempt,
        permanent=e.permanent, next_step=e.next_step, fallback=e.fallback, at_ms=e.at_ms,
        as_of_date=_EPOCH_DAY + e.at_ms // _DAY_MS)


_HANDLERS: dict[type, Any] = {
    AccountUpserted: _on_account_upserted,
    DunningLockSet: _on_lock_set,
    DunningLockReleased: _on_lock_released,
    InvoiceIssued: _on_invoice_issued,
    InvoiceCancelled: _on_invoice_cancelled,
    PaymentReceived: _on_payment_received,
    PaymentReversed: _on_payment_reversed,
    DueDateChanged: _on_due_date_changed,
    InstallmentPlanCreated: _on_plan_created,
    InstallmentPlanCancelled: _on_plan_cancelled,
    DunningHistoryImported: _on_history_imported,
    LetterDelivery: _on_letter_delivery,
}


# -- derivation ----------------------------------------------------------------------------
