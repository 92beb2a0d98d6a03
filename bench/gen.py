"""Deterministic synthetic billing data for the benchmarks.

Every account draws from a random generator seeded with ``(seed, account index)`` alone,
so account ``i`` gets the same events whatever the number of accounts, and a subset of
accounts (one partition, one worker's share) can be generated without the others.

The mix per account (``backlog`` as-of day ``as_of``):

* one ``AccountUpserted`` (procedure CONSUMER 50 %, BUSINESS 35 %, STANDARD 15 %;
  currency EUR 90 %, GBP 10 %; e-mail for two accounts in three);
* one invoice, or two (45 %), of 1–3 items each (about 3 items per account), issued
  15–110 days before ``as_of``, item ``m`` due ``14 + 14 m`` days after issue;
* per invoice: paid in full with allocations (36 %), one item partly paid with an
  allocation (10 %), an unallocated payment of 80 % of the total (10 %), nothing (44 %);
* a due-date change of one item to 3–20 days after ``as_of`` (5 % of accounts);
* a dunning lock over ``as_of`` (1 % of accounts).

Records are Avro-ready dicts (``Decimal`` amounts, ``date`` objects), the way
``dunning.sample`` makes them. ``daily_events`` gives the next payment run's changes for a
few per cent of the accounts: payments of a whole invoice and new invoices.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dunning.sample import CITIES, LANGUAGES, eid

AS_OF = date(2026, 11, 20)
"""The as-of day of the backlog run (a Friday)."""

ACCOUNTS = "billing.accounts"
INVOICES = "billing.invoices"
PAYMENTS = "billing.payments"
DUE_DATES = "billing.due-dates"
PAYMENT_RUNS = "billing.payment-runs"
INPUT_TOPICS = (ACCOUNTS, INVOICES, DUE_DATES, PAYMENTS)

Event = tuple[str, str, dict[str, Any]]
"""(logical topic, record type, Avro record)."""

_CENT = Decimal("0.01")


def account_id(i: int, prefix: str = "ACC") -> str:
    return f"{prefix}-{i:07d}"


def _rnd(seed: int, i: int, salt: str = "") -> random.Random:
    return random.Random(f"{seed}/{i}{salt}")


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def account_events(i: int, seed: int = 1, as_of: date = AS_OF, prefix: str = "ACC") -> list[Event]:
    """Every input event of account ``i``, in publishing order."""
    rnd = _rnd(seed, i)
    acc = account_id(i, prefix)
    roll = rnd.random()
    procedure = "CONSUMER" if roll < 0.5 else "BUSINESS" if roll < 0.85 else "STANDARD"
    currency = "GBP" if rnd.random() < 0.1 else "EUR"
    city, postcode, country = CITIES[i % len(CITIES)]
    out: list[Event] = [(ACCOUNTS, "AccountUpserted", {
        "event_id": eid("acc", acc), "account_id": acc, "name": f"Customer {i:07d}",
        "language": LANGUAGES[i % len(LANGUAGES)], "currency": currency,
        "dunning_procedure": procedure,
        "postal_address": {"lines": [f"{i % 200 + 1} Sample Street"],
                           "postal_code": postcode, "city": city, "country": country},
        "email": f"customer{i}@example.test" if i % 3 else None,
    })]
    low, high = (5000, 300000) if procedure == "BUSINESS" else (1500, 60000)
    payments: list[Event] = []
    first_item: tuple[str, date] | None = None
    for k in range(2 if rnd.random() < 0.45 else 1):
        inv = f"INV-{acc}-{k}"
        issued = as_of - timedelta(days=rnd.randrange(15, 111))
        items = [{"item_id": f"{inv}-{m}", "amount": _money(rnd.randrange(low, high)),
                  "due_date": issued + timedelta(days=14 + 14 * m),
                  "dunning_procedure": None, "dunning_group": None}
                 for m in range(1 + rnd.randrange(3))]
        if first_item is None:
            first_item = (items[0]["item_id"], items[0]["due_date"])
        out.append((INVOICES, "InvoiceIssued", {
            "event_id": eid("inv", inv), "account_id": acc, "invoice_id": inv,
            "currency": currency, "issued_on": issued, "items": items}))
        payment = _payment(rnd, acc, inv, items, currency, as_of)
        if payment is not None:
            payments.append((PAYMENTS, "PaymentReceived", payment))
    out.extend(payments)
    assert first_item is not None
    if rnd.random() < 0.05:
        out.append((DUE_DATES, "DueDateChanged", {
            "event_id": eid("due", acc), "account_id": acc, "item_id": first_item[0],
            "due_date": as_of + timedelta(days=rnd.randrange(3, 21)),
            "reason": "customer asked for time"}))
    if rnd.random() < 0.01:
        out.append((ACCOUNTS, "DunningLockSet", {
            "event_id": eid("lock", acc), "account_id": acc, "lock_id": f"L-{acc}",
            "reason": "disputed", "valid_from": as_of - timedelta(days=5),
            "valid_to": as_of + timedelta(days=25), "item_id": None}))
    return out


def _payment(rnd: random.Random, acc: str, inv: str, items: list[dict[str, Any]], currency: str,
             as_of: date) -> dict[str, Any] | None:
    """The payment of an invoice: in full and allocated (36 %), one item half paid (10 %),
    partly paid and unallocated (10 %), or none."""
    total = sum((it["amount"] for it in items), Decimal(0))
    pay_id = f"PAY-{inv}"
    roll = rnd.random()
    received = as_of - timedelta(days=rnd.randrange(1, 11))
    base = {"event_id": eid("pay", pay_id), "account_id": acc, "payment_id": pay_id,
            "currency": currency, "received_on": received, "payment_run_id": None}
    if roll < 0.36:  # paid in full, allocated
        return {**base, "amount": total,
                "allocations": [{"item_id": it["item_id"], "amount": it["amount"]}
                                for it in items]}
    if roll < 0.46:  # one item partly paid, allocated
        part = (items[0]["amount"] / 2).quantize(_CENT)
        return {**base, "amount": part,
                "allocations": [{"item_id": items[0]["item_id"], "amount": part}]}
    if roll < 0.56:  # partly paid, unallocated
        return {**base, "amount": (total * Decimal("0.8")).quantize(_CENT), "allocations": None}
    return None


def daily_events(i: int, seed: int = 1, as_of: date = AS_OF, day: date | None = None,
                 share: float = 0.02, prefix: str = "ACC") -> list[Event]:
    """The changes to account ``i`` in the payment run of ``day`` (default: the day after
    ``as_of``): for a ``share`` of the accounts, the payment of one invoice in full (60 %)
    or a new invoice (40 %). Empty for the other accounts."""
    day = day or as_of + timedelta(days=1)
    rnd = _rnd(seed, i, f"/daily/{day.isoformat()}")
    if rnd.random() >= share:
        return []
    acc = account_id(i, prefix)
    if rnd.random() < 0.6:
        invoice = next(r for t, rt, r in account_events(i, seed, as_of, prefix)
                       if rt == "InvoiceIssued")
        pay_id = f"PAY-{invoice['invoice_id']}-{day.isoformat()}"
        return [(PAYMENTS, "PaymentReceived", {
            "event_id": eid("pay", pay_id), "account_id": acc, "payment_id": pay_id,
            "amount": sum((it["amount"] for it in invoice["items"]), Decimal(0)),
            "currency": invoice["currency"], "received_on": day,
            "payment_run_id": f"PR-{day.isoformat()}",
            "allocations": [{"item_id": it["item_id"], "amount": it["amount"]}
                            for it in invoice["items"]]})]
    currency = next(r for t, rt, r in account_events(i, seed, as_of, prefix)
                    if rt == "AccountUpserted")["currency"]
    inv = f"INV-{acc}-{day.isoformat()}"
    return [(INVOICES, "InvoiceIssued", {
        "event_id": eid("inv", inv), "account_id": acc, "invoice_id": inv,
        "currency": currency, "issued_on": day,
        "items": [{"item_id": f"{inv}-0", "amount": _money(rnd.randrange(1500, 60000)),
                   "due_date": day + timedelta(days=14), "dunning_procedure": None,
                   "dunning_group": None}]})]


def events(indices: Iterable[int], seed: int = 1, as_of: date = AS_OF,
           prefix: str = "ACC") -> Iterator[Event]:
    for i in indices:
        yield from account_events(i, seed, as_of, prefix)


def payment_run(as_of: date, payment_run_id: str | None = None) -> Event:
    run_id = payment_run_id or f"PR-{as_of.isoformat()}"
    return (PAYMENT_RUNS, "PaymentRunCompleted", {
        "event_id": eid("run", run_id), "run_id": run_id, "as_of_date": as_of,
        "completed_at": datetime.combine(as_of, datetime.min.time(), UTC) + timedelta(hours=20),
        "payment_count": 0})
