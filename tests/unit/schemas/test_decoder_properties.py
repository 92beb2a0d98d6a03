"""The door holds for any input: whatever the bytes, the decoder gives a record or a
`CodecError`, the limits and converters a domain event or `Unusable`, never another
exception; and an event that passes the door is stored in a row without overflowing
msgpack's integers, however extreme its values within the limits (docs/LIMITS.md)."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from io import BytesIO
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import schemas
from domain.errors import Rejected
from domain.ingest import evolve
from domain.state import new_account
from processors import convert, limits
from processors.deadletter import Unusable
from processors.state import StoredAccount
from schemas.codec import EPOCH_ORDINAL, Codec, CodecError, strip_logical_types
from tests.unit.schemas.samples import SAMPLES
from topics import catalogue as cat

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CODEC = Codec()
#: What the ingest agent folds into accounts: billing events and letter outcomes.
INPUTS = tuple(r for t in cat.INGESTED for r in cat.BY_NAME[t].records)
DOOR = tuple(r for t in (*cat.INGESTED, cat.PAYMENT_RUNS, cat.DECISIONS, cat.PROCEDURES)
             for r in cat.BY_NAME[t].records)
VALID = {name: CODEC.encode(name, SAMPLES[name]) for name in DOOR}
FIRST = limits.FIRST_DATE.toordinal() - EPOCH_ORDINAL
LAST = limits.LAST_DATE.toordinal() - EPOCH_ORDINAL


def through_the_door(data: bytes) -> Any:
    """What the worker does with a record's value before its account is looked at."""
    limits.check_size(data)
    rtype, raw = CODEC.decode_raw(data)
    record = limits.check(rtype, raw)
    if rtype in INPUTS:
        return convert.input_event(rtype, record)
    return record


def digest(event: Any) -> bytes:
    return hashlib.blake2b(repr(event).encode(), digest_size=8).digest()


# ---------------------------------------------------------------- any bytes
framed = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda name, body: CODEC.header(name) + body,
              st.sampled_from(sorted(VALID)), st.binary(max_size=400)),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid record truncated, extended, or with bytes flipped (header included)."""
    data = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    how = draw(st.sampled_from(("flip", "cut", "extend", "splice")))
    if how == "flip":
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif how == "cut":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif how == "extend":
        data += draw(st.binary(min_size=1, max_size=50))
    else:
        i = draw(st.integers(10, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=50))
    return bytes(data)


@PROPERTY
@given(st.one_of(framed, mutated()))
@example(b"")
@example(b"\xc3\x01")
@example(b"\x00\x00\x00\x00\x01")
def test_any_bytes_decode_to_a_record_or_a_codec_error(data: bytes) -> None:
    for decode in (CODEC.decode, CODEC.decode_raw):
        try:
            rtype, record = decode(data)
        except CodecError:
            continue
        assert rtype in CODEC.names() and isinstance(record, dict)


@PROPERTY
@given(st.one_of(framed, mutated()))
def test_any_bytes_give_an_event_or_a_typed_refusal_at_the_door(data: bytes) -> None:
    try:
        out = through_the_door(data)
    except (CodecError, Unusable) as exc:
        assert str(exc)
        return
    assert out is not None


# ---------------------------------------------------------------- any values
def _text(name: str) -> st.SearchStrategy[str]:
    if name == "currency":
        return st.sampled_from(("EUR", "JPY", "BHD", "CLF", "USD") * 3 + ("XXX", ""))
    if name.endswith(("_id", "_ids")) or name in limits.ID_FIELDS:
        limit = limits.MAX_ID_CHARS
    else:
        limit = limits.MAX_TEXT_CHARS
    edge = st.sampled_from(("x" * limit, "é" * limit, "x" * (limit + 1)))
    return rarely(st.text(max_size=12), edge, st.text(min_size=100, max_size=400))


def rarely(usual: st.SearchStrategy[Any], *odd: st.SearchStrategy[Any],
           one_in: int = 25) -> st.SearchStrategy[Any]:
    """`usual`, and each of `odd` about once in `one_in` draws (a record has many fields:
    an odd value in each one often would leave no record whole)."""
    return st.sampled_from(range(one_in)).flatmap(
        lambda k: odd[k] if k < len(odd) else usual)


def _unscaled(scale: int) -> st.SearchStrategy[int]:
    """Decimals as unscaled ints at `scale`: mostly whole or two-decimal amounts, up to
    the limit, and now and then beyond it."""
    top = limits.MAX_AMOUNT_UNITS * 10**scale
    whole = 10**scale
    within = st.one_of(
        st.integers(1, 10**7).map(lambda v: v * whole),  # everyday amounts
        st.integers(1, limits.MAX_AMOUNT_UNITS).map(lambda v: v * whole),  # up to the limit
        st.sampled_from((top, top - whole)),
        st.integers(1, 10**9).map(lambda v: v * whole // 100),  # cents
    )
    return rarely(within, st.sampled_from((top + whole, top + 1, -top, 0, -whole, 10**30,
                                            -(10**30), 1 << 300)),
                  st.integers(-(10**40), 10**40), one_in=10)


_DAYS = rarely(st.integers(FIRST, LAST),
               st.sampled_from((FIRST - 1, LAST + 1, -719162, 2932896)),
               st.integers(-(2**31), 2**31 - 1))
_MILLIS = rarely(st.integers(FIRST * 86_400_000, LAST * 86_400_000),
                 st.integers(-(2**63), 2**63 - 1))


def _values(node: Any, name: str, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Raw values (as `Codec.decode_raw` gives them) of a schema node, extremes included."""
    if isinstance(node, str):
        if node in named:
            return named[node]
        return {
            "string": _text(name),
            "int": st.integers(-(2**31), 2**31 - 1) if "days" in name
            else st.integers(-3, 40),
            "long": st.integers(-(2**63), 2**63 - 1),
            "boolean": st.booleans(),
            "null": st.none(),
            "bytes": st.binary(max_size=20),
            "double": st.floats(allow_nan=False),
            "float": st.floats(width=32, allow_nan=False),
        }[node]
    if isinstance(node, list):
        return st.one_of(*(_values(b, name, named) for b in node))
    logical = node.get("logicalType")
    if logical == "decimal":
        return _unscaled(int(node.get("scale", 0)))
    if logical == "date":
        return _DAYS
    if logical == "timestamp-millis":
        return _MILLIS
    kind = node["type"]
    if kind == "array":
        return st.lists(_values(node["items"], name, named), max_size=4)
    if kind == "record":
        strategy = st.fixed_dictionaries(
            {f["name"]: _values(f["type"], f["name"], named) for f in node["fields"]})
        full = node["name"] if "." in node["name"] else \
            f"{node.get('namespace', 'dunning')}.{node['name']}"
        named[full] = named[node["name"]] = strategy
        return strategy
    return _values(kind, name, named)


def _wire(node: Any, v: Any, named: dict[str, Any]) -> Any:
    """Raw values as the plain schema writes them (decimals: two's complement bytes)."""
    if isinstance(node, str):
        return _wire(named[node], v, named) if node in named else v
    if isinstance(node, list):
        if v is None:
            return None
        return _wire(next(b for b in node if b != "null"), v, named)
    if node.get("logicalType") == "decimal":
        return v.to_bytes((abs(v).bit_length() + 8) // 8, "big", signed=True)
    kind = node["type"]
    if kind == "record":
        named[node["name"]] = named[f"{node.get('namespace', 'dunning')}.{node['name']}"] = node
        return {f["name"]: _wire(f["type"], v[f["name"]], named) for f in node["fields"]}
    if kind == "array":
        return [_wire(node["items"], x, named) for x in v]
    if isinstance(kind, dict | list):
        return _wire(kind, v, named)
    return v


def encoded(rtype: str, raw: dict[str, Any]) -> bytes:
    """What a producer may write under the record's fingerprint, whatever the values."""
    from fastavro import parse_schema, schemaless_writer

    buf = BytesIO()
    buf.write(CODEC.header(rtype))
    plain = parse_schema(strip_logical_types(schemas.raw(rtype)), named_schemas={})
    schemaless_writer(buf, plain, _wire(schemas.raw(rtype), raw, {}))
    return buf.getvalue()


def records(names: tuple[str, ...]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    return st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), _values(schemas.raw(name), "", {})))


@PROPERTY
@given(records(DOOR))
def test_any_values_give_an_event_or_unusable_and_what_passes_is_within_the_limits(
        rec: tuple[str, dict[str, Any]]) -> None:
    rtype, raw = rec
    data = encoded(rtype, raw)
    try:
        out = through_the_door(data)
    except Unusable as exc:
        assert exc.code and exc.detail
        return
    assert out is not None
    assert len(data) <= limits.MAX_RECORD_BYTES


@PROPERTY
@given(st.lists(records(INPUTS), min_size=1, max_size=6))
def test_events_that_pass_the_door_pack_into_a_row_without_overflow(
        recs: list[tuple[str, dict[str, Any]]]) -> None:
    """However extreme the amounts and dates within the limits, folded into one account:
    its row packs (msgpack's integers hold every value an event stores)."""
    account = new_account("ACC")
    stored = 0
    for rtype, raw in recs:
        raw = {**raw, "account_id": "ACC"}
        try:
            event = through_the_door(encoded(rtype, raw))
        except Unusable:
            continue
        try:
            account = evolve(account, event, digest(event))
        except Rejected:
            continue
        StoredAccount(account).dumps()
        stored += 1
    assume(stored > 0)


def test_the_largest_amounts_in_every_kind_of_currency_pack() -> None:
    """10^15 units in a currency of 0, 2, 3 and 4 decimals (10^19 minor units in CLF:
    beyond int64, within msgpack's unsigned 64 bits): items, a payment, an allocation."""
    top = Decimal(limits.MAX_AMOUNT_UNITS)
    for currency in ("JPY", "EUR", "BHD", "CLF"):
        invoice = {**SAMPLES["InvoiceIssued"], "account_id": "ACC", "currency": currency,
                   "items": [{"item_id": f"I/{n}", "amount": top, "due_date": date(2199, 12, 31),
                              "dunning_procedure": None, "dunning_group": None}
                             for n in range(3)]}
        payments = [
            {**SAMPLES["PaymentReceived"], "event_id": f"p{n}", "account_id": "ACC",
             "payment_id": f"P{n}", "currency": currency, "amount": top,
             "received_on": date(1900, 1, 1),
             "allocations": [{"item_id": "I/1", "amount": top}] if n else None}
            for n in range(2)]
        account = new_account("ACC")
        for rtype, record in [("InvoiceIssued", invoice), *[("PaymentReceived", p)
                                                             for p in payments]]:
            event = through_the_door(CODEC.encode(rtype, record))
            account = evolve(account, event, digest(event))
            StoredAccount(account).dumps()
        paid = sum(it.amount - it.open_amount for it in account.items)
        assert paid == 2 * account.items[0].amount
