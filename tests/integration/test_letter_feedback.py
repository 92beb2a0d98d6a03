"""Delivery feedback end to end (issue 19, decision 14), on the real broker with a worker and
a real SMTP server (aiosmtpd): an approved run gives two e-mail letters; the server takes
one and refuses the other's recipient at RCPT with a 550, which with print-on-bounce makes
it a print letter; `dunning letters print` puts it in a print batch. The letter service
publishes `LetterSent`, `LetterDeliveryFailed` and `LetterPrinted` on
`dunning.letter-deliveries`; the worker chains each onto its account's history; an outcome
published again is dropped; and `dunning audit replay` of each account is clean and says
whether the customer was reached."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import orjson
import pytest

from audit.cli import register as register_audit
from letters.config import letters_dir
from letters.service import LetterService
from tests.integration import events as e
from tests.integration.harness import env_for, wait_for
from tests.unit.letters.refusing import RefusingSmtpServer

pytestmark = pytest.mark.broker

AS_OF = date(2026, 11, 20)
PAYMENT_RUN = f"PR-{AS_OF.isoformat()}"
RUN = f"{PAYMENT_RUN}/1"
OK, GONE = "ACC-FB-OK", "ACC-FB-GONE"
GONE_ADDRESS = "gone@customer.example"
DELIVERIES = "dunning.letter-deliveries"


@pytest.fixture
def smtp() -> Iterator[RefusingSmtpServer]:
    server = RefusingSmtpServer(GONE_ADDRESS)
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


def in_env(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    for name, value in env_for(settings).items():
        if name.startswith("DUNNING_"):
            monkeypatch.setenv(name, value)


def history_of(story: Any, account_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(r.record_type, r.record) for r in story.read("dunning.history")
            if r.record is not None and r.record["account_id"] == account_id]


def explain(story: Any) -> Any:
    return lambda: (f"deliveries: {[r.record_type for r in story.read(DELIVERIES)]}\n"
                    f"dead letters: {story.records('dunning.dead-letters')}\n"
                    f"{story.worker.log()[-3000:]}")


def approved_run(story: Any) -> None:
    due = AS_OF - timedelta(days=30)
    story.send("billing.accounts", [e.account(OK, email="ok@customer.example"),
                                    e.account(GONE, email=GONE_ADDRESS)])
    story.send("billing.invoices", [e.invoice(OK, "INV-OK", [("INV-OK-1", "100.00", due)]),
                                    e.invoice(GONE, "INV-GONE",
                                              [("INV-GONE-1", "120.00", due)])])
    story.send("billing.payment-runs", [e.payment_run(PAYMENT_RUN, AS_OF)])
    wait_for(lambda: any(r["run_id"] == RUN for r in
                         story.records("dunning.runs", "ProposalRunCompleted")),
             timeout=60, what="the proposal run", explain=explain(story))
    story.send("dunning.decisions", [e.decision("RunApproved", run_id=RUN, decided_by="t")])
    wait_for(lambda: {a for a in (OK, GONE)
                      if any(t == "DunningNoticeIssued" for t, _ in history_of(story, a))}
             == {OK, GONE}, timeout=60, what="both notices", explain=explain(story))


def test_a_bounce_ends_in_a_print_job_and_the_history_says_who_was_reached(
        story: Any, smtp: RefusingSmtpServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    approved_run(story)
    service = LetterService(story.settings, smtp.settings(print_on_bounce=True,
                                                          print_after_failures=3))
    try:
        docs = asyncio.run(service.run_until_idle(1.5))
    finally:
        service.close()
    by_account = {d.account_id: d for d in docs}
    assert (by_account[OK].delivery, by_account[OK].status) == ("email", "sent")
    assert (by_account[GONE].delivery, by_account[GONE].status) == ("print", "print")
    assert [m.rcpt_tos for m in smtp.messages] == [["ok@customer.example"]]

    # the print job: the bounced letter is the run's print batch
    from dunning.cli import main

    in_env(monkeypatch, story.settings)
    capsys.readouterr()
    assert main(["letters", "print", "--run", RUN]) == 0
    out, err = capsys.readouterr()
    batch = out.strip().rsplit("/", 1)[-1]
    assert "1 letters" in err and "not published" not in err

    published = [(r.record_type, r.record) for r in story.read(DELIVERIES)]
    assert sorted((t, rec["account_id"]) for t, rec in published) == [
        ("LetterDeliveryFailed", GONE), ("LetterPrinted", GONE), ("LetterSent", OK)]
    failed = next(rec for t, rec in published if t == "LetterDeliveryFailed")
    assert (failed["smtp_code"], failed["permanent"], failed["next_step"]) == (550, True, "print")
    assert "no such mailbox" in failed["reason"]
    printed = next(rec for t, rec in published if t == "LetterPrinted")
    assert (printed["batch"], printed["fallback"]) == (batch, True)
    assert next(rec for t, rec in published if t == "LetterSent")["recipient"] == \
        "ok@customer.example"
    assert {p.key for p in story.read(DELIVERIES)} == {OK.encode(), GONE.encode()}

    # the engine chains them onto the accounts' histories
    def recorded(account_id: str) -> list[str]:
        return [r["outcome"] for t, r in history_of(story, account_id)
                if t == "LetterDeliveryRecorded"]
    wait_for(lambda: recorded(GONE) == ["failed", "printed"] and recorded(OK) == ["sent"],
             timeout=30, what="the outcomes on the history", explain=explain(story))
    gone = history_of(story, GONE)
    assert [(t, r["seq"]) for t, r in gone] == [
        ("DunningNoticeIssued", 1), ("LetterDeliveryRecorded", 2), ("LetterDeliveryRecorded", 3)]
    notice = gone[0][1]
    assert {r["notice_id"] for _, r in gone} == {notice["notice_id"]}
    assert gone[1][1]["command_id"] in notice["command_ids"]

    # a crash before the outcomes were marked published: the restarted service publishes
    # them again, and the engine drops them (same event ids, same bytes)
    db = sqlite3.connect(letters_dir(story.settings) / "documents.db")
    with db:
        db.execute("UPDATE outcomes SET published_at = NULL")
    db.close()
    restarted = LetterService(story.settings, smtp.settings(print_on_bounce=True))
    try:
        assert asyncio.run(restarted.run_until_idle(1.0)) == []  # nothing new rendered
        assert restarted.publisher.published == 3
        assert restarted.store.outcomes(unpublished=True) == []
    finally:
        restarted.close()
    assert len(smtp.messages) == 1  # and nothing sent again
    wait_for(lambda: story.worker.metric("dunning_records_total", topic=DELIVERIES,
                                         outcome="applied") >= 6,
             timeout=30, what="the outcomes read again",
             explain=explain(story))
    assert len(story.read(DELIVERIES)) == 6
    assert recorded(GONE) == ["failed", "printed"] and recorded(OK) == ["sent"]
    assert story.records("dunning.dead-letters") == []

    # the auditor: each account's chain is clean and says whether the customer was reached
    parser = argparse.ArgumentParser(prog="dunning")
    register_audit(parser.add_subparsers(dest="command", required=True))
    bodies = {}
    for account_id in (OK, GONE):
        args = parser.parse_args(["audit", "replay", "--account", account_id])
        capsys.readouterr()
        assert args.func(args) == 0
        out, table = capsys.readouterr()  # the JSON line on stdout, the table on stderr
        bodies[account_id] = (orjson.loads(out), table)
    for account_id, (body, _) in bodies.items():
        assert (body["chain"], body["problems"], body["duplicates"]) == ("intact", [], 0), \
            account_id
    ok_body, ok_table = bodies[OK]
    assert [(x["reached"], x["how"]) for x in ok_body["letters"]] == [
        (True, "e-mail to ok@customer.example")]
    gone_body, gone_table = bodies[GONE]
    assert [(x["reached"], x["how"], x["failed_attempts"]) for x in gone_body["letters"]] == [
        (True, f"printed ({batch}), after the e-mail failed", 1)]
    assert f"notice {notice['notice_id']}: reached, printed ({batch})" in gone_table
    assert "letter failed" in gone_table and "letter printed" in gone_table
    assert "reached, e-mail to ok@customer.example" in ok_table

    # and the whole history checks out against the worker's state
    args = parser.parse_args(["audit", "verify", "--worker",
                              f"http://127.0.0.1:{story.settings.web_port}"])
    capsys.readouterr()
    code = args.func(args)
    out, err = capsys.readouterr()
    assert code == 0, out + err
