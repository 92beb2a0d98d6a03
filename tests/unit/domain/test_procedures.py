"""domain.procedures: RULES.md "The procedure" and the procedures file of CONTRACT.md."""

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from domain.procedures import (
    ACTIVITIES,
    Level,
    Procedure,
    ProcedureError,
    parse_procedure,
    parse_procedures,
    procedure_to_dict,
)

PROCEDURES_FILE = Path(__file__).parents[3] / "dunning" / "data" / "procedures.yaml"

CONTRACT_EXAMPLE = """
procedures:
  - id: STANDARD
    min_days_between_dunnings: 14
    interest_rate_percent: "9.0"
    min_interest_amount: "1.00"
    auto_approve: false
    levels:
      - level: 1
        days_in_arrears: 7
        min_item_amount: "5.00"
        min_total_amount: "10.00"
        charge: "0.00"
        interest: false
        activities: [letter]
      - level: 2
        days_in_arrears: 21
        min_item_amount: "20.00"
        min_total_amount: "30.00"
        charge: "5.00"
        interest: true
        activities: [letter]
"""


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CONTRACT_EXAMPLE)["procedures"][0]
    return data


def test_the_contract_example_parses_exactly() -> None:
    (p,) = parse_procedures(yaml.safe_load(CONTRACT_EXAMPLE))
    assert p.id == "STANDARD"
    assert p.min_days_between_dunnings == 14
    assert p.interest_rate_percent == Decimal("9.0")
    assert p.min_interest_amount == Decimal("1.00")
    assert p.auto_approve is False
    assert p.levels[1] == Level(
        2, 21, Decimal("20.00"), Decimal("30.00"), Decimal("5.00"), True, ("letter",)
    )


def test_shipped_procedures_file_has_standard_consumer_and_business() -> None:
    procedures = {p.id: p for p in parse_procedures(yaml.safe_load(PROCEDURES_FILE.read_text()))}
    (standard,) = parse_procedures(yaml.safe_load(CONTRACT_EXAMPLE))
    assert procedures["STANDARD"] == standard
    consumer = procedures["CONSUMER"]
    assert consumer.top == 3
    assert all(lv.activities == ("letter",) for lv in consumer.levels)
    assert consumer.levels[2].charge > 0 and consumer.levels[2].interest
    business = procedures["BUSINESS"]
    assert business.levels[0].activities == ("letter",)
    assert set(business.levels[1].activities) == {"letter", "workflow"}
    assert set(business.levels[2].activities) == {"letter", "lock", "deposit"}
    assert {"collection", "deactivate_installment_plan"} <= set(business.levels[3].activities)


def test_procedure_to_dict_is_the_inverse_of_parse_procedure() -> None:
    p = parse_procedure(example())
    assert procedure_to_dict(p) == example()
    assert parse_procedure(procedure_to_dict(p)) == p


def test_a_procedure_is_rejected_when_levels_are_not_numbered_1_to_n() -> None:
    data = example()
    data["levels"][1]["level"] = 3
    with pytest.raises(ProcedureError, match="numbered 1..n"):
        parse_procedure(data)
    data["levels"][0]["level"], data["levels"][1]["level"] = 2, 1
    with pytest.raises(ProcedureError, match="numbered 1..n"):
        parse_procedure(data)


def test_a_procedure_is_rejected_when_days_in_arrears_decreases() -> None:
    data = example()
    data["levels"][1]["days_in_arrears"] = 6
    with pytest.raises(ProcedureError, match="days_in_arrears 6 is lower than 7 of level 1"):
        parse_procedure(data)


def test_a_procedure_is_rejected_when_min_item_amount_decreases() -> None:
    data = example()
    data["levels"][1]["min_item_amount"] = "4.99"
    with pytest.raises(ProcedureError, match="min_item_amount 4.99 is lower"):
        parse_procedure(data)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("levels", 0, "charge"), "-1.00"),
        (("levels", 1, "min_total_amount"), "-0.01"),
        (("min_interest_amount",), "-1"),
        (("interest_rate_percent",), "-9"),
    ],
)
def test_a_procedure_is_rejected_when_an_amount_is_negative(
    path: tuple[Any, ...], value: str
) -> None:
    data = example()
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ProcedureError, match="must not be negative"):
        parse_procedure(data)


def test_an_unknown_activity_is_rejected() -> None:
    data = example()
    data["levels"][0]["activities"] = ["letter", "sms"]
    with pytest.raises(ProcedureError, match="unknown activity 'sms'"):
        parse_procedure(data)


def test_a_missing_or_unknown_field_is_named() -> None:
    data = example()
    del data["levels"][0]["charge"]
    with pytest.raises(ProcedureError, match="missing field charge"):
        parse_procedure(data)
    data = example()
    data["min_days_between_dunning"] = 3
    with pytest.raises(ProcedureError, match="unknown field min_days_between_dunning"):
        parse_procedure(data)


def test_a_float_amount_is_rejected_with_a_clear_message() -> None:
    data = example()
    data["levels"][0]["min_item_amount"] = 5.0
    with pytest.raises(ProcedureError, match=r'string such as "5.00".*floats are not exact'):
        parse_procedure(data)


def test_auto_approve_is_optional_and_amounts_may_be_integers() -> None:
    data = example()
    del data["auto_approve"]
    data["levels"][0]["charge"] = 0
    p = parse_procedure(data)
    assert p.auto_approve is False
    assert p.levels[0].charge == Decimal(0)


def test_duplicate_procedure_ids_are_rejected() -> None:
    with pytest.raises(ProcedureError, match="defined twice"):
        parse_procedures({"procedures": [example(), example()]})


def test_a_procedure_built_directly_is_validated_too() -> None:
    lv = Level(1, 7, Decimal("5"), Decimal("5"), Decimal("0"), False, ("letter",))
    with pytest.raises(ProcedureError, match="at least one level"):
        Procedure("X", 14, Decimal("9"), Decimal("1"), False, ())
    with pytest.raises(ProcedureError, match="must be a Decimal"):
        Procedure("X", 14, 9.0, Decimal("1"), False, (lv,))  # type: ignore[arg-type]
    with pytest.raises(ProcedureError, match="integer"):
        Procedure("X", True, Decimal("9"), Decimal("1"), False, (lv,))  # type: ignore[arg-type]


def test_amounts_apply_in_the_group_currency_rounded_half_up() -> None:
    data = example()
    data["levels"][1]["charge"] = "2.5"
    data["min_interest_amount"] = "0.0005"
    p = parse_procedure(data)
    assert p.terms("EUR").levels[2].charge == 250
    assert p.terms("JPY").levels[2].charge == 3
    assert p.terms("BHD").levels[2].charge == 2500
    assert p.terms("BHD").min_interest == 1
    assert p.terms("EUR").min_interest == 0
    assert p.terms("EUR") is p.terms("EUR")  # cached per currency
    assert p.terms("EUR").rate_num * 10 == p.terms("EUR").rate_den * 90


_amount = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False)


@st.composite
def procedures(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 5))
    days = sorted(draw(st.lists(st.integers(0, 400), min_size=n, max_size=n)))
    mins = sorted(draw(st.lists(_amount, min_size=n, max_size=n)))
    levels = [
        {
            "level": i + 1,
            "days_in_arrears": days[i],
            "min_item_amount": str(mins[i]),
            "min_total_amount": str(draw(_amount)),
            "charge": str(draw(_amount)),
            "interest": draw(st.booleans()),
            "activities": draw(st.lists(st.sampled_from(ACTIVITIES), unique=True, max_size=3)),
        }
        for i in range(n)
    ]
    return {
        "id": draw(st.text(min_size=1, max_size=8)),
        "min_days_between_dunnings": draw(st.integers(0, 60)),
        "interest_rate_percent": str(draw(_amount)),
        "min_interest_amount": str(draw(_amount)),
        "auto_approve": draw(st.booleans()),
        "levels": levels,
    }


@given(procedures())
def test_valid_procedures_round_trip_through_the_yaml_shape(data: dict[str, Any]) -> None:
    p = parse_procedure(data)
    assert procedure_to_dict(p) == data
    assert parse_procedure(yaml.safe_load(yaml.safe_dump(procedure_to_dict(p)))) == p
