"""Properties of the domain that must hold for any events, procedures and dunning past."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.activity_run import execute
from domain.commands import PostDunningChargeReversal, PostDunningInterestReversal
from domain.events import InputEvent
from domain.ingest import evolve
from domain.procedures import Procedure
from domain.proposal_run import propose
from domain.reversal import reverse
from domain.review import record_proposals
from domain.settlement import credit, held
from domain.state import Account, Proposal, new_account
from tests.unit.domain.builders import ACCOUNT, apply, digest, dunning_fields
from tests.unit.domain.strategies import BASE, dunned_accounts, interleavings, streams

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
as_of_days = st.integers(BASE, BASE + 300)


def _state(acc: Account) -> Account:
    return replace(acc, seen=b"")


@PROPERTY
@given(st.data())
def test_open_amounts_are_independent_of_the_order_events_arrive_in(data: st.DataObject) -> None:
    s = data.draw(streams(("P", "Q")))
    reference = apply(new_account(ACCOUNT), *s.in_topic_order())
    shuffled = apply(new_account(ACCOUNT), *data.draw(interleavings(s)))
    assert _state(shuffled) == _state(reference)
    assert credit(shuffled) == credit(reference)
    assert held(shuffled) == held(reference)


@PROPERTY
@given(streams(("P", "Q")), st.data())
def test_replaying_an_event_changes_nothing(s, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    events: list[InputEvent] = s.in_topic_order()
    acc = apply(new_account(ACCOUNT), *events)
    again = data.draw(st.sampled_from(events))
    assert evolve(acc, again, digest(again)) is acc


@PROPERTY
@given(streams(("P", "Q")))
def test_open_amounts_stay_between_zero_and_the_amount(s) -> None:  # type: ignore[no-untyped-def]
    acc = apply(new_account(ACCOUNT), *s.in_topic_order())
    for it in acc.items:
        assert 0 <= it.open_amount <= it.amount
    assert all(v > 0 for v in credit(acc).values())


def _check_proposal(p: Proposal, acc: Account, procs: dict[str, Procedure]) -> None:
    terms = procs[p.procedure_id].terms(p.currency)
    lv = terms.levels[p.level]
    assert lv is not None
    assert 1 <= p.level <= terms.top
    assert p.level == max(i.new_level for i in p.items)
    assert any(i.reason == "advanced" for i in p.items)
    for i in p.items:
        assert 1 <= i.new_level <= terms.top
        assert i.new_level <= i.previous_level + 1  # at most one level per run
        assert i.days_in_arrears >= 1 and i.open_amount > 0
    assert p.charge == lv.charge
    assert p.total_due == sum(i.open_amount for i in p.items) + p.charge + p.interest
    assert p.interest >= 0
    assert sum(i.interest for i in p.items) == p.interest
    assert all(i.interest >= 0 for i in p.items)
    if not lv.interest:
        assert p.interest == 0
    else:
        exact = (
            sum(
                (
                    Fraction(i.open_amount * max(0, p.as_of_date - (i.interest_from or 0)))
                    for i in p.items
                ),
                Fraction(0),
            )
            * Fraction(terms.rate_num, terms.rate_den)
            / 36500
        )
        rounded = int(exact) + (1 if exact - int(exact) >= Fraction(1, 2) else 0)
        if rounded > 0 and rounded >= terms.min_interest:
            assert p.interest == rounded
        else:
            assert p.interest == 0
    assert sum(i.open_amount for i in p.items) >= lv.min_total


@PROPERTY
@given(dunned_accounts(), as_of_days)
def test_proposals_follow_the_rules_and_are_deterministic(case, as_of: int) -> None:  # type: ignore[no-untyped-def]
    acc, procs = case
    first = propose(acc, procs, as_of, "X/1")
    assert first == propose(acc, procs, as_of, "X/1")
    for p in first.proposals:
        _check_proposal(p, acc, procs)
    for it in acc.items:
        top = procs.get(it.procedure or "P")
        if top is not None:
            assert 0 <= it.level <= top.top


@PROPERTY
@given(dunned_accounts(), as_of_days)
def test_execute_then_reverse_restores_the_dunning_fields_exactly_and_execute_is_idempotent(
    case, as_of: int
) -> None:  # type: ignore[no-untyped-def]
    acc, procs = case
    acc = record_proposals(acc, propose(acc, procs, as_of, "X/1").proposals)
    for p in [p for p in acc.pending if p.run_id == "X/1"]:
        before = acc
        acc, notice = execute(acc, p.proposal_id)
        for change in notice.history.items:
            assert change.new_level <= change.old_level + 1
        assert len(set(notice.history.command_ids)) == len(notice.commands)
        again, same = execute(acc, p.proposal_id)  # a redelivered approval
        assert again is acc and same == notice
        back, reversal = reverse(acc, notice.notice_id, None, "rev", "clerk", "test")
        assert back.items == before.items
        assert dunning_fields(back) == dunning_fields(before)
        reversed_charge = sum(
            c.amount for c in reversal.commands if isinstance(c, PostDunningChargeReversal)
        )
        reversed_interest = sum(
            c.amount for c in reversal.commands if isinstance(c, PostDunningInterestReversal)
        )
        assert (reversed_charge, reversed_interest) == (
            notice.history.charge,
            notice.history.interest,
        )
        assert reverse(back, notice.notice_id, None, "rev2", "clerk", "again")[1].commands == ()


@settings(PROPERTY, max_examples=100)
@given(dunned_accounts(), as_of_days, st.randoms(use_true_random=False))
def test_reversing_item_by_item_reverses_charge_once_and_interest_exactly(case, as_of, rnd) -> None:  # type: ignore[no-untyped-def]
    acc, procs = case
    acc = record_proposals(acc, propose(acc, procs, as_of, "X/1").proposals)
    for p in [p for p in acc.pending if p.run_id == "X/1"]:
        before = acc
        acc, notice = execute(acc, p.proposal_id)
        order = [i.item_id for i in notice.history.items]
        rnd.shuffle(order)
        charge = interest = 0
        for n, item_id in enumerate(order):
            acc, r = reverse(acc, notice.notice_id, (item_id,), f"r{n}", "clerk", "x")
            for c in r.commands:
                if isinstance(c, PostDunningChargeReversal):
                    charge += c.amount
                elif isinstance(c, PostDunningInterestReversal):
                    interest += c.amount
        assert (charge, interest) == (notice.history.charge, notice.history.interest)
        assert dunning_fields(acc) == dunning_fields(before)
