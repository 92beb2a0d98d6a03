"""domain.ids and domain.dates: deterministic ids, day numbers."""

import uuid
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import ids
from domain.dates import from_day, to_day


def test_day_numbers_are_ordinals() -> None:
    assert to_day(date(2024, 2, 29)) == date(2024, 2, 29).toordinal()
    assert from_day(to_day(date(2024, 2, 29))) == date(2024, 2, 29)
    assert to_day(date(2024, 3, 1)) - to_day(date(2024, 2, 28)) == 2  # leap year


def test_proposal_run_id_is_payment_run_and_attempt() -> None:
    assert ids.proposal_run_id("PR-7", 1) == "PR-7/1"
    assert ids.proposal_run_id("PR-7", 2) == "PR-7/2"
    with pytest.raises(ValueError):
        ids.proposal_run_id("PR-7", 0)


def test_ids_are_uuid5_of_kind_and_parts() -> None:
    pid = ids.proposal_id("PR-7/1", "ACC", "P", "EUR", "")
    assert pid == str(uuid.uuid5(ids.NAMESPACE, "proposal|PR-7/1|ACC|P|EUR|"))
    assert ids.notice_id(pid) == str(uuid.uuid5(ids.NAMESPACE, f"notice|{pid}"))
    assert ids.command_id("N", "PostDunningCharge") == str(
        uuid.uuid5(ids.NAMESPACE, "command|N|PostDunningCharge|0")
    )
    assert ids.reversal_id("E", "N") == str(uuid.uuid5(ids.NAMESPACE, "reversal|E|N"))
    assert ids.history_event_id("K", "a", 3) == str(uuid.uuid5(ids.NAMESPACE, "history|K|a|3"))


def test_ids_are_deterministic_and_differ_by_every_part() -> None:
    base = ids.proposal_id("R", "A", "P", "EUR", "")
    assert base == ids.proposal_id("R", "A", "P", "EUR", "")
    others = {
        ids.proposal_id("R2", "A", "P", "EUR", ""),
        ids.proposal_id("R", "A2", "P", "EUR", ""),
        ids.proposal_id("R", "A", "P2", "EUR", ""),
        ids.proposal_id("R", "A", "P", "USD", ""),
        ids.proposal_id("R", "A", "P", "EUR", "g"),
    }
    assert base not in others and len(others) == 5
    assert ids.command_id("N", "K", 0) != ids.command_id("N", "K", 1)


def test_a_separator_inside_a_part_cannot_collide() -> None:
    assert ids.reversal_id("a|b", "c") != ids.reversal_id("a", "b|c")
    assert ids.reversal_id("a\\", "|c") != ids.reversal_id("a\\|", "c")


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_different_parts_give_different_ids(a: str, b: str, c: str, d: str) -> None:
    if (a, b) != (c, d):
        assert ids.reversal_id(a, b) != ids.reversal_id(c, d)
    assert ids.uuid5_text(a) == str(uuid.uuid5(ids.NAMESPACE, a))
