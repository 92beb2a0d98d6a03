"""RULES.md section 9 ("Options"): percentage charge, pay-by date, activity minimum, and
the procedures file's new fields. Figures worked out by hand in each docstring."""

from dataclasses import replace
from decimal import Decimal

import pytest

from domain.activity_run import execute
from domain.charges import activities_carried_out, notice_charge, pay_by
from domain.commands import PrintDunningLetter
from domain.procedures import ProcedureError, parse_procedure, procedure_to_dict
from domain.proposal_run import propose
from domain.review import record_proposals
from tests.unit.domain.builders import account, day, invoice, item, level, procedure, upsert

BASE = {
    "id": "P",
    "min_days_between_dunnings": 14,
    "interest_rate_percent": "9.0",
    "min_interest_amount": "1.00",
    "levels": [
        {
            "level": 1,
            "days_in_arrears": 7,
            "min_item_amount": "5.00",
            "min_total_amount": "10.00",
            "charge": "1.00",
            "interest": False,
            "activities": ["letter", "collection"],
        }
    ],
}


def with_level(**fields: object) -> dict:
    return {**BASE, "levels": [{**BASE["levels"][0], **fields}]}


def test_percentage_charge_is_rounded_half_up_and_clamped() -> None:
    """2 % of 123.45 = 2.469 -> 2.47, below the minimum 5.00: 5.00, plus the fixed 1.00 =
    6.00. 2 % of 10000.00 = 200.00, above the maximum 50.00: 50.00 (+ 1.00 = 51.00).
    1 % of 123.50 = 1.235 -> 1.24 (a half rounds up)."""
    two = Decimal(2).as_integer_ratio()
    assert notice_charge(100, 12345, two, 500, 5000) == 600
    assert notice_charge(100, 1000000, two, 500, 5000) == 5100
    assert notice_charge(0, 12350, (1, 1)) == 124
    assert notice_charge(100, 12345, None, 500, 5000) == 100


def test_a_notice_with_a_percentage_charge_counts_it_in_total_due() -> None:
    """Open 400.00, 1.5 % = 6.00, max 5.00: charge 1.00 + 5.00 = 6.00, total 406.00."""
    proc = parse_procedure(with_level(charge_percent="1.5", charge_max="5.00"))
    acc = account(upsert(), invoice("I", item("I-1", 40000, day("2024-01-01"))))
    (p,) = propose(acc, {"P": proc}, day("2024-02-01"), "R/1").proposals
    assert (p.charge, p.total_due) == (600, 40600)


def test_pay_by_is_as_of_plus_the_levels_pay_within_days() -> None:
    """pay_within_days 7 on a notice of 01.02.2024: pay by 08.02.2024 (default 14: 15.02.)."""
    assert pay_by(day("2024-02-01"), 7) == day("2024-02-08")
    acc = account(upsert(), invoice("I", item("I-1", 40000, day("2024-01-01"))))
    for raw, expected in ((with_level(pay_within_days=7), "2024-02-08"), (BASE, "2024-02-15")):
        proc = parse_procedure(raw)
        (p,) = propose(acc, {"P": proc}, day("2024-02-01"), "R/1").proposals
        _, notice = execute(record_proposals(acc, [p]), p.proposal_id)
        (letter,) = [c for c in notice.commands if isinstance(c, PrintDunningLetter)]
        assert letter.pay_by == day(expected)


def test_an_activity_below_its_minimum_is_left_out_and_the_notice_goes_ahead() -> None:
    """collection from 100.00: a notice of 40.00 + 1.00 charge (41.00) sends the letter
    only, and says collection was left out; one of 99.00 + 1.00 = 100.00 does both."""
    proc = parse_procedure(with_level(activity_min_amounts={"collection": "100.00"}))
    for amount, activities, below in (
        (4000, ("letter",), ("collection",)),
        (9900, ("letter", "collection"), ()),
    ):
        acc = account(upsert(), invoice("I", item("I-1", amount, day("2024-01-01"))))
        (p,) = propose(acc, {"P": proc}, day("2024-02-01"), "R/1").proposals
        assert (p.activities, p.activities_below_minimum) == (activities, below)
    assert activities_carried_out(("a", "b"), (("b", 5),), 4) == (("a",), ("b",))


def test_new_fields_round_trip_and_are_left_out_at_their_default() -> None:
    raw = {
        **with_level(
            charge_percent="1.5",
            charge_min="5.00",
            charge_max="50.00",
            pay_within_days=7,
            activity_min_amounts={"collection": "100.00"},
        ),
        "day_count": "30E/360",
        "interest_base": "daily_balance",
        "clearing_order": ["principal", "interest", "charges"],
    }
    proc = parse_procedure(raw)
    assert parse_procedure(procedure_to_dict(proc)) == proc
    plain = parse_procedure(BASE)
    assert plain.clearing_order is None
    assert set(procedure_to_dict(plain)) == set(BASE) | {"auto_approve"}
    assert "pay_within_days" not in procedure_to_dict(plain)["levels"][0]


def test_either_clearing_order_is_accepted_and_kept_when_set() -> None:
    """RULES.md decision 12: either order is accepted; set (even the principal-first one),
    it is kept as given, so the procedure's notices keep charges and interest as items;
    left out, it stays ``None`` (postings only, as before)."""
    for order in (["charges", "interest", "principal"], ["principal", "interest", "charges"]):
        proc = parse_procedure({**BASE, "clearing_order": order})
        assert proc.clearing_order == tuple(order)
        assert procedure_to_dict(proc)["clearing_order"] == order
        assert proc.terms("EUR").clearing_order == tuple(order)
    assert "clearing_order" not in procedure_to_dict(parse_procedure(BASE))


def test_a_base_rate_replaces_the_fixed_rate() -> None:
    raw = {k: v for k, v in BASE.items() if k != "interest_rate_percent"}
    proc = parse_procedure({**raw, "interest_base_rate": "ECB", "interest_spread_percent": "5"})
    assert (proc.interest_base_rate, proc.interest_spread_percent) == ("ECB", Decimal(5))
    assert "interest_rate_percent" not in procedure_to_dict(proc)
    with pytest.raises(ProcedureError, match="exclude each other"):
        parse_procedure({**BASE, "interest_base_rate": "ECB"})
    with pytest.raises(ProcedureError, match="missing field interest_rate_percent"):
        parse_procedure(raw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"day_count": "30/360"}, "day_count must be one of"),
        ({"interest_base": "average"}, "interest_base must be one of"),
        ({"clearing_order": ["interest", "charges", "principal"]}, "clearing_order must be"),
        ({"interest_spread_percent": "2"}, "needs interest_base_rate"),
        ({"clearing_order": "charges"}, "clearing_order must be a list"),
    ],
)
def test_bad_procedure_options_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ProcedureError, match=message):
        parse_procedure({**BASE, **change})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"charge_min": "1.00"}, "need charge_percent"),
        ({"charge_percent": "1", "charge_min": "9", "charge_max": "5"}, "is above charge_max"),
        ({"charge_percent": "-1"}, "must not be negative"),
        ({"pay_within_days": -1}, "pay_within_days must be >= 0"),
        ({"activity_min_amounts": {"lock": "5"}}, "not an activity of the level"),
    ],
)
def test_bad_level_options_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ProcedureError, match=message):
        parse_procedure(with_level(**change))


def test_a_procedure_without_options_proposes_exactly_as_before() -> None:
    """The default options are today's rule: the same proposal object, field for field."""
    plain = procedure(level(1, 1, charge="2.00", interest=True))
    explicit = replace(plain, day_count="act/365", interest_base="open_amount")
    acc = account(upsert(), invoice("I", item("I-1", 40000, day("2024-01-01"))))
    (a,) = propose(acc, {"P": plain}, day("2024-02-01"), "R/1").proposals
    (b,) = propose(acc, {"P": explicit}, day("2024-02-01"), "R/1").proposals
    assert a == b
    assert a.items[0].interest_parts is None and a.pay_within_days == 14
