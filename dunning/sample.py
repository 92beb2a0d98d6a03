"""Realistic sample events, reproducible from a seed: for the demo, tests and benchmarks.

`month(n_accounts, as_of, seed)` gives a month of billing for n accounts: invoices of 1–3
items falling due over the last ten weeks, full, partial and unallocated payments, a
due-date change, one account with a dunning lock and one with an instalment plan, then a
payment run on `as_of`. Records are Avro dicts (Decimal amounts, date objects), grouped by
topic in publishing order.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

NAMESPACE = uuid.UUID("6f1c1a52-3c1e-4d0e-9a57-3e0f5c7b2d10")
LANGUAGES = ("de", "en", "fr", "en", "de", "it")
CITIES = (("Berlin", "10115", "DE"), ("London", "EC1A 1BB", "GB"), ("Lyon", "69001", "FR"),
          ("Wien", "1010", "AT"), ("Milano", "20121", "IT"))


def eid(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(str(p) for p in parts)))


Rec = tuple[str, dict[str, Any]]


@dataclass
class Sample:
    accounts: list[Rec] = field(default_factory=list)
    invoices: list[Rec] = field(default_factory=list)
    payments: list[Rec] = field(default_factory=list)
    due_dates: list[Rec] = field(default_factory=list)
    payment_runs: list[Rec] = field(default_factory=list)
    #: account ids with a story worth showing
    notable: dict[str, str] = field(default_factory=dict)

    def by_topic(self) -> list[tuple[str, list[Rec]]]:
        return [
            ("billing.accounts", self.accounts),
            ("billing.invoices", self.invoices),
            ("billing.due-dates", self.due_dates),
            ("billing.payments", self.payments),
        ]


def account_id(i: int, prefix: str = "ACC") -> str:
    return f"{prefix}-{i:06d}"


def month(n_accounts: int, as_of: date, seed: int = 7, *, prefix: str = "ACC",
          procedures: tuple[str, ...] = ("CONSUMER", "BUSINESS"),
          payment_run_id: str | None = None) -> Sample:
    rnd = random.Random(seed)
    s = Sample()
    payment_run_id = payment_run_id or f"PR-{as_of.isoformat()}"
    for i in range(n_accounts):
        acc = account_id(i, prefix)
        s.accounts.append(("AccountUpserted", _account(i, acc, procedures[i % len(procedures)])))
        n_invoices = 1 + rnd.randrange(2)
        for k in range(n_invoices):
            invoice = _invoice(rnd, acc, f"INV-{acc}-{k}", as_of)
            s.invoices.append(("InvoiceIssued", invoice))
            payment = _payment(rnd, invoice, as_of, payment_run_id)
            if payment is not None:
                s.payments.append(("PaymentReceived", payment))
    if n_accounts >= 3:
        _lock_and_plan(s, as_of, prefix)
    if n_accounts >= 4:
        _moved_due_date(s, as_of, prefix)
    s.payment_runs.append(("PaymentRunCompleted", {
        "event_id": eid("run", payment_run_id), "run_id": payment_run_id, "as_of_date": as_of,
        "completed_at": datetime.combine(as_of, datetime.min.time(), UTC) + timedelta(hours=20),
        "payment_count": len(s.payments)}))
    return s


def _account(i: int, acc: str, procedure: str) -> dict[str, Any]:
    lang = LANGUAGES[i % len(LANGUAGES)]
    city, postcode, country = CITIES[i % len(CITIES)]
    return {
        "event_id": eid("acc", acc), "account_id": acc,
        "name": f"Customer {i:06d}", "language": lang, "currency": "EUR",
        "dunning_procedure": procedure,
        "postal_address": {"lines": [f"{i % 200 + 1} Sample Street"],
                           "postal_code": postcode, "city": city, "country": country},
        "email": f"customer{i}@example.test" if i % 3 else None,
    }


def _invoice(rnd: random.Random, acc: str, inv: str, as_of: date) -> dict[str, Any]:
    """An invoice issued 20 to 80 days ago, with one to three items due two weeks apart."""
    issued = as_of - timedelta(days=rnd.randrange(20, 80))
    items: list[dict[str, Any]] = []
    for m in range(1 + rnd.randrange(3)):
        amount = Decimal(rnd.randrange(1500, 60000)) / 100
        items.append({"item_id": f"{inv}-{m}", "amount": amount,
                      "due_date": issued + timedelta(days=14 + 14 * m),
                      "dunning_procedure": None, "dunning_group": None})
    return {"event_id": eid("inv", inv), "account_id": acc, "invoice_id": inv,
            "currency": "EUR", "issued_on": issued, "items": items}


def _payment(rnd: random.Random, invoice: dict[str, Any], as_of: date,
             payment_run_id: str) -> dict[str, Any] | None:
    """Paid in full and allocated (35 %), partly paid and unallocated (15 %), or unpaid."""
    roll = rnd.random()
    items = invoice["items"]
    acc = invoice["account_id"]
    total: Decimal = sum((it["amount"] for it in items), Decimal(0))
    pay_id = f"PAY-{invoice['invoice_id']}"
    if roll < 0.35:  # paid in full, allocated
        return {
            "event_id": eid("pay", pay_id), "account_id": acc, "payment_id": pay_id,
            "amount": total, "currency": "EUR", "received_on": as_of - timedelta(days=2),
            "payment_run_id": payment_run_id,
            "allocations": [{"item_id": it["item_id"], "amount": it["amount"]}
                            for it in items]}
    if roll < 0.5:  # partly paid, unallocated
        part = (total * Decimal("0.8")).quantize(Decimal("0.01"))
        return {
            "event_id": eid("pay", pay_id), "account_id": acc, "payment_id": pay_id,
            "amount": part, "currency": "EUR", "received_on": as_of - timedelta(days=5),
            "payment_run_id": payment_run_id, "allocations": None}
    return None


def _lock_and_plan(s: Sample, as_of: date, prefix: str) -> None:
    """A dunning lock on the second account, an instalment plan on the third."""
    locked = account_id(1, prefix)
    s.accounts.append(("DunningLockSet", {
        "event_id": eid("lock", locked), "account_id": locked, "lock_id": "L-1",
        "reason": "disputed", "valid_from": as_of - timedelta(days=10),
        "valid_to": as_of + timedelta(days=30), "item_id": None}))
    s.notable[locked] = "dunning lock"
    planned = account_id(2, prefix)
    source = [rec for t, rec in s.invoices if rec["account_id"] == planned][0]
    first = source["items"][0]
    half = (first["amount"] / 2).quantize(Decimal("0.01"))
    s.due_dates.append(("InstallmentPlanCreated", {
        "event_id": eid("plan", planned), "account_id": planned, "plan_id": "PLAN-1",
        "item_ids": [first["item_id"]],
        "installments": [
            {"item_id": f"{first['item_id']}-I1", "amount": half,
             "due_date": as_of + timedelta(days=10)},
            {"item_id": f"{first['item_id']}-I2", "amount": first["amount"] - half,
             "due_date": as_of + timedelta(days=40)}]}))
    s.notable[planned] = "instalment plan"


def _moved_due_date(s: Sample, as_of: date, prefix: str) -> None:
    """The fourth account's first item due a week from now."""
    moved = account_id(3, prefix)
    moved_invoice = [rec for t, rec in s.invoices if rec["account_id"] == moved][0]
    s.due_dates.append(("DueDateChanged", {
        "event_id": eid("due", moved), "account_id": moved,
        "item_id": moved_invoice["items"][0]["item_id"], "due_date": as_of + timedelta(days=7),
        "reason": "customer asked for time"}))
    s.notable[moved] = "due date moved"
