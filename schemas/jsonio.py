"""JSON lines (CONTRACT.md) <-> Avro dicts of the schemas in `schemas/`.

One JSON object per line, with `"type"` naming the record. In JSON, amounts are decimal
strings (`"119.00"`; JSON numbers are refused, so no float ever touches an amount), dates
are `YYYY-MM-DD`, timestamps ISO 8601 with an offset (`2025-03-31T22:15:00Z`), bytes are
base64. In the Avro dicts they are `Decimal`, `date`, aware UTC `datetime` and `bytes`.

Decisions written down here:

- `"type"` is the contract name. The history copy of `ProposalRejected` (record type
  `history.ProposalRejected`, Avro `dunning.history.ProposalRejected`) is written as
  `"ProposalRejected"` too; reading, a `ProposalRejected` line is the history record when
  `topic="dunning.history"` is given or, without a topic, when it has the history fields
  (`seq`); `"history.ProposalRejected"` and Avro full names are accepted as well.
- A missing (or null) `event_id` / `command_id` is derived: `uuid5(ID_NAMESPACE,
  canonical)`, where `canonical` is the record as compact JSON with sorted keys, `"type"`
  included, the id left out, amounts at the schema's scale (`"119.000"`), dates ISO and
  timestamps in milliseconds. The same record therefore always gets the same id whatever
  its key order, spacing or trailing zeros, so publishing a file twice is harmless.
- Unknown fields, duplicate keys, naive timestamps and amounts with more decimals than
  the schema's scale (3) are errors; every error names the line number and the field.
- Output amounts are quantized to the minor unit of the record's `currency` (or of the
  enclosing record's): `"119.00"`, `"500"` for JPY, `"1.250"` for KWD. Records without a
  currency (procedures, rates) show at least 2 decimals. An amount with more decimals than
  that (an item's share of interest, a rate) keeps its exact digits: output never rounds.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import orjson
from fastavro.validation import ValidationError, validate

import schemas
from domain.money import minor_units

__all__ = [
    "ID_NAMESPACE",
    "JsonRecordError",
    "dumps",
    "json_type",
    "parse_line",
    "parse_lines",
    "to_json",
]

#: The namespace of derived event ids (see the module docstring).
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dunning:jsonl:event-id")

_DEFAULT_PLACES = 2

_DECIMAL_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_HISTORY_TOPIC = "dunning.history"


class JsonRecordError(ValueError):
    """A JSON line that is not a valid record; the message names the line and the field."""

    def __init__(self, lineno: int, message: str, field: str | None = None) -> None:
        self.lineno = lineno
        self.field = field
        self.reason = message
        where = f"line {lineno}: {field}: " if field else f"line {lineno}: "
        super().__init__(where + message)


class _Invalid(Exception):
    """Raised inside the schema walk; becomes a JsonRecordError with the line number."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class _JsonFloat:
    """A JSON number with a fraction or exponent, kept as text so it can be refused."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON records")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


# -- names ------------------------------------------------------------------------------


def json_type(record_type: str) -> str:
    """The `"type"` written for a record type (the contract name)."""
    return record_type.removeprefix("history.")


def _record_type_of(obj: dict[str, Any], topic: str | None, lineno: int) -> str:
    value = obj.get("type")
    if not isinstance(value, str) or not value:
        raise JsonRecordError(lineno, 'every line needs a "type" naming the record', "type")
    known = set(schemas.names())
    name = value
    if name not in known:
        by_full = schemas.name_of(value)
        if by_full is None:
            raise JsonRecordError(lineno, f"unknown record type {value!r}", "type")
        name = by_full
    history = topic == _HISTORY_TOPIC or (topic is None and "seq" in obj)
    if value == "ProposalRejected" and history:  # the bare contract name names both
        name = "history.ProposalRejected"
    if topic is not None and schemas.TOPICS[name] != topic:
        raise JsonRecordError(lineno, f"{json_type(name)} does not belong on {topic}", "type")
    return name


# -- the schema walk, JSON -> Avro ------------------------------------------------------


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _full(name: str, namespace: str) -> str:
    if name in schemas.PRIMITIVES or "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _collect(node: Any, namespace: str, named: dict[str, dict[str, Any]]) -> None:
    """Every named record defined inside `node`, by full name."""
    if isinstance(node, list):
        for branch in node:
            _collect(branch, namespace, named)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            full = _full(node["name"], node.get("namespace", namespace))
            named[full] = node
            if kind in ("record", "error"):
                inner = full.rpartition(".")[0]
                for fld in node["fields"]:
                    _collect(fld["type"], inner, named)
        elif kind == "array":
            _collect(node["items"], namespace, named)
        elif kind == "map":
            _collect(node["values"], namespace, named)
        elif isinstance(kind, (dict, list)):
            _collect(kind, namespace, named)


_NAMED: dict[str, dict[str, dict[str, Any]]] = {}


@cache
def _schema_json(record_type: str) -> dict[str, Any]:
    """The self-contained JSON schema of a record type, read-only (cached)."""
    return schemas.raw(record_type)


def _named(record_type: str) -> dict[str, dict[str, Any]]:
    named = _NAMED.get(record_type)
    if named is None:
        named = {}
        _collect(_schema_json(record_type), "", named)
        _NAMED[record_type] = named
    return named


def _describe(value: Any) -> str:
    if isinstance(value, _JsonFloat):
        return f"the JSON number {value.text}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return f"a JSON {'object' if isinstance(value, dict) else 'array'}"


def _parse_decimal(value: Any, node: dict[str, Any], path: str) -> Decimal:
    if not isinstance(value, str):
        raise _Invalid(path, f'must be a decimal string like "119.00", not {_describe(value)}')
    if not _DECIMAL_RE.fullmatch(value):
        raise _Invalid(path, f'must be a decimal string like "119.00", not {_describe(value)}')
    scale = int(node.get("scale", 0))
    precision = int(node["precision"])
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already rules it out
        raise _Invalid(path, f"not a decimal: {_describe(value)}") from None
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > scale:
        raise _Invalid(path, f"{value} has more than {scale} decimals")
    if abs(amount.scaleb(scale)) >= Decimal(10) ** precision:
        raise _Invalid(path, f"{value} does not fit decimal({precision},{scale})")
    return amount


def _parse_date(value: Any, path: str) -> date:
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise _Invalid(path, f"must be a date YYYY-MM-DD, not {_describe(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _Invalid(path, f"not a valid date {value!r}: {exc}") from None


def _parse_timestamp(value: Any, path: str) -> datetime:
    if not isinstance(value, str) or not _TIMESTAMP_RE.fullmatch(value):
        raise _Invalid(
            path, f"must be an ISO 8601 timestamp like 2025-03-31T22:15:00Z, not {_describe(value)}"
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _Invalid(path, f"not a valid timestamp {value!r}: {exc}") from None
    if moment.tzinfo is None:
        raise _Invalid(path, f"timestamp {value!r} needs a UTC offset (e.g. a trailing Z)")
    return moment.astimezone(UTC)


def _null_from_json(value: Any, path: str, node: str) -> None:
    if value is not None:
        raise _Invalid(path, f"must be null, not {_describe(value)}")


def _string_from_json(value: Any, path: str, node: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(path, f"must be a string, not {_describe(value)}")
    return value


def _boolean_from_json(value: Any, path: str, node: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(path, f"must be true or false, not {_describe(value)}")
    return value


def _whole_from_json(value: Any, path: str, node: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(path, f"must be a whole number, not {_describe(value)}")
    low, high = _INT_RANGE[node]
    if not low <= value <= high:
        raise _Invalid(path, f"{value} is out of range for an Avro {node}")
    return value


def _number_from_json(value: Any, path: str, node: str) -> float:
    if isinstance(value, _JsonFloat):
        return float(value.text)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise _Invalid(path, f"must be a number, not {_describe(value)}")


def _bytes_from_json(value: Any, path: str, node: str) -> bytes:
    if not isinstance(value, str):
        raise _Invalid(path, f"must be a base64 string, not {_describe(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Invalid(path, "is not valid base64") from None


#: Avro primitive type -> its parser of a JSON value (value, path, type name).
_PRIMITIVE_FROM_JSON: dict[str, Callable[[Any, str, str], Any]] = {
    "null": _null_from_json, "string": _string_from_json, "boolean": _boolean_from_json,
    "int": _whole_from_json, "long": _whole_from_json,
    "float": _number_from_json, "double": _number_from_json, "bytes": _bytes_from_json,
}


def _is_logical(kind: Any, logical: Any) -> bool:
    """Is this a logical type the JSON form writes its own way (decimal, date, timestamp)?"""
    return ((logical == "decimal" and kind == "bytes") or (logical == "date" and kind == "int")
            or (logical in ("timestamp-millis", "timestamp-micros") and kind == "long"))


def _logical_from_json(node: dict[str, Any], value: Any, path: str) -> Any:
    logical = node["logicalType"]
    if logical == "decimal":
        return _parse_decimal(value, node, path)
    if logical == "date":
        return _parse_date(value, path)
    return _parse_timestamp(value, path)


def _union_from_json(
    node: list[Any], value: Any, path: str, namespace: str, named: dict[str, dict[str, Any]]
) -> Any:
    if value is None and "null" in node:
        return None
    branches = [b for b in node if b != "null"]
    errors = []
    for branch in branches:
        try:
            return _from_json(branch, value, path, namespace, named)
        except _Invalid as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    raise _Invalid(path, f"matches no type of the union: {_describe(value)}")


def _record_from_json(
    node: dict[str, Any], value: Any, path: str, namespace: str,
    named: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(path, f"must be a JSON object, not {_describe(value)}")
    inner = _full(node["name"], node.get("namespace", namespace)).rpartition(".")[0]
    out: dict[str, Any] = {}
    for fld in node["fields"]:
        name = fld["name"]
        fpath = _join(path, name)
        if name in value:
            out[name] = _from_json(fld["type"], value[name], fpath, inner, named)
        elif "default" in fld:
            out[name] = json.loads(json.dumps(fld["default"]))
        else:
            raise _Invalid(fpath, "missing required field")
    known = {fld["name"] for fld in node["fields"]}
    extra = [k for k in value if k not in known and not (k == "type" and not path)]
    if extra:
        raise _Invalid(_join(path, extra[0]), "unknown field")
    return out


def _from_json(
    node: Any, value: Any, path: str, namespace: str, named: dict[str, dict[str, Any]]
) -> Any:
    if isinstance(node, str):
        parse = _PRIMITIVE_FROM_JSON.get(node)
        if parse is not None:
            return parse(value, path, node)
        full = _full(node, namespace)
        if full not in named:
            raise _Invalid(path, f"schema refers to unknown type {full}")
        return _from_json(named[full], value, path, namespace, named)
    if isinstance(node, list):
        return _union_from_json(node, value, path, namespace, named)
    kind = node["type"]
    if _is_logical(kind, node.get("logicalType")):
        return _logical_from_json(node, value, path)
    if kind in ("record", "error"):
        return _record_from_json(node, value, path, namespace, named)
    if kind == "enum":
        if value not in node["symbols"]:
            raise _Invalid(path, f"must be one of {node['symbols']}, not {_describe(value)}")
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise _Invalid(path, f"must be a JSON array, not {_describe(value)}")
        return [
            _from_json(node["items"], v, f"{path}[{i}]", namespace, named)
            for i, v in enumerate(value)
        ]
    if kind == "map":
        if not isinstance(value, dict):
            raise _Invalid(path, f"must be a JSON object, not {_describe(value)}")
        return {
            k: _from_json(node["values"], v, f"{path}[{k!r}]", namespace, named)
            for k, v in value.items()
        }
    return _from_json(kind, value, path, namespace, named)


# -- Avro -> JSON -----------------------------------------------------------------------


def _places(currency: Any) -> int:
    """Decimals shown for amounts in `currency` (ISO 4217, `domain.money`); 2 if unknown."""
    if not isinstance(currency, str):
        return _DEFAULT_PLACES
    try:
        return minor_units(currency)
    except ValueError:
        return _DEFAULT_PLACES


def _format_decimal(amount: Decimal, places: int) -> str:
    quantum = Decimal(1).scaleb(-places)
    shown = amount.quantize(quantum)
    if shown != amount:  # never round: keep the exact digits
        shown = amount.normalize()
    text = format(shown, "f")
    return text[1:] if shown == 0 and text.startswith("-") else text


def _format_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _logical_to_json(node: dict[str, Any], value: Any, path: str, places: int | None) -> str:
    logical = node["logicalType"]
    if logical == "decimal":
        if not isinstance(value, Decimal):
            raise TypeError(f"{path}: expected a Decimal, got {type(value).__name__}")
        scale = int(node.get("scale", 0))
        if places is None:
            return format(value.quantize(Decimal(1).scaleb(-scale)), "f")
        return _format_decimal(value, places)
    if logical == "date":
        if isinstance(value, int) and not isinstance(value, bool):
            value = date(1970, 1, 1) + timedelta(days=value)
        if not isinstance(value, date):
            raise TypeError(f"{path}: expected a date, got {type(value).__name__}")
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        unit = 1000 if logical == "timestamp-millis" else 1_000_000
        value = _EPOCH + timedelta(microseconds=value * (1_000_000 // unit))
    if not isinstance(value, datetime):
        raise TypeError(f"{path}: expected a datetime, got {type(value).__name__}")
    return _format_timestamp(value)


def _record_to_json(
    node: dict[str, Any], value: Any, path: str, namespace: str,
    named: dict[str, dict[str, Any]], places: int | None,
) -> dict[str, Any]:
    inner = _full(node["name"], node.get("namespace", namespace)).rpartition(".")[0]
    if places is not None and "currency" in value:
        places = _places(value.get("currency"))
    out: dict[str, Any] = {}
    for fld in node["fields"]:
        name = fld["name"]
        if name not in value:
            continue
        out[name] = _to_json(fld["type"], value[name], _join(path, name), inner, named, places)
    return out


def _to_json(
    node: Any,
    value: Any,
    path: str,
    namespace: str,
    named: dict[str, dict[str, Any]],
    places: int | None,
) -> Any:
    """`places`: decimals of amounts (currency); None: canonical, at the schema's scale."""
    if isinstance(node, str):
        if node == "bytes":
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"{path}: expected bytes, got {type(value).__name__}")
            return base64.b64encode(bytes(value)).decode("ascii")
        if node in schemas.PRIMITIVES:
            return value
        full = _full(node, namespace)
        return _to_json(named[full], value, path, namespace, named, places)
    if isinstance(node, list):
        if value is None:
            return None
        branches = [b for b in node if b != "null"]
        if len(branches) == 1:
            return _to_json(branches[0], value, path, namespace, named, places)
        return value
    kind = node["type"]
    if _is_logical(kind, node.get("logicalType")):
        return _logical_to_json(node, value, path, places)
    if kind in ("record", "error"):
        return _record_to_json(node, value, path, namespace, named, places)
    if kind == "array":
        return [
            _to_json(node["items"], v, f"{path}[{i}]", namespace, named, places)
            for i, v in enumerate(value)
        ]
    if kind == "map":
        return {
            k: _to_json(node["values"], v, f"{path}[{k!r}]", namespace, named, places)
            for k, v in value.items()
        }
    if kind == "enum":
        return value
    return _to_json(kind, value, path, namespace, named, places)


def to_json(record_type: str, record: dict[str, Any]) -> dict[str, Any]:
    """The JSON form of an Avro dict (without `"type"`), in schema field order."""
    result = _to_json(
        _schema_json(record_type), record, "", "", _named(record_type), _DEFAULT_PLACES
    )
    assert isinstance(result, dict)
    return result


def dumps(record_type: str, record: dict[str, Any]) -> str:
    """One JSON line (no newline) with `"type"` first."""
    return orjson.dumps({"type": json_type(record_type), **to_json(record_type, record)}).decode()


def _id_field(record_type: str) -> str | None:
    first = _schema_json(record_type)["fields"][0]["name"]
    return first if first in ("event_id", "command_id") else None


def _derived_id(record_type: str, record: dict[str, Any], id_field: str) -> str:
    body = {k: v for k, v in record.items() if k != id_field}
    canonical = _to_json(_schema_json(record_type), body, "", "", _named(record_type), None)
    canonical["type"] = json_type(record_type)
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(uuid.uuid5(ID_NAMESPACE, text))


def parse_line(line: str, lineno: int, *, topic: str | None = None) -> tuple[str, dict[str, Any]]:
    """(record type, Avro dict) of one JSON line; `JsonRecordError` naming line and field.

    `topic`, when given, must be the record's topic; it also decides which
    `ProposalRejected` is meant (module docstring).
    """
    try:
        obj = json.loads(
            line,
            parse_float=_JsonFloat,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except ValueError as exc:
        raise JsonRecordError(lineno, f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise JsonRecordError(lineno, "a record must be a JSON object")
    record_type = _record_type_of(obj, topic, lineno)
    schema = _schema_json(record_type)
    id_field = _id_field(record_type)
    derive = id_field is not None and obj.get(id_field) is None
    if derive:
        assert id_field is not None
        obj[id_field] = "derived"  # placeholder, replaced below
    try:
        record = _from_json(schema, obj, "", "", _named(record_type))
    except _Invalid as exc:
        raise JsonRecordError(lineno, exc.message, f"{json_type(record_type)}.{exc.path}") from None
    assert isinstance(record, dict)
    if id_field is not None:
        if derive:
            record[id_field] = _derived_id(record_type, record, id_field)
        elif not record[id_field].strip():
            raise JsonRecordError(
                lineno, "must not be empty", f"{json_type(record_type)}.{id_field}"
            )
    try:
        validate(record, schemas.load(record_type), raise_errors=True)
    except ValidationError as exc:
        detail = "; ".join(str(e) for e in exc.errors) or str(exc)
        raise JsonRecordError(lineno, detail, json_type(record_type)) from None
    return record_type, record


def parse_lines(
    lines: Iterable[str], *, topic: str | None = None, first_lineno: int = 1
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, record type, record) of every non-blank line."""
    for lineno, line in enumerate(lines, first_lineno):
        if line.strip():
            record_type, record = parse_line(line, lineno, topic=topic)
            yield lineno, record_type, record
