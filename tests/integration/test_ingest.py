"""Billing events become account state on a real broker (issue: ingest)."""

from __future__ import annotations

from datetime import date

from tests.integration import events as e
from tests.integration.harness import dig, wait_for

D = date(2026, 10, 1)


def open_amounts(story, acc):
    state = story.worker.account(acc)
    if state is None:
        return None
    return {i: it["open_amount"] for i, it in state["items"].items()}


def test_unallocated_payment_clears_oldest_due_items_first(story):
    acc = "ING-1"
    story.send("billing.accounts", [e.account(acc)])
    story.send("billing.invoices", [
        e.invoice(acc, "I1", [("I1-a", "100.00", date(2026, 10, 1)),
                              ("I1-b", "50.00", date(2026, 9, 1))]),
    ])
    story.send("billing.payments", [e.payment(acc, "P1", "70.00", date(2026, 10, 5))])
    want = {"I1-a": "80.00", "I1-b": "0.00"}
    assert wait_for(lambda: open_amounts(story, acc) == want and want, what="open amounts")


def test_payment_before_its_invoice_converges(story):
    acc = "ING-2"
    story.send("billing.payments", [
        e.payment(acc, "P1", "30.00", date(2026, 10, 5), allocations=[("X1-a", "30.00")])])
    story.send("billing.accounts", [e.account(acc)])
    story.send("billing.invoices", [e.invoice(acc, "X1", [("X1-a", "100.00", D)])])
    assert wait_for(lambda: open_amounts(story, acc) == {"X1-a": "70.00"}, what="converged")


def test_reversed_payment_reopens_and_cancelled_invoice_closes(story):
    acc = "ING-3"
    story.send("billing.accounts", [e.account(acc)])
    story.send("billing.invoices", [e.invoice(acc, "R1", [("R1-a", "40.00", D)]),
                                    e.invoice(acc, "R2", [("R2-a", "60.00", D)])])
    story.send("billing.payments", [e.payment(acc, "P1", "40.00", date(2026, 10, 2),
                                              allocations=[("R1-a", "40.00")])])
    assert wait_for(lambda: (open_amounts(story, acc) or {}).get("R1-a") == "0.00")
    story.send("billing.payments", [e.reversal(acc, "P1")])
    story.send("billing.invoices", [e.cancel(acc, "R2")])
    state = wait_for(lambda: (s := story.worker.account(acc)) and
                     dig(s, "items", "R1-a", "open_amount") == "40.00" and
                     dig(s, "items", "R2-a", "status") == "cancelled" and s, what="reopened")
    assert state["items"]["R2-a"]["open_amount"] == "0.00"


def test_a_replayed_event_changes_nothing(story):
    acc = "ING-4"
    pay = e.payment(acc, "P1", "10.00", date(2026, 10, 2), event_id="ing-4-pay")
    story.send("billing.accounts", [e.account(acc)])
    story.send("billing.invoices", [e.invoice(acc, "Q1", [("Q1-a", "25.00", D)])])
    story.send("billing.payments", [pay])
    assert wait_for(lambda: open_amounts(story, acc) == {"Q1-a": "15.00"})
    before = story.worker.account(acc)
    story.send("billing.payments", [pay, pay])
    # a marker event after the replays: once it is applied, the replays were too
    story.send("billing.payments", [e.payment(acc, "P2", "1.00", date(2026, 10, 3))])
    assert wait_for(lambda: open_amounts(story, acc) == {"Q1-a": "14.00"})
    after = story.worker.account(acc)
    assert [p["payment_id"] for p in after["payments"]] == ["P1", "P2"]
    assert before["items"]["Q1-a"]["amount"] == after["items"]["Q1-a"]["amount"]
