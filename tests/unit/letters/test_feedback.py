"""Delivery feedback against a real SMTP server on loopback (aiosmtpd): every attempt's
outcome is recorded for publishing in the attempt's own transaction, with a deterministic
id; a refusal at RCPT (a bounce) or repeated failures turn the letter into a print letter
as configured; a print batch records `LetterPrinted` once per letter; a bounce reported
later is recorded once. (Publishing on the broker: tests/integration/test_letter_feedback.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import SettingsError
from letters import feedback
from letters.config import LetterSettings
from letters.model import Letter
from letters.printing import print_batch
from letters.service import LetterService
from letters.store import Store
from schemas.jsonio import parse_line
from tests.unit.letters.helpers import NOTICE, RUN, SmtpServer, letter_record
from tests.unit.letters.refusing import RefusingSmtpServer

GONE = "gone@mueller-soehne.example"


@pytest.fixture
def refusing() -> Iterator[RefusingSmtpServer]:
    server = RefusingSmtpServer(GONE)
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


def add(service: LetterService, **kw: Any) -> str:
    doc, _ = service.accept(Letter.from_record(letter_record(**kw)))
    service.store.record_notice(doc.notice_id, RUN, doc.account_id)
    return doc.command_id


def send(service: LetterService, **kw: Any) -> list[Any]:
    return asyncio.run(service.mailer.send_due(**kw))


def outcomes(store: Store, command_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [parse_line(o.record_json, 1) for o in store.outcomes(command_id)]


def test_a_sent_letter_records_letter_sent_with_its_address_and_message_id(
        smtp: SmtpServer, make_service: Any) -> None:
    service = make_service(smtp.settings())
    cid = add(service)
    [doc] = send(service)
    assert doc.status == "sent"
    [(rtype, rec)] = outcomes(service.store, cid)
    assert rtype == "LetterSent"
    assert rec["event_id"] == feedback.event_id(cid, "sent", 1)
    assert (rec["command_id"], rec["notice_id"], rec["account_id"]) == (
        cid, NOTICE, "ACC-100042")
    assert (rec["channel"], rec["recipient"], rec["attempt"]) == (
        "email", "buchhaltung@mueller-soehne.example", 1)
    assert rec["message_id"] == smtp.messages[0].message["Message-ID"]
    assert rec["smtp_reply"] == "250 2.0.0 Ok: queued as Q1"  # the server's, kept
    [pending] = service.store.outcomes(unpublished=True)
    assert pending.event_id == rec["event_id"] and pending.published_at is None
    service.store.mark_published([pending.event_id])
    assert service.store.outcomes(unpublished=True) == []


def test_a_recipient_refused_at_rcpt_is_printed_at_once_with_print_on_bounce(
        refusing: RefusingSmtpServer, make_service: Any, tmp_path: Path) -> None:
    service = make_service(refusing.settings(print_on_bounce=True, print_after_failures=5))
    cid = add(service, email=GONE)
    [doc] = send(service)
    assert refusing.messages == []
    assert (doc.delivery, doc.status, doc.attempts) == ("print", "print", 1)
    assert "printed instead" in (doc.note or "")
    [(rtype, rec)] = outcomes(service.store, cid)
    assert rtype == "LetterDeliveryFailed"
    assert rec["event_id"] == feedback.event_id(cid, "failed", 1)
    assert (rec["attempt"], rec["smtp_code"], rec["permanent"], rec["next_step"]) == (
        1, 550, True, "print")
    assert "550 5.1.1" in rec["reason"] and "no such mailbox" in rec["reason"]
    # it is in the print queue of its run now, and no longer sent by anyone
    assert [d.command_id for d in service.store.documents(run=RUN, delivery="print")] == [cid]
    assert send(service, include_waiting=True) == []
    # the print batch: LetterPrinted, once per letter, marked as a fallback
    output = tmp_path / "print" / "batch-1.pdf"
    docs = service.store.documents(run=RUN, delivery="print")
    print_batch(docs, output)
    assert feedback.record_printed(service.store, docs, output) == 1
    assert feedback.record_printed(service.store, docs, tmp_path / "again.pdf") == 0
    printed = [r for t, r in outcomes(service.store, cid) if t == "LetterPrinted"]
    assert [(r["batch"], r["fallback"], r["event_id"]) for r in printed] == [
        ("batch-1.pdf", True, feedback.event_id(cid, "printed", 0))]


def test_without_print_on_bounce_a_refusal_waits_for_a_person(
        refusing: RefusingSmtpServer, make_service: Any) -> None:
    service = make_service(refusing.settings())
    cid = add(service, email=GONE)
    [doc] = send(service)
    assert (doc.delivery, doc.status, doc.next_attempt_at) == ("email", "failed", None)
    [(_, rec)] = outcomes(service.store, cid)
    assert (rec["permanent"], rec["next_step"]) == (True, "wait")


def test_temporary_failures_count_across_rounds_until_the_letter_is_printed(
        smtp: SmtpServer, make_service: Any) -> None:
    smtp.handler.refuse = 10  # 451 each time
    service = make_service(smtp.settings(attempts=3, print_after_failures=4))
    cid = add(service)
    [first] = send(service)
    assert (first.delivery, first.status, first.attempts) == ("email", "failed", 3)
    [second] = send(service, include_waiting=True)
    assert (second.delivery, second.status, second.attempts) == ("print", "print", 4)
    recs = [r for _, r in outcomes(service.store, cid)]
    assert [(r["attempt"], r["smtp_code"], r["permanent"], r["next_step"]) for r in recs] == [
        (1, 451, False, "retry"), (2, 451, False, "retry"), (3, 451, False, "retry"),
        (4, 451, False, "print")]
    assert len({r["event_id"] for r in recs}) == 4
    assert smtp.handler.refuse == 6  # the fifth attempt never happened


def test_a_bounce_reported_later_is_recorded_once_and_prints_the_letter(
        smtp: SmtpServer, make_service: Any) -> None:
    cfg = smtp.settings(print_on_bounce=True)
    service = make_service(cfg)
    cid = add(service)
    [sent] = send(service)
    assert sent.status == "sent"
    assert feedback.record_bounce(service.store, cfg, sent, "550 5.2.2 mailbox full") == "print"
    doc = service.store.get(cid)
    assert doc is not None and (doc.delivery, doc.status) == ("print", "print")
    with pytest.raises(ValueError, match="was not e-mailed"):
        feedback.record_bounce(service.store, cfg, doc, "again")
    kinds = [(t, r["attempt"]) for t, r in outcomes(service.store, cid)]
    assert kinds == [("LetterSent", 1), ("LetterDeliveryFailed", 1)]
    bounce = outcomes(service.store, cid)[1][1]
    assert (bounce["permanent"], bounce["next_step"], bounce["reason"]) == (
        True, "print", "bounced: 550 5.2.2 mailbox full")


def test_a_bounce_without_print_on_bounce_waits_and_a_second_report_changes_nothing(
        smtp: SmtpServer, make_service: Any) -> None:
    cfg = smtp.settings()
    service = make_service(cfg)
    cid = add(service)
    [sent] = send(service)
    assert feedback.record_bounce(service.store, cfg, sent, "user unknown") == "wait"
    doc = service.store.get(cid)
    assert doc is not None
    assert (doc.status, doc.next_attempt_at, doc.last_error) == (
        "failed", None, "bounced: user unknown")
    assert len(service.store.outcomes(cid)) == 2
    assert not service.store.record_outcome(cid, feedback.failed(
        sent, 1, "bounced: user unknown", code=None, permanent=True, next_step="wait"))
    assert len(service.store.outcomes(cid)) == 2


def test_outcome_ids_depend_on_letter_outcome_and_attempt_only() -> None:
    a = feedback.event_id("cmd-1", "failed", 2)
    assert a == feedback.event_id("cmd-1", "failed", 2)
    assert len({a, feedback.event_id("cmd-1", "failed", 3),
                feedback.event_id("cmd-1", "sent", 2), feedback.event_id("cmd-2", "failed", 2)}
               ) == 4


def test_the_fallback_settings_from_the_environment() -> None:
    cfg = LetterSettings.from_env({"DUNNING_LETTER_PRINT_AFTER_FAILURES": "6",
                                   "DUNNING_LETTER_PRINT_ON_BOUNCE": "yes"})
    assert (cfg.print_after_failures, cfg.print_on_bounce) == (6, True)
    default = LetterSettings.from_env({})
    assert (default.print_after_failures, default.print_on_bounce) == (0, False)
    with pytest.raises(SettingsError, match="DUNNING_LETTER_PRINT_ON_BOUNCE"):
        LetterSettings.from_env({"DUNNING_LETTER_PRINT_ON_BOUNCE": "perhaps"})
    with pytest.raises(SettingsError, match="DUNNING_LETTER_PRINT_AFTER_FAILURES"):
        LetterSettings.from_env({"DUNNING_LETTER_PRINT_AFTER_FAILURES": "-1"})
