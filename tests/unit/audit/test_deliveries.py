"""The audit and letter outcomes (`LetterDeliveryRecorded`, decision 14): the replay takes
them into the chain without a finding, and the report says per notice whether the customer
was reached; an outcome for a notice or letter the history does not hold is a finding."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from audit.report import account_json, export_csv, render_table
from domain import ids
from tests.unit.audit.builders import D1, D2, change, encoded, log, notice, replay

AT = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


def delivery(issued: dict[str, Any], outcome: str, detail: str, n: int, *,
             next_step: str | None = None, fallback: bool = False,
             command_id: str | None = None) -> tuple[str, dict[str, Any]]:
    event = f"ld-{issued['notice_id'][:8]}-{outcome}-{n}"
    return "LetterDeliveryRecorded", {
        "event_id": ids.history_event_id("LetterDeliveryRecorded", event),
        "account_id": issued["account_id"], "recorded_for": AT.date(),
        "delivery_event_id": event, "command_id": command_id or issued["command_ids"][0],
        "notice_id": issued["notice_id"], "outcome": outcome, "detail": detail,
        "attempt": n, "permanent": outcome == "failed", "next_step": next_step,
        "fallback": fallback, "at": AT}


def two_notices() -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    n1 = notice("ACC-9", "PR-1/1", D1, 1, [change("x", (0, None, None), (1, D1, None))])
    n2 = notice("ACC-9", "PR-2/1", D2, 2, [change("x", (1, D1, None), (2, D2, None))])
    return n1[1], n2[1], [n1, n2]


def test_outcomes_keep_the_chain_clean_and_say_who_was_reached() -> None:
    first, second, records = two_notices()
    records += [
        delivery(first, "failed", "recipient refused: 550 5.1.1 gone", 1, next_step="print"),
        delivery(first, "printed", "PR-1_1.pdf", 0, fallback=True),
        delivery(second, "failed", "451 4.3.0 try later", 1, next_step="retry"),
    ]
    accounts, summary = replay(log(encoded(records)))
    acc = accounts["ACC-9"]
    assert acc.chain_intact and acc.problems == [] and summary.applied == 5
    body = json.loads(json.dumps(account_json(acc)))
    assert [(d["seq"], d["outcome"]) for d in body["deliveries"]] == [
        (3, "failed"), (4, "printed"), (5, "failed")]
    assert body["letters"] == [
        {"notice_id": first["notice_id"], "reached": True,
         "how": "printed (PR-1_1.pdf), after the e-mail failed", "at": AT.isoformat(),
         "failed_attempts": 1},
        {"notice_id": second["notice_id"], "reached": False,
         "how": "e-mail failed: 451 4.3.0 try later (next: retry)", "at": None,
         "failed_attempts": 1}]
    table = render_table(acc)
    assert "letter printed" in table and "letter failed" in table
    assert f"notice {first['notice_id']}: reached, printed (PR-1_1.pdf)" in table
    assert f"notice {second['notice_id']}: NOT reached, e-mail failed" in table
    rows = list(csv.DictReader(io.StringIO(export_csv(acc))))
    assert [(r["seq"], r["record_type"], r["reason"]) for r in rows[2:]] == [
        ("3", "LetterDeliveryRecorded", "failed: recipient refused: 550 5.1.1 gone"),
        ("4", "LetterDeliveryRecorded", "printed: PR-1_1.pdf"),
        ("5", "LetterDeliveryRecorded", "failed: 451 4.3.0 try later")]


def test_a_notice_without_an_outcome_is_not_known_to_have_reached_anyone() -> None:
    first, second, records = two_notices()
    records.append(delivery(second, "sent", "a@example.com", 1))
    accounts, _ = replay(log(encoded(records)))
    letters = account_json(accounts["ACC-9"])["letters"]
    assert [(x["reached"], x["how"]) for x in letters] == [
        (None, None), (True, "e-mail to a@example.com")]
    assert "no outcome yet" in render_table(accounts["ACC-9"])


def test_an_outcome_for_a_notice_or_letter_the_history_lacks_is_a_finding() -> None:
    first, second, records = two_notices()
    stranger = {**first, "notice_id": "N-unknown"}
    records += [delivery(stranger, "sent", "a@example.com", 1),
                delivery(second, "sent", "a@example.com", 1, command_id="cmd-other")]
    accounts, _ = replay(log(encoded(records)))
    acc = accounts["ACC-9"]
    assert acc.chain_intact
    assert [(p.kind, p.seq) for p in acc.problems] == [("inconsistent", 3),
                                                       ("inconsistent", 4)]
    assert "N-unknown, which the account's history does not hold" in acc.problems[0].detail
    assert "cmd-other, which notice" in acc.problems[1].detail
