"""Proposal run, review and activity run through Kafka (issue: runs), on the STANDARD
procedure of CONTRACT.md: level 1 after 7 days (letter), level 2 after 21 days (charge
5.00, interest 9 % a year, minimum 1.00), at least 14 days between notices."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from tests.integration import events as e
from tests.integration.harness import dig, wait_for

D1 = date(2026, 11, 20)
D2 = D1 + timedelta(days=21)
D3 = D2 + timedelta(days=14)


def run_records(story, rtype, run_id):
    return [r for r in story.records("dunning.runs", rtype) if r["run_id"] == run_id]


def wait_run(story, rtype, run_id):
    return wait_for(lambda: run_records(story, rtype, run_id), timeout=60,
                    what=f"{rtype} {run_id}")[0]


def proposals_of(story, run_id):
    return {p["account_id"]: p for p in story.records("dunning.proposals")
            if p["run_id"] == run_id}


def items(story, acc):
    return dig(story.worker.account(acc), "items") or {}


def test_runs_review_and_activities_end_to_end(story):
    s = story
    s.send("billing.accounts", [e.account(a) for a in ("A1", "A2", "A3", "A4")])
    s.send("billing.accounts", [e.lock("A2", "L1", D1 - timedelta(days=3), D1)])
    s.send("billing.invoices", [
        e.invoice("A1", "A1-I", [("A1-x", "100.00", D1 - timedelta(days=30))]),
        e.invoice("A2", "A2-I", [("A2-x", "100.00", D1 - timedelta(days=30))]),
        e.invoice("A3", "A3-I", [("A3-x", "100.00", D1 - timedelta(days=30))]),
        e.invoice("A4", "A4-I", [("A4-x", "100.00", D1 - timedelta(days=30)),
                                 ("A4-y", "100.00", D1 - timedelta(days=10))]),
    ])
    wait_for(lambda: all(s.worker.account(a) for a in ("A1", "A2", "A3", "A4")))
    # The barrier: A3 pays in the payment run, published a moment before the run event.
    s.send("billing.payments", [e.payment("A3", "A3-P", "100.00", D1 - timedelta(days=1),
                                          allocations=[("A3-x", "100.00")])])
    s.send("billing.payment-runs", [e.payment_run("PR-1", D1)])

    done = wait_run(s, "ProposalRunCompleted", "PR-1/1")
    props = proposals_of(s, "PR-1/1")
    # a locked account gets no proposal; an item paid in the payment run is not dunned
    assert set(props) == {"A1", "A4"}
    assert done["proposals"] == 2 and done["accounts_evaluated"] >= 4
    assert props["A4"]["level"] == 1
    assert {i["item_id"] for i in props["A4"]["items"]} == {"A4-x", "A4-y"}

    # The same payment run again starts nothing new.
    s.send("billing.payment-runs", [e.payment_run("PR-1", D1)])
    # Delete the run before executing it, then run it again for the same payment run.
    s.send("dunning.decisions", [e.decision("RunDeleted", run_id="PR-1/1", decided_by="t")])
    s.send("dunning.decisions", [e.decision("ProposalRunRequested", payment_run_id="PR-1",
                                            requested_by="t")])
    wait_run(s, "ProposalRunCompleted", "PR-1/2")
    assert len(run_records(s, "ProposalRunStarted", "PR-1/1")) == 1
    rerun = proposals_of(s, "PR-1/2")
    assert set(rerun) == {"A1", "A4"}
    assert s.worker.account("A1")["pending_proposals"] == [rerun["A1"]["proposal_id"]]

    s.send("dunning.decisions", [e.decision("RunApproved", run_id="PR-1/2", decided_by="t")])
    activity = wait_run(s, "ActivityRunCompleted", "PR-1/2")
    assert activity["notices"] == 2
    letters = [r for r in s.records("dunning.letters") if r["account_id"] in ("A1", "A4")]
    assert {r["account_id"] for r in letters} == {"A1", "A4"} and len(letters) == 2
    a1_letter = next(r for r in letters if r["account_id"] == "A1")
    assert a1_letter["channel"] == "email" and a1_letter["language"] == "en"
    assert a1_letter["recipient"]["name"] == "Customer A1"
    assert a1_letter["total_due"] == Decimal("100.00")
    history = s.records("dunning.history", "DunningNoticeIssued")
    issued = {h["account_id"]: h for h in history}
    assert a1_letter["command_id"] in issued["A1"]["command_ids"]
    assert items(s, "A1")["A1-x"]["level"] == 1
    assert items(s, "A4")["A4-y"]["level"] == 1

    # Run 2, three weeks later: level 2 with charge and interest.
    s.send("billing.payment-runs", [e.payment_run("PR-2", D2)])
    wait_run(s, "ProposalRunCompleted", "PR-2/1")
    p2 = proposals_of(s, "PR-2/1")
    assert p2["A1"]["level"] == 2
    assert p2["A1"]["charge"] == Decimal("5.00")
    # 100.00 * 9 % * 51 days / 365 = 1.2575... -> 1.26
    assert p2["A1"]["interest"] == Decimal("1.26")
    assert p2["A1"]["total_due"] == Decimal("106.26")
    s.send("dunning.decisions", [e.decision("RunApproved", run_id="PR-2/1", decided_by="t")])
    wait_run(s, "ActivityRunCompleted", "PR-2/1")
    assert items(s, "A4")["A4-x"]["level"] == 2
    postings = s.records("dunning.postings")
    assert any(p["account_id"] == "A1" and p["amount"] == Decimal("5.00") for p in postings)

    # A partial payment drops A4-x below level 2's minimum: the next notice lists it a
    # level lower (a new item advances, so there is a notice at all).
    s.send("billing.payments", [e.payment("A4", "A4-P", "85.00", D2 + timedelta(days=1),
                                          allocations=[("A4-x", "85.00")])])
    s.send("billing.invoices", [e.invoice("A4", "A4-J", [("A4-z", "50.00",
                                                          D3 - timedelta(days=10))])])
    wait_for(lambda: "A4-z" in items(s, "A4"))
    s.send("billing.payment-runs", [e.payment_run("PR-3", D3)])
    wait_run(s, "ProposalRunCompleted", "PR-3/1")
    p3 = proposals_of(s, "PR-3/1")["A4"]
    x = next(i for i in p3["items"] if i["item_id"] == "A4-x")
    assert (x["previous_level"], x["new_level"], x["reason"]) == (2, 1, "decreased")
    s.send("dunning.decisions", [e.decision("ProposalApproved", proposal_id=p3["proposal_id"],
                                            decided_by="t")])
    wait_for(lambda: dig(items(s, "A4"), "A4-x", "level") == 1, what="decreased level executed")

    # Reverse A1's level-2 notice: level back to 1, compensating postings, history.
    notice_id = next(h["notice_id"] for h in s.records("dunning.history", "DunningNoticeIssued")
                     if h["account_id"] == "A1" and h["level"] == 2)
    s.send("dunning.decisions", [e.decision("NoticeReversalRequested", notice_id=notice_id,
                                            run_id=None, item_ids=None, requested_by="t",
                                            reason="customer complaint")])
    wait_for(lambda: dig(items(s, "A1"), "A1-x", "level") == 1, what="reversed level")
    reversals = [p for p in s.records("dunning.postings")
                 if p["account_id"] == "A1" and p.get("reverses_command_id")]
    assert sorted(p["amount"] for p in reversals) == [Decimal("1.26"), Decimal("5.00")]
    rev = [h for h in s.records("dunning.history", "DunningNoticeReversed")
           if h["notice_id"] == notice_id]
    assert len(rev) == 1 and rev[0]["reason"] == "customer complaint"
    assert rev[0]["charge"] == Decimal("5.00") and rev[0]["interest"] == Decimal("1.26")
    assert s.records("dunning.dead-letters") == []
