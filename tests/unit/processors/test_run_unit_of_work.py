"""One account never stops a run (`Store.commit_each`): an account whose evaluation or
execution fails, or whose records the broker refuses, is left out of its unit, logged and
counted, and the unit goes through without it. In the activity run such an account's
proposals are decided without a notice (`processing_error`), so each still has one
outcome. The broker is the fake of the ingest's unit-of-work tests."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest

from processors import convert
from processors import messages as msgs
from processors import proposal_run as proposal_run_module
from processors.activity_run import ActivityRun
from processors.core import Worker
from processors.state import NO_DAY
from tests.integration import events as e
from tests.unit.processors.test_ingest_unit_of_work import PARTITION, account, apply, messages
from tests.unit.processors.test_ingest_unit_of_work import h as h  # noqa: F401  (the fixture)
from topics.catalogue import RUN_PROGRESS

D = date(2026, 9, 1)
AS_OF = convert.day(D + timedelta(days=30))
RUN = "PR-U/1"


def ingested(h: Worker) -> None:
    apply(h, messages(h, [
        ("billing.accounts", e.account("A")),
        ("billing.accounts", e.account("B")),
        ("billing.invoices", e.invoice("A", "A1", [("A1-a", "100.00", D)])),
        ("billing.invoices", e.invoice("B", "B1", [("B1-a", "50.00", D)])),
    ]))


def evaluate(h: Worker) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    keys = [(b"A", NO_DAY), (b"B", NO_DAY)]
    asyncio.run(h.proposal_run.evaluate(PARTITION, keys, RUN, AS_OF, h.procedures.get(),
                                        counts, b"k|" + RUN.encode()))
    return counts


def records(h: Worker, topic: str) -> list[tuple[str, dict[str, Any]]]:
    physical = h.settings.topic(topic)
    out = []
    for (name, _), log in h.broker.log.items():  # type: ignore[attr-defined]
        if name == physical:
            out += [h.codec.decode(v) for _, v in log]
    return out


def test_an_account_whose_evaluation_fails_is_left_out_and_the_others_are_proposed(
        h: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    ingested(h)
    propose = proposal_run_module.propose

    def failing(acc: Any, *args: Any) -> Any:
        if acc.account_id == "A":
            raise ValueError("a bug met on account A")
        return propose(acc, *args)

    monkeypatch.setattr(proposal_run_module, "propose", failing)
    counts = evaluate(h)
    assert (counts["evaluated"], counts["proposals"], counts["failed"]) == (1, 1, 1)
    assert [r["account_id"] for _, r in records(h, "dunning.proposals")] == ["B"]
    assert account(h, "A").pending == ()
    assert [p.account_id for p in account(h, "B").pending] == ["B"]
    assert h.metrics.run_accounts_failed._value.get() == 1  # noqa: SLF001


def test_an_account_whose_proposal_the_broker_refuses_is_left_out_of_the_unit(
        h: Worker) -> None:
    ingested(h)
    proposals = h.settings.topic("dunning.proposals")
    h.broker.refuse = lambda topic, key, value: topic == proposals and key == b"A"  # type: ignore[attr-defined]
    counts = evaluate(h)
    assert (counts["proposals"], counts["failed"]) == (1, 1)
    assert account(h, "A").pending == ()
    assert [p.account_id for p in account(h, "B").pending] == ["B"]
    # B's proposal went out (twice: once with the refused unit, once without A; same id)
    assert {r["account_id"] for _, r in records(h, "dunning.proposals")} == {"B"}


def test_an_account_whose_execution_fails_gets_processing_error_and_the_run_goes_on(
        h: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    ingested(h)
    evaluate(h)
    emit = ActivityRun._emit  # where an executed notice's records are made

    def failing(self: ActivityRun, stored: Any, *args: Any) -> Any:
        if stored.account.account_id == "A":
            raise OverflowError("Integer value out of range")
        return emit(self, stored, *args)

    monkeypatch.setattr(ActivityRun, "_emit", failing)
    # the fake tables are dicts, without RocksDB's key range scan of the run index
    monkeypatch.setattr(h.store, "run_batches", lambda partition, run_id: iter([["A", "B"]]))
    asyncio.run(h.activities.approve_run(PARTITION, msgs.ApproveRun(RUN)))
    (progress,) = [msgs.decode(v) for _, v in h.broker.log[  # type: ignore[attr-defined]
        (h.settings.topic(RUN_PROGRESS), 0)]]
    assert isinstance(progress, msgs.ApproveDone)
    assert (progress.notices, progress.not_executed) == (1, 1)
    outcomes = {r["account_id"]: (t, r) for t, r in records(h, "dunning.history")}
    assert outcomes["B"][0] == "DunningNoticeIssued"
    rtype, refused = outcomes["A"]
    assert (rtype, refused["reason"]) == ("ProposalNotExecuted", "processing_error")
    assert "OverflowError" in refused["detail"]
    assert account(h, "A").pending == ()



def test_an_activity_run_done_again_reports_what_the_first_attempt_did(
        h: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    ingested(h)
    evaluate(h)
    monkeypatch.setattr(h.store, "run_batches", lambda partition, run_id: iter([["A", "B"]]))
    # as after a crash between the units and the partition's report: the approval is
    # delivered again and finds nothing pending any more
    asyncio.run(h.activities.approve_run(PARTITION, msgs.ApproveRun(RUN)))
    asyncio.run(h.activities.approve_run(PARTITION, msgs.ApproveRun(RUN)))
    reports = [msgs.decode(v) for _, v in h.broker.log[  # type: ignore[attr-defined]
        (h.settings.topic(RUN_PROGRESS), 0)]]
    assert [(r.notices, r.not_executed) for r in reports] == [(2, 0), (2, 0)]  # type: ignore[union-attr]
    issued = [r for t, r in records(h, "dunning.history") if t == "DunningNoticeIssued"]
    assert sorted(r["account_id"] for r in issued) == ["A", "B"]
