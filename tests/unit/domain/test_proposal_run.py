"""RULES.md "Proposal run (stage 1)", steps 1-7, one test per rule."""

from dataclasses import replace
from decimal import Decimal

from domain import ids
from domain.activity_run import execute
from domain.procedures import Procedure
from domain.proposal_run import Evaluation, propose
from domain.reversal import reverse
from domain.review import record_proposals
from domain.state import Account, Proposal
from tests.unit.domain.builders import (
    account,
    apply,
    cancel,
    day,
    invoice,
    item,
    level,
    lock,
    pay,
    plan,
    procedure,
    standard,
    upsert,
)

JAN = day("2024-01-10")
FEB = day("2024-02-10")
MAR = day("2024-03-10")
PROCS = {"P": standard()}


def run(
    acc: Account, as_of: int, procs: dict[str, Procedure] | None = None, run_id: str = "R/1"
) -> Evaluation:
    return propose(acc, PROCS if procs is None else procs, as_of, run_id)


def only(acc: Account, as_of: int, procs: dict[str, Procedure] | None = None) -> Proposal:
    (p,) = run(acc, as_of, procs).proposals
    return p


def with_levels(acc: Account, **levels: int) -> Account:
    return replace(
        acc,
        items=tuple(replace(it, level=levels.get(it.item_id, it.level)) for it in acc.items),
    )


def executed(acc: Account, as_of: int, procs: dict[str, Procedure] | None = None) -> Account:
    p = only(acc, as_of, procs)
    acc, _ = execute(record_proposals(acc, [p]), p.proposal_id)
    return acc


# -- step 1 ------------------------------------------------------------------------------


def test_step1_an_account_locked_on_the_as_of_date_gets_no_proposal() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)), lock("L", FEB, MAR))
    assert run(acc, MAR).proposals == ()  # inclusive upper bound
    assert run(acc, FEB).proposals == ()  # inclusive lower bound
    assert run(acc, MAR + 1).proposals != ()
    assert run(acc, FEB - 1).proposals != ()


def test_step1_a_locked_item_is_skipped_and_listed_as_left_out() -> None:
    acc = account(
        upsert(),
        invoice("I", item("A", 10000, JAN), item("B", 10000, JAN)),
        lock("L", FEB, MAR, item_id="B"),
    )
    p = only(acc, MAR)
    assert [i.item_id for i in p.items] == ["A"]
    assert [(x.item_id, x.reason) for x in p.left_out] == [("B", "locked")]


def test_step1_paid_cancelled_not_due_and_plan_items_are_skipped() -> None:
    acc = account(
        upsert(),
        invoice("I", item("A", 10000, JAN), item("PAID", 2000, JAN), item("LATER", 3000, MAR)),
        invoice("X", item("GONE", 4000, JAN)),
        invoice("Y", item("SRC", 5000, JAN)),
        cancel("X"),
        pay("P1", 2000, JAN, ("PAID", 2000)),
        plan("PL", ("SRC",), ("SRC-1", 5000, day("2024-06-01"))),
    )
    p = only(acc, MAR)
    assert [i.item_id for i in p.items] == ["A"]
    assert {(x.item_id, x.reason) for x in p.left_out} == {
        ("LATER", "not_due"),
        ("SRC", "installment_plan"),
        ("SRC-1", "not_due"),
    }


def test_step1_an_item_due_on_the_as_of_date_is_not_overdue() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    one_level = {"P": procedure(level(1, 0))}
    assert run(acc, JAN, one_level).proposals == ()
    assert only(acc, JAN + 1, one_level).items[0].days_in_arrears == 1


# -- step 2 ------------------------------------------------------------------------------


def test_step2_an_item_advances_when_it_reaches_days_in_arrears_and_min_item_amount() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    assert run(acc, JAN + 6).proposals == ()
    p = only(acc, JAN + 7)
    assert (p.items[0].previous_level, p.items[0].new_level, p.items[0].reason) == (
        0,
        1,
        "advanced",
    )


def test_step2_an_item_advances_at_most_one_level_per_run() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    p = only(acc, JAN + 400)
    assert p.items[0].new_level == 1 and p.level == 1


def test_step2_an_item_below_min_item_amount_does_not_advance() -> None:
    acc = account(upsert(), invoice("I", item("A", 499, JAN), item("B", 10000, JAN)))
    p = only(acc, FEB)
    assert [i.item_id for i in p.items] == ["B"]
    assert [(x.item_id, x.reason) for x in p.left_out] == [("A", "below_min_item_amount")]


def test_step2_an_item_not_long_enough_overdue_is_left_out() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN), item("B", 10000, FEB - 3)))
    p = only(acc, FEB)
    assert [(x.item_id, x.reason) for x in p.left_out] == [("B", "below_days_in_arrears")]


def test_step2_a_partly_paid_item_decreases_to_the_highest_level_it_still_reaches() -> None:
    acc = account(
        upsert(),
        invoice("I", item("A", 1000, JAN), item("B", 10000, JAN)),
    )
    acc = with_levels(acc, A=2, B=1)  # A (10.00) no longer reaches level 2's 20.00
    p = only(acc, MAR)
    by_id = {i.item_id: i for i in p.items}
    assert (by_id["A"].previous_level, by_id["A"].new_level, by_id["A"].reason) == (
        2,
        1,
        "decreased",
    )
    assert (by_id["B"].new_level, by_id["B"].reason) == (2, "advanced")


def test_step2_a_decrease_to_zero_is_a_level_change_and_not_listed() -> None:
    acc = account(upsert(), invoice("I", item("A", 400, JAN), item("B", 10000, JAN)))
    acc = with_levels(acc, A=1)
    p = only(acc, MAR)
    assert [i.item_id for i in p.items] == ["B"]
    assert [(c.item_id, c.previous_level, c.new_level, c.reason) for c in p.level_changes] == [
        ("A", 1, 0, "decreased")
    ]


def test_step2_a_decrease_alone_never_makes_a_proposal() -> None:
    acc = with_levels(account(upsert(), invoice("I", item("A", 400, JAN))), A=2)
    assert run(acc, MAR).proposals == ()


def test_step2_an_item_at_the_highest_level_stays_there() -> None:
    acc = with_levels(
        account(upsert(), invoice("I", item("A", 10000, JAN), item("B", 10000, FEB))), A=2
    )
    p = only(acc, MAR)
    by_id = {i.item_id: i for i in p.items}
    assert (by_id["A"].new_level, by_id["A"].reason) == (2, "held")


def test_step2_a_level_above_a_shrunk_procedure_counts_as_its_highest() -> None:
    acc = with_levels(
        account(upsert(), invoice("I", item("A", 10000, JAN), item("B", 10000, FEB))), A=5
    )
    p = only(acc, MAR)
    by_id = {i.item_id: i for i in p.items}
    assert (by_id["A"].previous_level, by_id["A"].new_level, by_id["A"].reason) == (
        5,
        2,
        "decreased",
    )
    assert max(i.new_level for i in p.items) <= 2


# -- step 3 ------------------------------------------------------------------------------


def test_step3_items_are_grouped_by_procedure_currency_and_group_key() -> None:
    procs = {"P": standard(), "Q": replace(standard(), id="Q")}
    acc = account(
        upsert(),
        invoice(
            "I",
            item("A", 10000, JAN),
            item("B", 10000, JAN, group="rent"),
            item("C", 10000, JAN, procedure="Q"),
            item("D", 10000, JAN, procedure="P"),
        ),
        invoice("U", item("E", 10000, JAN), currency="USD"),
    )
    proposals = run(acc, FEB, procs).proposals
    groups = {
        (p.procedure_id, p.currency, p.dunning_group): [i.item_id for i in p.items]
        for p in proposals
    }
    assert groups == {
        ("P", "EUR", ""): ["A", "D"],
        ("P", "EUR", "rent"): ["B"],
        ("Q", "EUR", ""): ["C"],
        ("P", "USD", ""): ["E"],
    }
    assert len({p.proposal_id for p in proposals}) == 4
    assert proposals[0].proposal_id == ids.proposal_id(
        "R/1", "ACC-1", proposals[0].procedure_id, proposals[0].currency, proposals[0].dunning_group
    )


def test_step3_a_group_without_an_advancing_item_gets_no_proposal() -> None:
    acc = with_levels(account(upsert(), invoice("I", item("A", 10000, JAN))), A=1)
    assert run(acc, JAN + 20).proposals == ()  # level 2 needs 21 days
    assert run(acc, JAN + 21).proposals != ()


def test_step3_the_open_total_of_items_at_new_level_1_or_more_must_reach_min_total() -> None:
    acc = account(upsert(), invoice("I", item("A", 500, JAN), item("B", 499, JAN)))
    assert run(acc, FEB).proposals == ()  # 5.00 < 10.00 (B is below min_item)
    acc = apply(acc, invoice("J", item("C", 500, JAN)))
    assert [i.item_id for i in only(acc, FEB).items] == ["A", "C"]  # 10.00 reaches it


def test_step3_the_group_last_notice_must_be_at_least_min_days_before_as_of() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN), item("B", 10000, FEB - 1)))
    acc = executed(acc, JAN + 7)  # A to level 1
    assert run(acc, JAN + 7 + 13).proposals == ()  # B could advance, but too soon
    p = only(acc, JAN + 7 + 14)
    assert p.last_notice_date == JAN + 7


def test_step3_a_reversed_notice_does_not_count_for_the_frequency_check() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    p = only(acc, FEB)
    acc, notice = execute(record_proposals(acc, [p]), p.proposal_id)
    assert run(acc, FEB + 1).proposals == ()
    acc, _ = reverse(acc, notice.notice_id, None, "rev-1", "clerk", "wrong")
    assert only(acc, FEB + 1).last_notice_date is None


# -- step 4 ------------------------------------------------------------------------------


def test_step4_the_notice_level_is_the_highest_new_level_with_its_activities_and_charge() -> None:
    procs = {
        "P": procedure(
            level(1, 1, activities=("letter",)),
            level(2, 30, charge="2.50", activities=("letter", "workflow")),
        )
    }
    acc = with_levels(
        account(upsert(), invoice("I", item("A", 1000, JAN), item("B", 1000, FEB))), A=1
    )
    p = only(acc, MAR, procs)
    assert p.level == 2
    assert p.activities == ("letter", "workflow")
    assert p.charge == 250


def test_step4_items_at_level_1_or_more_that_did_not_advance_are_listed_at_their_level() -> None:
    acc = with_levels(
        account(upsert(), invoice("I", item("A", 10000, JAN), item("B", 10000, MAR - 10))), A=2
    )
    acc = apply(acc, invoice("J", item("C", 10000, MAR - 30)))
    acc = with_levels(acc, C=1)
    p = only(acc, MAR)
    assert [(i.item_id, i.previous_level, i.new_level, i.reason) for i in p.items] == [
        ("A", 2, 2, "held"),
        ("C", 1, 2, "advanced"),
        ("B", 0, 1, "advanced"),
    ]


# -- step 5 ------------------------------------------------------------------------------


def test_step5_interest_runs_from_the_later_of_due_date_and_interest_until_on_todays_open() -> None:
    acc = with_levels(
        account(upsert(), invoice("I", item("A", 10000, JAN), item("B", 5000, FEB))), A=1, B=1
    )
    acc = replace(
        acc,
        items=tuple(
            replace(it, interest_until_day=FEB + 5) if it.item_id == "A" else it for it in acc.items
        ),
    )
    p = only(acc, MAR, {"P": replace(standard(), min_interest_amount=Decimal(0))})
    # A: 100.00 * 9% * (Mar 10 - Feb 15 = 24 days) / 365; B: 50.00 * 9% * 29 / 365
    a, b = p.items
    assert (a.interest_from, b.interest_from) == (FEB + 5, FEB)
    exact = (10000 * 24 + 5000 * 29) * 9 / 36500  # 94.93... minor units
    assert p.interest == 95 == round(exact)
    assert a.interest + b.interest == p.interest


def test_step5_interest_is_summed_unrounded_and_rounded_half_up_once() -> None:
    # 36.5 % a year: open * days / 1000 minor units. Two items of 0.4 each: 0.8 -> 1.
    procs = {"P": procedure(level(1, 1, interest=True), rate="36.5")}
    acc = account(upsert(), invoice("I", item("A", 100, JAN), item("B", 100, JAN)))
    p = only(acc, JAN + 4, procs)
    assert p.interest == 1
    assert sorted(i.interest for i in p.items) == [0, 1]  # shares add up to the total


def test_step5_interest_below_min_interest_amount_is_not_posted() -> None:
    # 100.00 * 9 % * 40 / 365 = 0.986... -> 0.99
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    below = {"P": procedure(level(1, 1, interest=True), rate="9", min_interest="1.00")}
    p = only(acc, JAN + 40, below)
    assert (p.interest, p.items[0].interest) == (0, 0)
    assert p.items[0].interest_from == JAN
    reached = {"P": procedure(level(1, 1, interest=True), rate="9", min_interest="0.99")}
    assert only(acc, JAN + 40, reached).interest == 99


def test_step5_no_interest_when_the_notice_level_has_none() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    p = only(acc, JAN + 300)
    assert p.level == 1 and p.interest == 0
    assert all(i.interest == 0 and i.interest_from is None for i in p.items)


def test_step5_leap_day_counts_and_the_year_has_365_days() -> None:
    procs = {"P": procedure(level(1, 1, interest=True), rate="36.5")}
    acc = account(upsert(), invoice("I", item("A", 100000, day("2024-02-28"))))
    p = only(acc, day("2024-03-01"), procs)
    assert p.items[0].days_in_arrears == 2
    assert p.interest == 200  # 1000.00 * 36.5 % * 2 / 365 = 2.00


# -- steps 6 and 7 --------------------------------------------------------------------------


def test_step6_total_due_is_listed_open_plus_charge_plus_interest() -> None:
    acc = with_levels(
        account(upsert(), invoice("I", item("A", 10000, JAN), item("B", 5000, FEB))), A=1
    )
    acc = apply(acc, pay("P1", 1234, JAN, ("A", 1234)))
    p = only(acc, MAR)
    assert p.total_due == 8766 + 5000 + p.charge + p.interest
    assert p.charge == 500


def test_step7_amounts_are_exact_in_the_group_currency_jpy() -> None:
    procs = {
        "P": procedure(level(1, 1, "5", "10", "2.5", interest=True), rate="9", min_interest="1")
    }
    acc = account(upsert(currency="JPY"), invoice("I", item("A", 100000, JAN), currency="JPY"))
    p = only(acc, JAN + 30, procs)
    assert p.currency == "JPY"
    assert p.charge == 3  # 2.5 yen, half-up
    assert p.interest == 740  # 100000 * 9 % * 30 / 365 = 739.7 -> 740
    assert p.total_due == 100000 + 3 + 740


def test_step7_amounts_are_exact_in_the_group_currency_bhd() -> None:
    procs = {
        "P": procedure(
            level(1, 1, "5", "10", "2.5", interest=True), rate="9", min_interest="0.0005"
        )
    }
    acc = account(
        upsert(currency="BHD"),
        invoice("I", item("A", 1, JAN), item("B", 10000, JAN), currency="BHD"),
    )
    p = only(acc, JAN + 30, procs)
    assert p.charge == 2500
    assert [i.item_id for i in p.items] == ["B"]  # 0.001 BHD < 5 BHD
    assert p.interest == 74  # 10.000 * 9 % * 30 / 365 = 0.07397 -> 0.074


def test_step7_one_minor_unit_and_very_large_amounts_stay_exact() -> None:
    procs = {"P": procedure(level(1, 1, interest=True), rate="9.123456")}
    huge = 10**17 - 1
    acc = account(upsert(), invoice("I", item("A", 1, JAN), item("B", huge, JAN)))
    p = only(acc, JAN + 3653, procs)
    exact_numerator = (1 + huge) * 3653 * 9123456
    denominator = 1000000 * 36500
    q, r = divmod(exact_numerator, denominator)
    assert p.interest == q + (1 if 2 * r >= denominator else 0)
    assert p.total_due == 1 + huge + p.interest


# -- master data and procedures ---------------------------------------------------------------


def test_an_account_without_master_data_is_not_dunned() -> None:
    acc = account(invoice("I", item("A", 10000, JAN)))
    assert run(acc, MAR) == Evaluation((), None)


def test_an_account_whose_procedure_is_unknown_is_not_dunned_and_reported() -> None:
    acc = account(upsert(procedure="NOPE"), invoice("I", item("A", 10000, JAN)))
    assert run(acc, MAR) == Evaluation((), "NOPE")


def test_an_item_whose_procedure_override_is_unknown_is_not_dunned_and_reported() -> None:
    acc = account(
        upsert(), invoice("I", item("A", 10000, JAN), item("B", 10000, JAN, procedure="NOPE"))
    )
    ev = run(acc, MAR)
    assert ev.unknown_procedure == "NOPE"
    assert [i.item_id for p in ev.proposals for i in p.items] == ["A"]


def test_a_single_level_procedure_dunns_once_then_holds() -> None:
    procs = {"P": procedure(level(1, 3, "1", "1"), min_days=7)}
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    acc = executed(acc, JAN + 3, procs)
    assert run(acc, JAN + 100, procs).proposals == ()  # nothing can advance any more


def test_proposing_twice_gives_the_same_proposals() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN), item("B", 10000, FEB)))
    assert run(acc, MAR) == run(acc, MAR)
    assert (
        run(acc, MAR, run_id="R/2").proposals[0].proposal_id
        != run(acc, MAR).proposals[0].proposal_id
    )
