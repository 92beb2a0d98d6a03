"""domain.retention: compaction forgets only what no stage can tell apart
(docs/RETENTION.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.activity_run import execute, execute_approved
from domain.errors import Rejected
from domain.ingest import evolve
from domain.proposal_run import propose
from domain.retention import compact, event_day
from domain.reversal import reverse
from domain.review import record_proposals
from domain.schedule import next_evaluation_day
from domain.settlement import credit, held, settle
from domain.state import Account, new_account, notice_ids
from tests.unit.domain.builders import (
    ACCOUNT,
    account,
    apply,
    day,
    digest,
    invoice,
    item,
    pay,
    standard,
    upsert,
)
from tests.unit.domain.strategies import BASE, dunned_accounts, streams

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JAN = day("2024-01-10")
FEB = day("2024-02-10")
MAR = day("2024-03-10")
KEEP = 730


def _outcome(call: Callable[[], Any]) -> Any:
    """What a stage returns, or the code it refuses with (the account itself left out)."""
    try:
        result = call()
    except Rejected as exc:
        return ("rejected", exc.code)
    return result[1] if isinstance(result, tuple) else result


def _open(acc: Account) -> dict[str, tuple[int, int]]:
    status, open_, _, _ = settle(acc)
    return {i: (status[i], open_[i]) for i in status}


@PROPERTY
@given(dunned_accounts(), st.integers(0, 600), st.integers(0, 800), st.integers(0, 90))
def test_every_stage_computes_the_same_after_compaction(
    case: tuple[Account, Any], cutoff_offset: int, keep_days: int, later: int
) -> None:
    acc, procs = case
    cutoff = BASE + cutoff_offset
    small = compact(acc, cutoff + keep_days, keep_days)
    assert compact(small, cutoff + keep_days, keep_days) is small
    before, after = _open(acc), _open(small)
    assert all(before[i] == v for i, v in after.items())
    assert all(v[1] == 0 for i, v in before.items() if i not in after)
    assert [it for it in small.items] == [it for it in acc.items if it.item_id in after]
    assert (credit(small), held(small)) == (credit(acc), held(acc))
    assert small.pending == acc.pending
    for d in (cutoff, cutoff + later, cutoff + 400):
        assert propose(small, procs, d, "RX/1") == propose(acc, procs, d, "RX/1")
        assert next_evaluation_day(small, procs, d) == next_evaluation_day(acc, procs, d)
    for p in acc.pending:
        assert _outcome(lambda p=p: execute_approved(small, p.proposal_id)) == _outcome(
            lambda p=p: execute_approved(acc, p.proposal_id)
        )
    kept = {notice_ids(ACCOUNT, n)[1] for n in small.notices}
    for n in acc.notices:
        nid = notice_ids(ACCOUNT, n)[1]
        was = _outcome(lambda nid=nid: reverse(acc, nid, None, "rev-x", "clerk", "x"))
        now = _outcome(lambda nid=nid: reverse(small, nid, None, "rev-x", "clerk", "x"))
        if nid in kept:
            assert now == was
            proposal_id = notice_ids(ACCOUNT, n)[0]
            assert execute(small, proposal_id)[1] == execute(acc, proposal_id)[1]
        else:  # a forgotten notice could not be reversed any more
            assert now == ("rejected", "unknown_notice")
            assert was == ("rejected", "later_notice_in_effect") or (
                not isinstance(was, tuple) and was.history is None
            )


@PROPERTY
@given(st.data())
def test_a_redelivered_event_after_compaction_changes_nothing_or_is_refused(
    data: st.DataObject,
) -> None:
    s = data.draw(streams(("P", "Q")))
    events = s.in_topic_order()
    acc = apply(new_account(ACCOUNT), *events)
    cutoff = BASE + data.draw(st.integers(-20, 300))
    small = compact(acc, cutoff + KEEP, KEEP)
    assert small.horizon in (0, cutoff)
    assert (credit(small), held(small)) == (credit(acc), held(acc))
    for e in events:
        try:
            again = evolve(small, e, digest(e))
        except Rejected as exc:
            assert exc.code == "before_retention_horizon"
            d = event_day(e)
            assert d is not None and d < small.horizon
        else:
            assert again is small


def paid_invoice() -> Account:
    return account(
        upsert(),
        invoice("I", item("A", 10000, JAN)),
        pay("P1", 10000, FEB, ("A", 10000)),
        invoice("J", item("B", 5000, MAR)),
    )


def test_a_settled_invoice_older_than_the_retention_is_forgotten_with_its_payment() -> None:
    acc = paid_invoice()
    early = compact(acc, FEB + KEEP, KEEP)  # the payment is not older yet
    assert (early.items, early.payments) == (acc.items, acc.payments)
    small = compact(acc, FEB + 1 + KEEP, KEEP)
    assert [it.item_id for it in small.items] == ["B"]
    assert [i.invoice_id for i in small.invoices] == ["J"]
    assert small.payments == ()
    assert small.horizon == FEB + 1
    assert len(small.seen) < len(acc.seen)
    assert (credit(small), held(small)) == (credit(acc), held(acc))


def test_the_imported_level_of_a_forgotten_item_is_forgotten_with_it() -> None:
    """A (paid, old) and B (open) both had imported levels; X's import waits for an item
    that has not arrived. Compaction forgets A with its import, keeps B's and X's."""
    from domain.events import DunningHistoryImported

    def imp(item_id: str) -> DunningHistoryImported:
        return DunningHistoryImported(f"imp-{item_id}", ACCOUNT, item_id, 2, JAN, None, None)

    acc = account(upsert(), imp("A"), imp("B"), imp("X"), invoice("I", item("A", 10000, JAN)),
                  pay("P1", 10000, FEB, ("A", 10000)), invoice("J", item("B", 5000, MAR)))
    small = compact(acc, FEB + 1 + KEEP, KEEP)
    assert [it.item_id for it in small.items] == ["B"]
    assert [x.item_id for x in small.imports] == ["B", "X"]
    assert small.items[0].level == 2
    assert apply(small, imp("A")) is small  # its id is still known: applied once


def test_an_event_of_a_day_before_the_horizon_is_refused() -> None:
    small = compact(paid_invoice(), FEB + 1 + KEEP, KEEP)
    old = invoice("I", item("A", 10000, JAN))
    with pytest.raises(Rejected) as err:
        evolve(small, old, digest(old))
    assert err.value.code == "before_retention_horizon"
    new = pay("P2", 100, MAR)
    assert evolve(small, new, digest(new)).payments[0].payment_id == "P2"


def test_an_open_or_partly_paid_invoice_is_kept_however_old() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)), pay("P1", 4000, JAN, ("A", 4000)))
    small = compact(acc, MAR + 5 * KEEP, KEEP)
    assert small.items == acc.items and small.payments == acc.payments


def test_the_last_notice_in_effect_of_a_group_and_its_items_are_kept() -> None:
    acc = account(upsert(), invoice("I", item("A", 10000, JAN)))
    acc = record_proposals(acc, propose(acc, {"P": standard()}, MAR, "R/1").proposals)
    acc, _ = execute(acc, acc.pending[0].proposal_id)
    acc = apply(acc, pay("P1", 10000, MAR, ("A", 10000)))
    small = compact(acc, MAR + 1 + KEEP, KEEP)
    assert small.notices == acc.notices and small.items == acc.items
