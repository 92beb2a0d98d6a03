"""Schema evolution: adding an optional field keeps old and new readers working.

Checked twice for every record schema: by decoding with fastavro reader schemas (through
the codec, in both framings) and with the `avro` library's compatibility checker. Broken
changes (a required field removed or added without default, a changed type) are reported
incompatible.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import parse as avro_parse
from fastavro import parse_schema, schemaless_reader, schemaless_writer

import schemas
from schemas.codec import Codec, CodecError
from schemas.registry import InMemorySchemaRegistry

from .samples import SAMPLES, sample

NAMES = schemas.names()
ADDED = "added_in_v2"
CHECKER = ReaderWriterCompatibilityChecker()


def with_optional_field(name: str) -> dict[str, Any]:
    new = schemas.raw(name)
    new["fields"].append({"name": ADDED, "type": ["null", "string"], "default": None})
    return new


def required_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in schema["fields"] if "default" not in f]


def compatible(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    result = CHECKER.get_compatibility(
        avro_parse(json.dumps(reader)), avro_parse(json.dumps(writer))
    )
    return bool(result.compatibility is SchemaCompatibilityType.compatible)


def fastavro_round_trip(writer: dict[str, Any], reader: dict[str, Any], record: Any) -> Any:
    buf = BytesIO()
    schemaless_writer(buf, parse_schema(writer, named_schemas={}), record)
    buf.seek(0)
    return schemaless_reader(
        buf, parse_schema(writer, named_schemas={}), parse_schema(reader, named_schemas={})
    )


# -- adding an optional field -----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_added_optional_field_is_compatible_both_ways_for_avro(name: str) -> None:
    old, new = schemas.raw(name), with_optional_field(name)
    assert compatible(reader=new, writer=old)  # new consumers read old records
    assert compatible(reader=old, writer=new)  # old consumers read new records


@pytest.mark.parametrize("name", NAMES)
def test_added_optional_field_decodes_both_ways_with_fastavro(name: str) -> None:
    old, new = schemas.raw(name), with_optional_field(name)
    assert fastavro_round_trip(old, new, SAMPLES[name]) == {**SAMPLES[name], ADDED: None}
    assert fastavro_round_trip(new, old, {**SAMPLES[name], ADDED: "v2"}) == SAMPLES[name]


@pytest.mark.parametrize("name", NAMES)
def test_single_object_codecs_of_both_versions_understand_each_other(name: str) -> None:
    new_schema = with_optional_field(name)
    old_codec = Codec("single-object")
    new_codec = Codec("single-object", known={name: new_schema})
    new_codec.add_writer_schema(schemas.raw(name))
    old_codec.add_writer_schema(new_schema)

    old_bytes = old_codec.encode(name, SAMPLES[name])
    new_bytes = new_codec.encode(name, {**SAMPLES[name], ADDED: "v2"})
    assert old_bytes[2:10] != new_bytes[2:10]  # another fingerprint

    assert new_codec.decode(old_bytes) == (name, {**SAMPLES[name], ADDED: None})
    assert old_codec.decode(new_bytes) == (name, SAMPLES[name])
    # An explicit reader schema picks the shape, whatever the codec's own version.
    assert old_codec.decode(old_bytes, reader=new_schema) == (name, {**SAMPLES[name], ADDED: None})
    assert new_codec.decode(new_bytes, reader=schemas.raw(name)) == (name, SAMPLES[name])


@pytest.mark.parametrize("name", NAMES)
def test_confluent_codecs_of_both_versions_share_a_registry(name: str) -> None:
    registry = InMemorySchemaRegistry()
    new_schema = with_optional_field(name)
    old_codec = Codec("confluent", schema_ids=registry)
    new_codec = Codec("confluent", schema_ids=registry, known={name: new_schema})

    old_bytes = old_codec.encode(name, SAMPLES[name])
    new_bytes = new_codec.encode(name, {**SAMPLES[name], ADDED: "v2"})
    assert old_bytes[:5] != new_bytes[:5]
    subject = f"{schemas.topic_of(name)}-{schemas.full_name(name)}"
    assert registry.subjects[subject] == [1, 2]

    assert new_codec.decode(old_bytes) == (name, {**SAMPLES[name], ADDED: None})
    assert old_codec.decode(new_bytes) == (name, SAMPLES[name])


def test_decode_raw_of_an_older_writer_has_the_current_shape() -> None:
    name = "PaymentReceived"
    new_schema = with_optional_field(name)
    new_codec = Codec("single-object", known={name: new_schema})
    new_codec.add_writer_schema(schemas.raw(name))
    old_bytes = Codec().encode(name, SAMPLES[name])
    _, raw = new_codec.decode_raw(old_bytes)
    assert raw[ADDED] is None and raw["amount"] == 50_000


# -- broken changes ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_removing_a_required_field_breaks_old_readers(name: str) -> None:
    old = schemas.raw(name)
    victim = required_fields(old)[-1]
    new = schemas.raw(name)
    new["fields"] = [f for f in new["fields"] if f["name"] != victim["name"]]
    assert not compatible(reader=old, writer=new)
    assert compatible(reader=new, writer=old)  # the other way still works

    record = {k: v for k, v in SAMPLES[name].items() if k != victim["name"]}
    writer = Codec("single-object", known={name: new})
    reader = Codec("single-object")
    reader.add_writer_schema(new)
    with pytest.raises(CodecError, match=name.removeprefix("history.")):
        reader.decode(writer.encode(name, record))


@pytest.mark.parametrize("name", NAMES)
def test_adding_a_required_field_breaks_new_readers(name: str) -> None:
    old = schemas.raw(name)
    new = schemas.raw(name)
    new["fields"].append({"name": ADDED, "type": "string"})
    assert not compatible(reader=new, writer=old)
    assert compatible(reader=old, writer=new)


@pytest.mark.parametrize("name", NAMES)
def test_changing_a_field_type_is_incompatible(name: str) -> None:
    old = schemas.raw(name)
    new = schemas.raw(name)
    first = new["fields"][0]  # event_id / command_id: a string
    assert first["type"] == "string"
    first["type"] = "long"
    assert not compatible(reader=new, writer=old)
    assert not compatible(reader=old, writer=new)
    with pytest.raises(CodecError, match="body"):
        Codec().decode(Codec().encode(name, SAMPLES[name]), reader=new)


@pytest.mark.parametrize("name", NAMES)
def test_compatibility_problems_of_the_project(name: str) -> None:
    old, new = schemas.raw(name), with_optional_field(name)
    assert schemas.compatibility_problems(reader=new, writer=old) == []
    assert schemas.compatibility_problems(reader=old, writer=new) == []
    broken = schemas.raw(name)
    broken["fields"][0]["type"] = "long"
    assert schemas.compatibility_problems(reader=broken, writer=old)


def test_a_decimal_scale_change_is_caught_although_avro_ignores_it() -> None:
    old = schemas.raw("DunningProposed")
    new = schemas.raw("DunningProposed")
    items = next(f for f in new["fields"] if f["name"] == "items")
    open_amount = next(f for f in items["type"]["items"]["fields"] if f["name"] == "open_amount")
    open_amount["type"] = {**open_amount["type"], "scale": 2}
    # Avro resolution and the Parsing Canonical Form do not see logical types ...
    assert compatible(reader=new, writer=old)
    assert Codec(known={"DunningProposed": new}).header("DunningProposed") == Codec().header(
        "DunningProposed"
    )
    # ... so the project's check does.
    assert schemas.compatibility_problems(reader=new, writer=old) == [
        "items[].open_amount: writer has decimal(20,3), reader has decimal(20,2)"
    ]


def test_a_reader_of_another_record_is_refused() -> None:
    codec = Codec()
    data = codec.encode("RunApproved", sample("RunApproved"))
    with pytest.raises(CodecError):
        codec.decode(data, reader="RunDeleted")
