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

from domain.interest import ACT_365, DAY_COUNTS
from domain.money import to_minor_rounded

__all__ = [
    "ACTIVITIES",
    "CLEARING_ORDERS",
    "INTEREST_BASES",
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
INTEREST_BASES = ("open_amount", "daily_balance")
"""``interest_base``: today's open amount (the default) or the balance each day had."""
PRINCIPAL_FIRST = ("principal", "interest", "charges")
CHARGES_FIRST = ("charges", "interest", "principal")
CLEARING_ORDERS = (PRINCIPAL_FIRST, CHARGES_FIRST)
"""``clearing_order``: the order unallocated money clears an account's items in. Set (either
value), it also keeps a notice's executed charge and interest as claimable items of the
account (RULES.md decision 12); absent (``None``), they are postings only, as before."""
DEFAULT_PAY_WITHIN_DAYS = 14


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
    charge_percent: Decimal | None = None
    """Percent of the notice's open total added to ``charge`` (RULES.md section 9)."""
    charge_min: Decimal | None = None
    charge_max: Decimal | None = None
    pay_within_days: int = DEFAULT_PAY_WITHIN_DAYS
    activity_min_amounts: tuple[tuple[str, Decimal], ...] = ()
    """(activity, minimum ``total_due``) pairs, in the order given."""


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
    charge_percent: tuple[int, int] | None = None
    """``num / den`` percent, exactly, or ``None``."""
    charge_min: int | None = None
    charge_max: int | None = None
    pay_within_days: int = DEFAULT_PAY_WITHIN_DAYS
    activity_min: tuple[tuple[str, int], ...] = ()


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
    day_count: str = ACT_365
    base_rate: str | None = None
    """A reference rate id: the rate is its percent on each day plus ``spread``."""
    spread: Decimal = Decimal(0)
    daily_balance: bool = False
    clearing_order: tuple[str, ...] | None = None
    """Set: the notices keep their charge and interest as claimable items (decision 12)."""

    @property
    def plain_interest(self) -> bool:
        """Today's interest rule (act/365, one fixed rate, today's open amount)."""
        return self.day_count == ACT_365 and self.base_rate is None and not self.daily_balance


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
    day_count: str = ACT_365
    interest_base_rate: str | None = None
    """A reference rate id (``dunning.rates``) instead of ``interest_rate_percent``."""
    interest_spread_percent: Decimal | None = None
    """Added to the reference rate (with ``interest_base_rate`` only; absent: 0)."""
    interest_base: str = "open_amount"
    clearing_order: tuple[str, ...] | None = None
    """``None``: not set (no claimable items); else one of ``CLEARING_ORDERS``."""
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
            _check_level_options(at, lv)
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
        self._check_options(where)

    def _check_options(self, where: str) -> None:
        if self.day_count not in DAY_COUNTS:
            raise ProcedureError(
                f"{where}: day_count must be one of {', '.join(DAY_COUNTS)}, got {self.day_count!r}"
            )
        if self.interest_base not in INTEREST_BASES:
            raise ProcedureError(
                f"{where}: interest_base must be one of {', '.join(INTEREST_BASES)}, "
                f"got {self.interest_base!r}"
            )
        order = self.clearing_order
        if order is not None and order not in CLEARING_ORDERS:
            raise ProcedureError(
                f"{where}: clearing_order must be [principal, interest, charges] or "
                f"[charges, interest, principal], got {list(order)!r}"
            )
        rate = self.interest_base_rate
        if rate is not None and (not isinstance(rate, str) or not rate or "|" in rate):
            raise ProcedureError(f"{where}: interest_base_rate must be a rate id without '|'")
        if self.interest_spread_percent is not None:
            if rate is None:
                raise ProcedureError(f"{where}: interest_spread_percent needs interest_base_rate")
            _check_amount(where, "interest_spread_percent", self.interest_spread_percent)

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
                    charge_percent=None
                    if lv.charge_percent is None
                    else lv.charge_percent.as_integer_ratio(),
                    charge_min=_minor_or_none(lv.charge_min, currency),
                    charge_max=_minor_or_none(lv.charge_max, currency),
                    pay_within_days=lv.pay_within_days,
                    activity_min=tuple(
                        (a, to_minor_rounded(m, currency)) for a, m in lv.activity_min_amounts
                    ),
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
            day_count=self.day_count,
            base_rate=self.interest_base_rate,
            spread=self.interest_spread_percent or Decimal(0),
            daily_balance=self.interest_base == "daily_balance",
            clearing_order=self.clearing_order,
        )
        self._terms[currency] = terms
        return terms


def _minor_or_none(amount: Decimal | None, currency: str) -> int | None:
    return None if amount is None else to_minor_rounded(amount, currency)


def _check_level_options(at: str, lv: Level) -> None:
    """The options of one level (RULES.md section 9): percentage charge, pay-by, minimums."""
    for name in ("charge_percent", "charge_min", "charge_max"):
        value = getattr(lv, name)
        if value is not None:
            _check_amount(at, name, value)
    if lv.charge_percent is None and (lv.charge_min is not None or lv.charge_max is not None):
        raise ProcedureError(f"{at}: charge_min and charge_max need charge_percent")
    low, high = lv.charge_min, lv.charge_max
    if low is not None and high is not None and low > high:
        raise ProcedureError(f"{at}: charge_min {low} is above charge_max {high}")
    _check_int(at, "pay_within_days", lv.pay_within_days, 0)
    if not isinstance(lv.activity_min_amounts, tuple):
        raise ProcedureError(f"{at}: activity_min_amounts must be a tuple of pairs")
    seen: set[str] = set()
    for activity, amount in lv.activity_min_amounts:
        if activity not in lv.activities:
            raise ProcedureError(
                f"{at}: activity_min_amounts names {activity!r}, not an activity of the level"
            )
        if activity in seen:
            raise ProcedureError(f"{at}: activity_min_amounts names {activity!r} twice")
        seen.add(activity)
        _check_amount(at, f"activity_min_amounts.{activity}", amount)


# -- parsing the YAML shape --------------------------------------------------------------

_PROCEDURE_KEYS = {
    "id",
    "min_days_between_dunnings",
    "interest_rate_percent",
    "min_interest_amount",
    "auto_approve",
    "levels",
    "day_count",
    "interest_base_rate",
    "interest_spread_percent",
    "interest_base",
    "clearing_order",
}
_PROCEDURE_OPTIONAL = {
    "auto_approve",
    "day_count",
    "interest_base_rate",
    "interest_spread_percent",
    "interest_base",
    "clearing_order",
}
_LEVEL_OPTIONAL = {
    "charge_percent",
    "charge_min",
    "charge_max",
    "pay_within_days",
    "activity_min_amounts",
}
_LEVEL_KEYS = _LEVEL_OPTIONAL | {
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


def _optional_amount(where: str, name: str, raw: Mapping[str, Any]) -> Decimal | None:
    value = raw.get(name)
    return None if value is None else _amount(where, name, value)


def _parse_level(at: str, raw: Mapping[str, Any]) -> Level:
    _require(at, raw, _LEVEL_KEYS, _LEVEL_OPTIONAL)
    activities = raw["activities"]
    if not isinstance(activities, list | tuple) or not all(
        isinstance(a, str) for a in activities
    ):
        raise ProcedureError(f"{at}: activities must be a list of names")
    minimums = raw.get("activity_min_amounts") or {}
    if not isinstance(minimums, Mapping):
        raise ProcedureError(f"{at}: activity_min_amounts must be a mapping activity: amount")
    return Level(
        level=_integer(at, "level", raw["level"]),
        days_in_arrears=_integer(at, "days_in_arrears", raw["days_in_arrears"]),
        min_item_amount=_amount(at, "min_item_amount", raw["min_item_amount"]),
        min_total_amount=_amount(at, "min_total_amount", raw["min_total_amount"]),
        charge=_amount(at, "charge", raw["charge"]),
        interest=_flag(at, "interest", raw["interest"]),
        activities=tuple(activities),
        charge_percent=_optional_amount(at, "charge_percent", raw),
        charge_min=_optional_amount(at, "charge_min", raw),
        charge_max=_optional_amount(at, "charge_max", raw),
        pay_within_days=_integer(
            at, "pay_within_days", raw.get("pay_within_days", DEFAULT_PAY_WITHIN_DAYS)
        ),
        activity_min_amounts=tuple(
            (str(a), _amount(at, f"activity_min_amounts.{a}", m)) for a, m in minimums.items()
        ),
    )


def _parse_interest(where: str, mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The interest fields of a procedure: a fixed rate, or a base rate plus a spread."""
    base = mapping.get("interest_base_rate")
    fixed = mapping.get("interest_rate_percent")
    if base is None and fixed is None:
        raise ProcedureError(f"{where}: missing field interest_rate_percent")
    if base is not None and fixed is not None:
        raise ProcedureError(
            f"{where}: interest_rate_percent and interest_base_rate exclude each other"
        )
    if base is not None and not isinstance(base, str):
        raise ProcedureError(f"{where}: interest_base_rate must be a rate id, got {base!r}")
    order = mapping.get("clearing_order")
    if order is not None and not isinstance(order, list | tuple):
        raise ProcedureError(f"{where}: clearing_order must be a list")
    return {
        "interest_rate_percent": Decimal(0)
        if fixed is None
        else _amount(where, "interest_rate_percent", fixed),
        "interest_base_rate": base,
        "interest_spread_percent": _optional_amount(where, "interest_spread_percent", mapping),
        "day_count": mapping.get("day_count", ACT_365),
        "interest_base": mapping.get("interest_base", "open_amount"),
        "clearing_order": None if order is None else tuple(order),
    }


def parse_procedure(mapping: Mapping[str, Any]) -> Procedure:
    """A :class:`Procedure` from the YAML shape of CONTRACT.md (plain dicts).

    ``auto_approve`` and the options of RULES.md section 9 are optional; every other
    field is required (``interest_rate_percent`` unless ``interest_base_rate`` is given)
    and no unknown field is accepted. Amounts are strings (integers are accepted too); a
    float is rejected because it is not exact.
    """
    pid = mapping.get("id") if isinstance(mapping, Mapping) else None
    where = f"procedure {pid!r}" if pid is not None else "procedure"
    _require(where, mapping, _PROCEDURE_KEYS, _PROCEDURE_OPTIONAL | {"interest_rate_percent"})
    if not isinstance(pid, str) or not pid:
        raise ProcedureError(f"{where}: id must be a non-empty string")
    raw_levels = mapping["levels"]
    if not isinstance(raw_levels, list | tuple) or not raw_levels:
        raise ProcedureError(f"{where}: levels must be a non-empty list")
    levels = tuple(
        _parse_level(f"{where} level #{index}", raw)
        for index, raw in enumerate(raw_levels, start=1)
    )
    return Procedure(
        id=pid,
        min_days_between_dunnings=_integer(
            where, "min_days_between_dunnings", mapping["min_days_between_dunnings"]
        ),
        min_interest_amount=_amount(where, "min_interest_amount", mapping["min_interest_amount"]),
        auto_approve=_flag(where, "auto_approve", mapping.get("auto_approve", False)),
        levels=levels,
        **_parse_interest(where, mapping),
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


def _level_to_dict(lv: Level) -> dict[str, Any]:
    out: dict[str, Any] = {
        "level": lv.level,
        "days_in_arrears": lv.days_in_arrears,
        "min_item_amount": str(lv.min_item_amount),
        "min_total_amount": str(lv.min_total_amount),
        "charge": str(lv.charge),
        "interest": lv.interest,
        "activities": list(lv.activities),
    }
    for name in ("charge_percent", "charge_min", "charge_max"):
        value = getattr(lv, name)
        if value is not None:
            out[name] = str(value)
    if lv.pay_within_days != DEFAULT_PAY_WITHIN_DAYS:
        out["pay_within_days"] = lv.pay_within_days
    if lv.activity_min_amounts:
        out["activity_min_amounts"] = {a: str(m) for a, m in lv.activity_min_amounts}
    return out


def procedure_to_dict(procedure: Procedure) -> dict[str, Any]:
    """The YAML shape of ``procedure`` (amounts as strings); inverse of :func:`parse_procedure`.

    An option at its default is left out, so a procedure that sets none has exactly the
    shape (and the event id, ``processors.convert.procedure_record``) it had before."""
    out: dict[str, Any] = {"id": procedure.id,
                           "min_days_between_dunnings": procedure.min_days_between_dunnings}
    if procedure.interest_base_rate is None:
        out["interest_rate_percent"] = str(procedure.interest_rate_percent)
    out["min_interest_amount"] = str(procedure.min_interest_amount)
    out["auto_approve"] = procedure.auto_approve
    out["levels"] = [_level_to_dict(lv) for lv in procedure.levels]
    if procedure.day_count != ACT_365:
        out["day_count"] = procedure.day_count
    if procedure.interest_base_rate is not None:
        out["interest_base_rate"] = procedure.interest_base_rate
        if procedure.interest_spread_percent is not None:
            out["interest_spread_percent"] = str(procedure.interest_spread_percent)
    if procedure.interest_base != "open_amount":
        out["interest_base"] = procedure.interest_base
    if procedure.clearing_order is not None:
        out["clearing_order"] = list(procedure.clearing_order)
    return out
