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
