"""processors.store: the one write path (a row with its due-index entry and the pending
count), and the one policy for a unit over several accounts: one account that fails or
is refused is left out and the unit goes through without it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from domain.state import new_account
from processors.state import NO_DAY, PENDING_COUNT, StoredAccount, due_key
from processors.store import StagedUnit
from processors.writes import Out, Writes
from tests.unit.processors.fakes import PARTITION, Rig


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return Rig(tmp_path)


def test_a_row_is_stored_with_its_due_index_entry_and_moved_with_it(rig: Rig) -> None:
    w = Writes(PARTITION)
    stored = StoredAccount(new_account("A"))
    rig.store.store(stored, 20100, w)
    rig.store.store(stored, 20200, w)
    w.apply()
    due = rig.tables["due_index"].parts[PARTITION]
    assert set(due) == {due_key(20200, "A")}
    loaded = rig.store.load("A", Writes(PARTITION))
    assert (loaded.account, loaded.index_day) == (stored.account, 20200)
    assert rig.store.load_existing("B", Writes(PARTITION)) is None


def test_reindex_moves_only_the_entry(rig: Rig) -> None:
    w = Writes(PARTITION)
    rig.store.reindex("A", NO_DAY, 20100, w)
    rig.store.reindex("A", 20100, None, w)
    rig.store.reindex("B", 20100, 20100, w)
    w.apply()
    assert dict(rig.tables["due_index"].parts[PARTITION]) == {}
    assert rig.store.pending_count(Writes(PARTITION)) == 0
    assert PENDING_COUNT not in rig.tables["work_index"].parts.get(PARTITION, {})


def test_a_staged_account_can_be_taken_out_of_its_unit(rig: Rig) -> None:
    unit = StagedUnit(PARTITION)
    table = rig.tables["accounts"]

    def work(key: bytes) -> Any:
        def stage(outs: list[Out], w: Writes) -> int:
            w.set(table, key, b"row")
            outs.append(("t", key, b"rec", None))
            return 1
        return stage

    unit.stage("A", work(b"A"))
    unit.stage("B", work(b"B"))
    with pytest.raises(RuntimeError):
        unit.stage("C", lambda outs, w: (w.set(table, b"C", b"x"), _raise()))
    assert [unit.owner(o) for o in unit.outs] == ["A", "B"]
    assert unit.owner(("accounts-changelog", b"B", b"row", 0)) == "B"
    assert unit.owner(("t", b"Z", b"dead letter", None)) is None
    unit.drop("A")
    assert [key for _, key in unit.writes.changed_rows()] == [b"B"]


def _raise() -> None:
    raise RuntimeError("a bug")


def test_commit_each_leaves_out_the_failing_and_the_refused_and_counts_them(rig: Rig) -> None:
    table = rig.tables["accounts"]

    def work(account_id: str, outs: list[Out], w: Writes) -> dict[str, int]:
        if account_id == "BUG":
            raise ValueError("a bug")
        w.set(table, account_id.encode(), b"row")
        outs.append(("t", account_id.encode(), b"rec", None))
        return {"done": 1}

    rig.outbox.refuse = lambda out: "too big" if out[1] == b"BIG" else None
    counts: dict[str, Any] = {"done": 5}
    left_out = asyncio.run(rig.store.commit_each(PARTITION, ["A", "BUG", "BIG", "B"], work,
                                                 counts, b"k|R"))
    assert set(left_out) == {"BUG", "BIG"}
    assert "ValueError: a bug" in left_out["BUG"]
    assert counts == {"done": 7, "failed": 2}
    assert set(table.parts[PARTITION]) == {b"A", b"B"}
    assert rig.store.kept(b"k|R") == counts
    assert rig.metrics.run_accounts_failed._value.get() == 2  # noqa: SLF001


def test_a_refusal_of_the_units_own_record_is_raised(rig: Rig) -> None:
    from processors.outbox import Refused

    rig.outbox.refuse = lambda out: "no" if out[1] == b"k|R" else None
    with pytest.raises(Refused):
        asyncio.run(rig.store.commit_each(PARTITION, ["A"], lambda a, o, w: {}, {}, b"k|R"))
