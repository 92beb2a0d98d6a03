"""Every limit on what comes in, in one place, checked at the door (CONTRACT.md "Limits";
docs/LIMITS.md says the same for people).

A record that breaks a limit is dead-lettered with a code naming the limit; nothing past
the door ever sees it. The checks run on the record as `Codec.decode_raw` gives it
(decimals as unscaled ints, dates as days since 1970, timestamps as milliseconds), so an
absurd value is refused before anything is built from it: a 1 MB Avro decimal takes
fastavro minutes to turn into a `Decimal` (quadratic), but one `int.from_bytes` and one
comparison here. `check` returns the record as `Codec.decode` would have given it
(`Decimal`, `date`, `datetime`), which is what `processors.convert` reads.

The limits
----------
- ``MAX_RECORD_BYTES``: a record's value, 1 MiB, checked on the raw bytes before decoding.
- ``MAX_ID_CHARS``: every id (any field named ``*_id`` or ``*_ids``, nested ones too:
  item ids of invoice items, allocations and instalments, lock, plan, run, proposal,
  notice ids; ``dunning_procedure`` and ``dunning_group`` name ids too): 200 characters.
- ``MAX_TEXT_CHARS``: every other string (names, address lines, reasons, ``decided_by``,
  e-mail addresses, language and country codes, ...): 1000 characters. Longer than any
  real name, address line or reason; short enough that a letter, a history record or a
  log line built from a few of them stays small.
- ``MAX_LIST_ITEMS``: every list (items of an invoice, allocations, instalments, item ids,
  address lines, procedure levels, activities): 10,000 entries.
- ``MAX_AMOUNT_UNITS``: every decimal (amounts, rates), 10^15 currency units in absolute
  value. (Whether an amount must be positive is `processors.convert`'s business.)
- ``FIRST_DATE``..``LAST_DATE``: every date and timestamp, 1900-01-01..2199-12-31 (UTC).
- ``MAX_DAYS``: every day count of a procedure (fields named ``*days*``): 36,525 days
  (100 years) in absolute value, so that a date plus a day count is still a date.

The arithmetic of the amount limit
----------------------------------
Inside the domain an amount is an ``int`` of minor units (``domain.money``): at most
10^15 x 10^d for a currency with d decimals. Rows are msgpack, whose integers span
-2^63..2^64-1 (9.22 x 10^18 below zero, 1.84 x 10^19 above), and amounts on the wire are
``decimal(20, 3)``, at most 10^17 - 10^-3 units.

- d <= 2 (every currency but nine): an amount is at most 10^17 minor units, so the signed
  int64 range holds 92 of them summed, the wire format 99 (a notice's total, for one, is
  its items' open amounts plus a charge and interest).
- d = 3 (BHD, IQD, JOD, KWD, LYD, OMR, TND): at most 10^18 minor units; int64 holds 9.
- d = 4 (CLF, UYW): at most 10^19 minor units, which is *beyond* int64 (one such amount
  still packs, as msgpack's unsigned 64 bits reach 1.84 x 10^19, but two summed do not).
  A stricter bound for these two (10^13 units, i.e. 10^17 minor units like EUR) would be
  one constant here, but CONTRACT.md promises 10^15 units for every currency.

What an event stores is single amounts (an item's amount and what was paid of it, a
payment, its allocations, an instalment in thousandths), never a sum, so every event that
passes these checks packs. A sum beyond the ranges above needs dozens of amounts near
10^15 on one account; should one ever be stored, the ingest's unit of work refuses the
event that made it so (``unstorable``, the account stays as it was) instead of failing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import schemas
from processors.deadletter import Unusable
from schemas.codec import EPOCH_ORDINAL

__all__ = [
    "FIRST_DATE",
    "LAST_DATE",
    "MAX_AMOUNT_UNITS",
    "MAX_DAYS",
    "MAX_ID_CHARS",
    "MAX_LIST_ITEMS",
    "MAX_RECORD_BYTES",
    "MAX_ROW_BYTES",
    "MAX_SEND_BYTES",
    "MAX_TEXT_CHARS",
    "check",
    "check_size",
]

MAX_RECORD_BYTES = 1 << 20
MAX_ID_CHARS = 200
MAX_TEXT_CHARS = 1000
MAX_LIST_ITEMS = 10_000
MAX_AMOUNT_UNITS = 10**15
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2199, 12, 31)
MAX_DAYS = 36_525

MAX_SEND_BYTES = 4 << 20
"""What the worker itself sends, per record (key + value): an account's row, an output,
a dead letter. As much as its consumers fetch per partition (`consumer_max_fetch_size`),
and room for the dead letter of any record up to ``MAX_RECORD_BYTES`` with its original
bytes. A larger dead letter keeps the first ``DEAD_LETTER_KEEP`` bytes and says so."""
MAX_ROW_BYTES = MAX_SEND_BYTES
"""An account's row: an event that would make it larger is refused (``account_too_large``)."""
DEAD_LETTER_KEEP = 64 << 10

#: Field names (besides ``*_id`` / ``*_ids``) whose strings are ids.
ID_FIELDS = frozenset({"dunning_procedure", "dunning_group"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_DAY = FIRST_DATE.toordinal() - EPOCH_ORDINAL  # Avro date: days since 1970-01-01
_LAST_DAY = LAST_DATE.toordinal() - EPOCH_ORDINAL
_FIRST_MS = _FIRST_DAY * 86_400_000
_LAST_MS = (_LAST_DAY + 1) * 86_400_000 - 1


class _Bad(Exception):
    """A broken limit somewhere inside a record; the path is filled in on the way out."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail
        self.path: list[str] = []


def check_size(value: bytes) -> None:
    """The raw value of a record, before anything else looks at it."""
    if len(value) > MAX_RECORD_BYTES:
        raise Unusable("record_too_large",
                       f"{len(value)} bytes, at most {MAX_RECORD_BYTES} (1 MiB)")


def check(rtype: str, record: dict[str, Any]) -> dict[str, Any]:
    """`record` (of type `rtype`, as `Codec.decode_raw` gives it) checked against every
    limit; returned with its logical values, as `Codec.decode` gives them. Raises
    `Unusable` with the code of the first limit it breaks and where."""
    try:
        out: dict[str, Any] = _checker(rtype)(record)
    except _Bad as bad:
        where = "".join(reversed(bad.path)).lstrip(".")
        raise Unusable(bad.code, f"{rtype}.{where}: {bad.detail}") from None
    return out


# ---------------------------------------------------------------- the checkers
Check = Callable[[Any], Any]


def _same(v: Any) -> Any:
    return v


def _magnitude(v: int) -> str:
    """`v` for a message, without printing a number of a million digits."""
    digits = len(str(abs(v))) if v.bit_length() < 200 else int(v.bit_length() * 0.30103)
    return str(v) if digits <= 30 else f"{'-' if v < 0 else ''}~10^{digits - 1}"


def _string(name: str) -> Check:
    if name.endswith(("_id", "_ids")) or name in ID_FIELDS:
        code, limit = "id_too_long", MAX_ID_CHARS
    else:
        code, limit = "text_too_long", MAX_TEXT_CHARS

    def string(v: str) -> str:
        if len(v) > limit:
            raise _Bad(code, f"{len(v)} characters, at most {limit}")
        return v

    return string


def _decimal(scale: int) -> Check:
    limit = MAX_AMOUNT_UNITS * 10**scale

    def decimal(v: int) -> Decimal:
        if not -limit <= v <= limit:
            raise _Bad("amount_out_of_range",
                       f"{_magnitude(v)}E-{scale} is beyond +-10^15")
        return Decimal(v).scaleb(-scale)

    return decimal


def _date(v: int) -> date:
    if not _FIRST_DAY <= v <= _LAST_DAY:
        raise _Bad("date_out_of_range",
                   f"day {_magnitude(v)} after 1970-01-01 is outside {FIRST_DATE}..{LAST_DATE}")
    return date.fromordinal(v + EPOCH_ORDINAL)


def _timestamp(v: int) -> datetime:
    if not _FIRST_MS <= v <= _LAST_MS:
        raise _Bad("date_out_of_range",
                   f"{_magnitude(v)} ms after 1970 is outside {FIRST_DATE}..{LAST_DATE}")
    return _EPOCH + timedelta(microseconds=v * 1000)  # as fastavro reads it


def _days(v: int) -> int:
    if not -MAX_DAYS <= v <= MAX_DAYS:
        raise _Bad("number_out_of_range", f"{_magnitude(v)} days, at most {MAX_DAYS}")
    return v


def _array(inner: Check) -> Check:
    def array(v: list[Any]) -> list[Any]:
        if len(v) > MAX_LIST_ITEMS:
            raise _Bad("list_too_long", f"{len(v)} entries, at most {MAX_LIST_ITEMS}")
        if inner is _same:
            return v
        out = []
        for i, x in enumerate(v):
            try:
                out.append(inner(x))
            except _Bad as bad:
                bad.path.append(f"[{i}]")
                raise
        return out

    return array


def _map(inner: Check) -> Check:
    def mapping(v: dict[str, Any]) -> dict[str, Any]:
        if len(v) > MAX_LIST_ITEMS:
            raise _Bad("list_too_long", f"{len(v)} entries, at most {MAX_LIST_ITEMS}")
        out = {}
        for k, x in v.items():
            try:
                out[_string("")(k)] = inner(x)
            except _Bad as bad:
                bad.path.append(f"[{k[:40]!r}]")
                raise
        return out

    return mapping


def _optional(inner: Check) -> Check:
    def optional(v: Any) -> Any:
        return None if v is None else inner(v)

    return optional


def _record(fields: list[tuple[str, Check]]) -> Check:
    checked = [(name, c) for name, c in fields if c is not _same]

    def record(r: dict[str, Any]) -> dict[str, Any]:
        for name, c in checked:
            try:
                r[name] = c(r[name])
            except _Bad as bad:
                bad.path.append(f".{name}")
                raise
        return r

    return record


def _compile(node: Any, name: str, named: dict[str, Any], ns: str) -> Check:
    """The checker of a value of schema `node` in the field `name`."""
    if isinstance(node, str):
        if node in schemas.PRIMITIVES:
            if node == "string":
                return _string(name)
            if node in ("int", "long") and "days" in name:
                return _days
            return _same
        found = named.get(node if "." in node else f"{ns}.{node}", named.get(node))
        if found is None:
            raise schemas.SchemaError(f"type {node} used before it is defined")
        return found
    if isinstance(node, list):
        branches = [b for b in node if b != "null"]
        if len(branches) != 1:
            raise schemas.SchemaError(f"limits support only ['null', T] unions: {node}")
        inner = _compile(branches[0], name, named, ns)
        return _same if inner is _same else _optional(inner)
    logical = node.get("logicalType")
    if logical == "decimal":
        return _decimal(int(node.get("scale", 0)))
    if logical == "date":
        return _date
    if logical == "timestamp-millis":
        return _timestamp
    kind = node["type"]
    if kind == "array":
        return _array(_compile(node["items"], name, named, ns))
    if kind == "map":
        return _map(_compile(node["values"], name, named, ns))
    if kind == "record":
        full = node["name"] if "." in node["name"] else \
            f"{node.get('namespace', ns)}.{node['name']}"
        inner_ns = full.rpartition(".")[0]
        checker = _record([(f["name"], _compile(f["type"], f["name"], named, inner_ns))
                           for f in node["fields"]])
        named[full] = checker  # later uses refer to it by name (no recursive types here)
        return checker
    if kind in ("enum", "fixed"):
        named[node["name"] if "." in node["name"] else f"{node.get('namespace', ns)}."
              f"{node['name']}"] = _same
        return _same
    return _compile(kind, name, named, ns)


@functools.cache
def _checker(rtype: str) -> Check:
    return _compile(schemas.raw(rtype), "", {}, "dunning")
