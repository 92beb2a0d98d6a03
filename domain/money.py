"""Money inside the domain: ``int`` minor units of an ISO 4217 currency.

Conversions to and from ``Decimal`` are exact; nothing here ever uses ``float``.
Rounding is "half-up" in the sense of ``decimal.ROUND_HALF_UP``: a half is rounded
away from zero (``-2.5`` becomes ``-3``).
"""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

__all__ = [
    "MINOR_UNITS",
    "UnknownCurrency",
    "div_round_half_up",
    "from_minor",
    "milli_to_minor",
    "minor_units",
    "to_milli",
    "to_minor",
    "to_minor_rounded",
]


class UnknownCurrency(ValueError):
    """A currency code that is not an active ISO 4217 currency with a minor unit."""


# fmt: off
_ZERO = (
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
)
_TWO = (
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE",
    "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP",
    "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD", "HKD",
    "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW", "KYD",
    "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP",
    "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR",
    "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD",
    "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU", "UZS",
    "VED", "VES", "WST", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG",
)
_THREE = (
    "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND",
)
_FOUR = (
    "CLF", "UYW",
)
# fmt: on

MINOR_UNITS: MappingProxyType[str, int] = MappingProxyType(
    {
        **{code: 2 for code in _TWO},
        **{code: 0 for code in _ZERO},
        **{code: 3 for code in _THREE},
        **{code: 4 for code in _FOUR},
    }
)
"""Minor-unit exponent of every active ISO 4217 currency (list of 2026).

Precious metals, SDR, test and fund codes without a minor unit (XAU, XDR, XXX, ...)
are not currencies one can invoice in and are left out.
"""

_POW10 = tuple(10**e for e in range(5))


def minor_units(currency: str) -> int:
    """The number of decimals of ``currency`` (``JPY`` 0, ``EUR`` 2, ``BHD`` 3)."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise UnknownCurrency(f"unknown currency {currency!r}") from None


def _ratio(amount: Decimal) -> tuple[int, int]:
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, got {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError(f"amount must be finite, got {amount}")
    return amount.as_integer_ratio()


def to_minor(amount: Decimal, currency: str) -> int:
    """``amount`` in minor units of ``currency``, exactly.

    Trailing zeros are fine (``Decimal("1.000")`` in EUR is 100); an amount with more
    significant decimals than the currency has raises ``ValueError``.
    """
    scale = _POW10[minor_units(currency)]
    num, den = _ratio(amount)
    units, rest = divmod(num * scale, den)
    if rest:
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return units


MILLI_SCALE = 3
"""Amounts whose currency is not known yet (an instalment plan that arrives before its
items) are kept in thousandths of a currency unit: the scale of every amount on the wire,
so nothing is lost; :func:`milli_to_minor` converts them once the currency is known."""


def to_milli(amount: Decimal) -> int:
    """``amount`` in thousandths of a currency unit, exactly (``ValueError`` when it has
    more than three significant decimals)."""
    num, den = _ratio(amount)
    units, rest = divmod(num * 1000, den)
    if rest:
        raise ValueError(f"{amount} has more than {MILLI_SCALE} decimals")
    return units


def milli_to_minor(milli: int, currency: str) -> int | None:
    """Thousandths of a unit as minor units of ``currency``; ``None`` when the amount has
    more decimals than ``currency`` allows (``1.005`` in EUR, ``100.5`` in JPY)."""
    exponent = minor_units(currency)
    if exponent >= MILLI_SCALE:
        return milli * _POW10[exponent - MILLI_SCALE]
    units, rest = divmod(milli, _POW10[MILLI_SCALE - exponent])
    return None if rest else units


def to_minor_rounded(amount: Decimal, currency: str) -> int:
    """``amount`` in minor units of ``currency``, rounded half-up (away from zero)."""
    scale = _POW10[minor_units(currency)]
    num, den = _ratio(amount)
    return div_round_half_up(num * scale, den)


def from_minor(units: int, currency: str) -> Decimal:
    """``units`` minor units as a ``Decimal`` quantized to the currency's exponent."""
    exponent = minor_units(currency)
    if exponent == 0:
        return Decimal(units)
    return Decimal(f"{units}E-{exponent}")


def div_round_half_up(num: int, den: int) -> int:
    """``num / den`` rounded to the nearest integer, a half away from zero.

    Exact for any integers (negative numerators or denominators too); ``den`` must not
    be zero.
    """
    if den == 0:
        raise ZeroDivisionError("division by zero")
    negative = (num < 0) != (den < 0)
    n = -num if num < 0 else num
    d = -den if den < 0 else den
    q, r = divmod(n, d)
    if r + r >= d:
        q += 1
    return -q if negative else q
