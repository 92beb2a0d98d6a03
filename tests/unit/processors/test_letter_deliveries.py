"""processors.ingest on `dunning.letter-deliveries` (decision 14): each letter outcome is
chained onto its account's history as `LetterDeliveryRecorded` in the unit of work that
remembers its id, once; a bad one is dead-lettered with its reason, and the worker goes on."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, date, datetime
from typing import Any

import pytest

from domain import ids
from tests.integration import events as e
from tests.unit.processors.fakes import PARTITION, Rig

TOPIC = "dunning.letter-deliveries"
AT = datetime(2026, 12, 3, 9, 15, 30, 250000, tzinfo=UTC)


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return Rig(tmp_path)


def sent(event_id: str = "ld-sent-1", **kw: Any) -> tuple[str, dict[str, Any]]:
    rec = {"event_id": event_id, "command_id": "cmd-1", "notice_id": "N-1",
           "account_id": "A", "channel": "email", "recipient": "a@example.com",
           "attempt": 2, "sent_at": AT, "smtp_reply": None, "message_id": "<m1@x>"}
    rec.update(kw)
    return "LetterSent", rec


def failed(event_id: str = "ld-failed-1", **kw: Any) -> tuple[str, dict[str, Any]]:
    rec = {"event_id": event_id, "command_id": "cmd-1", "notice_id": "N-1",
           "account_id": "A", "attempt": 1, "reason": "recipient refused: 550 5.1.1 gone",
           "smtp_code": 550, "permanent": True, "failed_at": AT, "next_step": "print"}
    rec.update(kw)
    return "LetterDeliveryFailed", rec


def printed(event_id: str = "ld-printed-1") -> tuple[str, dict[str, Any]]:
    return "LetterPrinted", {
        "event_id": event_id, "command_id": "cmd-1", "notice_id": "N-1", "account_id": "A",
        "printed_at": AT, "batch": "PR-1_1.pdf", "fallback": True}


def test_outcomes_are_chained_onto_the_accounts_history_once(rig: Rig) -> None:
    asyncio.run(rig.ingest.apply_unit(PARTITION, [
        rig.message("billing.accounts", e.account("A"), 0),
        rig.message(TOPIC, failed(), 0), rig.message(TOPIC, printed(), 1)]))
    # the same outcomes again (a re-publish after a crash), then a later one
    asyncio.run(rig.ingest.apply_unit(PARTITION, [
        rig.message(TOPIC, failed(), 2), rig.message(TOPIC, printed(), 3),
        rig.message(TOPIC, sent(), 4)]))
    history = rig.outbox.records("dunning.history")
    assert [(t, r["seq"], r["outcome"], r["delivery_event_id"]) for t, r in history] == [
        ("LetterDeliveryRecorded", 1, "failed", "ld-failed-1"),
        ("LetterDeliveryRecorded", 2, "printed", "ld-printed-1"),
        ("LetterDeliveryRecorded", 3, "sent", "ld-sent-1")]
    fail, prt, snt = (r for _, r in history)
    assert fail["event_id"] == ids.history_event_id("LetterDeliveryRecorded", "ld-failed-1")
    assert (fail["command_id"], fail["notice_id"], fail["detail"], fail["attempt"],
            fail["permanent"], fail["next_step"], fail["fallback"]) == (
        "cmd-1", "N-1", "recipient refused: 550 5.1.1 gone", 1, True, "print", False)
    assert (prt["detail"], prt["fallback"], prt["attempt"], prt["next_step"]) == (
        "PR-1_1.pdf", True, 0, None)
    assert (snt["detail"], snt["attempt"]) == ("a@example.com", 2)
    assert snt["recorded_for"] == date(2026, 12, 3)
    assert snt["at"] == AT  # to the millisecond
    body = rig.outbox.on("dunning.history")[0][2]
    header = rig.codec.header("LetterDeliveryRecorded")
    assert prt["prev_hash"] == hashlib.sha256(body[len(header):]).hexdigest()
    assert rig.account("A").history_seq == 3
    assert rig.outbox.records("dunning.dead-letters") == []
    assert rig.counted(TOPIC, "applied") == 5


def test_bad_outcomes_are_dead_lettered_with_their_reason(rig: Rig) -> None:
    asyncio.run(rig.ingest.apply_unit(PARTITION, [
        rig.message(TOPIC, sent(), 0),
        rig.message(TOPIC, sent(recipient="other@example.com"), 1),  # same id, other body
        rig.message(TOPIC, failed("ld-2", next_step="later"), 2),
        rig.message(TOPIC, sent("ld-3", attempt=0), 3),
        rig.message(TOPIC, failed("ld-4"), 4, key=b"B"),
        rig.message(TOPIC, failed("ld-5"), 5)]))
    dead = [(r["reason"], r["offset"], r["source_topic"])
            for _, r in rig.outbox.records("dunning.dead-letters")]
    assert dead == [("duplicate_event_id", 1, TOPIC), ("invalid_delivery", 2, TOPIC),
                    ("invalid_delivery", 3, TOPIC), ("key_mismatch", 4, TOPIC)]
    history = rig.outbox.records("dunning.history")
    assert [r["delivery_event_id"] for _, r in history] == ["ld-sent-1", "ld-5"]
    assert (rig.counted(TOPIC, "applied"), rig.counted(TOPIC, "dead_lettered")) == (2, 4)
