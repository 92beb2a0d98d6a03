"""domain.money: exact minor units, ISO 4217 exponents, half-up rounding."""

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.money import (
    MINOR_UNITS,
    UnknownCurrency,
    div_round_half_up,
    from_minor,
    minor_units,
    to_minor,
    to_minor_rounded,
)


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("EUR", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("CLP", 0), ("ISK", 0)]
    + [(c, 3) for c in ("BHD", "JOD", "KWD", "OMR", "TND", "IQD", "LYD")],
)
def test_minor_units_follow_iso_4217(currency: str, exponent: int) -> None:
    assert minor_units(currency) == exponent


def test_minor_units_table_has_the_active_currencies_only() -> None:
    assert len(MINOR_UNITS) > 150
    assert all(len(code) == 3 and code.isupper() for code in MINOR_UNITS)
    for metal_or_fund in ("XAU", "XAG", "XDR", "XXX", "XTS"):
        assert metal_or_fund not in MINOR_UNITS


def test_unknown_currency_is_an_error() -> None:
    with pytest.raises(UnknownCurrency):
        minor_units("EURO")
    with pytest.raises(UnknownCurrency):
        to_minor(Decimal("1"), "XAU")


def test_to_minor_is_exact_and_accepts_trailing_zeros() -> None:
    assert to_minor(Decimal("119.00"), "EUR") == 11900
    assert to_minor(Decimal("119.000"), "EUR") == 11900
    assert to_minor(Decimal("500"), "JPY") == 500
    assert to_minor(Decimal("1.234"), "BHD") == 1234
    assert to_minor(Decimal("-0.01"), "EUR") == -1
    assert to_minor(Decimal("1E+3"), "EUR") == 100000


@pytest.mark.parametrize(
    ("amount", "currency"), [("0.001", "EUR"), ("1.5", "JPY"), ("0.0001", "KWD")]
)
def test_to_minor_rejects_more_decimals_than_the_currency_has(amount: str, currency: str) -> None:
    with pytest.raises(ValueError, match="more decimals"):
        to_minor(Decimal(amount), currency)


def test_to_minor_rejects_non_decimal_and_non_finite() -> None:
    with pytest.raises(TypeError):
        to_minor(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        to_minor(Decimal("NaN"), "EUR")


def test_to_minor_rounded_rounds_half_up() -> None:
    assert to_minor_rounded(Decimal("2.5"), "JPY") == 3
    assert to_minor_rounded(Decimal("2.4999"), "JPY") == 2
    assert to_minor_rounded(Decimal("0.005"), "EUR") == 1
    assert to_minor_rounded(Decimal("-0.005"), "EUR") == -1
    assert to_minor_rounded(Decimal("1.0005"), "BHD") == 1001


def test_from_minor_is_quantized_to_the_currency() -> None:
    assert str(from_minor(11900, "EUR")) == "119.00"
    assert str(from_minor(0, "EUR")) == "0.00"
    assert str(from_minor(500, "JPY")) == "500"
    assert str(from_minor(1, "BHD")) == "0.001"
    assert str(from_minor(-5, "EUR")) == "-0.05"
    huge = from_minor(10**30 + 1, "EUR")  # exact beyond the context's 28 digits
    assert huge.as_integer_ratio() == (10**30 + 1, 100)


def test_div_round_half_up_examples() -> None:
    assert div_round_half_up(5, 2) == 3
    assert div_round_half_up(-5, 2) == -3
    assert div_round_half_up(5, -2) == -3
    assert div_round_half_up(7, 3) == 2
    assert div_round_half_up(-7, 3) == -2
    assert div_round_half_up(0, 7) == 0
    with pytest.raises(ZeroDivisionError):
        div_round_half_up(1, 0)


@given(st.integers(-(10**40), 10**40), st.integers(-(10**12), 10**12).filter(bool))
def test_div_round_half_up_matches_decimal_round_half_up(num: int, den: int) -> None:
    exact = Fraction(num, den)
    expected = (
        int(
            (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(
                Decimal(1), rounding=ROUND_HALF_UP, context=None
            )
        )
        if abs(num) < 10**20
        else None
    )
    result = div_round_half_up(num, den)
    assert abs(Fraction(result) - exact) <= Fraction(1, 2)
    if abs(Fraction(result) - exact) == Fraction(1, 2):
        assert abs(result) > abs(exact)  # a half goes away from zero
    if expected is not None:
        assert result == expected


@given(st.integers(-(10**18), 10**18), st.sampled_from(["EUR", "JPY", "BHD", "CLF"]))
def test_from_minor_and_to_minor_round_trip(units: int, currency: str) -> None:
    amount = from_minor(units, currency)
    assert amount.as_tuple().exponent == -minor_units(currency)
    assert to_minor(amount, currency) == units
    assert to_minor_rounded(amount, currency) == units
