"""Charges, pay-by dates and activity minimums of RULES.md section 9 ("Options").

Pure functions over ``int`` minor units of the group's currency and day numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.money import div_round_half_up

__all__ = ["PAY_WITHIN_DAYS", "activities_carried_out", "notice_charge", "pay_by"]

PAY_WITHIN_DAYS = 14
"""A level's ``pay_within_days`` when the procedure does not say (today's rule)."""


def notice_charge(
    fixed: int,
    total_open: int,
    percent: tuple[int, int] | None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """The notice's charge: ``fixed`` plus, when ``percent`` (``num / den`` percent) is
    set, ``round_half_up(total_open × percent / 100)`` clamped to ``[minimum, maximum]``
    (each bound optional)."""
    if percent is None:
        return fixed
    num, den = percent
    extra = div_round_half_up(total_open * num, den * 100)
    if minimum is not None and extra < minimum:
        extra = minimum
    if maximum is not None and extra > maximum:
        extra = maximum
    return fixed + extra


def pay_by(as_of: int, pay_within_days: int) -> int:
    """The pay-by day of a notice: its as-of day plus its level's ``pay_within_days``."""
    return as_of + pay_within_days


def activities_carried_out(
    activities: Sequence[str], minimums: Sequence[tuple[str, int]], total_due: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(activities carried out, activities left out because ``total_due`` is below their
    minimum), both in the level's order. An activity without a minimum is carried out."""
    floor = dict(minimums)
    kept = tuple(a for a in activities if total_due >= floor.get(a, 0))
    below = tuple(a for a in activities if total_due < floor.get(a, 0))
    return kept, below
