"""review.store: what the worklist shows, from the records of the topics."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from review.store import Filter, ReviewStore
from tests.unit.review.builders import RUN, account, completed, feed, proposal, started


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(tmp_path / "review.sqlite")
    yield s
    s.close()


def a_run(store: ReviewStore) -> None:
    """Six proposals: levels 1, 1, 2, 2, 3 in EUR, one level 2 in CHF; accounts in de/en,
    by e-mail or print."""
    feed(store, started(), *[account(n, "de" if n % 2 else "en", None if n == 4 else "x@y.z")
                             for n in range(1, 7)],
         proposal(1, 1, "12.00"), proposal(2, 1, "250.00"), proposal(3, 2, "80.00"),
         proposal(4, 2, "40.00"), proposal(5, 3, "900.00"),
         proposal(6, 2, "75.00", currency="CHF"), completed(6))


def test_the_worklist_filters_sorts_and_pages(store: ReviewStore) -> None:
    a_run(store)
    two = store.worklist(RUN, Filter(level=2, currency="EUR", sort="total"))
    assert [r["account_id"] for r in two.rows] == ["ACC-000004", "ACC-000003"]
    assert (two.total, two.pages) == (2, 1)
    big = store.worklist(RUN, Filter(min_total=Decimal("50"), max_total=Decimal("300"),
                                     currency="EUR", sort="total", descending=True))
    assert [r["total_due"] for r in big.rows] == ["250.00", "80.00"]
    printed = store.worklist(RUN, Filter(channel="print"))
    assert [r["account_id"] for r in printed.rows] == ["ACC-000004"]
    english = store.worklist(RUN, Filter(language="en"))
    assert {r["account_id"] for r in english.rows} == {"ACC-000002", "ACC-000004", "ACC-000006"}
    page2 = store.worklist(RUN, Filter(size=4, page=2))
    assert (page2.total, page2.pages, [r["account_id"] for r in page2.rows]) == (
        6, 2, ["ACC-000005", "ACC-000006"])
    assert page2.rows[0]["name"] == "Customer 5" and page2.rows[0]["old_level"] == 2


def test_a_runs_status_follows_its_decisions_and_the_history(store: ReviewStore) -> None:
    a_run(store)
    run = store.run(RUN)
    assert run is not None and run["status"] == "proposed"
    assert [(t["level"], t["currency"], t["proposals"], t["total_minor"]) for t in run["totals"]] \
        == [(1, "EUR", 2, 26200), (2, "CHF", 1, 7500), (2, "EUR", 2, 12000), (3, "EUR", 1, 90000)]
    assert run["facets"]["channel"] == ["email", "print"]
    feed(store, ("ProposalApproved", {"event_id": "d1", "proposal_id": "prop-000001",
                                      "decided_by": "anna"}))
    assert store.run(RUN)["status"] == "partly approved"
    feed(store, ("ProposalRejected", {"event_id": "d2", "proposal_id": "prop-000002",
                                      "decided_by": "ben", "reason": "called us"}),
         ("DunningNoticeIssued", {"proposal_id": "prop-000001", "notice_id": "n1"}),
         ("ProposalNotExecuted", {"proposal_id": "prop-000003", "reason": "paid",
                                  "detail": "every listed item is paid"}),
         ("RunApproved", {"event_id": "d3", "run_id": RUN, "decided_by": "anna"}))
    run = store.run(RUN)
    assert run["status"] == "approved"
    assert run["decisions"] == {"executed": 1, "rejected": 1, "not_executed": 1, "approved": 3}
    p3 = store.proposal("prop-000003")
    assert (p3["decision"], p3["reason"]) == ("not_executed", "paid: every listed item is paid")
    assert store.proposal("prop-000002")["decided_by"] == "ben"
    feed(store, ("ActivityRunCompleted", {"run_id": RUN, "notices": 4, "not_executed": 1,
                                          "completed_at": None}))
    assert store.run(RUN)["status"] == "executed"
    feed(store, ("DunningNoticeReversed", {"notice_id": "n1", "reason": "sent in error"}))
    assert store.proposal("prop-000001")["decision"] == "reversed"


def test_the_auto_approved_proposals_activity_run_does_not_execute_the_run(
        store: ReviewStore) -> None:
    """A run has two `ActivityRunCompleted`: the auto-approved proposals' with the proposal
    run, and the approval's. Only the second makes the run executed."""
    a_run(store)
    feed(store, ("ActivityRunCompleted", {"run_id": RUN, "notices": 2, "not_executed": 0,
                                          "completed_at": None, "auto_approved": True}))
    run = store.run(RUN)
    assert (run["status"], run["auto_notices"], run["executed_at"]) == ("proposed", 2, None)
    feed(store, ("RunApproved", {"event_id": "d3", "run_id": RUN, "decided_by": "anna"}),
         ("ActivityRunCompleted", {"run_id": RUN, "notices": 3, "not_executed": 1,
                                   "completed_at": None, "auto_approved": False}))
    run = store.run(RUN)
    assert (run["status"], run["auto_notices"], run["notices"], run["not_executed"]) == (
        "executed", 2, 3, 1)


def test_a_store_made_before_auto_notices_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, payment_run_id TEXT, as_of TEXT,"
                " started_at TEXT, scheduled_at TEXT, completed INTEGER DEFAULT 0, evaluated "
                "INTEGER, proposals INTEGER, executed_at TEXT, notices INTEGER, not_executed "
                "INTEGER, approved_by TEXT, deleted_by TEXT, reversed_by TEXT, refused TEXT)")
    old.commit()
    old.close()
    store = ReviewStore(path)
    try:
        a_run(store)
        feed(store, ("ActivityRunCompleted", {"run_id": RUN, "notices": 2, "not_executed": 0,
                                              "completed_at": None, "auto_approved": True}))
        assert store.run(RUN)["auto_notices"] == 2
    finally:
        store.close()


def test_a_refused_deletion_leaves_the_run_as_it_was(store: ReviewStore) -> None:
    a_run(store)
    feed(store, ("RunDeleted", {"event_id": "x", "run_id": RUN, "decided_by": "anna"}))
    assert store.run(RUN)["status"] == "deleted"
    feed(store, ("RunDecisionRefused", {"run_id": RUN, "decision": "RunDeleted",
                                        "reason": "run_executed", "detail": "too late"}))
    run = store.run(RUN)
    assert run["status"] == "proposed" and "run_executed" in run["refused"]
    assert run["decisions"] == {"undecided": 6}


def test_matching_selects_only_the_undecided_and_a_decision_is_remembered_once(
        store: ReviewStore) -> None:
    a_run(store)
    store.mark(["prop-000003"], "approved", "anna")
    assert sorted(store.matching(RUN, Filter(level=2))) == ["prop-000004", "prop-000006"]
    assert store.record_decision("e1", "ProposalApproved", "prop-000004", "anna")
    assert not store.record_decision("e1", "ProposalApproved", "prop-000004", "anna")


def test_positions_are_kept_with_what_was_read(store: ReviewStore, tmp_path) -> None:
    with store.transaction():
        store.apply(*proposal(1))
        store.set_position("t", 0, 42)
    with pytest.raises(RuntimeError), store.transaction():
        store.apply(*proposal(2))
        store.set_position("t", 0, 43)
        raise RuntimeError("crash before the commit")
    again = ReviewStore(tmp_path / "review.sqlite")
    assert again.positions() == {("t", 0): 42}
    assert again.proposal("prop-000002") is None and again.proposal("prop-000001")


def _delivery(n: int, notice: str, outcome: str, detail: str, at: str,
              **kw: object) -> tuple[str, dict[str, object]]:
    from datetime import datetime

    return "LetterDeliveryRecorded", {
        "event_id": f"ld-{n}", "account_id": "ACC-000001", "notice_id": notice,
        "command_id": f"cmd-{notice}", "outcome": outcome, "detail": detail,
        "attempt": kw.get("attempt", 1), "next_step": kw.get("next_step"),
        "fallback": kw.get("fallback", False), "at": datetime.fromisoformat(at)}


def test_letter_outcomes_of_an_account_and_whether_each_notice_reached_the_customer(
        store: ReviewStore) -> None:
    a_run(store)
    failed = _delivery(1, "n1", "failed", "550 5.1.1 gone", "2026-12-03T09:00:00+00:00",
                       next_step="print")
    feed(store, failed,
         _delivery(2, "n1", "printed", "PR_1.pdf", "2026-12-03T10:00:00+00:00", attempt=0,
                   fallback=True),
         _delivery(3, "n0", "failed", "451 later", "2026-11-01T09:00:00+00:00",
                   next_step="retry"),
         failed)  # read again: one row
    rows = store.deliveries("ACC-000001")
    assert [(r["notice_id"], r["outcome"], r["reached"], r["fallback"]) for r in rows] == [
        ("n0", "failed", False, 0), ("n1", "failed", True, 0), ("n1", "printed", True, 1)]
    assert rows[1]["next_step"] == "print" and rows[2]["detail"] == "PR_1.pdf"
    assert store.deliveries("ACC-000002") == []
