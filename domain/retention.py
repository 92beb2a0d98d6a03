"""Bounded state: what an account forgets once it is settled and old enough
(docs/RETENTION.md).

:func:`compact` returns the account without the facts that are settled and whose newest
day is before ``today - keep_days`` (the *cutoff*), without the executed notices that
can no longer matter, and without the ids of applied events of a day before the cutoff.
Whatever it drops, every stage computes the same from the account afterwards: the items'
status and open amount, credit, held money, proposals, the schedule, every notice that
can still be reversed. Once it forgot something, the account's ``horizon`` is the cutoff
and :func:`domain.ingest.evolve` refuses input events of an earlier day
(``before_retention_horizon``): their ids may have been forgotten, and the facts they
speak of too.

:func:`event_day` is the business day an input event speaks of, the "today" ingest
compacts with (dates come from events, never from a clock). Days are the domain's day
numbers, as every date of :mod:`domain.events`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from domain.events import InputEvent, InvoiceIssued, PaymentReceived
from domain.settlement import settle
from domain.state import SEEN_ENTRY_SIZE, Account, ExecutedNotice, Item, with_changes

__all__ = ["compact", "event_day"]


def event_day(event: InputEvent) -> int | None:
    """The business day ``event`` speaks of, if it has one: an invoice's issue day, a
    payment's receipt day. Ingest compacts with the largest of them as "today", so only
    days that are not ahead of the business are used: a lock's end, a new due date or an
    instalment's due date may lie years ahead (a lock "until further notice"), and would
    make an account forget far too early. Events without a day keep their ids (they are
    few next to invoices and payments, and each names what it changes)."""
    if isinstance(event, InvoiceIssued):
        return event.issued_on
    if isinstance(event, PaymentReceived):
        return event.received_on
    return None


def compact(account: Account, today: int, keep_days: int) -> Account:
    """``account`` without what is settled and older than ``today - keep_days``."""
    cutoff = today - keep_days
    if cutoff <= account.horizon or _oldest_day(account) >= cutoff:
        return account
    changes: dict[str, Any] = {}
    notices = _kept_notices(account.notices, cutoff)
    if len(notices) != len(account.notices):
        changes["notices"] = notices
    facts = _forget_facts(account, notices, cutoff)
    seen, days = _forget_ids(account, cutoff)
    if len(seen) != len(account.seen):
        facts.update(seen=seen, seen_days=days)
    if facts:
        facts["horizon"] = cutoff
        changes.update(facts)
    return with_changes(account, changes)


def _oldest_day(account: Account) -> int:
    """A lower bound of every day ``compact`` looks at (cheap: it runs on every ingest)."""
    days = [
        min((i.issued_day for i in account.invoices), default=_NEVER),
        min((p.received_day for p in account.payments), default=_NEVER),
        min((n.as_of for n in account.notices), default=_NEVER),
        min((lock.valid_to for lock in account.locks), default=_NEVER),
        account.seen_days[0][0] if account.seen_days else _NEVER,
    ]
    if account.plans:
        days.append(min((it.due_day for it in account.items), default=_NEVER))
    return min(days)


_NEVER = 1 << 62


# -- notices -------------------------------------------------------------------------------


def _kept_notices(notices: tuple[ExecutedNotice, ...], cutoff: int) -> tuple[ExecutedNotice, ...]:
    """The notices that still matter. An old notice is dropped when it is not its group's
    last notice in effect (a later kept notice of the group in effect is as recent) and
    cannot be reversed any more: each of its items not reversed is held by a later kept
    notice (``later_notice_in_effect``), which also keeps every earlier notice's items
    blocked as before. Decided from the last notice to the first. A notice that keeps its
    charge or interest as items (RULES.md decision 12) is kept: the items are derived from
    it, and the money paid on them must stay on them."""
    keep = [True] * len(notices)
    for i in range(len(notices) - 1, -1, -1):
        n = notices[i]
        if n.as_of >= cutoff or (n.clearing_order is not None and (n.charge or n.interest)):
            continue
        later = [m for j, m in enumerate(notices[i + 1 :], start=i + 1) if keep[j]]
        if n.in_effect() and not any(
            m.as_of >= n.as_of and _group(m) == _group(n) and m.in_effect() for m in later
        ):
            continue
        held = {ln.item_id for m in later for ln in m.lines if ln.item_id not in m.reversed_items}
        if all(ln.item_id in held for ln in n.lines if ln.item_id not in n.reversed_items):
            keep[i] = False
    return tuple(n for n, k in zip(notices, keep, strict=True) if k)


def _group(n: ExecutedNotice) -> tuple[str, str, str]:
    return n.procedure_id, n.currency, n.group


# -- facts ---------------------------------------------------------------------------------


class _Clusters:
    """Invoices and plans joined by what links their items: a plan's sources, a
    payment's allocations. A cluster is forgotten whole or not at all."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.blocked: set[str] = set()
        self._blocked_roots: set[str] | None = None

    def find(self, key: str) -> str:
        parent = self.parent
        root = parent.setdefault(key, key)
        while root != parent[root]:
            root = parent[root]
        while key != root:
            key, parent[key] = parent[key], root
        return root

    def join(self, keys: Iterable[str]) -> None:
        roots = [self.find(k) for k in keys]
        for r in roots[1:]:
            if r != roots[0]:
                self.parent[r] = roots[0]

    def block(self, key: str) -> None:
        self.blocked.add(key)

    def free(self, key: str) -> bool:
        """Whether ``key``'s cluster has nothing that blocks it (once every join is done)."""
        if self._blocked_roots is None:
            self._blocked_roots = {self.find(b) for b in self.blocked}
        return self.find(key) not in self._blocked_roots


def _forget_facts(
    account: Account, notices: tuple[ExecutedNotice, ...], cutoff: int
) -> dict[str, Any]:
    """The changes that forget every settled cluster older than the cutoff, old reversed
    payments and old expired locks; ``{}`` when there is none."""
    clusters = _clusters(account, notices, cutoff)
    free = {it.invoice_id for it in account.items if clusters.free(it.invoice_id)}
    changes = _without(account, free, cutoff)
    if free and not _settles_the_same(account, changes):
        dropped: set[str] = set()
        for root in sorted({clusters.find(k) for k in free}):
            trial = dropped | {k for k in free if clusters.find(k) == root}
            if _settles_the_same(account, _without(account, trial, cutoff)):
                dropped = trial
        changes = _without(account, dropped, cutoff)
    return changes


def _clusters(account: Account, notices: tuple[ExecutedNotice, ...], cutoff: int) -> _Clusters:
    c = _Clusters()
    key_of = {it.item_id: it.invoice_id for it in account.items}
    for plan in account.plans:
        c.join([plan.plan_id, *(key_of[s] for s in plan.item_ids if s in key_of)])
        if plan.installments[0].item_id not in key_of or any(
            s not in key_of for s in plan.item_ids
        ):
            c.block(plan.plan_id)
    reversed_payments = set(account.reversed_payments)
    for p in account.payments:
        if p.payment_id in reversed_payments or not p.allocations:
            continue
        keys = [key_of[a.item_id] for a in p.allocations if a.item_id in key_of]
        c.join(keys)
        if (
            len(keys) < len(p.allocations)
            or sum(a.amount for a in p.allocations) != p.amount
            or p.received_day >= cutoff
        ):
            for k in keys:
                c.block(k)
    for inv in account.invoices:
        if inv.issued_day >= cutoff:
            c.block(inv.invoice_id)
    held = _held_items(account, notices)
    in_effect_days = {n.as_of for n in notices if n.in_effect()}
    for it in account.items:
        if (
            it.open_amount != 0
            or it.item_id in held
            or max(_item_days(it)) >= cutoff
            or (it.level >= 1 and it.last_dunned_day in in_effect_days)
        ):
            c.block(it.invoice_id)
    return c


def _item_days(it: Item) -> tuple[int, ...]:
    return (it.due_day, it.last_dunned_day or it.due_day, it.interest_until_day or it.due_day)


def _held_items(account: Account, notices: tuple[ExecutedNotice, ...]) -> set[str]:
    """Items a kept notice, a pending proposal or a lock names."""
    held = {ln.item_id for n in notices for ln in n.lines}
    for p in account.pending:
        held.update(i.item_id for i in p.items)
        held.update(c.item_id for c in p.level_changes)
        held.update(x.item_id for x in p.left_out)
    held.update(lock.item_id for lock in account.locks if lock.item_id is not None)
    return held


def _without(account: Account, keys: set[str], cutoff: int) -> dict[str, Any]:
    """The changes that drop the invoices and plans ``keys`` with their items and the
    payments allocated to them, old reversed payments and old expired locks."""
    changes: dict[str, Any] = {}
    items = tuple(it for it in account.items if it.invoice_id not in keys)
    if len(items) != len(account.items):
        gone = {it.item_id for it in account.items if it.invoice_id in keys}
        changes["items"] = items
        changes["invoices"] = tuple(i for i in account.invoices if i.invoice_id not in keys)
        changes["plans"] = tuple(p for p in account.plans if p.plan_id not in keys)
        changes["cancelled_invoices"] = tuple(
            i for i in account.cancelled_invoices if i not in keys
        )
        changes["cancelled_plans"] = tuple(i for i in account.cancelled_plans if i not in keys)
        # an import counts only through its item (``group_last_notice_day``)
        imports = tuple(x for x in account.imports if x.item_id not in gone)
        if len(imports) != len(account.imports):
            changes["imports"] = imports
    else:
        gone = set()
    reversed_payments = set(account.reversed_payments)
    old_reversed = {
        p.payment_id
        for p in account.payments
        if p.payment_id in reversed_payments and p.received_day < cutoff
    }
    payments = tuple(
        p
        for p in account.payments
        if p.payment_id not in old_reversed
        and not (p.allocations and all(a.item_id in gone for a in p.allocations))
    )
    if len(payments) != len(account.payments):
        changes["payments"] = payments
        changes["reversed_payments"] = tuple(
            i for i in account.reversed_payments if i not in old_reversed
        )
    last_pending = max((p.as_of_date for p in account.pending), default=None)
    locks = tuple(
        lock
        for lock in account.locks
        if lock.valid_to >= cutoff or (last_pending is not None and last_pending <= lock.valid_to)
    )
    if len(locks) != len(account.locks):
        changes["locks"] = locks
    return changes


def _settles_the_same(account: Account, changes: dict[str, Any]) -> bool:
    """Whether the kept items settle as before, with the same credit and held money."""
    if not changes:
        return True
    status, open_, pool, waiting = settle(account, dict(changes))
    b_status, b_open, b_pool, b_waiting = settle(account)
    return (
        all(status[i] == b_status[i] and open_[i] == b_open[i] for i in status)
        and all(open_.get(i) == amount for i, amount in b_open.items() if i not in b_status)
        and _positive(pool) == _positive(b_pool)
        and _positive(waiting) == _positive(b_waiting)
    )


def _positive(money: dict[str, int]) -> dict[str, int]:
    return {cur: amount for cur, amount in money.items() if amount > 0}


# -- applied event ids ---------------------------------------------------------------------


def _forget_ids(account: Account, cutoff: int) -> tuple[bytes, tuple[tuple[int, int], ...]]:
    """``seen`` and ``seen_days`` without the events of a day before the cutoff (the
    first groups of ``seen``)."""
    days = account.seen_days
    count = groups = 0
    for day, n in days:
        if day >= cutoff:
            break
        count += n
        groups += 1
    if not groups:
        return account.seen, days
    return account.seen[count * SEEN_ENTRY_SIZE :], days[groups:]
