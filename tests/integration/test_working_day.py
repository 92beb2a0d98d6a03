"""An ordinary working day (issue 12): customers pay between the proposal run and the
approval, billing publishes across topics in any order, clerks delete and reverse what
was partly decided. Every proposal of an approved run gets exactly one outcome, every
run completes, and no decision is dead-lettered for a business outcome."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from tests.integration import events as e
from tests.integration.harness import dig, wait_for

D1 = date(2026, 11, 20)
DUE = D1 - timedelta(days=30)


def run_records(story, rtype, run_id):
    return [r for r in story.records("dunning.runs", rtype) if r["run_id"] == run_id]


def wait_run(story, rtype, run_id, timeout=60):
    return wait_for(lambda: run_records(story, rtype, run_id), timeout=timeout,
                    what=f"{rtype} {run_id}")[0]


def proposals_of(story, run_id):
    return {p["account_id"]: p for p in story.records("dunning.proposals")
            if p["run_id"] == run_id}


def history(story, rtype, accounts):
    return [h for h in story.records("dunning.history", rtype) if h["account_id"] in accounts]


def dunned_accounts(story, prefix, n):
    accounts = [f"{prefix}{k}" for k in range(n)]
    story.send("billing.accounts", [e.account(a) for a in accounts])
    story.send("billing.invoices", [
        e.invoice(a, f"{a}-I", [(f"{a}-x", "100.00", DUE)]) for a in accounts])
    wait_for(lambda: all(dig(story.worker.account(a), "items", f"{a}-x") for a in accounts),
             what="accounts applied")
    return accounts


def test_a_run_approved_after_payments_completes_with_one_outcome_per_proposal(story):
    s = story
    accounts = dunned_accounts(s, "WD", 8)
    s.send("billing.payment-runs", [e.payment_run("WD-PR", D1)])
    wait_run(s, "ProposalRunCompleted", "WD-PR/1")
    props = proposals_of(s, "WD-PR/1")
    assert set(props) == set(accounts)

    # between the proposal run and the approval: one pays in full, one pays part, one
    # invoice is cancelled, one account is locked from before the as-of date
    later = D1 + timedelta(days=1)
    s.send("billing.payments", [
        e.payment("WD0", "WD0-P", "100.00", later, allocations=[("WD0-x", "100.00")]),
        e.payment("WD1", "WD1-P", "30.00", later, allocations=[("WD1-x", "30.00")]),
    ])
    s.send("billing.invoices", [e.cancel("WD2", "WD2-I")])
    s.send("billing.accounts", [e.lock("WD3", "L", D1 - timedelta(days=1), D1 + timedelta(days=9))])
    wait_for(lambda: dig(s.worker.account("WD0"), "items", "WD0-x", "open_amount") == "0.00"
             and dig(s.worker.account("WD1"), "items", "WD1-x", "open_amount") == "70.00"
             and dig(s.worker.account("WD2"), "items", "WD2-x", "status") == "cancelled"
             and dig(s.worker.account("WD3"), "locks"), what="changes applied")

    s.send("dunning.decisions", [e.decision("RunApproved", run_id="WD-PR/1", decided_by="t")])
    done = wait_run(s, "ActivityRunCompleted", "WD-PR/1")
    assert (done["notices"], done["not_executed"]) == (4, 4)

    issued = {h["proposal_id"] for h in history(s, "DunningNoticeIssued", accounts)}
    refused = {h["proposal_id"]: h for h in history(s, "ProposalNotExecuted", accounts)}
    assert issued | set(refused) == {p["proposal_id"] for p in props.values()}
    assert not issued & set(refused)
    reasons = {h["account_id"]: h["reason"] for h in refused.values()}
    assert reasons == {"WD0": "paid", "WD1": "stale_proposal", "WD2": "cancelled",
                       "WD3": "locked"}
    letters = {r["account_id"] for r in s.records("dunning.letters") if r["account_id"] in accounts}
    assert letters == {"WD4", "WD5", "WD6", "WD7"}
    # the not-executed groups are no longer pending: the next run looks at them afresh
    assert s.worker.account("WD1")["pending_proposals"] == []
    assert dig(s.worker.account("WD1"), "items", "WD1-x", "level") == 0
    assert dig(s.worker.account("WD4"), "items", "WD4-x", "level") == 1
    assert s.records("dunning.dead-letters") == []


def test_an_undecided_proposal_keeps_its_group_out_of_later_runs(story):
    s = story
    accounts = dunned_accounts(s, "UP", 3)
    s.send("billing.payment-runs", [e.payment_run("UP-PR1", D1)])
    wait_run(s, "ProposalRunCompleted", "UP-PR1/1")
    first = proposals_of(s, "UP-PR1/1")
    assert set(first) >= set(accounts)
    s.send("dunning.decisions", [e.decision("ProposalRejected",
                                            proposal_id=first["UP0"]["proposal_id"],
                                            decided_by="t", reason="called")])
    wait_for(lambda: s.worker.account("UP0")["pending_proposals"] == [], what="rejection")

    s.send("billing.payment-runs", [e.payment_run("UP-PR2", D1 + timedelta(days=1))])
    done = wait_run(s, "ProposalRunCompleted", "UP-PR2/1")
    second = proposals_of(s, "UP-PR2/1")
    # the rejected one is proposed again; the two undecided ones are left out
    assert "UP0" in second and "UP1" not in second and "UP2" not in second
    assert done["groups_pending_proposal"] >= 2
    assert s.records("dunning.dead-letters") == []


def test_deleting_a_partly_approved_run_is_refused_and_recorded_not_dead_lettered(story):
    s = story
    accounts = dunned_accounts(s, "DL", 2)
    s.send("billing.payment-runs", [e.payment_run("DL-PR", D1)])
    wait_run(s, "ProposalRunCompleted", "DL-PR/1")
    props = proposals_of(s, "DL-PR/1")
    s.send("dunning.decisions", [e.decision("ProposalApproved",
                                            proposal_id=props["DL0"]["proposal_id"],
                                            decided_by="t")])
    wait_for(lambda: dig(s.worker.account("DL0"), "items", "DL0-x", "level") == 1,
             what="single approval executed")
    s.send("dunning.decisions", [e.decision("RunDeleted", run_id="DL-PR/1", decided_by="t")])
    refusal = wait_run(s, "RunDecisionRefused", "DL-PR/1")
    assert (refusal["decision"], refusal["reason"], refusal["decided_by"]) == (
        "RunDeleted", "run_executed", "t")
    # the other proposal is still undecided, and can be approved
    assert s.worker.account("DL1")["pending_proposals"] == [props["DL1"]["proposal_id"]]
    s.send("dunning.decisions", [e.decision("RunApproved", run_id="DL-PR/1", decided_by="t")])
    done = wait_run(s, "ActivityRunCompleted", "DL-PR/1")
    assert done["not_executed"] == 0
    issued = history(s, "DunningNoticeIssued", accounts)
    assert sorted(h["account_id"] for h in issued) == ["DL0", "DL1"]
    assert s.records("dunning.dead-letters") == []


def test_a_whole_run_reversal_goes_ahead_past_a_notice_it_cannot_reverse(story):
    s = story
    accounts = dunned_accounts(s, "RV", 2)
    s.send("billing.payment-runs", [e.payment_run("RV-PR1", D1)])
    wait_run(s, "ProposalRunCompleted", "RV-PR1/1")
    s.send("dunning.decisions", [e.decision("RunApproved", run_id="RV-PR1/1", decided_by="t")])
    wait_run(s, "ActivityRunCompleted", "RV-PR1/1")
    # RV0 gets a later notice (level 2) that is still in effect
    d2 = D1 + timedelta(days=21)
    s.send("billing.payment-runs", [e.payment_run("RV-PR2", d2)])
    wait_run(s, "ProposalRunCompleted", "RV-PR2/1")
    p2 = proposals_of(s, "RV-PR2/1")
    s.send("dunning.decisions", [e.decision("ProposalApproved",
                                            proposal_id=p2["RV0"]["proposal_id"],
                                            decided_by="t")])
    wait_for(lambda: dig(s.worker.account("RV0"), "items", "RV0-x", "level") == 2,
             what="RV0 at level 2")

    s.send("dunning.decisions", [e.decision("NoticeReversalRequested", notice_id=None,
                                            run_id="RV-PR1/1", item_ids=None,
                                            requested_by="t", reason="wrong run")])
    wait_for(lambda: dig(s.worker.account("RV1"), "items", "RV1-x", "level") == 0,
             what="RV1 reversed")
    refused = wait_for(lambda: history(s, "NoticeReversalRefused", accounts),
                       what="refused reversal")
    assert [(h["account_id"], h["reason"]) for h in refused] == [
        ("RV0", "later_notice_in_effect")]
    assert dig(s.worker.account("RV0"), "items", "RV0-x", "level") == 2
    reversed_ = history(s, "DunningNoticeReversed", accounts)
    assert [h["account_id"] for h in reversed_] == ["RV1"]
    assert s.records("dunning.dead-letters") == []


def test_a_plan_published_before_its_account_and_invoice_is_held_not_dead_lettered(story):
    s = story
    s.send("billing.due-dates", [("InstallmentPlanCreated", {
        "event_id": "early-plan", "account_id": "PL0", "plan_id": "PL0-plan",
        "item_ids": ["PL0-x"],
        "installments": [{"item_id": "PL0-1", "amount": Decimal("50"), "due_date": D1},
                         {"item_id": "PL0-2", "amount": Decimal("50"),
                          "due_date": D1 + timedelta(days=30)}],
        "occurred_at": None})])
    wait_for(lambda: dig(s.worker.account("PL0"), "plans", 0, "status") == "waiting_for_items",
             what="plan held")
    s.send("billing.invoices", [e.invoice("PL0", "PL0-I", [("PL0-x", "100", DUE)],
                                          currency="JPY")])
    s.send("billing.accounts", [e.account("PL0", currency="JPY")])
    wait_for(lambda: dig(s.worker.account("PL0"), "items", "PL0-1"), what="instalments")
    acc = s.worker.account("PL0")
    assert acc["plans"][0]["status"] == "active"
    assert (acc["items"]["PL0-1"]["currency"], acc["items"]["PL0-1"]["amount"]) == ("JPY", "50")
    assert acc["items"]["PL0-x"]["status"] == "in_plan"
    s.send("billing.payment-runs", [e.payment_run("PL-PR", D1 + timedelta(days=10))])
    wait_run(s, "ProposalRunCompleted", "PL-PR/1")
    prop = proposals_of(s, "PL-PR/1")["PL0"]
    # the source item is in the plan: only the overdue instalment is dunned
    assert {i["item_id"] for i in prop["items"]} == {"PL0-1"}
    assert prop["total_due"] == Decimal("50")
    assert s.records("dunning.dead-letters") == []
