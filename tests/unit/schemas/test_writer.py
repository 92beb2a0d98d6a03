"""The compiled Avro writer writes the bytes fastavro writes, for random records of every
schema of the contract, and refuses what fastavro refuses."""

from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from schemas.codec import Codec, strip_logical_types
from schemas.writer import compile_writer
from tests.unit.schemas.test_decoder_properties import _wire, records

ALL = tuple(sorted(schemas.TOPICS))
CODEC = Codec()


def fastavro_bytes(rtype: str, body: dict[str, Any]) -> bytes:
    buf = BytesIO()
    plain = parse_schema(strip_logical_types(schemas.raw(rtype)), named_schemas={})
    schemaless_writer(buf, plain, body)
    return buf.getvalue()


def test_every_schema_of_the_contract_has_a_compiled_writer() -> None:
    assert all(CODEC._entry(rtype).writer is not None for rtype in ALL)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records(ALL))
def test_random_records_of_every_schema_give_fastavros_bytes(rec: tuple[str, dict]) -> None:
    rtype, raw = rec
    body = _wire(schemas.raw(rtype), raw, {})
    writer = CODEC._entry(rtype).writer
    assert writer is not None
    try:
        expected = fastavro_bytes(rtype, body)
    except (ValueError, TypeError, OverflowError):
        with pytest.raises((ValueError, TypeError, OverflowError, AttributeError)):
            writer(body)
        return
    assert writer(body) == expected


@given(st.sampled_from(ALL), st.data())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_field_left_out_takes_its_default_as_fastavro_does(rtype: str, data: Any) -> None:
    raw = data.draw(records((rtype,)))[1]
    body = _wire(schemas.raw(rtype), raw, {})
    for field in schemas.raw(rtype)["fields"]:
        if "default" in field:
            body.pop(field["name"], None)
    assert CODEC._entry(rtype).writer(body) == fastavro_bytes(rtype, body)  # type: ignore[misc]


@pytest.mark.parametrize(("field_type", "value"), [
    ("int", 2**63), ("long", -(2**63) - 1), ("long", 2**63), ("int", "7"), ("string", None),
    ("string", b"bytes"), ("bytes", "text"), (["null", "long"], "x"),
])
def test_values_fastavro_refuses_are_refused(field_type: Any, value: Any) -> None:
    schema = {"type": "record", "name": "T", "fields": [{"name": "f", "type": field_type}]}
    writer = compile_writer(schema)
    assert writer is not None
    with pytest.raises((ValueError, TypeError, OverflowError)):
        schemaless_writer(BytesIO(), parse_schema(schema), {"f": value})
    with pytest.raises((ValueError, TypeError, OverflowError, AttributeError)):
        writer({"f": value})


def test_a_schema_with_a_type_it_does_not_know_gets_no_writer() -> None:
    schema = {"type": "record", "name": "M", "fields": [
        {"name": "m", "type": {"type": "map", "values": "long"}}]}
    assert compile_writer(schema) is None
    assert compile_writer({"type": "record", "name": "U", "fields": [
        {"name": "u", "type": ["null", "long", "string"]}]}) is None


@pytest.mark.parametrize(("field_type", "value"), [
    ("int", 2**31), ("long", -(2**63)), ("boolean", 2), ("boolean", None), ("long", True),
    ("bytes", bytearray(b"ab")),
])
def test_edge_values_fastavro_takes_are_written_as_fastavro_writes_them(
        field_type: Any, value: Any) -> None:
    schema = {"type": "record", "name": "T", "fields": [{"name": "f", "type": field_type}]}
    buf = BytesIO()
    schemaless_writer(buf, parse_schema(schema), {"f": value})
    assert compile_writer(schema)({"f": value}) == buf.getvalue()  # type: ignore[misc]


def test_a_float_for_a_long_is_refused_where_fastavro_truncates_it() -> None:
    schema = {"type": "record", "name": "T", "fields": [{"name": "f", "type": "long"}]}
    with pytest.raises(TypeError):
        compile_writer(schema)({"f": 1.5})  # type: ignore[misc]
