"""domain.schedule.next_evaluation_day: a lower bound of the next day with a proposal."""

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.activity_run import execute
from domain.proposal_run import propose
from domain.review import record_proposals
from domain.schedule import next_evaluation_day
from tests.unit.domain.builders import account, day, invoice, item, lock, standard, upsert
from tests.unit.domain.strategies import BASE, dunned_accounts

JAN = day("2024-01-10")
PROCS = {"P": standard()}
WINDOW = 120


def test_the_next_day_is_when_the_first_item_reaches_its_next_level() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN), item("B", 10000, JAN + 3)))
    assert next_evaluation_day(acc, PROCS, JAN) == JAN + 7
    assert next_evaluation_day(acc, PROCS, JAN + 9) == JAN + 9
    assert propose(acc, PROCS, JAN + 7, "R").proposals != ()


def test_the_next_day_waits_for_the_frequency_gap_of_the_group() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN), item("B", 10000, JAN + 3)))
    (p,) = propose(acc, PROCS, JAN + 7, "R").proposals
    acc, _ = execute(record_proposals(acc, [p]), p.proposal_id)
    # A reaches level 2 on JAN + 21; B only had level 1 (advanced too); 14 days gap
    assert next_evaluation_day(acc, PROCS, JAN + 8) == JAN + 21


def test_the_next_day_skips_account_and_item_locks() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)), lock("L", JAN + 5, JAN + 30))
    assert next_evaluation_day(acc, PROCS, JAN) == JAN + 31
    acc = account(
        upsert(), invoice("I", item("A", 10000, JAN)), lock("L", JAN, JAN + 40, item_id="A")
    )
    assert next_evaluation_day(acc, PROCS, JAN) == JAN + 41


def test_no_day_when_nothing_can_advance_without_new_events() -> None:
    assert next_evaluation_day(account(invoice("I", item("A", 10000, JAN))), PROCS, JAN) is None
    assert (
        next_evaluation_day(
            account(upsert(procedure="X"), invoice("I", item("A", 1, JAN))), PROCS, JAN
        )
        is None
    )
    acc = account(upsert(), invoice("I", item("A", 400, JAN)))  # below every min_item
    assert next_evaluation_day(acc, PROCS, JAN) is None
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    acc = replace(acc, items=(replace(acc.items[0], level=2),))
    assert next_evaluation_day(acc, PROCS, JAN) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dunned_accounts(), st.integers(BASE, BASE + 300))
def test_no_proposal_before_the_next_evaluation_day(case, after: int) -> None:  # type: ignore[no-untyped-def]
    acc, procs = case
    nxt = next_evaluation_day(acc, procs, after)
    end = after + WINDOW if nxt is None else min(nxt, after + WINDOW)
    if nxt is not None:
        assert nxt >= after
    for d in range(after, end):
        assert propose(acc, procs, d, "S/1").proposals == (), f"proposal on {d - after} < {nxt}"
