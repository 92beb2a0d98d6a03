"""The compiled converters of `processors.convert` (the schema read once per record type)
give, for every record the worker writes from domain objects, exactly what a plain
reading of the schema per value gives: `_reference` below is that reading (the
converter the worker had before, kept here as the independent check)."""

from typing import Any

from hypothesis import HealthCheck, given, settings

from domain.activity_run import execute
from domain.dates import from_day
from domain.errors import Rejected
from domain.money import from_minor
from domain.reversal import reverse
from domain.state import notice_ids
from processors import convert
from schemas.codec import EPOCH_ORDINAL, Codec
from tests.unit.domain.strategies import dunned_accounts

CODEC = Codec()
_MISSING = object()
_ALIASES = {"recorded_for": "as_of_date"}


def _reference(node: Any, value: Any, currency: str | None, names: dict[str, Any],
          raw: bool = False) -> Any:
    """`value` (domain: ints for money and days, tuples, dataclasses) as Avro data for the
    schema `node`, with money in `currency`. `raw`: for `Codec.encode_raw` (amounts as
    unscaled ints at the schema's scale, dates as days since 1970), same bytes, no
    Decimal or date objects on the way."""
    if isinstance(node, str):
        if node in names:
            return _reference(names[node], value, currency, names, raw)
        return value
    if isinstance(node, list):  # a union: null or one type
        if value is None:
            return None
        branch = next(b for b in node if b != "null")
        return _reference(branch, value, currency, names, raw)
    kind = node.get("type")
    logical = node.get("logicalType")
    if logical == "decimal":
        if currency is None:
            raise ValueError("money without a currency")
        if raw:
            return value * convert._scale_factor(currency, node["scale"])
        return from_minor(value, currency)
    if logical == "date":
        if raw:
            return value - EPOCH_ORDINAL if isinstance(value, int) else \
                value.toordinal() - EPOCH_ORDINAL
        return from_day(value) if isinstance(value, int) else value
    if kind == "array":
        return [_reference(node["items"], v, currency, names, raw) for v in value]
    if kind == "record":
        name = node["name"]
        full = name if "." in name else f"{node.get('namespace', 'dunning')}.{name}"
        names.setdefault(full, node)
        names.setdefault(node["name"], node)
        cur = getattr(value, "currency", currency) if not isinstance(value, dict) else \
            value.get("currency", currency)
        out = {}
        for f in node["fields"]:
            name = f["name"]
            if isinstance(value, dict):
                item = value.get(name, _MISSING)
                if item is _MISSING and name in _ALIASES:
                    item = value.get(_ALIASES[name], _MISSING)
            else:
                item = getattr(value, name, _MISSING)
                if item is _MISSING and name in _ALIASES:
                    item = getattr(value, _ALIASES[name], _MISSING)
            if item is _MISSING:
                item = f.get("default")
            out[name] = _reference(f["type"], item, cur, names, raw)
        return out
    if isinstance(kind, dict | list | str) and kind not in (
        "string", "int", "long", "boolean", "bytes", "null", "double", "float"
    ):
        return _reference(kind, value, currency, names, raw)
    return value


def reference(record_type: str, obj: Any, *, raw: bool = False, **fields: Any) -> Any:
    if fields:
        base = {f: getattr(obj, f) for f in getattr(obj, "__slots__", ())
                if hasattr(obj, f)} if not isinstance(obj, dict) else dict(obj)
        base.update(fields)
        obj = base
    return _reference(convert._schema(record_type), obj, None, {}, raw)


def _same(record_type: str, obj: Any, **fields: Any) -> None:
    for raw in (False, True):
        compiled = convert.to_avro(record_type, obj, raw=raw, **fields)
        assert compiled == reference(record_type, obj, raw=raw, **fields), (record_type, raw)
    encoded = CODEC.encode(record_type, convert.to_avro(record_type, obj, **fields))
    assert CODEC.encode_raw(record_type, convert.to_avro(record_type, obj, raw=True,
                                                          **fields)) == encoded


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dunned_accounts())
def test_notice_commands_history_and_reversals_convert_as_the_schema_says(case) -> None:
    account, _ = case
    for executed in account.notices:
        proposal_id, notice_id = notice_ids(account.account_id, executed)
        _, notice = execute(account, proposal_id)
        for command in notice.commands:
            _same(type(command).__name__, command)
        _same("DunningNoticeIssued", notice.history, seq=0, prev_hash="")
        try:
            _, reversal = reverse(account, notice_id, None, "rev-test", "clerk", "test")
        except Rejected:  # already reversed, or held by a later notice: not this test's
            continue
        for command in reversal.commands:
            _same(type(command).__name__, command)
        if reversal.history is not None:
            _same("DunningNoticeReversed", reversal.history, seq=0, prev_hash="",
                  currency=executed.currency)


def test_the_compiled_converter_is_read_once_per_record_type() -> None:
    assert convert._converter("DunningNoticeIssued", True) is \
        convert._converter("DunningNoticeIssued", True)
