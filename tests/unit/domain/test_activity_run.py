"""RULES.md "Review", "Activity run (stage 2)" and reversal of notices."""

from dataclasses import replace

import pytest

from domain import ids
from domain.activity_run import execute, execute_approved
from domain.commands import (
    DeactivateInstallmentPlan,
    NotifyAgent,
    PostDunningCharge,
    PostDunningChargeReversal,
    PostDunningInterest,
    PostDunningInterestReversal,
    PrintDunningLetter,
    Recipient,
    ReleaseToCollectionAgency,
    RequestSecurityDeposit,
    SetDunningLock,
)
from domain.errors import Rejected
from domain.history import ProposalNotExecuted
from domain.procedures import ACTIVITIES, Procedure
from domain.proposal_run import propose
from domain.reversal import reverse
from domain.review import drop_run, notices_of_run, record_proposals, reject, run_executed
from domain.state import Account, Proposal
from tests.unit.domain.builders import (
    ADDRESS,
    account,
    apply,
    cancel,
    day,
    dunning_fields,
    invoice,
    item,
    level,
    lock,
    move_due,
    pay,
    plan,
    procedure,
    standard,
    upsert,
)

JAN = day("2024-01-10")
FEB = day("2024-02-10")
MAR = day("2024-03-10")
EVERYTHING = procedure(
    level(1, 1, "1", "1", "2.50", interest=True, activities=ACTIVITIES), rate="10"
)


def proposals(
    acc: Account, as_of: int, procs: dict[str, Procedure], run_id: str = "R/1"
) -> Account:
    return record_proposals(acc, propose(acc, procs, as_of, run_id).proposals)


def first(acc: Account) -> Proposal:
    return acc.pending[0]


def everything_account() -> Account:
    acc = account(
        upsert(),
        invoice("I", item("A", 10000, JAN), item("B", 5000, FEB)),
        invoice("J", item("S", 3000, JAN)),
        plan("PL", ("S",), ("S-1", 3000, day("2024-06-01"))),
    )
    return proposals(acc, MAR, {"P": EVERYTHING})


def test_one_command_per_activity_of_the_notice_level_plus_postings() -> None:
    acc = everything_account()
    p = first(acc)
    acc2, notice = execute(acc, p.proposal_id)
    kinds = [type(c) for c in notice.commands]
    assert kinds == [
        PrintDunningLetter,
        SetDunningLock,
        ReleaseToCollectionAgency,
        RequestSecurityDeposit,
        NotifyAgent,
        DeactivateInstallmentPlan,
        PostDunningCharge,
        PostDunningInterest,
    ]
    nid = ids.notice_id(p.proposal_id)
    assert notice.notice_id == nid
    assert [c.command_id for c in notice.commands] == [
        ids.command_id(nid, type(c).__name__) for c in notice.commands
    ]
    assert all(c.notice_id == nid and c.account_id == "ACC-1" for c in notice.commands)
    letter, lock, collection, deposit, agent, deactivate, charge, interest = notice.commands
    assert isinstance(letter, PrintDunningLetter)
    assert (letter.language, letter.channel, letter.level, letter.currency) == (
        "de",
        "email",
        1,
        "EUR",
    )
    assert letter.recipient == Recipient("Anna Schmidt", ADDRESS, "anna@example.com")
    assert [(i.item_id, i.invoice_id, i.open_amount, i.level) for i in letter.items] == [
        ("A", "I", 10000, 1),
        ("B", "I", 5000, 1),
    ]
    assert letter.items[0].days_in_arrears == MAR - JAN
    assert (letter.charge, letter.interest, letter.total_due) == (p.charge, p.interest, p.total_due)
    assert (letter.as_of_date, letter.pay_by) == (MAR, MAR + 14)
    assert isinstance(lock, SetDunningLock) and lock.reason == "dunning level 1"
    assert isinstance(collection, ReleaseToCollectionAgency)
    assert collection.amount == 15000 and collection.items == letter.items
    assert isinstance(deposit, RequestSecurityDeposit) and deposit.amount == p.total_due
    assert isinstance(agent, NotifyAgent) and agent.task == "follow up dunning level 1"
    assert isinstance(deactivate, DeactivateInstallmentPlan) and deactivate.plan_id == "PL"
    assert isinstance(charge, PostDunningCharge) and charge.amount == 250
    assert isinstance(interest, PostDunningInterest) and interest.amount == p.interest > 0
    assert notice.history.command_ids == tuple(c.command_id for c in notice.commands)


def test_a_letter_goes_to_print_without_an_email_address() -> None:
    acc = account(upsert(email=None), invoice("I", item("A", 10000, JAN)))
    acc = proposals(acc, MAR, {"P": standard()})
    _, notice = execute(acc, first(acc).proposal_id)
    (letter,) = notice.commands
    assert isinstance(letter, PrintDunningLetter) and letter.channel == "print"


def test_no_posting_when_charge_and_interest_are_zero() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    acc = proposals(acc, MAR, {"P": standard()})
    _, notice = execute(acc, first(acc).proposal_id)
    assert [type(c) for c in notice.commands] == [PrintDunningLetter]


def test_one_plan_deactivation_per_active_plan() -> None:
    acc = account(
        upsert(),
        invoice("I", item("A", 10000, JAN), item("S", 100, JAN), item("T", 100, JAN)),
        plan("PL1", ("S",), ("S-1", 100, day("2025-01-01"))),
        plan("PL2", ("T",), ("T-1", 100, day("2025-01-01"))),
    )
    only_plans = procedure(level(1, 1, activities=("deactivate_installment_plan",)))
    acc = proposals(acc, MAR, {"P": only_plans})
    _, notice = execute(acc, first(acc).proposal_id)
    assert [(c.plan_id, c.command_id) for c in notice.commands] == [  # type: ignore[union-attr]
        ("PL1", ids.command_id(notice.notice_id, "DeactivateInstallmentPlan", 0)),
        ("PL2", ids.command_id(notice.notice_id, "DeactivateInstallmentPlan", 1)),
    ]


def test_execution_updates_levels_of_the_group_last_dunned_of_listed_and_interest_until() -> None:
    acc = account(
        upsert(), invoice("I", item("A", 10000, JAN), item("B", 10000, FEB), item("C", 400, JAN))
    )
    acc = replace(
        acc, items=tuple(replace(it, level=1) if it.item_id in "AC" else it for it in acc.items)
    )
    procs = {"P": replace(standard(), min_interest_amount=standard().levels[0].charge)}
    acc = proposals(acc, MAR, procs)
    p = first(acc)
    assert [c.item_id for c in p.level_changes] == ["C"]
    after, notice = execute(acc, p.proposal_id)
    assert dunning_fields(after) == {
        "A": (2, MAR, MAR),
        "B": (1, MAR, MAR),
        "C": (0, None, None),
    }
    assert [(i.item_id, i.listed, i.old_level, i.new_level) for i in notice.history.items] == [
        ("A", True, 1, 2),
        ("B", True, 0, 1),
        ("C", False, 1, 0),
    ]
    assert after.pending == ()


def test_interest_below_the_minimum_is_neither_posted_nor_forfeited() -> None:
    procs = {
        "P": procedure(
            level(1, 1, interest=True),
            level(2, 30, interest=True),
            rate="9",
            min_interest="1.00",
            min_days=1,
        )
    }
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    acc = proposals(acc, JAN + 20, procs)  # 100.00 * 9 % * 20 / 365 = 0.49: not posted
    assert first(acc).interest == 0
    acc, _ = execute(acc, first(acc).proposal_id)
    assert acc.items[0].interest_until_day is None
    acc = proposals(acc, JAN + 41, procs, run_id="R2/1")
    # charged from the due date, not from the first notice: 100.00 * 9 % * 41 / 365 = 1.01
    assert first(acc).items[0].interest_from == JAN
    assert first(acc).interest == 101
    acc, _ = execute(acc, first(acc).proposal_id)
    assert acc.items[0].interest_until_day == JAN + 41


def test_executing_again_returns_the_same_notice_and_changes_nothing() -> None:
    acc = everything_account()
    pid = first(acc).proposal_id
    after, notice = execute(acc, pid)
    again, notice2 = execute(after, pid)
    assert again is after
    assert notice2 == notice


def test_a_redelivered_approval_after_a_master_data_change_re_emits_the_same_letter() -> None:
    acc = everything_account()
    pid = first(acc).proposal_id
    after, notice = execute(acc, pid)
    moved = apply(after, upsert(name="Anna Meier", email=None))
    _, notice2 = execute(moved, pid)
    assert notice2 == notice


def test_executing_a_proposal_that_is_not_pending_is_rejected() -> None:
    acc = everything_account()
    with pytest.raises(Rejected) as err:
        execute(acc, "no-such-proposal")
    assert err.value.code == "unknown_proposal"


def test_a_proposal_made_stale_by_a_payment_is_rejected_at_execution() -> None:
    acc = everything_account()
    acc = apply(acc, pay("P1", 100, MAR, ("A", 100)))
    with pytest.raises(Rejected) as err:
        execute(acc, first(acc).proposal_id)
    assert err.value.code == "stale_proposal"


def test_a_group_with_an_undecided_proposal_gets_no_second_one_until_it_is_decided() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    acc = proposals(acc, MAR, {"P": standard()}, run_id="R/1")
    (one,) = acc.pending
    later = propose(acc, {"P": standard()}, MAR + 1, "R2/1")
    assert later.proposals == ()
    assert later.pending_groups == 1
    # the same run evaluated again (a redelivered slice) is not held back by itself
    again = propose(acc, {"P": standard()}, MAR, "R/1")
    assert [p.proposal_id for p in again.proposals] == [one.proposal_id]
    rejected, _ = reject(acc, one.proposal_id, "clerk", "")
    fresh = propose(rejected, {"P": standard()}, MAR + 1, "R2/1")
    assert len(fresh.proposals) == 1 and fresh.pending_groups == 0


def test_an_approved_proposal_made_stale_by_a_payment_is_not_executed_and_says_why() -> None:
    acc = everything_account()
    p = first(acc)
    paid = apply(acc, pay("P1", 100, MAR, ("A", 100)))
    after, outcome = execute_approved(paid, p.proposal_id)
    assert isinstance(outcome, ProposalNotExecuted)
    assert (outcome.proposal_id, outcome.run_id, outcome.reason) == (
        p.proposal_id, "R/1", "stale_proposal")
    assert "'A'" in outcome.detail
    assert after.pending == ()
    assert replace(after, pending=paid.pending) == paid
    # without the change it is executed as proposed
    executed, notice = execute_approved(acc, p.proposal_id)
    assert notice == execute(acc, p.proposal_id)[1]
    assert executed == execute(acc, p.proposal_id)[0]


def test_the_reason_a_proposal_is_not_executed_names_what_happened() -> None:
    base = account(upsert(), invoice("I", item("A", 10000, JAN)))
    acc = proposals(base, MAR, {"P": standard()})
    pid = first(acc).proposal_id

    def reason(*events: object) -> str:
        changed = acc
        for e in events:
            changed = apply(changed, e)
        outcome = execute_approved(changed, pid)[1]
        assert isinstance(outcome, ProposalNotExecuted)
        return outcome.reason

    assert reason(pay("P1", 10000, MAR)) == "paid"
    assert reason(cancel("I")) == "cancelled"
    assert reason(plan("PL", ("A",), ("A-1", 10000, MAR + 30))) == "in_plan"
    assert reason(lock("L", MAR - 1, MAR + 10)) == "locked"
    assert reason(lock("L", MAR, MAR, item_id="A")) == "locked"
    assert reason(pay("P1", 10, MAR)) == "stale_proposal"
    assert reason(move_due("A", JAN + 3)) == "stale_proposal"
    # a lock that begins after the as-of date does not stop the notice of that run
    later_lock = apply(acc, lock("L", MAR + 1, MAR + 10))
    assert not isinstance(execute_approved(later_lock, pid)[1], ProposalNotExecuted)


def test_a_rejected_proposal_changes_nothing_but_is_no_longer_pending() -> None:
    acc = everything_account()
    p = first(acc)
    after, history = reject(acc, p.proposal_id, "clerk", "customer called")
    assert after.pending == ()
    assert replace(after, pending=acc.pending) == acc
    assert history is not None
    assert (history.proposal_id, history.run_id, history.decided_by, history.reason) == (
        p.proposal_id,
        "R/1",
        "clerk",
        "customer called",
    )
    assert reject(after, p.proposal_id, "clerk", "again") == (after, None)
    with pytest.raises(Rejected):
        execute(after, p.proposal_id)


def test_an_executed_proposal_cannot_be_rejected() -> None:
    acc = everything_account()
    acc, _ = execute(acc, first(acc).proposal_id)
    with pytest.raises(Rejected) as err:
        reject(acc, ids.proposal_id("R/1", "ACC-1", "P", "EUR", ""), "clerk", "late")
    assert err.value.code == "proposal_executed"


def test_a_run_can_be_deleted_only_while_none_of_its_proposals_was_executed() -> None:
    acc = everything_account()
    assert not run_executed(acc, "R/1")
    assert drop_run(acc, "R/1").pending == ()
    assert drop_run(acc, "R/9") is acc
    acc, notice = execute(acc, first(acc).proposal_id)
    assert run_executed(acc, "R/1")
    assert notices_of_run(acc, "R/1") == (notice.notice_id,)
    with pytest.raises(Rejected) as err:
        drop_run(acc, "R/1")
    assert err.value.code == "run_executed"


def test_recording_the_same_proposals_again_changes_nothing() -> None:
    acc = everything_account()
    assert record_proposals(acc, acc.pending) is acc
    executed, _ = execute(acc, first(acc).proposal_id)
    assert record_proposals(executed, acc.pending) is executed


def test_auto_approve_is_carried_on_the_proposal() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    p = propose(acc, {"P": replace(standard(), auto_approve=True)}, MAR, "R/1").proposals[0]
    assert p.auto_approve


# -- reversal ------------------------------------------------------------------------------


def test_reversing_a_whole_notice_restores_the_items_and_compensates_postings() -> None:
    before = everything_account()
    after, notice = execute(before, first(before).proposal_id)
    rid = ids.reversal_id("req-1", notice.notice_id)
    back, reversal = reverse(after, notice.notice_id, None, rid, "clerk", "sent in error")
    assert dunning_fields(back) == dunning_fields(before)
    assert [type(c) for c in reversal.commands] == [
        PostDunningChargeReversal,
        PostDunningInterestReversal,
    ]
    charge_rev, interest_rev = reversal.commands
    assert isinstance(charge_rev, PostDunningChargeReversal)
    assert isinstance(interest_rev, PostDunningInterestReversal)
    assert charge_rev.amount == 250
    assert charge_rev.reverses_command_id == ids.command_id(notice.notice_id, "PostDunningCharge")
    assert charge_rev.command_id == ids.command_id(rid, "PostDunningChargeReversal")
    assert interest_rev.amount == notice.history.interest
    history = reversal.history
    assert history is not None
    assert (history.item_ids, history.charge, history.interest) == (
        ("A", "B"),
        250,
        notice.history.interest,
    )
    assert [(i.item_id, i.old_level, i.new_level) for i in history.items] == [
        ("A", 1, 0),
        ("B", 1, 0),
    ]
    assert history.command_ids == tuple(c.command_id for c in reversal.commands)
    again, nothing = reverse(back, notice.notice_id, None, "rid-2", "clerk", "twice")
    assert again is back and nothing.commands == () and nothing.history is None


def test_reversing_single_items_reverses_their_interest_share_and_the_charge_goes_last() -> None:
    before = everything_account()
    after, notice = execute(before, first(before).proposal_id)
    shares = {i.item_id: i.interest for i in notice.history.items}
    one, r1 = reverse(after, notice.notice_id, ("A",), "rev-a", "clerk", "paid")
    assert [(type(c), c.amount) for c in r1.commands] == [
        (PostDunningInterestReversal, shares["A"])
    ]  # type: ignore[union-attr]
    assert dunning_fields(one)["A"] == dunning_fields(before)["A"]
    assert dunning_fields(one)["B"] == dunning_fields(after)["B"]
    two, r2 = reverse(one, notice.notice_id, ("B",), "rev-b", "clerk", "paid")
    assert [(type(c), c.amount) for c in r2.commands] == [  # type: ignore[union-attr]
        (PostDunningChargeReversal, 250),
        (PostDunningInterestReversal, shares["B"]),
    ]
    assert dunning_fields(two) == dunning_fields(before)


def test_an_item_on_a_later_notice_in_effect_cannot_be_reversed_first() -> None:
    procs = {"P": replace(standard(), min_days_between_dunnings=1)}
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    acc = proposals(acc, FEB, procs)
    acc, n1 = execute(acc, first(acc).proposal_id)
    acc = proposals(acc, MAR, procs, run_id="R2/1")
    acc, n2 = execute(acc, first(acc).proposal_id)
    with pytest.raises(Rejected) as err:
        reverse(acc, n1.notice_id, None, "r1", "clerk", "x")
    assert err.value.code == "later_notice_in_effect"
    acc, _ = reverse(acc, n2.notice_id, None, "r2", "clerk", "x")
    acc, _ = reverse(acc, n1.notice_id, None, "r1", "clerk", "x")
    assert dunning_fields(acc) == {"A": (0, None, None)}


def test_reversal_of_unknown_notices_or_items_is_rejected() -> None:
    acc = everything_account()
    acc, notice = execute(acc, first(acc).proposal_id)
    with pytest.raises(Rejected) as err:
        reverse(acc, "nope", None, "r", "clerk", "x")
    assert err.value.code == "unknown_notice"
    with pytest.raises(Rejected) as err:
        reverse(acc, notice.notice_id, ("Z",), "r", "clerk", "x")
    assert err.value.code == "item_not_in_notice"
