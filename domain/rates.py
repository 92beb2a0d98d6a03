"""Reference interest rates (RULES.md section 9, "Rate timeline"): the rates file and the
timeline a proposal run reads.

A rate is set by ``InterestRateSet`` (rate id, valid-from day, percent) on the compacted
``dunning.rates``, keyed ``rate_id|valid_from``: of two settings of one rate and day the
later stands. :func:`timelines` gives each rate id its ``(valid_from, percent)`` steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["RateError", "RateSet", "parse_rates", "timelines"]


class RateError(ValueError):
    """A rates file or record that is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class RateSet:
    rate_id: str
    valid_from: int
    """Day number."""
    percent: Decimal
    """Per year; may be negative (RULES.md decision 12)."""

    def __post_init__(self) -> None:
        where = f"rate {self.rate_id!r}"
        if not isinstance(self.rate_id, str) or not self.rate_id or "|" in self.rate_id:
            raise RateError(f"{where}: rate_id must be a non-empty string without '|'")
        if not isinstance(self.percent, Decimal) or not self.percent.is_finite():
            raise RateError(f"{where}: percent must be a finite amount, got {self.percent!r}")
        if abs(self.percent) >= 1000000:
            raise RateError(f"{where}: percent {self.percent} is out of range")


def _percent(where: str, value: object) -> Decimal:
    if isinstance(value, bool | float) or not isinstance(value, str | int):
        raise RateError(f'{where}: percent must be a string such as "3.62", got {value!r}')
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise RateError(f"{where}: percent is not a number: {value!r}") from None


def _day(where: str, value: object) -> int:
    if isinstance(value, date):
        return value.toordinal()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).toordinal()
        except ValueError:
            pass
    raise RateError(f"{where}: valid_from must be a date YYYY-MM-DD, got {value!r}")


def parse_rates(mapping: Mapping[str, Any]) -> tuple[RateSet, ...]:
    """Every rate of a rates file (``{"rates": [{rate_id, valid_from, percent}, ...]}``);
    a rate id and day given twice is refused."""
    if not isinstance(mapping, Mapping) or set(mapping) != {"rates"}:
        raise RateError("rates file: expected exactly one top-level key 'rates'")
    raw = mapping["rates"]
    if not isinstance(raw, list) or not raw:
        raise RateError("rates file: 'rates' must be a non-empty list")
    out = []
    for n, entry in enumerate(raw, start=1):
        where = f"rates file entry #{n}"
        if not isinstance(entry, Mapping) or set(entry) != {"rate_id", "valid_from", "percent"}:
            raise RateError(f"{where}: needs exactly rate_id, valid_from and percent")
        out.append(
            RateSet(
                str(entry["rate_id"]),
                _day(where, entry["valid_from"]),
                _percent(where, entry["percent"]),
            )
        )
    keys = [(r.rate_id, r.valid_from) for r in out]
    if len(set(keys)) != len(keys):
        raise RateError("rates file: a rate is set twice for the same valid_from")
    return tuple(out)


def timelines(rates: Iterable[RateSet]) -> dict[str, tuple[tuple[int, Decimal], ...]]:
    """Each rate id's steps ``(valid_from, percent)``, sorted by day; of two settings of
    one rate and day the later in ``rates`` stands (the compacted topic's rule)."""
    by_id: dict[str, dict[int, Decimal]] = {}
    for r in rates:
        by_id.setdefault(r.rate_id, {})[r.valid_from] = r.percent
    return {rid: tuple(sorted(days.items())) for rid, days in sorted(by_id.items())}
