"""How an account's facts settle into each item's status and open amount.

The account keeps the *facts* it has seen (master data, locks, invoices and their items,
payments, cancellations, reversals, instalment plans, due-date changes) and derives from
them, after every change, each item's ``status`` and ``open_amount``. The derivation
(:func:`settle`) looks only at the set of facts, never at the order they arrived in:

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

Charges and interest as claimable items (:mod:`domain.claims`, RULES.md decision 12): when
the account has some, an allocation to one clears it (to a reversed one: joins the rest),
and step 3 clears the currency's items in the clearing order of the latest notice that
kept such items: ``[principal, interest, charges]`` (invoice items and instalments, then
interest items, then charge items) or ``[charges, interest, principal]``, each kind in
(due day, item id) order. Payments are taken one by one, in (received day, payment id)
order; a charge or interest item takes money only from payments received after its
notice's as-of day, and credit left at the end clears whatever is still open in the same
order. The open amounts of charge and interest items are in the second dict of
:func:`settle` too, under their item ids.

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

from collections.abc import Iterable
from typing import Any

from domain.claims import CHARGE, Claim, claims_of, keeps_claims
from domain.money import milli_to_minor
from domain.state import CANCELLED, CLOSED, IN_PLAN, OPEN, Account, Item, Payment, Plan


def materialize(
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


def settle(
    account: Account, changes: dict[str, Any] | None = None
) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]:
    """(status by item, open amount by item, unallocated money left per currency, money
    held for unknown items per currency), from the facts of ``account`` (with
    ``changes`` applied) alone."""
    c = changes or {}
    items: tuple[Item, ...] | list[Item] = c.get("items", account.items)
    cancelled_plans = c.get("cancelled_plans", account.cancelled_plans)
    plans: tuple[Plan, ...] = c.get("plans", account.plans)
    payments: tuple[Payment, ...] = c.get("payments", account.payments)
    reversed_payments = c.get("reversed_payments", account.reversed_payments)
    plan_sources, status = _statuses(
        items, plans, cancelled_plans, c.get("cancelled_invoices", account.cancelled_invoices)
    )
    by_id = {it.item_id: it for it in items}
    open_ = {iid: by_id[iid].amount if st in (OPEN, IN_PLAN) else 0 for iid, st in status.items()}
    notices = c.get("notices", account.notices)
    claims = claims_of(account.account_id, notices) if notices and keeps_claims(notices) else []
    claim_by_id = {cl.item_id: cl for cl in claims}
    for cl in claims:
        open_[cl.item_id] = cl.amount
    pool: dict[str, int] = {}
    waiting: dict[str, int] = {}
    rests: list[tuple[Payment, int]] = []
    for p in payments:
        if p.payment_id in reversed_payments:
            continue
        rest = _allocate(p, by_id, status, open_, plan_sources, waiting, claim_by_id)
        if rest:
            pool[p.currency] = pool.get(p.currency, 0) + rest
            if claims:
                rests.append((p, rest))
    if claims:
        _clear_in_order(items, status, open_, pool, rests, claims)
    else:
        _clear_with_pool(items, status, open_, pool)
    return status, open_, pool, waiting


def _statuses(
    items: Iterable[Item],
    plans: Iterable[Plan],
    cancelled_plans: tuple[str, ...],
    cancelled_invoices: tuple[str, ...],
) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """(source items of every effective plan, status of every item): step 1."""
    items = list(items)
    materialized = {it.plan_id for it in items if it.plan_id is not None}
    in_plan: set[str] = set()
    plan_sources: dict[str, tuple[str, ...]] = {}
    for plan in plans:
        if plan.plan_id in materialized:
            plan_sources[plan.plan_id] = plan.item_ids
            if plan.plan_id not in cancelled_plans:
                in_plan.update(plan.item_ids)
    status: dict[str, int] = {}
    for it in items:
        if it.plan_id is not None:
            st = CLOSED if it.plan_id in cancelled_plans else OPEN
        elif it.invoice_id in cancelled_invoices:
            st = CANCELLED
        elif it.item_id in in_plan:
            st = IN_PLAN
        else:
            st = OPEN
        status[it.item_id] = st
    return plan_sources, status


def _allocate(
    p: Payment,
    by_id: dict[str, Item],
    status: dict[str, int],
    open_: dict[str, int],
    plan_sources: dict[str, tuple[str, ...]],
    waiting: dict[str, int],
    claims: dict[str, Claim],
) -> int:
    """Step 2 for one payment: apply its allocations; returns its unallocated rest."""
    rest = p.amount
    for a in p.allocations:
        rest -= a.amount
        target = by_id.get(a.item_id)
        if target is None:
            claim = claims.get(a.item_id)
            if claim is None:
                waiting[p.currency] = waiting.get(p.currency, 0) + a.amount
            elif claim.currency == p.currency:
                rest += _take(open_, claim.item_id, a.amount)
            else:
                rest += a.amount
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
    return rest


def _clear_with_pool(
    items: Iterable[Item], status: dict[str, int], open_: dict[str, int], pool: dict[str, int]
) -> None:
    """Step 3: the unallocated money of each currency clears its open items (in place)."""
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


def _clear_in_order(
    items: Iterable[Item],
    status: dict[str, int],
    open_: dict[str, int],
    pool: dict[str, int],
    rests: list[tuple[Payment, int]],
    claims: list[Claim],
) -> None:
    """Step 3 with charge and interest items (in place): per currency that has some, each
    payment's rest clears the items in the clearing order, a charge or interest item only
    when the payment was received after its notice's as-of day; what is left carries on,
    and at the end clears every item still open in the same order."""
    by_currency: dict[str, list[Claim]] = {}
    for cl in claims:
        by_currency.setdefault(cl.currency, []).append(cl)
    plain = {cur: money for cur, money in pool.items() if cur not in by_currency}
    _clear_with_pool(items, status, open_, plain)
    pool.update(plain)
    for currency, mine in by_currency.items():
        if pool.get(currency, 0) <= 0:
            continue
        order = _clearing_sequence(items, status, currency, mine)
        money = 0
        for p, rest in rests:
            if p.currency != currency:
                continue
            money += rest
            for item_id, arose in order:
                if money <= 0:
                    break
                if arose is None or arose < p.received_day:
                    money = _take(open_, item_id, money)
        for item_id, _ in order:
            if money <= 0:
                break
            money = _take(open_, item_id, money)
        pool[currency] = money


def _clearing_sequence(
    items: Iterable[Item], status: dict[str, int], currency: str, claims: list[Claim]
) -> list[tuple[str, int | None]]:
    """(item id, day it arose: ``None`` for invoice items and instalments) of the
    currency's open items in the clearing order of its latest notice with claims."""
    principal: list[tuple[str, int | None]] = [
        (it.item_id, None)
        for it in sorted((x for x in items if x.currency == currency), key=_clearing_key)
        if status[it.item_id] == OPEN
    ]
    live = sorted((cl for cl in claims if cl.amount > 0), key=lambda cl: (cl.due_day, cl.item_id))
    interest = [(cl.item_id, cl.arose_day) for cl in live if cl.kind != CHARGE]
    charges = [(cl.item_id, cl.arose_day) for cl in live if cl.kind == CHARGE]
    if claims[-1].principal_first:
        return principal + interest + charges
    return charges + interest + principal


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


def resettled(account: Account, **changes: Any) -> dict[str, Any]:
    """``changes`` plus the items with their status and open amount derived again."""
    status, open_, _, _ = settle(account, changes)
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


def credit(account: Account) -> dict[str, int]:
    """Unallocated money left after clearing every open item, per currency (> 0 only)."""
    _, _, pool, _ = settle(account)
    return {cur: amount for cur, amount in sorted(pool.items()) if amount > 0}


def held(account: Account) -> dict[str, int]:
    """Money allocated to items the account does not know yet, per payment currency."""
    _, _, _, waiting = settle(account)
    return {cur: amount for cur, amount in sorted(waiting.items()) if amount > 0}


def open_on(account: Account, item_id: str, day: int) -> int:
    """The open amount ``item_id`` had on ``day``: from the payments received on or
    before it (by ``received_on``), cleared by the rules above (RULES.md section 9,
    "Daily balance")."""
    payments = tuple(p for p in account.payments if p.received_day <= day)
    _, open_, _, _ = settle(account, {"payments": payments})
    return open_.get(item_id, 0)


def daily_balances(account: Account, item_id: str, start: int, end: int) -> list[tuple[int, int]]:
    """The item's open amount on each day of ``[start, end)`` as steps ``[(day, open)]``:
    one at ``start`` and one on every later day a payment was received; equal neighbours
    are merged, so the period is cut only where the balance changes."""
    days = sorted({p.received_day for p in account.payments if start < p.received_day < end})
    steps = [(start, open_on(account, item_id, start))]
    for day in days:
        amount = open_on(account, item_id, day)
        if amount != steps[-1][1]:
            steps.append((day, amount))
    return steps


def open_claims(account: Account) -> list[tuple[Claim, int]]:
    """The account's charge and interest items (RULES.md decision 12) with their open
    amounts, in execution order of their notices; ``[]`` when no notice keeps them."""
    if not keeps_claims(account.notices):
        return []
    _, open_, _, _ = settle(account)
    return [(cl, open_[cl.item_id]) for cl in claims_of(account.account_id, account.notices)]
