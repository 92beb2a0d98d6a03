"""Records as the review store reads them off the topics (decoded Avro: Decimal, date)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from review.store import ReviewStore

AS_OF = date(2026, 11, 20)
RUN = "PR-2026-11-20/1"


def started(run_id: str = RUN) -> tuple[str, dict[str, Any]]:
    return "ProposalRunStarted", {
        "event_id": f"s-{run_id}", "run_id": run_id, "payment_run_id": run_id.split("/")[0],
        "as_of_date": AS_OF, "started_at": datetime(2026, 11, 20, 20, tzinfo=UTC),
        "scheduled_at": None, "ticks_caught_up": 0}


def completed(proposals: int, run_id: str = RUN) -> tuple[str, dict[str, Any]]:
    return "ProposalRunCompleted", {
        "event_id": f"c-{run_id}", "run_id": run_id, "payment_run_id": run_id.split("/")[0],
        "as_of_date": AS_OF, "accounts_evaluated": proposals * 2, "proposals": proposals,
        "accounts_unknown_procedure": 0, "completed_at": None, "groups_pending_proposal": 0,
        "accounts_failed": 0}


def proposal(n: int, level: int = 1, total: str = "100.00", currency: str = "EUR",
             run_id: str = RUN, procedure: str = "STANDARD") -> tuple[str, dict[str, Any]]:
    acc = f"ACC-{n:06d}"
    return "DunningProposed", {
        "event_id": f"p-{n}", "proposal_id": f"prop-{n:06d}", "run_id": run_id,
        "account_id": acc, "procedure_id": procedure, "dunning_group": "",
        "currency": currency, "as_of_date": AS_OF, "level": level, "activities": ["letter"],
        "charge": Decimal("0.00"), "interest": Decimal("0.00"), "total_due": Decimal(total),
        "items": [{"item_id": f"{acc}-1", "invoice_id": f"INV-{acc}",
                   "open_amount": Decimal(total), "due_date": date(2026, 10, 1),
                   "days_in_arrears": 50, "previous_level": level - 1, "new_level": level,
                   "reason": "advanced", "interest": Decimal("0.00"), "interest_from": None}],
        "level_changes": [], "left_out": [{"item_id": f"{acc}-2", "reason": "not_due"}]}


def account(n: int, language: str = "de", email: str | None = "a@example.test",
            name: str | None = None) -> tuple[str, dict[str, Any]]:
    return "AccountUpserted", {
        "event_id": f"a-{n}", "account_id": f"ACC-{n:06d}", "name": name or f"Customer {n}",
        "language": language, "currency": "EUR", "dunning_procedure": "STANDARD",
        "postal_address": {"lines": ["Street 1"], "postal_code": "10115", "city": "Berlin",
                           "country": "DE"}, "email": email, "occurred_at": None}


def feed(store: ReviewStore, *records: tuple[str, dict[str, Any]]) -> None:
    with store.transaction():
        for rtype, record in records:
            store.apply(rtype, record)
