"""A procedure that sets none of the options of RULES.md section 9 keeps its record.

`data/DunningProcedureDefined.v1.avsc` is the schema before the options were added; the
bytes below are what the engine wrote for the procedure then (captured from the branch
the options were added on). The new schema only appends optional fields (null), so:
the same event id, the same bytes under the old schema, and an old reader reads the new
bytes as the same record. (The new schema's own bytes differ: a new fingerprint and one
null byte per added field, five per procedure and five per level.)"""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from domain.procedures import parse_procedure
from processors.convert import procedure, procedure_record
from schemas.codec import Codec

OLD_SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "DunningProcedureDefined.v1.avsc").read_text()
)
OLD_BYTES = bytes.fromhex(
    "c30138fc22e9d0c637dd4834303664373335622d373032382d353930302d386130372d3164363133"
    "64306639616135105354414e444152441c08008954400403e80004020e041388042710020000020c"
    "6c657474657200042a044e2004753004138801040c6c6574746572086c6f636b0000"
)
STANDARD = {
    "id": "STANDARD", "min_days_between_dunnings": 14, "interest_rate_percent": "9.0",
    "min_interest_amount": "1.00",
    "levels": [
        {"level": 1, "days_in_arrears": 7, "min_item_amount": "5.00",
         "min_total_amount": "10.00", "charge": "0.00", "interest": False,
         "activities": ["letter"]},
        {"level": 2, "days_in_arrears": 21, "min_item_amount": "20.00",
         "min_total_amount": "30.00", "charge": "5.00", "interest": True,
         "activities": ["letter", "lock"]},
    ],
}  # fmt: skip


def _old_body(record: dict) -> bytes:
    buf = BytesIO()
    schemaless_writer(buf, parse_schema(OLD_SCHEMA, named_schemas={}), record)
    return buf.getvalue()


def test_an_unchanged_procedure_encodes_to_the_same_bytes_as_before() -> None:
    record = procedure_record(parse_procedure(STANDARD))
    assert record["event_id"] == "406d735b-7028-5900-8a07-1d613d0f9aa5"
    assert _old_body(record) == OLD_BYTES[10:]  # header: C3 01 + 8-byte fingerprint


def test_an_old_reader_reads_the_new_bytes_as_the_old_record() -> None:
    codec = Codec("single-object")
    new_bytes = codec.encode("DunningProcedureDefined", procedure_record(parse_procedure(STANDARD)))
    old_schema = parse_schema(OLD_SCHEMA, named_schemas={})
    new_schema = parse_schema(codec.schema("DunningProcedureDefined"), named_schemas={})
    read = schemaless_reader(BytesIO(new_bytes[10:]), new_schema, old_schema)
    old = schemaless_reader(BytesIO(OLD_BYTES[10:]), old_schema, old_schema)
    assert read == old


def test_old_bytes_read_with_the_new_schema_give_the_same_procedure() -> None:
    codec = Codec("single-object")
    codec.add_writer_schema(OLD_SCHEMA)
    _, record = codec.decode(OLD_BYTES)
    assert procedure(record) == parse_procedure(STANDARD)


def test_options_survive_the_record() -> None:
    raw = {
        **STANDARD, "day_count": "act/act", "interest_base": "daily_balance",
        "levels": [STANDARD["levels"][0], {
            **STANDARD["levels"][1], "charge_percent": "1.5", "charge_min": "5.00",
            "charge_max": "50.00", "pay_within_days": 7,
            "activity_min_amounts": {"lock": "100.00"}}],
    }  # fmt: skip
    proc = parse_procedure(raw)
    codec = Codec("single-object")
    _, record = codec.decode(codec.encode("DunningProcedureDefined", procedure_record(proc)))
    assert procedure(record) == proc
