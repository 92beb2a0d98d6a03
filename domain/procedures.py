"""Dunning procedures (configuration) and their validation.

A :class:`Procedure` can only exist valid: the checks of RULES.md ("levels numbered
1..n, ``days_in_arrears`` and ``min_item_amount`` never decreasing, no negative amount")
and the ones needed to use it (known activities, integer days) run when it is built,
whether from YAML, from an Avro record or in a test.

Amounts of a procedure are currency-free ``Decimal``; :meth:`Procedure.terms` gives
them in minor units of one currency, rounded half-up, and caches the result per
procedure and currency (it is on the hot path of the proposal run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.money import to_minor_rounded

__all__ = [
    "ACTIVITIES",
    "Level",
    "LevelTerms",
    "Procedure",
    "ProcedureError",
    "Terms",
    "parse_procedure",
    "parse_procedures",
    "procedure_to_dict",
]

ACTIVITIES = ("letter", "lock", "collection", "deposit", "workflow", "deactivate_installment_plan")


class ProcedureError(ValueError):
    """A procedure that breaks the rules or is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class Level:
    level: int
    days_in_arrears: int
    min_item_amount: Decimal
    min_total_amount: Decimal
    charge: Decimal
    interest: bool
    activities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LevelTerms:
    """One level with its amounts in minor units of one currency."""

    level: int
    days_in_arrears: int
    min_item: int
    min_total: int
    charge: int
    interest: bool
    activities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Terms:
    """A procedure in minor units of one currency.

    ``levels[0]`` is ``None`` so that ``levels[n]`` is level ``n``; ``top`` is the highest
    level. The yearly rate is ``rate_num / rate_den`` percent, exactly.
    """

    procedure_id: str
    currency: str
    top: int
    levels: tuple[LevelTerms | None, ...]
    min_days_between_dunnings: int
    rate_num: int
    rate_den: int
    min_interest: int
    auto_approve: bool
    min_total_floor: int
    """The smallest ``min_total`` of all levels: a group with less open never proposes."""


def _check_int(where: str, name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProcedureError(f"{where}: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ProcedureError(f"{where}: {name} must be >= {minimum}, got {value}")


def _check_amount(where: str, name: str, value: object) -> None:
    if not isinstance(value, Decimal):
        raise ProcedureError(
            f"{where}: {name} must be a Decimal, got {type(value).__name__} {value!r}"
        )
    if not value.is_finite():
        raise ProcedureError(f"{where}: {name} must be a finite amount, got {value}")
    if value < 0:
        raise ProcedureError(f"{where}: {name} must not be negative, got {value}")


@dataclass(frozen=True, slots=True)
class Procedure:
    id: str
    min_days_between_dunnings: int
    interest_rate_percent: Decimal
    min_interest_amount: Decimal
    auto_approve: bool
    levels: tuple[Level, ...]
    _terms: dict[str, Terms] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        where = f"procedure {self.id!r}"
        if not isinstance(self.id, str) or not self.id:
            raise ProcedureError(f"{where}: id must be a non-empty string")
        _check_int(where, "min_days_between_dunnings", self.min_days_between_dunnings, 0)
        _check_amount(where, "interest_rate_percent", self.interest_rate_percent)
        _check_amount(where, "min_interest_amount", self.min_interest_amount)
        if not isinstance(self.auto_approve, bool):
            raise ProcedureError(f"{where}: auto_approve must be true or false")
        if not isinstance(self.levels, tuple) or not self.levels:
            raise ProcedureError(f"{where}: needs at least one level")
        previous: Level | None = None
        for n, lv in enumerate(self.levels, start=1):
            if not isinstance(lv, Level):
                raise ProcedureError(f"{where}: levels must be Level objects")
            if lv.level != n:
                numbers = [x.level for x in self.levels]
                raise ProcedureError(f"{where}: levels must be numbered 1..n, got {numbers}")
            at = f"{where} level {n}"
            _check_int(at, "days_in_arrears", lv.days_in_arrears, 0)
            for name in ("min_item_amount", "min_total_amount", "charge"):
                _check_amount(at, name, getattr(lv, name))
            if not isinstance(lv.interest, bool):
                raise ProcedureError(f"{at}: interest must be true or false")
            if not isinstance(lv.activities, tuple):
                raise ProcedureError(f"{at}: activities must be a tuple")
            for activity in lv.activities:
                if activity not in ACTIVITIES:
                    raise ProcedureError(
                        f"{at}: unknown activity {activity!r} (known: {', '.join(ACTIVITIES)})"
                    )
            if len(set(lv.activities)) != len(lv.activities):
                raise ProcedureError(f"{at}: an activity is listed twice")
            if previous is not None:
                if lv.days_in_arrears < previous.days_in_arrears:
                    raise ProcedureError(
                        f"{at}: days_in_arrears {lv.days_in_arrears} is lower than "
                        f"{previous.days_in_arrears} of level {n - 1}"
                    )
                if lv.min_item_amount < previous.min_item_amount:
                    raise ProcedureError(
                        f"{at}: min_item_amount {lv.min_item_amount} is lower than "
                        f"{previous.min_item_amount} of level {n - 1}"
                    )
            previous = lv

    @property
    def top(self) -> int:
        """The highest level."""
        return len(self.levels)

    def terms(self, currency: str) -> Terms:
        """The procedure in minor units of ``currency`` (cached)."""
        cached = self._terms.get(currency)
        if cached is not None:
            return cached
        levels: list[LevelTerms | None] = [None]
        for lv in self.levels:
            levels.append(
                LevelTerms(
                    level=lv.level,
                    days_in_arrears=lv.days_in_arrears,
                    min_item=to_minor_rounded(lv.min_item_amount, currency),
                    min_total=to_minor_rounded(lv.min_total_amount, currency),
                    charge=to_minor_rounded(lv.charge, currency),
                    interest=lv.interest,
                    activities=lv.activities,
                )
            )
        rate_num, rate_den = self.interest_rate_percent.as_integer_ratio()
        terms = Terms(
            procedure_id=self.id,
            currency=currency,
            top=len(self.levels),
            levels=tuple(levels),
            min_days_between_dunnings=self.min_days_between_dunnings,
            rate_num=rate_num,
            rate_den=rate_den,
            min_interest=to_minor_rounded(self.min_interest_amount, currency),
            auto_approve=self.auto_approve,
            min_total_floor=min(t.min_total for t in levels if t is not None),
        )
        self._terms[currency] = terms
        return terms


# -- parsing the YAML shape --------------------------------------------------------------

_PROCEDURE_KEYS = {
    "id",
    "min_days_between_dunnings",
    "interest_rate_percent",
    "min_interest_amount",
    "auto_approve",
    "levels",
}
_LEVEL_KEYS = {
    "level",
    "days_in_arrears",
    "min_item_amount",
    "min_total_amount",
    "charge",
    "interest",
    "activities",
}


def _require(where: str, mapping: Mapping[str, Any], keys: set[str], optional: set[str]) -> None:
    if not isinstance(mapping, Mapping):
        raise ProcedureError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    missing = sorted(keys - optional - set(mapping))
    if missing:
        raise ProcedureError(f"{where}: missing field {', '.join(missing)}")
    unknown = sorted(str(k) for k in set(mapping) - keys)
    if unknown:
        raise ProcedureError(f"{where}: unknown field {', '.join(unknown)}")


def _amount(where: str, name: str, value: object) -> Decimal:
    if isinstance(value, float):
        raise ProcedureError(
            f'{where}: {name} must be written as a string such as "5.00", not as the '
            f"number {value!r} (floats are not exact)"
        )
    if isinstance(value, bool):
        raise ProcedureError(f"{where}: {name} must be an amount string, got {value!r}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise ProcedureError(f"{where}: {name} is not an amount: {value!r}") from None
        if not amount.is_finite():
            raise ProcedureError(f"{where}: {name} is not a finite amount: {value!r}")
        return amount
    raise ProcedureError(f"{where}: {name} must be an amount string, got {value!r}")


def _flag(where: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ProcedureError(f"{where}: {name} must be true or false, got {value!r}")
    return value


def _integer(where: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProcedureError(f"{where}: {name} must be an integer, got {value!r}")
    return value


def parse_procedure(mapping: Mapping[str, Any]) -> Procedure:
    """A :class:`Procedure` from the YAML shape of CONTRACT.md (plain dicts).

    ``auto_approve`` is optional (default false); every other field is required and no
    unknown field is accepted. Amounts are strings (integers are accepted too); a float
    is rejected because it is not exact.
    """
    pid = mapping.get("id") if isinstance(mapping, Mapping) else None
    where = f"procedure {pid!r}" if pid is not None else "procedure"
    _require(where, mapping, _PROCEDURE_KEYS, {"auto_approve"})
    if not isinstance(pid, str) or not pid:
        raise ProcedureError(f"{where}: id must be a non-empty string")
    raw_levels = mapping["levels"]
    if not isinstance(raw_levels, list | tuple) or not raw_levels:
        raise ProcedureError(f"{where}: levels must be a non-empty list")
    levels = []
    for index, raw in enumerate(raw_levels, start=1):
        at = f"{where} level #{index}"
        _require(at, raw, _LEVEL_KEYS, set())
        activities = raw["activities"]
        if not isinstance(activities, list | tuple) or not all(
            isinstance(a, str) for a in activities
        ):
            raise ProcedureError(f"{at}: activities must be a list of names")
        levels.append(
            Level(
                level=_integer(at, "level", raw["level"]),
                days_in_arrears=_integer(at, "days_in_arrears", raw["days_in_arrears"]),
                min_item_amount=_amount(at, "min_item_amount", raw["min_item_amount"]),
                min_total_amount=_amount(at, "min_total_amount", raw["min_total_amount"]),
                charge=_amount(at, "charge", raw["charge"]),
                interest=_flag(at, "interest", raw["interest"]),
                activities=tuple(activities),
            )
        )
    return Procedure(
        id=pid,
        min_days_between_dunnings=_integer(
            where, "min_days_between_dunnings", mapping["min_days_between_dunnings"]
        ),
        interest_rate_percent=_amount(
            where, "interest_rate_percent", mapping["interest_rate_percent"]
        ),
        min_interest_amount=_amount(where, "min_interest_amount", mapping["min_interest_amount"]),
        auto_approve=_flag(where, "auto_approve", mapping.get("auto_approve", False)),
        levels=tuple(levels),
    )


def parse_procedures(mapping: Mapping[str, Any]) -> tuple[Procedure, ...]:
    """Every procedure of a procedures file (``{"procedures": [...]}``); ids must be unique."""
    if not isinstance(mapping, Mapping) or "procedures" not in mapping:
        raise ProcedureError("procedures file: missing top-level key 'procedures'")
    unknown = sorted(str(k) for k in mapping if k != "procedures")
    if unknown:
        raise ProcedureError(f"procedures file: unknown top-level key {', '.join(unknown)}")
    raw = mapping["procedures"]
    if not isinstance(raw, list | tuple):
        raise ProcedureError("procedures file: 'procedures' must be a list")
    result = tuple(parse_procedure(item) for item in raw)
    seen: set[str] = set()
    for p in result:
        if p.id in seen:
            raise ProcedureError(f"procedures file: procedure {p.id!r} is defined twice")
        seen.add(p.id)
    return result


def procedure_to_dict(procedure: Procedure) -> dict[str, Any]:
    """The YAML shape of ``procedure`` (amounts as strings); inverse of :func:`parse_procedure`."""
    return {
        "id": procedure.id,
        "min_days_between_dunnings": procedure.min_days_between_dunnings,
        "interest_rate_percent": str(procedure.interest_rate_percent),
        "min_interest_amount": str(procedure.min_interest_amount),
        "auto_approve": procedure.auto_approve,
        "levels": [
            {
                "level": lv.level,
                "days_in_arrears": lv.days_in_arrears,
                "min_item_amount": str(lv.min_item_amount),
                "min_total_amount": str(lv.min_total_amount),
                "charge": str(lv.charge),
                "interest": lv.interest,
                "activities": list(lv.activities),
            }
            for lv in procedure.levels
        ],
    }
