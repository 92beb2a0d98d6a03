"""Small builders for domain tests: events, procedures and accounts in a few words."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

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
    InvoiceItem,
    PaymentReceived,
    PaymentReversed,
    PostalAddress,
)
from domain.ingest import evolve
from domain.money import minor_units
from domain.procedures import Level, Procedure
from domain.state import Account, new_account

ACCOUNT = "ACC-1"
ADDRESS = PostalAddress(("Hauptstr. 12",), "10115", "Berlin", "DE")
_ids = itertools.count(1)


def day(text: str) -> int:
    return date.fromisoformat(text).toordinal()


def _eid() -> str:
    return f"ev-{next(_ids)}"


def digest(event: InputEvent) -> bytes:
    """What the processor would pass: something that identifies the content."""
    text = repr(event)
    return text.replace(f"event_id='{event.event_id}'", "").encode()


def apply(account: Account, *events: InputEvent) -> Account:
    for e in events:
        account = evolve(account, e, digest(e))
    return account


def account(*events: InputEvent, account_id: str = ACCOUNT) -> Account:
    return apply(new_account(account_id), *events)


def upsert(
    procedure: str = "P",
    currency: str = "EUR",
    email: str | None = "anna@example.com",
    language: str = "de",
    name: str = "Anna Schmidt",
    account_id: str = ACCOUNT,
) -> AccountUpserted:
    return AccountUpserted(_eid(), account_id, name, language, currency, procedure, ADDRESS, email)


def item(
    item_id: str,
    amount: int,
    due: int,
    procedure: str | None = None,
    group: str | None = None,
) -> InvoiceItem:
    return InvoiceItem(item_id, amount, due, procedure, group)


def invoice(
    invoice_id: str,
    *items: InvoiceItem,
    currency: str = "EUR",
    issued: int | None = None,
    account_id: str = ACCOUNT,
) -> InvoiceIssued:
    if issued is None:
        issued = min(i.due_date for i in items) - 14
    return InvoiceIssued(_eid(), account_id, invoice_id, currency, issued, tuple(items))


def cancel(invoice_id: str, account_id: str = ACCOUNT) -> InvoiceCancelled:
    return InvoiceCancelled(_eid(), account_id, invoice_id)


def pay(
    payment_id: str,
    amount: int,
    received: int,
    *allocations: tuple[str, int],
    currency: str = "EUR",
    account_id: str = ACCOUNT,
) -> PaymentReceived:
    return PaymentReceived(
        _eid(),
        account_id,
        payment_id,
        amount,
        currency,
        received,
        None,
        tuple(Allocation(i, a) for i, a in allocations) or None,
    )


def reverse_payment(payment_id: str, account_id: str = ACCOUNT) -> PaymentReversed:
    return PaymentReversed(_eid(), account_id, payment_id, "returned")


def move_due(item_id: str, due: int, account_id: str = ACCOUNT) -> DueDateChanged:
    return DueDateChanged(_eid(), account_id, item_id, due, "agreed")


def lock(
    lock_id: str,
    valid_from: int,
    valid_to: int,
    item_id: str | None = None,
    account_id: str = ACCOUNT,
) -> DunningLockSet:
    return DunningLockSet(_eid(), account_id, lock_id, "dispute", valid_from, valid_to, item_id)


def release(lock_id: str, account_id: str = ACCOUNT) -> DunningLockReleased:
    return DunningLockReleased(_eid(), account_id, lock_id)


def plan(
    plan_id: str,
    sources: tuple[str, ...],
    *installments: tuple[str, int, int],
    account_id: str = ACCOUNT,
    currency: str = "EUR",
) -> InstallmentPlanCreated:
    """Instalment amounts in minor units of ``currency`` (the event keeps thousandths)."""
    per_minor = 10 ** (3 - minor_units(currency))
    return InstallmentPlanCreated(
        _eid(),
        account_id,
        plan_id,
        sources,
        tuple(Installment(i, a * per_minor, d) for i, a, d in installments),
    )


def cancel_plan(plan_id: str, account_id: str = ACCOUNT) -> InstallmentPlanCancelled:
    return InstallmentPlanCancelled(_eid(), account_id, plan_id)


def level(
    n: int,
    days: int,
    min_item: str = "0",
    min_total: str = "0",
    charge: str = "0",
    interest: bool = False,
    activities: tuple[str, ...] = ("letter",),
) -> Level:
    return Level(
        n, days, Decimal(min_item), Decimal(min_total), Decimal(charge), interest, activities
    )


def procedure(
    *levels: Level,
    pid: str = "P",
    min_days: int = 14,
    rate: str = "9",
    min_interest: str = "0",
    auto_approve: bool = False,
) -> Procedure:
    return Procedure(pid, min_days, Decimal(rate), Decimal(min_interest), auto_approve, levels)


def standard() -> Procedure:
    """STANDARD of CONTRACT.md, under the id ``P``."""
    return procedure(
        level(1, 7, "5.00", "10.00", "0.00", False),
        level(2, 21, "20.00", "30.00", "5.00", True),
        min_days=14,
        rate="9.0",
        min_interest="1.00",
    )


def opens(acc: Account) -> dict[str, int]:
    return {it.item_id: it.open_amount for it in acc.items}


def dunning_fields(acc: Account) -> dict[str, tuple[int, int | None, int | None]]:
    return {it.item_id: (it.level, it.last_dunned_day, it.interest_until_day) for it in acc.items}
