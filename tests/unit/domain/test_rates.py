"""Reference rates (RULES.md section 9 "Rate timeline", decision 12): the rates file, the
timeline, and the catalog that follows `dunning.rates`."""

from decimal import Decimal

import pytest
import yaml

from config.settings import Settings
from domain.interest import rate_steps
from domain.rates import RateError, RateSet, parse_rates, timelines
from processors.convert import rate_record
from processors.procedures import ProcedureCatalog
from schemas.codec import Codec
from tests.unit.domain.builders import day


def test_the_example_rates_file_parses() -> None:
    with open("examples/rates.yaml") as f:
        rates = parse_rates(yaml.safe_load(f))
    (timeline,) = timelines(rates).values()
    assert timeline[0] == (day("2024-01-01"), Decimal("3.62"))
    assert [d for d, _ in timeline] == sorted(d for d, _ in timeline)


def test_the_later_setting_of_a_rate_and_day_stands() -> None:
    first, second = RateSet("B", 10, Decimal(1)), RateSet("B", 10, Decimal(2))
    assert timelines([first, second]) == {"B": ((10, Decimal(2)),)}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rates": []}, "non-empty list"),
        ({"rates": [{"rate_id": "B", "valid_from": "2024-13-01", "percent": "1"}]}, "date"),
        ({"rates": [{"rate_id": "B", "valid_from": "2024-01-01", "percent": 1.5}]}, "string"),
        ({"rates": [{"rate_id": "A|B", "valid_from": "2024-01-01", "percent": "1"}]}, "'|'"),
        (
            {"rates": [{"rate_id": "B", "valid_from": "2024-01-01", "percent": "1"}] * 2},
            "set twice",
        ),
    ],
)
def test_bad_rates_files_are_refused(raw: dict, message: str) -> None:
    with pytest.raises(RateError, match=message):
        parse_rates(raw)


def test_a_negative_base_rate_plus_spread_below_zero_counts_as_zero() -> None:
    """-0.88 % + 0.5 = -0.38 %: no negative interest, the day's rate is 0 (decision 12);
    -0.88 % + 5 = 4.12 %."""
    timeline = ((day("2016-07-01"), Decimal("-0.88")),)
    a, b = day("2020-01-01"), day("2020-02-01")
    assert rate_steps(timeline, Decimal("0.5"), a, b) == [(a, Decimal(0))]
    assert rate_steps(timeline, Decimal(5), a, b) == [(a, Decimal("4.12"))]


def test_the_catalog_takes_rates_and_changes_its_version() -> None:
    codec = Codec("single-object")
    catalog = ProcedureCatalog(Settings(), codec)
    before = catalog.version
    for rate in (RateSet("B", day("2024-01-01"), Decimal("3.62")),
                 RateSet("B", day("2024-07-01"), Decimal("3.37")),
                 RateSet("B", day("2024-01-01"), Decimal("3.50"))):
        catalog.apply(codec.encode("InterestRateSet", rate_record(rate)))
    assert catalog.rate_timelines() == {
        "B": ((day("2024-01-01"), Decimal("3.5")), (day("2024-07-01"), Decimal("3.37")))
    }
    assert catalog.version != before and not catalog.rejected
