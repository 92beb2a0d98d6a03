"""The state of one contract account and how input events change it (RULES.md
"Account state (ingest)").

The account keeps the *facts* it has seen (master data, locks, invoices and their items,
payments, cancellations, reversals, instalment plans, due-date changes) and derives from
them, after every change, each item's ``status`` and ``open_amount``. The derivation
(:func:`_settle`) looks only at the set of facts, never at the order they arrived in:

1. Status of each item: an item of a cancelled invoice is ``CANCELLED``; an instalment
   of a cancelled plan is ``CLOSED``; a source item of an active plan is ``IN_PLAN``;
   anything else is ``OPEN``. Only ``OPEN`` and ``IN_PLAN`` items have an open amount.
2. Payments that are not reversed, in order of (received day, payment id), apply their
   allocations, in the order given, to the items they name: an allocation clears what
   it can of its item; the rest, or the whole allocation when the item is cancelled or
   in another currency than the payment, joins the payment's unallocated rest. An
   allocation to an item the account does not know yet is *held*: it is neither
   applied nor unallocated until the item arrives. An allocation to an instalment of a
   cancelled plan is re-applied to the plan's source items in (due day, item id) order.
3. The unallocated money of every currency then clears the ``OPEN`` items of that
   currency in (due day, item id) order; what is left is the account's credit in that
   currency (:func:`credit`), used the same way by items that arrive later.

Instalment plans: a plan becomes effective when all its source items are known (the
invoice, and the account, may arrive after the plan, on other topics): until then it is
held, its amounts kept exactly in thousandths of a unit, and converted to minor units of
its sources' currency when it takes effect. Its instalments then become items
of their own (``invoice_id`` and ``plan_id`` are the plan id; currency, procedure and
dunning group those of the plan's first source item). While it is active, its sources
are ``IN_PLAN``: not dunned, and no unallocated money. When it is cancelled, its
instalments are closed and the sources are ``OPEN`` again with the level and interest
date they had (a plan never changes them). What was paid on the instalments is not
lost: allocations to them move to the sources (step 2) and unallocated money now
clears the sources like any open item (step 3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from domain import ids
from domain.commands import Recipient
from domain.errors import Rejected
from domain.events import (
    AccountUpserted,
    Allocation,
    DueDateChanged,
    DunningLockReleased,
    DunningLockSet,
    InputEvent,
    Installment,
    InstallmentPlanCancelled,
    InstallmentPlanCreated,
    InvoiceCancelled,
    InvoiceIssued,
    PaymentReceived,
    PaymentReversed,
    PostalAddress,
)
from domain.money import MINOR_UNITS, milli_to_minor

if TYPE_CHECKING:
    from domain.proposal import Proposal

__all__ = [
    "CANCELLED",
    "CLOSED",
    "IN_PLAN",
    "OPEN",
    "Account",
    "ExecutedNotice",
    "Invoice",
    "Item",
    "Lock",
    "Master",
    "NoticeLine",
    "Payment",
    "Plan",
    "active_plan_ids",
    "credit",
    "evolve",
    "group_last_notice_day",
    "held",
    "is_locked",
    "new_account",
    "notice_ids",
    "plan_status",
]

OPEN = 0
"""An item that can be paid and dunned (its open amount may be 0: paid)."""
CANCELLED = 1
"""An item of a cancelled invoice."""
IN_PLAN = 2
"""A source item of an active instalment plan."""
CLOSED = 3
"""An instalment of a cancelled instalment plan."""


@dataclass(frozen=True, slots=True)
class Master:
    name: str
    language: str
    currency: str
    dunning_procedure: str
    postal_address: PostalAddress
    email: str | None


@dataclass(frozen=True, slots=True)
class Lock:
    lock_id: str
    reason: str
    valid_from: int
    valid_to: int
    item_id: str | None


@dataclass(frozen=True, slots=True)
class Invoice:
    invoice_id: str
    currency: str
    issued_day: int


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    invoice_id: str
    """The invoice; for an instalment, the plan id."""
    currency: str
    amount: int
    due_day: int
    """The current due date (after every ``DueDateChanged``)."""
    procedure: str | None
    """Override of the account's dunning procedure, or ``None``."""
    group: str
    """Dunning group key, ``""`` by default."""
    plan_id: str | None
    """Set for an instalment: the plan it belongs to."""
    status: int
    """Derived: ``OPEN``, ``CANCELLED``, ``IN_PLAN`` or ``CLOSED``."""
    open_amount: int
    """Derived from the set of events seen."""
    level: int = 0
    last_dunned_day: int | None = None
    interest_until_day: int | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    amount: int
    currency: str
    received_day: int
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    plan_id: str
    item_ids: tuple[str, ...]
    installments: tuple[Installment, ...]


@dataclass(frozen=True, slots=True)
class NoticeLine:
    """What an executed notice did to one item (enough to rebuild and reverse it).

    A listed line's new last-dunned day is the notice's as-of day, and its new
    interest-until day too when the notice posted interest; a line that is not listed
    only changed the level.
    """

    item_id: str
    listed: bool
    old_level: int
    new_level: int
    old_last_dunned: int | None
    old_interest_until: int | None
    interest: int
    """The item's share of the notice's interest."""
    open_amount: int
    due_day: int


@dataclass(frozen=True, slots=True)
class ExecutedNotice:
    """An executed notice as the account remembers it.

    Its proposal id and notice id are derived (:func:`notice_ids`), and so are its
    command ids (``ids.command_id``), so they are not stored.
    """

    run_id: str
    procedure_id: str
    group: str
    currency: str
    level: int
    as_of: int
    activities: tuple[str, ...]
    charge: int
    interest: int
    lines: tuple[NoticeLine, ...]
    plan_ids: tuple[str, ...]
    """Plans asked to be deactivated (only with ``deactivate_installment_plan``)."""
    language: str | None
    recipient: Recipient | None
    """Snapshot of the letter's recipient (only with ``letter``)."""
    reversed_items: tuple[str, ...] = ()

    def in_effect(self) -> bool:
        """True while at least one listed item is not reversed."""
        rev = self.reversed_items
        return any(line.listed and line.item_id not in rev for line in self.lines)

    def new_values(self, line: NoticeLine) -> tuple[int, int | None, int | None]:
        """(level, last dunned day, interest-until day) the notice gave ``line``'s item."""
        if not line.listed:
            return line.new_level, line.old_last_dunned, line.old_interest_until
        until = self.as_of if self.interest > 0 else line.old_interest_until
        return line.new_level, self.as_of, until


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    master: Master | None = None
    locks: tuple[Lock, ...] = ()
    invoices: tuple[Invoice, ...] = ()
    items: tuple[Item, ...] = ()
    """Every item, invoice items and instalments, sorted by item id."""
    payments: tuple[Payment, ...] = ()
    """Sorted by (received day, payment id)."""
    cancelled_invoices: tuple[str, ...] = ()
    reversed_payments: tuple[str, ...] = ()
    """Ids of reversed payments (a reversal may arrive before its payment)."""
    plans: tuple[Plan, ...] = ()
    cancelled_plans: tuple[str, ...] = ()
    due_changes: tuple[tuple[str, int], ...] = ()
    """Due-date changes of items not known yet: (item id, due day)."""
    notices: tuple[ExecutedNotice, ...] = ()
    """Executed notices, in execution order."""
    pending: tuple[Proposal, ...] = ()
    """Proposals awaiting a decision."""
    seen: bytes = b""
    """Applied events: 12 bytes each, an 8-byte hash of the event id and a 4-byte hash of
    its digest (enough to tell a redelivery from another event reusing the id)."""
    history_seq: int = 0
    history_head: str = ""


def new_account(account_id: str) -> Account:
    """An account that has seen nothing."""
    return Account(account_id=account_id)


_ACCOUNT_FIELDS = tuple(f.name for f in fields(Account))


def with_changes(account: Account, changes: dict[str, Any]) -> Account:
    """``dataclasses.replace(account, **changes)``, several times faster (hot on ingest)."""
    if not changes:
        return account
    return Account(*[changes[n] if n in changes else getattr(account, n) for n in _ACCOUNT_FIELDS])


# -- queries ---------------------------------------------------------------------------


def is_locked(account: Account, day: int, item_id: str | None = None) -> bool:
    """Whether dunning is locked on ``day`` (bounds inclusive).

    Without ``item_id``: an account-wide lock. With it: an account-wide lock or a lock
    on that item.
    """
    for lock in account.locks:
        if lock.valid_from <= day <= lock.valid_to and (
            lock.item_id is None or lock.item_id == item_id
        ):
            return True
    return False


def credit(account: Account) -> dict[str, int]:
    """Unallocated money left after clearing every open item, per currency (> 0 only)."""
    _, _, pool, _ = _settle(account)
    return {cur: amount for cur, amount in sorted(pool.items()) if amount > 0}


def held(account: Account) -> dict[str, int]:
    """Money allocated to items the account does not know yet, per payment currency."""
    _, _, _, waiting = _settle(account)
    return {cur: amount for cur, amount in sorted(waiting.items()) if amount > 0}


def active_plan_ids(account: Account) -> tuple[str, ...]:
    """Plans that are effective (instalments known) and not cancelled, by id."""
    materialized = {it.plan_id for it in account.items if it.plan_id is not None}
    cancelled = account.cancelled_plans
    return tuple(
        p.plan_id for p in account.plans if p.plan_id in materialized and p.plan_id not in cancelled
    )


def notice_ids(account_id: str, notice: ExecutedNotice) -> tuple[str, str]:
    """(proposal id, notice id) of an executed notice."""
    pid = ids.proposal_id(
        notice.run_id, account_id, notice.procedure_id, notice.currency, notice.group
    )
    return pid, ids.notice_id(pid)


def group_last_notice_day(
    account: Account, procedure_id: str, currency: str, group: str
) -> int | None:
    """As-of day of the group's last notice still in effect, or ``None``."""
    last: int | None = None
    for n in account.notices:
        if (
            n.procedure_id == procedure_id
            and n.currency == currency
            and n.group == group
            and (last is None or n.as_of > last)
            and n.in_effect()
        ):
            last = n.as_of
    return last


# -- ingest ------------------------------------------------------------------------------


_SEEN_KEY = 8
_SEEN_DIGEST = 4
_SEEN_SIZE = _SEEN_KEY + _SEEN_DIGEST


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
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise Rejected("unknown_event", f"no rule for {type(event).__name__}")
    changes = handler(account, event)
    changes["seen"] = seen + key + dig
    return with_changes(account, changes)


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
            same = (
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
            if same:
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
    return _resettled(
        account,
        invoices=invoices,
        items=_materialize(new_items, account.plans, pending_due),
        due_changes=tuple(sorted(pending_due.items())),
    )


def _invoice_key(inv: Invoice) -> str:
    return inv.invoice_id


def _on_invoice_cancelled(account: Account, e: InvoiceCancelled) -> dict[str, Any]:
    if e.invoice_id in account.cancelled_invoices:
        return {}
    return _resettled(
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
    return _resettled(account, payments=payments)


def _on_payment_reversed(account: Account, e: PaymentReversed) -> dict[str, Any]:
    if e.payment_id in account.reversed_payments:
        return {}
    return _resettled(
        account, reversed_payments=_insert_id(account.reversed_payments, e.payment_id)
    )


def _on_due_date_changed(account: Account, e: DueDateChanged) -> dict[str, Any]:
    items = account.items
    for index, it in enumerate(items):
        if it.item_id == e.item_id:
            if it.due_day == e.due_date:
                return {}
            changed = (*items[:index], replace(it, due_day=e.due_date), *items[index + 1 :])
            return _resettled(account, items=changed)
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
    return _resettled(
        account,
        plans=plans,
        items=_materialize(list(account.items), plans, pending_due),
        due_changes=tuple(sorted(pending_due.items())),
    )


def _plan_key(p: Plan) -> str:
    return p.plan_id


def _on_plan_cancelled(account: Account, e: InstallmentPlanCancelled) -> dict[str, Any]:
    if e.plan_id in account.cancelled_plans:
        return {}
    return _resettled(account, cancelled_plans=_insert_id(account.cancelled_plans, e.plan_id))


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
}


# -- derivation ----------------------------------------------------------------------------


def _materialize(
    items: list[Item], plans: Iterable[Plan], pending_due: dict[str, int]
) -> list[Item]:
    """Add the instalments of every plan whose sources are all known and of one currency.

    Due-date changes that arrived before an instalment are taken from ``pending_due``.
    """
    by_id = {it.item_id: it for it in items}
    for plan in plans:
        if plan.installments[0].item_id in by_id:
            continue
        sources = [by_id.get(s) for s in plan.item_ids]
        if any(s is None for s in sources):
            continue
        if len({s.currency for s in sources if s is not None}) != 1:
            continue
        first = sources[0]
        assert first is not None
        amounts = _instalment_amounts(plan, first.currency)
        if amounts is None:
            continue
        for inst, amount in zip(plan.installments, amounts, strict=True):
            item = Item(
                item_id=inst.item_id,
                invoice_id=plan.plan_id,
                currency=first.currency,
                amount=amount,
                due_day=pending_due.pop(inst.item_id, inst.due_date),
                procedure=first.procedure,
                group=first.group,
                plan_id=plan.plan_id,
                status=OPEN,
                open_amount=0,
            )
            items.append(item)
            by_id[item.item_id] = item
    items.sort(key=_item_key)
    return items


def _instalment_amounts(plan: Plan, currency: str) -> list[int] | None:
    """The plan's instalment amounts in minor units of ``currency`` (they are kept in
    thousandths until the currency is known); ``None`` when one has more decimals than
    the currency allows: the plan then never takes effect (``plan_status``)."""
    amounts = []
    for inst in plan.installments:
        amount = milli_to_minor(inst.amount, currency)
        if amount is None:
            return None
        amounts.append(amount)
    return amounts


def plan_status(account: Account, plan: Plan) -> str:
    """``active``, ``cancelled`` (with its instalments), ``waiting_for_items`` (a source
    item is not known yet; the plan is held), ``currency_mismatch`` (its sources are in
    several currencies) or ``amount_not_in_currency`` (an instalment amount has more
    decimals than the sources' currency)."""
    by_id = {it.item_id: it for it in account.items}
    if plan.installments[0].item_id in by_id:
        return "cancelled" if plan.plan_id in account.cancelled_plans else "active"
    sources = [by_id.get(s) for s in plan.item_ids]
    if any(s is None for s in sources):
        return "waiting_for_items"
    if len({s.currency for s in sources if s is not None}) != 1:
        return "currency_mismatch"
    return "amount_not_in_currency"


def _item_key(it: Item) -> str:
    return it.item_id


def _clearing_key(it: Item) -> tuple[int, str]:
    return (it.due_day, it.item_id)


def _settle(
    account: Account, changes: dict[str, Any] | None = None
) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]:
    """(status by item, open amount by item, unallocated money left per currency, money
    held for unknown items per currency), from the facts of ``account`` (with
    ``changes`` applied) alone."""
    c = changes or {}
    items: tuple[Item, ...] | list[Item] = c.get("items", account.items)
    cancelled_plans = c.get("cancelled_plans", account.cancelled_plans)
    cancelled_invoices = c.get("cancelled_invoices", account.cancelled_invoices)
    plans: tuple[Plan, ...] = c.get("plans", account.plans)
    payments: tuple[Payment, ...] = c.get("payments", account.payments)
    reversed_payments = c.get("reversed_payments", account.reversed_payments)
    materialized = {it.plan_id for it in items if it.plan_id is not None}
    in_plan: set[str] = set()
    plan_sources: dict[str, tuple[str, ...]] = {}
    for plan in plans:
        if plan.plan_id in materialized:
            plan_sources[plan.plan_id] = plan.item_ids
            if plan.plan_id not in cancelled_plans:
                in_plan.update(plan.item_ids)
    by_id: dict[str, Item] = {}
    status: dict[str, int] = {}
    open_: dict[str, int] = {}
    for it in items:
        iid = it.item_id
        by_id[iid] = it
        if it.plan_id is not None:
            st = CLOSED if it.plan_id in cancelled_plans else OPEN
        elif it.invoice_id in cancelled_invoices:
            st = CANCELLED
        elif iid in in_plan:
            st = IN_PLAN
        else:
            st = OPEN
        status[iid] = st
        open_[iid] = it.amount if st in (OPEN, IN_PLAN) else 0

    pool: dict[str, int] = {}
    waiting: dict[str, int] = {}
    for p in payments:
        if p.payment_id in reversed_payments:
            continue
        rest = p.amount
        for a in p.allocations:
            rest -= a.amount
            target = by_id.get(a.item_id)
            if target is None:
                waiting[p.currency] = waiting.get(p.currency, 0) + a.amount
                continue
            left = a.amount
            if target.currency == p.currency:
                st = status[target.item_id]
                if st in (OPEN, IN_PLAN):
                    left = _take(open_, target.item_id, left)
                elif st == CLOSED:
                    assert target.plan_id is not None
                    sources = sorted(
                        (by_id[s] for s in plan_sources[target.plan_id] if s in by_id),
                        key=_clearing_key,
                    )
                    for src in sources:
                        if left == 0:
                            break
                        if status[src.item_id] in (OPEN, IN_PLAN) and src.currency == p.currency:
                            left = _take(open_, src.item_id, left)
            rest += left
        if rest:
            pool[p.currency] = pool.get(p.currency, 0) + rest

    for currency in pool:
        money = pool[currency]
        if money <= 0:
            continue
        for it in sorted((x for x in items if x.currency == currency), key=_clearing_key):
            if status[it.item_id] != OPEN:
                continue
            money = _take(open_, it.item_id, money)
            if money == 0:
                break
        pool[currency] = money
    return status, open_, pool, waiting


def _take(open_: dict[str, int], item_id: str, money: int) -> int:
    """Clear what ``money`` can of ``item_id``; returns the money left."""
    due = open_[item_id]
    if due <= 0:
        return money
    if money >= due:
        open_[item_id] = 0
        return money - due
    open_[item_id] = due - money
    return 0


def _resettled(account: Account, **changes: Any) -> dict[str, Any]:
    """``changes`` plus the items with their status and open amount derived again."""
    status, open_, _, _ = _settle(account, changes)
    items = changes.get("items", account.items)
    settled = []
    changed = False
    for it in items:
        st = status[it.item_id]
        amount = open_[it.item_id]
        if it.status != st or it.open_amount != amount:
            it = Item(
                it.item_id,
                it.invoice_id,
                it.currency,
                it.amount,
                it.due_day,
                it.procedure,
                it.group,
                it.plan_id,
                st,
                amount,
                it.level,
                it.last_dunned_day,
                it.interest_until_day,
            )
            changed = True
        settled.append(it)
    changes["items"] = tuple(settled) if changed or "items" in changes else items
    return changes
