"""Dates inside the domain are day numbers: ``date.toordinal()``."""

from __future__ import annotations

from datetime import date


def to_day(value: date) -> int:
    """The day number of ``value`` (0001-01-01 is day 1)."""
    return value.toordinal()


def from_day(day: int) -> date:
    """The date of day number ``day``."""
    return date.fromordinal(day)
