"""Interest of RULES.md section 9 ("Options"): day counts, rate timelines, daily balances.

Everything here is exact: amounts are ``int`` minor units, rates ``Decimal`` percent per
year, year fractions and unrounded amounts :class:`fractions.Fraction`. Dates are day
numbers (``date.toordinal()``); a period ``[a, b)`` counts the days ``a .. b - 1``, so an
item due on day ``d`` and dunned on day ``t`` has ``t - d`` days of interest, as in
stage 1.

- :func:`year_fraction` is ``f(a, b)`` of the day-count conventions. Each convention is
  additive (``f(a, b) + f(b, c) == f(a, c)``), so cutting a period anywhere changes
  nothing by itself: only a change of rate or balance does.
- :func:`rate_steps` reads a reference rate's timeline (the ``InterestRateSet`` events of
  one rate id) for a period; ``None`` when some day of it has no rate (``rate_unknown``).
- :func:`item_interest` cuts an item's period at every change of rate or balance and
  gives each part and the exact (unrounded) sum.
- :func:`distribute` rounds a notice's sum half-up once and shares it out to the items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from domain.money import div_round_half_up

__all__ = [
    "ACT_365",
    "DAY_COUNTS",
    "RATE_UNKNOWN",
    "InterestPart",
    "day_count_days",
    "distribute",
    "item_interest",
    "rate_on",
    "rate_steps",
    "round_half_up",
    "year_fraction",
]

ACT_365 = "act/365"
DAY_COUNTS = (ACT_365, "act/360", "30E/360", "act/act")
"""The day-count conventions a procedure may name (``day_count``)."""

RATE_UNKNOWN = "rate_unknown"
"""Reason of an item that gets no interest: a day of its period has no reference rate."""

Steps = Sequence[tuple[int, int]]
"""A step function of days: ``[(from_day, value), ...]`` sorted by day; a value holds
from its day until the next one's."""


def _thirty_e(day: int) -> int:
    d = date.fromordinal(day)
    return 360 * d.year + 30 * d.month + min(d.day, 30)


def _jan_first(year: int) -> int:
    return date(year, 1, 1).toordinal()


def _act_act(a: int, b: int) -> Fraction:
    """ISDA: the period is cut at 1 January; each piece counts over its own year."""
    total = Fraction(0)
    year = date.fromordinal(a).year
    while a < b:
        end = min(b, _jan_first(year + 1))
        length = 366 if _jan_first(year + 1) - _jan_first(year) == 366 else 365
        total += Fraction(end - a, length)
        a, year = end, year + 1
    return total


def day_count_days(convention: str, a: int, b: int) -> int:
    """The days the convention counts in ``[a, b)``: ``b - a``, or for ``30E/360``
    ``360 (Y2 - Y1) + 30 (M2 - M1) + (min(D2, 30) - min(D1, 30))``."""
    if convention == "30E/360":
        return _thirty_e(b) - _thirty_e(a)
    if convention in DAY_COUNTS:
        return b - a
    raise ValueError(f"unknown day count {convention!r}")


def year_fraction(convention: str, a: int, b: int) -> Fraction:
    """``f(a, b)`` of RULES.md section 9, exactly; 0 when ``b <= a``."""
    if b <= a:
        return Fraction(0)
    if convention == ACT_365:
        return Fraction(b - a, 365)
    if convention == "act/360":
        return Fraction(b - a, 360)
    if convention == "30E/360":
        return Fraction(day_count_days(convention, a, b), 360)
    if convention == "act/act":
        return _act_act(a, b)
    raise ValueError(f"unknown day count {convention!r}")


def rate_on(timeline: Sequence[tuple[int, Decimal]], day: int) -> Decimal | None:
    """The percent of the latest entry with ``valid_from <= day``, or ``None``."""
    found: Decimal | None = None
    for valid_from, percent in timeline:
        if valid_from > day:
            break
        found = percent
    return found


def rate_steps(
    timeline: Sequence[tuple[int, Decimal]], spread: Decimal, a: int, b: int
) -> list[tuple[int, Decimal]] | None:
    """The yearly rate (reference percent plus ``spread``, 0 when that is below 0: RULES.md
    decision 12) on the days of ``[a, b)`` as steps, cut at every ``valid_from`` inside;
    ``None`` when a day has no rate.

    ``timeline`` is sorted by ``valid_from`` (one entry per day, the last applied)."""
    first = rate_on(timeline, a)
    if first is None:
        return None
    steps = [(a, max(first + spread, Decimal(0)))]
    for valid_from, percent in timeline:
        if a < valid_from < b:
            steps.append((valid_from, max(percent + spread, Decimal(0))))
    return steps


@dataclass(frozen=True, slots=True)
class InterestPart:
    """One sub-period ``[start, end)`` of an item's interest, with one rate and one base.

    ``days`` is what the day count counts (``30E/360``: its 30-day months); ``amount``
    is the part's exact interest rounded half-up to minor units, for display: the
    notice rounds the unrounded sum of all parts once (RULES.md section 9)."""

    start: int
    end: int
    days: int
    rate_percent: Decimal
    base_amount: int
    amount: int
    day_count: str


def _value_at(steps: Steps | Sequence[tuple[int, Decimal]], day: int) -> int | Decimal:
    value = steps[0][1]
    for from_day, v in steps:
        if from_day > day:
            break
        value = v
    return value


def item_interest(
    start: int,
    end: int,
    balances: Steps,
    rates: Sequence[tuple[int, Decimal]],
    convention: str,
) -> tuple[tuple[InterestPart, ...], Fraction]:
    """The parts of ``[start, end)`` and the exact interest of the item.

    ``balances`` and ``rates`` are steps whose first value holds from ``start`` on (or
    before); the period is cut wherever one of them changes. Each part earns
    ``base × rate / 100 × year_fraction``."""
    if end <= start:
        return (), Fraction(0)
    cuts = {start, end}
    cuts.update(d for d, _ in balances if start < d < end)
    cuts.update(d for d, _ in rates if start < d < end)
    ordered = sorted(cuts)
    parts = []
    total = Fraction(0)
    for a, b in zip(ordered, ordered[1:], strict=False):
        base = int(_value_at(balances, a))
        rate = Decimal(_value_at(rates, a))
        exact = base * Fraction(rate) / 100 * year_fraction(convention, a, b)
        total += exact
        shown = round_half_up(exact)
        days = day_count_days(convention, a, b)
        parts.append(InterestPart(a, b, days, rate, base, shown, convention))
    return tuple(parts), total


def round_half_up(value: Fraction) -> int:
    """``value`` rounded to an integer, a half away from zero."""
    return div_round_half_up(value.numerator, value.denominator)


def distribute(exacts: Sequence[Fraction]) -> tuple[list[int], int]:
    """(share per item, total): the sum rounded half-up once; the shares are each item's
    exact amount floored, plus one minor unit each for the largest remainders (ties by
    position), so they add up to the total exactly (as stage 1 does)."""
    total = round_half_up(sum(exacts, Fraction(0)))
    shares = [x.numerator // x.denominator for x in exacts]
    order = sorted(range(len(exacts)), key=lambda i: (-(exacts[i] - shares[i]), i))
    for index in order[: max(0, total - sum(shares))]:
        shares[index] += 1
    return shares, total
