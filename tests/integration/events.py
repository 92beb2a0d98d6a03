"""Building input records for tests (Avro dicts, as `dunning produce` would publish)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

Rec = tuple[str, dict[str, Any]]


def _id() -> str:
    return uuid.uuid4().hex


def account(acc: str, procedure: str = "STANDARD", email: str | None = "a@example.test",
            currency: str = "EUR", language: str = "en", event_id: str | None = None) -> Rec:
    return ("AccountUpserted", {
        "event_id": event_id or _id(), "account_id": acc, "name": f"Customer {acc}",
        "language": language, "currency": currency, "dunning_procedure": procedure,
        "postal_address": {"lines": ["1 Main Street"], "postal_code": "10115",
                           "city": "Berlin", "country": "DE"},
        "email": email})


def invoice(acc: str, inv: str, items: list[tuple[str, str, date]], currency: str = "EUR",
            issued: date = date(2026, 9, 1), event_id: str | None = None) -> Rec:
    return ("InvoiceIssued", {
        "event_id": event_id or _id(), "account_id": acc, "invoice_id": inv,
        "currency": currency, "issued_on": issued,
        "items": [{"item_id": i, "amount": Decimal(a), "due_date": d,
                   "dunning_procedure": None, "dunning_group": None} for i, a, d in items]})


def payment(acc: str, pay: str, amount: str, received: date,
            allocations: list[tuple[str, str]] | None = None, currency: str = "EUR",
            event_id: str | None = None) -> Rec:
    return ("PaymentReceived", {
        "event_id": event_id or _id(), "account_id": acc, "payment_id": pay,
        "amount": Decimal(amount), "currency": currency, "received_on": received,
        "payment_run_id": None,
        "allocations": None if allocations is None else
        [{"item_id": i, "amount": Decimal(a)} for i, a in allocations]})


def reversal(acc: str, pay: str) -> Rec:
    return ("PaymentReversed", {"event_id": _id(), "account_id": acc, "payment_id": pay,
                                "reason": "bounced"})


def cancel(acc: str, inv: str) -> Rec:
    return ("InvoiceCancelled", {"event_id": _id(), "account_id": acc, "invoice_id": inv})


def lock(acc: str, lock_id: str, start: date, end: date, item_id: str | None = None) -> Rec:
    return ("DunningLockSet", {"event_id": _id(), "account_id": acc, "lock_id": lock_id,
                               "reason": "dispute", "valid_from": start, "valid_to": end,
                               "item_id": item_id})


def imported(acc: str, item_id: str, level: int, last_dunned: date,
             interest_until: date | None = None, notice: date | None = None,
             event_id: str | None = None) -> Rec:
    return ("DunningHistoryImported", {
        "event_id": event_id or _id(), "account_id": acc, "item_id": item_id, "level": level,
        "last_dunned_date": last_dunned, "interest_until_date": interest_until,
        "notice_date": notice, "occurred_at": None})


def payment_run(run_id: str, as_of: date) -> Rec:
    return ("PaymentRunCompleted", {
        "event_id": _id(), "run_id": run_id, "as_of_date": as_of,
        "completed_at": datetime(as_of.year, as_of.month, as_of.day, 20, tzinfo=UTC),
        "payment_count": None})


def decision(rtype: str, **fields: Any) -> Rec:
    return (rtype, {"event_id": _id(), **fields})
