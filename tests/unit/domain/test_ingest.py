"""RULES.md "Account state (ingest)": open amounts from the set of events seen."""

import itertools
from dataclasses import replace

import pytest

from domain.errors import Rejected
from domain.ingest import evolve
from domain.settlement import credit, held, plan_status
from domain.state import CANCELLED, CLOSED, IN_PLAN, OPEN, active_plan_ids, is_locked, new_account
from tests.unit.domain.builders import (
    account,
    apply,
    cancel,
    cancel_plan,
    day,
    digest,
    invoice,
    item,
    lock,
    move_due,
    opens,
    pay,
    plan,
    release,
    reverse_payment,
    upsert,
)

JAN = day("2024-01-10")
FEB = day("2024-02-10")
MAR = day("2024-03-10")


def two_items():  # type: ignore[no-untyped-def]
    return invoice("INV1", item("A", 10000, JAN), item("B", 5000, FEB))


def test_allocation_reduces_exactly_the_item_it_names() -> None:
    acc = account(two_items(), pay("P1", 3000, JAN, ("B", 3000)))
    assert opens(acc) == {"A": 10000, "B": 2000}


def test_unallocated_rest_clears_open_items_by_due_date_then_item_id() -> None:
    acc = account(
        invoice(
            "INV1", item("B", 1000, JAN), item("A", 1000, JAN), item("C", 1000, day("2023-12-01"))
        ),
        pay("P1", 1500, FEB),
    )
    assert opens(acc) == {"A": 500, "B": 1000, "C": 0}


def test_unallocated_rest_of_a_partly_allocated_payment_clears_in_due_date_order() -> None:
    acc = account(two_items(), pay("P1", 6000, JAN, ("B", 1000)))
    assert opens(acc) == {"A": 5000, "B": 4000}


def test_what_is_left_is_a_credit_used_by_items_that_arrive_later() -> None:
    acc = account(two_items(), pay("P1", 20000, JAN))
    assert opens(acc) == {"A": 0, "B": 0}
    assert credit(acc) == {"EUR": 5000}
    acc = apply(acc, invoice("INV2", item("C", 8000, MAR)))
    assert opens(acc)["C"] == 3000
    assert credit(acc) == {}


def test_a_reversed_payment_counts_as_never_received() -> None:
    acc = account(two_items(), pay("P1", 12000, JAN), reverse_payment("P1"))
    assert opens(acc) == {"A": 10000, "B": 5000}
    assert credit(acc) == {}


def test_a_payment_reversal_that_arrives_first_is_remembered() -> None:
    acc = account(reverse_payment("P1"), two_items(), pay("P1", 12000, JAN))
    assert opens(acc) == {"A": 10000, "B": 5000}


def test_a_cancelled_invoice_closes_its_items_and_money_on_them_flows_on() -> None:
    acc = account(
        invoice("INV1", item("A", 10000, JAN)),
        invoice("INV2", item("B", 5000, FEB)),
        pay("P1", 4000, JAN),
    )
    assert opens(acc) == {"A": 6000, "B": 5000}
    acc = apply(acc, cancel("INV1"))
    assert opens(acc) == {"A": 0, "B": 1000}
    assert {it.item_id: it.status for it in acc.items} == {"A": CANCELLED, "B": OPEN}


def test_a_cancellation_that_arrives_before_its_invoice_is_remembered() -> None:
    acc = account(cancel("INV1"), two_items())
    assert opens(acc) == {"A": 0, "B": 0}
    assert all(it.status == CANCELLED for it in acc.items)


def test_an_allocation_to_a_cancelled_item_is_treated_as_unallocated() -> None:
    acc = account(
        invoice("INV1", item("A", 10000, JAN)),
        invoice("INV2", item("B", 5000, FEB)),
        cancel("INV1"),
        pay("P1", 2000, JAN, ("A", 2000)),
    )
    assert opens(acc) == {"A": 0, "B": 3000}


def test_an_allocation_larger_than_the_open_amount_clears_it_and_the_rest_is_unallocated() -> None:
    acc = account(two_items(), pay("P1", 12000, JAN, ("B", 12000)))
    assert opens(acc) == {"A": 3000, "B": 0}


def test_allocations_come_before_unallocated_money_whatever_the_payment_dates() -> None:
    acc = account(two_items(), pay("P1", 10000, JAN), pay("P2", 10000, FEB, ("A", 10000)))
    assert opens(acc) == {"A": 0, "B": 0}
    assert credit(acc) == {"EUR": 5000}


def test_an_allocation_to_an_unknown_item_is_kept_and_applied_when_the_item_arrives() -> None:
    acc = account(
        invoice("INV1", item("A", 10000, JAN)),
        pay("P1", 4000, JAN, ("LATER", 4000)),
    )
    assert opens(acc) == {"A": 10000}
    assert held(acc) == {"EUR": 4000}
    assert credit(acc) == {}
    acc = apply(acc, invoice("INV2", item("LATER", 5000, FEB)))
    assert opens(acc) == {"A": 10000, "LATER": 1000}
    assert held(acc) == {}


def test_an_allocation_in_another_currency_than_its_item_is_unallocated_money() -> None:
    acc = account(
        invoice("INV1", item("A", 10000, JAN)),
        invoice("INV2", item("U", 5000, JAN), currency="USD"),
        pay("P1", 3000, JAN, ("A", 3000), currency="USD"),
    )
    assert opens(acc) == {"A": 10000, "U": 2000}


def test_unallocated_money_clears_only_items_of_its_currency() -> None:
    acc = account(
        invoice("INV1", item("A", 10000, JAN)),
        invoice("INV2", item("Y", 500, JAN), currency="JPY"),
        pay("P1", 20000, JAN, currency="JPY"),
    )
    assert opens(acc) == {"A": 10000, "Y": 0}
    assert credit(acc) == {"JPY": 19500}


def test_a_late_item_that_falls_due_earlier_takes_unallocated_money_first() -> None:
    acc = account(invoice("INV1", item("B", 5000, FEB)), pay("P1", 5000, FEB))
    assert opens(acc) == {"B": 0}
    acc = apply(acc, invoice("INV0", item("A", 3000, JAN)))
    assert opens(acc) == {"A": 0, "B": 3000}


def test_a_due_date_change_moves_unallocated_money_and_keeps_the_level() -> None:
    acc = account(two_items(), pay("P1", 5000, JAN))
    assert opens(acc) == {"A": 5000, "B": 5000}
    a = next(it for it in acc.items if it.item_id == "A")
    acc = replace(acc, items=tuple(replace(it, level=2) if it is a else it for it in acc.items))
    acc = apply(acc, move_due("A", MAR))
    assert opens(acc) == {"A": 10000, "B": 0}
    moved = next(it for it in acc.items if it.item_id == "A")
    assert (moved.due_day, moved.level) == (MAR, 2)


def test_the_last_due_date_change_wins_even_before_the_item_is_known() -> None:
    acc = account(move_due("A", FEB), move_due("A", MAR), invoice("INV1", item("A", 100, JAN)))
    assert acc.items[0].due_day == MAR
    assert acc.due_changes == ()
    acc = apply(acc, move_due("A", FEB))
    assert acc.items[0].due_day == FEB


def test_items_of_an_active_plan_get_no_unallocated_money_and_instalments_are_items() -> None:
    acc = account(
        upsert(),
        invoice("INV1", item("A", 9000, JAN, procedure="Q", group="g"), item("B", 1000, JAN)),
        plan("PL", ("A",), ("A-1", 4500, FEB), ("A-2", 4500, MAR)),
        pay("P1", 2000, FEB),
    )
    by_id = {it.item_id: it for it in acc.items}
    assert by_id["A"].status == IN_PLAN and by_id["A"].open_amount == 9000
    assert opens(acc) == {"A": 9000, "A-1": 3500, "A-2": 4500, "B": 0}
    inst = by_id["A-1"]
    assert (inst.currency, inst.procedure, inst.group, inst.plan_id, inst.invoice_id) == (
        "EUR",
        "Q",
        "g",
        "PL",
        "PL",
    )
    assert active_plan_ids(acc) == ("PL",)


def test_cancelling_a_plan_closes_unpaid_instalments_and_reopens_sources_less_what_was_paid() -> (
    None
):
    acc = account(
        invoice("INV1", item("A", 9000, JAN), item("B", 3000, MAR)),
        plan("PL", ("A",), ("A-1", 4500, FEB), ("A-2", 4500, MAR)),
        pay("P1", 1000, FEB, ("A-1", 1000)),
        pay("P2", 500, FEB),
    )
    assert opens(acc) == {"A": 9000, "A-1": 3000, "A-2": 4500, "B": 3000}
    acc = apply(acc, cancel_plan("PL"))
    status = {it.item_id: it.status for it in acc.items}
    assert status == {"A": OPEN, "A-1": CLOSED, "A-2": CLOSED, "B": OPEN}
    # 1000 allocated to A-1 goes back to A; the 500 unallocated clears A (due first).
    assert opens(acc) == {"A": 7500, "A-1": 0, "A-2": 0, "B": 3000}
    assert active_plan_ids(acc) == ()


def test_cancelled_plan_sources_keep_their_level_and_interest_date() -> None:
    acc = account(invoice("INV1", item("A", 9000, JAN)))
    acc = replace(acc, items=(replace(acc.items[0], level=2, interest_until_day=FEB),))
    acc = apply(acc, plan("PL", ("A",), ("A-1", 9000, MAR)), cancel_plan("PL"))
    a = next(it for it in acc.items if it.item_id == "A")
    assert (a.level, a.interest_until_day, a.open_amount, a.status) == (2, FEB, 9000, OPEN)


def test_a_plan_waits_for_its_source_items() -> None:
    acc = account(plan("PL", ("A",), ("A-1", 4500, FEB)), pay("P1", 100, FEB, ("A-1", 100)))
    assert acc.items == ()
    assert held(acc) == {"EUR": 100}
    acc = apply(acc, invoice("INV1", item("A", 4500, JAN)))
    assert opens(acc) == {"A": 4500, "A-1": 4400}
    assert active_plan_ids(acc) == ("PL",)


def test_dunning_locks_have_inclusive_bounds_and_item_locks_only_lock_their_item() -> None:
    acc = account(lock("L1", JAN, FEB), lock("L2", MAR, MAR, item_id="A"))
    assert not is_locked(acc, JAN - 1)
    assert is_locked(acc, JAN) and is_locked(acc, FEB) and is_locked(acc, FEB, "A")
    assert not is_locked(acc, FEB + 1)
    assert not is_locked(acc, MAR) and is_locked(acc, MAR, "A") and not is_locked(acc, MAR, "B")
    acc = apply(acc, release("L1"))
    assert not is_locked(acc, JAN)
    acc = apply(acc, lock("L2", JAN, JAN, item_id="A"))  # same lock id: replaced
    assert not is_locked(acc, MAR, "A") and is_locked(acc, JAN, "A")


def test_replaying_an_event_returns_the_same_account() -> None:
    event = pay("P1", 100, JAN)
    acc = account(two_items(), event)
    assert evolve(acc, event, digest(event)) is acc


def test_the_same_event_id_with_other_content_is_rejected() -> None:
    event = pay("P1", 100, JAN)
    acc = account(two_items(), event)
    with pytest.raises(Rejected) as err:
        evolve(acc, replace(event, amount=200), digest(replace(event, amount=200)))
    assert err.value.code == "duplicate_event_id"


def test_a_redelivered_invoice_or_payment_under_a_new_event_id_changes_nothing_but_seen() -> None:
    inv = two_items()
    acc = account(inv, pay("P1", 100, JAN))
    again = apply(acc, replace(inv, event_id="other"), pay("P1", 100, JAN))
    assert again.items == acc.items and again.payments == acc.payments


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (invoice("X", item("Z", 0, JAN)), "non_positive_amount"),
        (invoice("X", item("Z", 5, JAN), currency="EURO"), "unknown_currency"),
        (invoice("X", item("Z", 5, JAN), item("Z", 6, JAN)), "duplicate_item_id"),
        (invoice("X", item("A", 5, JAN)), "duplicate_item_id"),
        (invoice("INV1", item("A", 1, JAN)), "invoice_conflict"),
        (pay("P9", -5, JAN), "non_positive_amount"),
        (pay("P9", 5, JAN, ("A", 0)), "non_positive_amount"),
        (pay("P9", 5, JAN, ("A", 4), ("B", 2)), "allocations_exceed_amount"),
        (pay("P1", 99, JAN), "payment_conflict"),
        (lock("L", FEB, JAN), "invalid_lock_period"),
        (plan("PL2", ("A",), ("A-9", 1, JAN)), "item_in_active_plan"),
        (plan("PL9", ("B",), ("A", 1, JAN)), "duplicate_item_id"),
        (plan("PL9", ("B",), ("N", 0, JAN)), "non_positive_amount"),
        (plan("PL9", ("A-1",), ("N", 1, JAN)), "nested_plan"),
        (plan("PL9", ("B", "U"), ("N", 1, JAN)), "plan_currency_mismatch"),
        (plan("PL", ("B",), ("N", 1, JAN)), "plan_conflict"),
        (plan("PL9", (), ("N", 1, JAN)), "empty_plan"),
        (upsert(account_id="OTHER"), "wrong_account"),
    ],
)
def test_input_that_makes_no_sense_is_rejected_and_changes_nothing(event, code) -> None:  # type: ignore[no-untyped-def]
    acc = account(
        two_items(),
        invoice("INV2", item("U", 100, JAN), currency="USD"),
        pay("P1", 100, JAN),
        plan("PL", ("A",), ("A-1", 10000, FEB)),
    )
    with pytest.raises(Rejected) as err:
        evolve(acc, event, digest(event))
    assert err.value.code == code


def test_a_new_account_has_nothing() -> None:
    acc = new_account("X")
    assert (acc.master, acc.items, acc.seen, acc.history_seq, acc.history_head) == (
        None,
        (),
        b"",
        0,
        "",
    )


def test_a_plan_that_arrives_before_its_account_and_items_is_held_then_takes_effect() -> None:
    # amounts are thousandths until the items' currency is known: 100 JPY = 100000
    early = plan("PL", ("A",), ("A-1", 100000, FEB), currency="BHD")
    first = apply(account(), early)
    assert first.items == ()
    assert plan_status(first, first.plans[0]) == "waiting_for_items"
    events = [
        early,
        upsert(currency="JPY"),
        invoice("I", item("A", 200, JAN), currency="JPY"),
        pay("P1", 50, FEB, ("A-1", 50), currency="JPY"),
    ]
    # the same state whatever the order (but for the order of the applied-id log)
    states = {
        replace(apply(account(), *order), seen=b"")
        for order in itertools.permutations(events)
    }
    assert len(states) == 1
    (acc,) = states
    by_id = {it.item_id: it for it in acc.items}
    assert (by_id["A-1"].currency, by_id["A-1"].amount, by_id["A-1"].open_amount) == (
        "JPY", 100, 50)
    assert by_id["A"].status == IN_PLAN
    assert plan_status(acc, acc.plans[0]) == "active"


def test_a_plan_whose_amounts_the_items_currency_cannot_hold_never_takes_effect() -> None:
    acc = account(
        upsert(currency="JPY"),
        invoice("I", item("A", 200, JAN), currency="JPY"),
        plan("PL", ("A",), ("A-1", 1005, FEB), currency="BHD"),  # 1.005 JPY
    )
    assert [it.item_id for it in acc.items] == ["A"]
    assert acc.items[0].status == OPEN
    assert plan_status(acc, acc.plans[0]) == "amount_not_in_currency"
