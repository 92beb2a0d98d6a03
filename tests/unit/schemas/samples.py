"""One realistic record per record type, as Avro dicts (`Decimal`, `date`, `datetime`).

Shared fixture data: other packages' tests may import `SAMPLES` (or `sample(name)` for a
fresh copy). Amounts carry at most three decimals (the wire scale), as the domain
produces them; ids follow the shapes of ARCHITECTURE.md.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

D = Decimal
AS_OF = date(2025, 3, 31)
PAY_RUN = "PR-2025-03-31"
RUN = f"{PAY_RUN}/1"
ACCOUNT = "ACC-100042"
PROPOSAL = "0b7e3c1a-6f1d-5e39-9a0b-6f8a1c2d3e4f"
NOTICE = "5d2f9a77-1c3e-5b8a-8e4f-2a9b7c6d5e1f"

ADDRESS = {
    "lines": ["Hauptstraße 12", "3. OG"],
    "postal_code": "10115",
    "city": "Berlin",
    "country": "DE",
}

NOTICE_ITEMS = [
    {
        "item_id": "INV-2025-0117/1",
        "invoice_id": "INV-2025-0117",
        "due_date": date(2025, 2, 14),
        "days_in_arrears": 45,
        "open_amount": D("119.00"),
        "level": 2,
        "interest_parts": None,
        "kind": None,
    },
    {
        "item_id": "INV-2025-0203/1",
        "invoice_id": "INV-2025-0203",
        "due_date": date(2025, 3, 3),
        "days_in_arrears": 28,
        "open_amount": D("45.50"),
        "level": 1,
        "interest_parts": None,
        "kind": None,
    },
]

ITEM_CHANGES = [
    {
        "item_id": "INV-2025-0117/1",
        "listed": True,
        "old_level": 1,
        "new_level": 2,
        "old_last_dunned": date(2025, 3, 3),
        "new_last_dunned": AS_OF,
        "old_interest_until": None,
        "new_interest_until": AS_OF,
        "interest": D("1.32"),
        "interest_parts": None,
        "interest_reason": None,
    },
    {
        "item_id": "INV-2025-0203/1",
        "listed": True,
        "old_level": 0,
        "new_level": 1,
        "old_last_dunned": None,
        "new_last_dunned": AS_OF,
        "old_interest_until": None,
        "new_interest_until": AS_OF,
        "interest": D("0.31"),
        "interest_parts": None,
        "interest_reason": None,
    },
]


def _history(seq: int, prev_hash: str, event: str) -> dict[str, Any]:
    return {
        "event_id": event,
        "account_id": ACCOUNT,
        "seq": seq,
        "prev_hash": prev_hash,
        "recorded_for": AS_OF,
    }


SAMPLES: dict[str, dict[str, Any]] = {
    # -- inputs ---------------------------------------------------------------------------
    "AccountUpserted": {
        "event_id": "acc-evt-0001",
        "account_id": ACCOUNT,
        "name": "Müller & Söhne GmbH",
        "language": "de",
        "currency": "EUR",
        "dunning_procedure": "STANDARD",
        "postal_address": ADDRESS,
        "email": "buchhaltung@mueller-soehne.example",
        "occurred_at": datetime(2025, 1, 2, 8, 30, tzinfo=UTC),
    },
    "DunningLockSet": {
        "event_id": "lock-evt-0001",
        "account_id": ACCOUNT,
        "lock_id": "LOCK-7",
        "reason": "complaint under review",
        "valid_from": date(2025, 3, 1),
        "valid_to": date(2025, 3, 15),
        "item_id": "INV-2025-0117/1",
        "occurred_at": None,
    },
    "DunningHistoryImported": {
        "event_id": "import-evt-0001",
        "account_id": ACCOUNT,
        "item_id": "INV-2025-0117/1",
        "level": 2,
        "last_dunned_date": date(2025, 2, 20),
        "interest_until_date": date(2025, 2, 20),
        "notice_date": None,
        "occurred_at": None,
    },
    "DunningLockReleased": {
        "event_id": "lock-evt-0002",
        "account_id": ACCOUNT,
        "lock_id": "LOCK-7",
        "occurred_at": datetime(2025, 3, 10, 14, 0, 5, 123000, tzinfo=UTC),
    },
    "InvoiceIssued": {
        "event_id": "inv-evt-0117",
        "account_id": ACCOUNT,
        "invoice_id": "INV-2025-0117",
        "currency": "EUR",
        "issued_on": date(2025, 1, 31),
        "items": [
            {
                "item_id": "INV-2025-0117/1",
                "amount": D("119.00"),
                "due_date": date(2025, 2, 14),
                "dunning_procedure": None,
                "dunning_group": None,
            },
            {
                "item_id": "INV-2025-0117/2",
                "amount": D("23.80"),
                "due_date": date(2025, 2, 14),
                "dunning_procedure": "STRICT",
                "dunning_group": "energy",
            },
        ],
        "occurred_at": datetime(2025, 1, 31, 23, 59, 59, tzinfo=UTC),
    },
    "InvoiceCancelled": {
        "event_id": "inv-evt-0118",
        "account_id": ACCOUNT,
        "invoice_id": "INV-2025-0118",
        "occurred_at": None,
    },
    "PaymentReceived": {
        "event_id": "pay-evt-0501",
        "account_id": ACCOUNT,
        "payment_id": "PAY-0501",
        "amount": D("50.00"),
        "currency": "EUR",
        "received_on": date(2025, 3, 20),
        "payment_run_id": PAY_RUN,
        "allocations": [{"item_id": "INV-2025-0117/2", "amount": D("23.80")}],
        "occurred_at": None,
    },
    "PaymentReversed": {
        "event_id": "pay-evt-0502",
        "account_id": ACCOUNT,
        "payment_id": "PAY-0501",
        "reason": "direct debit returned: insufficient funds",
        "occurred_at": datetime(2025, 3, 25, 9, 0, tzinfo=UTC),
    },
    "DueDateChanged": {
        "event_id": "due-evt-0001",
        "account_id": ACCOUNT,
        "item_id": "INV-2025-0203/1",
        "due_date": date(2025, 3, 3),
        "reason": "deferral agreed by phone",
        "occurred_at": None,
    },
    "InstallmentPlanCreated": {
        "event_id": "plan-evt-0001",
        "account_id": "ACC-100043",
        "plan_id": "PLAN-12",
        "item_ids": ["INV-2025-0300/1"],
        "installments": [
            {"item_id": "PLAN-12/1", "amount": D("333.34"), "due_date": date(2025, 4, 1)},
            {"item_id": "PLAN-12/2", "amount": D("333.33"), "due_date": date(2025, 5, 1)},
            {"item_id": "PLAN-12/3", "amount": D("333.33"), "due_date": date(2025, 6, 1)},
        ],
        "occurred_at": None,
    },
    "InstallmentPlanCancelled": {
        "event_id": "plan-evt-0002",
        "account_id": "ACC-100043",
        "plan_id": "PLAN-12",
        "occurred_at": None,
    },
    "PaymentRunCompleted": {
        "event_id": "run-evt-2025-03-31",
        "run_id": PAY_RUN,
        "as_of_date": AS_OF,
        "completed_at": datetime(2025, 3, 31, 22, 15, tzinfo=UTC),
        "payment_count": 18342,
        "occurred_at": None,
    },
    # -- control --------------------------------------------------------------------------
    "DunningProcedureDefined": {
        "event_id": "proc-STANDARD-v3",
        "procedure_id": "STANDARD",
        "min_days_between_dunnings": 14,
        "interest_rate_percent": D("9.0"),
        "min_interest_amount": D("1.00"),
        "auto_approve": False,
        "levels": [
            {
                "level": 1,
                "days_in_arrears": 7,
                "min_item_amount": D("5.00"),
                "min_total_amount": D("10.00"),
                "charge": D("0.00"),
                "interest": False,
                "activities": ["letter"],
                "charge_percent": None,
                "charge_min": None,
                "charge_max": None,
                "pay_within_days": None,
                "activity_min_amounts": None,
            },
            {
                "level": 2,
                "days_in_arrears": 21,
                "min_item_amount": D("20.00"),
                "min_total_amount": D("30.00"),
                "charge": D("5.00"),
                "interest": True,
                "activities": ["letter"],
                "charge_percent": None,
                "charge_min": None,
                "charge_max": None,
                "pay_within_days": None,
                "activity_min_amounts": None,
            },
            {
                "level": 3,
                "days_in_arrears": 42,
                "min_item_amount": D("20.00"),
                "min_total_amount": D("50.00"),
                "charge": D("10.00"),
                "interest": True,
                "activities": ["letter", "lock", "workflow"],
                "charge_percent": D("1.5"),
                "charge_min": D("5.00"),
                "charge_max": D("50.00"),
                "pay_within_days": 7,
                "activity_min_amounts": [{"activity": "lock", "amount": D("100.00")}],
            },
        ],
        "day_count": None,
        "interest_base_rate": None,
        "interest_spread_percent": None,
        "interest_base": None,
        "clearing_order": None,
    },
    "InterestRateSet": {
        "event_id": "rate-DE-BASIS-2025-01-01",
        "rate_id": "DE-BASIS",
        "valid_from": date(2025, 1, 1),
        "percent": D("2.27"),
    },
    "RunScheduleSet": {
        "event_id": "sched-0001",
        "schedule_id": "default",
        "time_zone": "Europe/Berlin",
        "weekdays": ["mon", "tue", "wed", "thu", "fri"],
        "holidays": [date(2025, 4, 18), date(2025, 4, 21)],
        "proposal_time": "06:00",
        "activity_mode": "at",
        "activity_time": "18:00",
        "set_at": datetime(2025, 3, 28, 9, 30, tzinfo=UTC),
        "set_by": "lead.weber",
    },
    "ProposalApproved": {
        "event_id": "dec-0001",
        "proposal_id": PROPOSAL,
        "decided_by": "clerk.schmidt",
    },
    "ProposalRejected": {
        "event_id": "dec-0002",
        "proposal_id": PROPOSAL,
        "decided_by": "clerk.schmidt",
        "reason": "customer announced payment",
    },
    "RunApproved": {"event_id": "dec-0003", "run_id": RUN, "decided_by": "lead.weber"},
    "RunDeleted": {"event_id": "dec-0004", "run_id": RUN, "decided_by": "lead.weber"},
    "ProposalRunRequested": {
        "event_id": "dec-0005",
        "payment_run_id": PAY_RUN,
        "requested_by": "lead.weber",
    },
    "NoticeReversalRequested": {
        "event_id": "dec-0006",
        "notice_id": NOTICE,
        "run_id": None,
        "item_ids": ["INV-2025-0203/1"],
        "requested_by": "clerk.schmidt",
        "reason": "payment was booked on the wrong account",
    },
    # -- runs -----------------------------------------------------------------------------
    "ProposalRunStarted": {
        "event_id": "prs-0001",
        "run_id": RUN,
        "payment_run_id": PAY_RUN,
        "as_of_date": AS_OF,
        "started_at": datetime(2025, 4, 1, 6, 0, 1, 250000, tzinfo=UTC),
        "scheduled_at": datetime(2025, 4, 1, 6, 0, tzinfo=UTC),
        "ticks_caught_up": 0,
    },
    "ScheduledStartMissed": {
        "event_id": "ssm-0001",
        "schedule_id": "default",
        "scheduled_at": datetime(2025, 3, 31, 4, 0, tzinfo=UTC),
        "reason": "no_payment_run",
        "ticks_caught_up": 2,
    },
    "ProposalRunCompleted": {
        "event_id": "prc-0001",
        "run_id": RUN,
        "payment_run_id": PAY_RUN,
        "as_of_date": AS_OF,
        "accounts_evaluated": 1_000_000,
        "proposals": 650_112,
        "accounts_unknown_procedure": 3,
        "completed_at": datetime(2025, 3, 31, 22, 15, 14, tzinfo=UTC),
        "groups_pending_proposal": 12,
        "accounts_failed": 0,
    },
    "ActivityRunCompleted": {
        "event_id": "arc-0001",
        "run_id": RUN,
        "notices": 650_112,
        "commands": 1_402_877,
        "completed_at": datetime(2025, 4, 1, 6, 0, tzinfo=UTC),
        "not_executed": 4,
        "auto_approved": False,
    },
    "RunDecisionRefused": {
        "event_id": "rdr-0001",
        "run_id": RUN,
        "decision": "RunDeleted",
        "decision_event_id": "dec-0042",
        "reason": "run_executed",
        "detail": "run PR-2025-03-31/1 has executed proposals: reverse, not delete",
        "decided_by": "clerk.schmidt",
        "refused_at": datetime(2025, 4, 1, 7, 0, tzinfo=UTC),
    },
    # -- proposals ------------------------------------------------------------------------
    "DunningProposed": {
        "event_id": "prop-evt-0001",
        "proposal_id": PROPOSAL,
        "run_id": RUN,
        "account_id": ACCOUNT,
        "procedure_id": "STANDARD",
        "dunning_group": "",
        "currency": "EUR",
        "as_of_date": AS_OF,
        "level": 2,
        "activities": ["letter"],
        "charge": D("5.00"),
        "interest": D("1.63"),
        "total_due": D("171.13"),
        "items": [
            {
                "item_id": "INV-2025-0117/1",
                "invoice_id": "INV-2025-0117",
                "open_amount": D("119.00"),
                "due_date": date(2025, 2, 14),
                "days_in_arrears": 45,
                "previous_level": 1,
                "new_level": 2,
                "reason": "advanced",
                "interest": D("1.320"),
                "interest_from": date(2025, 2, 14),
                "interest_parts": [
                    {
                        "from": date(2025, 2, 14),
                        "to": date(2025, 3, 31),
                        "days": 45,
                        "rate_percent": D("9.0"),
                        "base_amount": D("119.00"),
                        "amount": D("1.32"),
                        "day_count": "act/365",
                    }
                ],
                "interest_reason": None,
                "kind": None,
            },
            {
                "item_id": "INV-2025-0203/1",
                "invoice_id": "INV-2025-0203",
                "open_amount": D("45.50"),
                "due_date": date(2025, 3, 3),
                "days_in_arrears": 28,
                "previous_level": 0,
                "new_level": 1,
                "reason": "advanced",
                "interest": D("0.314"),
                "interest_from": date(2025, 3, 3),
                "interest_parts": None,
                "interest_reason": None,
                "kind": None,
            },
        ],
        "level_changes": [
            {
                "item_id": "INV-2025-0120/1",
                "previous_level": 1,
                "new_level": 0,
                "reason": "open amount below min_item_amount of level 1",
            }
        ],
        "left_out": [{"item_id": "INV-2025-0117/2", "reason": "locked"}],
        "activities_below_minimum": [],
        "pay_within_days": 14,
    },
    # -- commands -------------------------------------------------------------------------
    "PrintDunningLetter": {
        "command_id": "cmd-letter-0001",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "level": 2,
        "language": "de",
        "channel": "print",
        "recipient": {
            "name": "Müller & Söhne GmbH",
            "postal_address": ADDRESS,
            "email": None,
        },
        "currency": "EUR",
        "items": NOTICE_ITEMS,
        "charge": D("5.00"),
        "interest": D("1.63"),
        "total_due": D("171.13"),
        "as_of_date": AS_OF,
        "procedure_id": "STANDARD",
        "pay_by": date(2025, 4, 14),
    },
    "SetDunningLock": {
        "command_id": "cmd-lock-0001",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "reason": "dunning level 3 reached",
    },
    "ReleaseToCollectionAgency": {
        "command_id": "cmd-coll-0001",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "currency": "EUR",
        "items": NOTICE_ITEMS,
        "amount": D("164.50"),
    },
    "RequestSecurityDeposit": {
        "command_id": "cmd-dep-0001",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "currency": "EUR",
        "amount": D("300.00"),
    },
    "NotifyAgent": {
        "command_id": "cmd-wf-0001",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "level": 3,
        "task": "follow up dunning level 3",
    },
    "DeactivateInstallmentPlan": {
        "command_id": "cmd-wf-0002",
        "notice_id": NOTICE,
        "account_id": "ACC-100043",
        "plan_id": "PLAN-12",
    },
    "PostDunningCharge": {
        "command_id": "cmd-post-0001",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "currency": "EUR",
        "amount": D("5.00"),
    },
    "PostDunningInterest": {
        "command_id": "cmd-post-0002",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "currency": "EUR",
        "amount": D("1.63"),
    },
    "PostDunningChargeReversal": {
        "command_id": "cmd-post-0003",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "currency": "EUR",
        "amount": D("5.00"),
        "reverses_command_id": "cmd-post-0001",
    },
    "PostDunningInterestReversal": {
        "command_id": "cmd-post-0004",
        "notice_id": NOTICE,
        "account_id": "ACC-200007",
        "currency": "JPY",
        "amount": D("312"),
        "reverses_command_id": None,
    },
    # -- history --------------------------------------------------------------------------
    "DunningNoticeIssued": {
        **_history(7, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "h-7"),
        "notice_id": NOTICE,
        "proposal_id": PROPOSAL,
        "run_id": RUN,
        "procedure_id": "STANDARD",
        "dunning_group": "",
        "currency": "EUR",
        "level": 2,
        "activities": ["letter"],
        "charge": D("5.00"),
        "interest": D("1.63"),
        "total_due": D("171.13"),
        "items": ITEM_CHANGES,
        "command_ids": ["cmd-letter-0001", "cmd-post-0001", "cmd-post-0002"],
        "claims": [
            {
                "item_id": f"{NOTICE}/charge",
                "kind": "charge",
                "notice_id": NOTICE,
                "amount": D("5.00"),
                "open_amount": D("5.00"),
                "due_date": date(2025, 4, 14),
            }
        ],
    },
    "DunningNoticeReversed": {
        **_history(8, "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752", "h-8"),
        "reversal_id": "rev-0001",
        "notice_id": NOTICE,
        "run_id": RUN,
        "item_ids": ["INV-2025-0203/1"],
        "charge": D("0.00"),
        "interest": D("0.31"),
        "items": [
            {
                **ITEM_CHANGES[1],
                "old_level": 1,
                "new_level": 0,
                "old_last_dunned": AS_OF,
                "new_last_dunned": None,
                "old_interest_until": AS_OF,
                "new_interest_until": None,
            }
        ],
        "command_ids": ["cmd-post-0004"],
        "reason": "payment was booked on the wrong account",
        "requested_by": "clerk.schmidt",
        "currency": "EUR",
    },
    "ItemLevelChanged": {
        **_history(9, "fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13", "h-9"),
        "item_id": "INV-2025-0120/1",
        "old_level": 1,
        "new_level": 0,
        "reason": "partial payment below min_item_amount",
    },
    "history.ProposalRejected": {
        **_history(1, "", "h-1"),
        "proposal_id": PROPOSAL,
        "run_id": RUN,
        "decided_by": "clerk.schmidt",
        "reason": "customer announced payment",
    },
    "ProposalNotExecuted": {
        **_history(2, "ab" * 32, "h-2"),
        "proposal_id": PROPOSAL,
        "run_id": RUN,
        "reason": "paid",
        "detail": "every listed item is paid",
    },
    "DunningLevelImported": {
        **_history(1, "", "h-imp"),
        "import_event_id": "imp-0001",
        "item_id": "INV-1-1",
        "old_level": 0,
        "new_level": 2,
        "old_last_dunned": None,
        "new_last_dunned": date(2025, 1, 20),
        "old_interest_until": None,
        "new_interest_until": date(2025, 1, 20),
        "notice_date": date(2025, 1, 22),
    },
    "NoticeReversalRefused": {
        **_history(3, "cd" * 32, "h-3"),
        "notice_id": "notice-0001",
        "run_id": RUN,
        "reversal_id": "rev-0001",
        "reason": "later_notice_in_effect",
        "detail": "item 'INV-1-1' is on a later notice still in effect; reverse it first",
        "requested_by": "clerk.schmidt",
    },
    "LetterDeliveryRecorded": {
        **_history(4, "ef" * 32, "h-4"),
        "delivery_event_id": "ld-0001",
        "command_id": "cmd-letter-0001",
        "notice_id": NOTICE,
        "outcome": "failed",
        "detail": "recipient refused: 550 5.1.1 No such mailbox",
        "attempt": 1,
        "permanent": True,
        "next_step": "print",
        "fallback": False,
        "at": datetime(2025, 4, 1, 8, 0, 1, tzinfo=UTC),
    },
    # -- letter deliveries (from the letter service) ----------------------------------------
    "LetterSent": {
        "event_id": "ld-0002",
        "command_id": "cmd-letter-0001",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "channel": "email",
        "recipient": "buchhaltung@mueller-soehne.example",
        "attempt": 1,
        "sent_at": datetime(2025, 4, 1, 8, 0, 1, tzinfo=UTC),
        "smtp_reply": None,
        "message_id": "<174349080100.1.1@stadtwerke.example>",
    },
    "LetterDeliveryFailed": {
        "event_id": "ld-0001",
        "command_id": "cmd-letter-0001",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "attempt": 1,
        "reason": "recipient refused: 550 5.1.1 No such mailbox",
        "smtp_code": 550,
        "permanent": True,
        "failed_at": datetime(2025, 4, 1, 8, 0, 1, tzinfo=UTC),
        "next_step": "print",
    },
    "LetterPrinted": {
        "event_id": "ld-0003",
        "command_id": "cmd-letter-0001",
        "notice_id": NOTICE,
        "account_id": ACCOUNT,
        "printed_at": datetime(2025, 4, 1, 9, 30, tzinfo=UTC),
        "batch": "PR-2025-03-31_1.pdf",
        "fallback": True,
    },
    # -- dead letters ---------------------------------------------------------------------
    "DeadLetter": {
        "event_id": "dl-billing.payments-3-1187",
        "source_topic": "billing.payments",
        "partition": 3,
        "offset": 1187,
        "key": b"ACC-100042",
        "value": b"\xc3\x01\x00\x11garbage",
        "reason": "undecodable",
        "detail": "unknown schema fingerprint 0011676172626167",
        "failed_at": datetime(2025, 3, 31, 22, 16, 2, 5000, tzinfo=UTC),
    },
}


def sample(name: str) -> dict[str, Any]:
    """A fresh deep copy of the sample of one record type."""
    return copy.deepcopy(SAMPLES[name])


def to_raw(value: Any) -> Any:
    """The `Codec.encode_raw` form of a sample: amounts and rates as unscaled ints at the
    schema's scale (3 for money, 6 for rates), dates as days since 1970-01-01, timestamps
    as epoch milliseconds (`interest_rate_percent` is the one rate: scale 6)."""
    return _to_raw(value, None)


_RATE_FIELDS = frozenset(
    {"interest_rate_percent", "interest_spread_percent", "charge_percent", "rate_percent",
     "percent"}
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _to_raw(value: Any, field: str | None) -> Any:
    if isinstance(value, Decimal):
        scaled = value.scaleb(6 if field in _RATE_FIELDS else 3)
        assert scaled == scaled.to_integral_value(), value
        return int(scaled)
    if isinstance(value, datetime):
        return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    if isinstance(value, date):
        return value.toordinal() - _EPOCH_ORDINAL
    if isinstance(value, dict):
        return {k: _to_raw(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_raw(v, field) for v in value]
    return value
