"""Imported levels (``DunningHistoryImported``, RULES.md 10 "Imported levels")."""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain.errors import Rejected
from domain.events import DunningHistoryImported
from domain.proposal_run import propose
from domain.schedule import next_evaluation_day
from tests.unit.domain.builders import (
    ACCOUNT,
    account,
    apply,
    day,
    dunning_fields,
    invoice,
    item,
    level,
    procedure,
    upsert,
)

JAN = day("2024-01-10")
PROCS = {
    "P": procedure(
        level(1, 7, "5.00", "10.00", "0.00", False),
        level(2, 21, "20.00", "30.00", "5.00", True),
        level(3, 35, "20.00", "30.00", "10.00", True),
        min_days=14,
    )
}


def imported(
    item_id: str, lvl: int, last: int, until: int | None = None, notice: int | None = None,
    event_id: str = "imp-1",
) -> DunningHistoryImported:
    return DunningHistoryImported(event_id, ACCOUNT, item_id, lvl, last, until, notice)


def test_an_import_gives_the_item_its_level_whether_it_comes_before_or_after_the_invoice() -> None:
    up, inv = upsert(), invoice("INV-1", item("I1", 10000, JAN))
    imp = imported("I1", 2, JAN + 25, JAN + 25, JAN + 30)
    before = account(up, imp, inv)
    after = account(up, inv, imp)
    assert dunning_fields(before) == dunning_fields(after) == {"I1": (2, JAN + 25, JAN + 25)}
    assert replace(before, seen=b"") == replace(after, seen=b"")
    assert apply(after, imp) is after  # twice: once


def test_the_first_run_escalates_from_the_import_after_the_imported_notice_date() -> None:
    """Item I1, 100.00 due JAN, imported at level 2 (last dunned JAN+25, last notice JAN+30).
    Level 3 needs 35 days in arrears (JAN+35), the frequency 14 days after the imported
    notice: JAN+44. So nothing on JAN+40, level 3 (from 2) on JAN+44, and the due index
    says JAN+44."""
    acc = account(upsert(), invoice("INV-1", item("I1", 10000, JAN)),
                  imported("I1", 2, JAN + 25, JAN + 25, JAN + 30))
    assert next_evaluation_day(acc, PROCS, 0) == JAN + 44
    assert propose(acc, PROCS, JAN + 40, "R/1").proposals == ()
    (p,) = propose(acc, PROCS, JAN + 44, "R/2").proposals
    assert p.level == 3 and p.last_notice_date == JAN + 30
    (line,) = p.items
    assert (line.previous_level, line.new_level, line.interest_from) == (2, 3, JAN + 25)


def test_the_later_of_two_imports_of_an_item_stands_in_either_order() -> None:
    up, inv = upsert(), invoice("INV-1", item("I1", 10000, JAN))
    a, b = imported("I1", 1, JAN + 10, event_id="a"), imported("I1", 2, JAN + 25, event_id="b")
    assert dunning_fields(account(up, inv, a, b)) == dunning_fields(account(up, inv, b, a))
    assert dunning_fields(account(up, inv, b, a))["I1"][0] == 2


@pytest.mark.parametrize(
    "bad",
    [imported("I1", 0, JAN), imported("I1", 100, JAN), imported("I1", 2, JAN, notice=JAN - 1)],
)
def test_an_invalid_import_is_rejected(bad: DunningHistoryImported) -> None:
    with pytest.raises(Rejected) as err:
        account(upsert(), bad)
    assert err.value.code == "invalid_import"


def test_an_account_with_imports_packs_and_unpacks_unchanged() -> None:
    from processors.state_codec import pack, unpack  # the row keeps the imports

    acc = account(upsert(), imported("I9", 2, JAN, None, JAN + 3),
                  invoice("INV-1", item("I1", 10000, JAN)),
                  imported("I1", 3, JAN, JAN, event_id="imp-2"))
    assert unpack(pack(acc)) == acc


def test_the_history_record_of_an_import_says_what_it_replaced_and_only_when_it_changed() -> None:
    from domain.ingest import import_history

    up = account(upsert())
    a = imported("I1", 2, JAN + 25, JAN + 25, JAN + 30, event_id="a")
    older = imported("I1", 1, JAN + 10, event_id="older")
    later = imported("I1", 3, JAN + 40, event_id="later")
    after_a = apply(up, a)
    rec = import_history(up, after_a, a)
    assert rec is not None
    assert (rec.old_level, rec.new_level, rec.old_last_dunned, rec.new_last_dunned,
            rec.new_interest_until, rec.notice_date, rec.as_of_date) == (
        0, 2, None, JAN + 25, JAN + 25, JAN + 30, JAN + 25)
    assert rec.import_event_id == "a" and rec.event_id != "a"
    assert import_history(after_a, apply(after_a, a), a) is None  # applied again
    assert import_history(after_a, apply(after_a, older), older) is None  # a stands
    rec3 = import_history(after_a, apply(after_a, later), later)
    assert rec3 is not None
    assert (rec3.old_level, rec3.old_last_dunned, rec3.old_interest_until, rec3.new_level) == (
        2, JAN + 25, JAN + 25, 3)


def test_an_instalment_takes_its_imported_level_in_any_order_of_plan_invoice_and_import() -> None:
    """Plan PL splits item I1 into instalments R1 and R2; R1 was at level 2 in the other
    system. Whichever of the invoice, the plan and the import comes first, R1 ends at
    level 2 with the imported dates and R2 at level 0."""
    from itertools import permutations

    from tests.unit.domain.builders import plan

    inv = invoice("INV-1", item("I1", 10000, JAN))
    pl = plan("PL", ("I1",), ("R1", 5000, JAN + 30), ("R2", 5000, JAN + 60))
    imp = imported("R1", 2, JAN + 40, JAN + 40, JAN + 41)
    seen = set()
    for order in permutations((inv, pl, imp)):
        fields = dunning_fields(account(upsert(), *order))
        assert fields["R1"] == (2, JAN + 40, JAN + 40), order
        assert fields["R2"] == (0, None, None), order
        seen.add(tuple(sorted(fields.items())))
    assert len(seen) == 1


def test_an_item_this_engine_dunned_refuses_an_import_even_once_its_notice_is_forgotten() -> None:
    """I1 (100.00 due JAN), imported at level 1 on JAN+5, gets a level-2 notice of this
    engine on JAN+25: a later import of I1 is refused, whether the account still holds
    the notice or retention has forgotten it. Without the notice, the same second import
    applies (the later import stands)."""
    from domain.activity_run import execute
    from domain.review import record_proposals

    acc = account(upsert(), invoice("INV-1", item("I1", 10000, JAN)),
                  imported("I1", 1, JAN + 5, event_id="first"))
    acc = record_proposals(acc, propose(acc, PROCS, JAN + 25, "R/1").proposals)
    acc, _ = execute(acc, acc.pending[0].proposal_id)
    assert dunning_fields(acc)["I1"][0] == 2
    again = imported("I1", 3, JAN + 26, event_id="again")
    for state in (acc, replace(acc, notices=())):
        with pytest.raises(Rejected) as err:
            apply(state, again)
        assert err.value.code == "item_already_dunned"
    fresh = account(upsert(), invoice("INV-1", item("I1", 10000, JAN)),
                    imported("I1", 1, JAN + 5, event_id="first"))
    assert dunning_fields(apply(fresh, again))["I1"] == (3, JAN + 26, None)
