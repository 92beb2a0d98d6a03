"""Every limit of CONTRACT.md "Limits" (docs/LIMITS.md) is checked at the door, with a
reason naming it, on the raw decoded record; what passes is what `Codec.decode` gives."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

import schemas
from processors import limits
from processors.deadletter import Unusable
from schemas.codec import Codec, strip_logical_types
from tests.unit.schemas.samples import SAMPLES, sample

CODEC = Codec()


def raw_bytes(rtype: str, record: dict[str, Any]) -> bytes:
    """Framed Avro of a record given with raw values (decimals as unscaled ints of any
    size, dates as days since 1970): what a hostile producer can write, since the
    fingerprint does not depend on a decimal's precision."""
    plain = parse_schema(strip_logical_types(schemas.raw(rtype)), named_schemas={})
    buf = BytesIO()
    buf.write(CODEC.header(rtype))
    schemaless_writer(buf, plain, to_wire(schemas.raw(rtype), record, {}))
    return buf.getvalue()


def to_wire(node: Any, v: Any, named: dict[str, Any]) -> Any:
    """A raw record's decimals (unscaled ints) as the two's-complement bytes Avro holds."""
    if isinstance(node, str):
        return to_wire(named[node], v, named) if node in named else v
    if isinstance(node, list):
        return None if v is None else to_wire(next(b for b in node if b != "null"), v, named)
    if node.get("logicalType") == "decimal":
        return v.to_bytes((abs(v).bit_length() + 8) // 8, "big", signed=True)
    kind = node["type"]
    if kind == "record":
        named[node["name"]] = named[f"{node.get('namespace', 'dunning')}.{node['name']}"] = node
        return {f["name"]: to_wire(f["type"], v[f["name"]], named) for f in node["fields"]}
    if kind == "array":
        return [to_wire(node["items"], x, named) for x in v]
    if isinstance(kind, dict | list):
        return to_wire(kind, v, named)
    return v


def door(data: bytes) -> dict[str, Any]:
    limits.check_size(data)
    rtype, raw = CODEC.decode_raw(data)
    return limits.check(rtype, raw)


def refused(data: bytes) -> Unusable:
    with pytest.raises(Unusable) as info:
        door(data)
    return info.value


def raw_invoice(**changes: Any) -> dict[str, Any]:
    _, raw = CODEC.decode_raw(CODEC.encode("InvoiceIssued", sample("InvoiceIssued")))
    raw.update(changes)
    return raw


@pytest.mark.parametrize("rtype", sorted(SAMPLES))
def test_a_record_within_the_limits_comes_out_as_codec_decode_gives_it(rtype):
    data = CODEC.encode(rtype, SAMPLES[rtype])
    assert door(data) == CODEC.decode(data)[1]


def test_amounts_up_to_ten_to_the_fifteen_units_pass_and_beyond_are_refused():
    item = raw_invoice()["items"][0]
    ok = {**item, "amount": 10**15 * 1000}
    assert door(raw_bytes("InvoiceIssued", raw_invoice(items=[ok])))["items"][0]["amount"] == \
        Decimal(10**15)
    for units in (10**15 * 1000 + 1, 10**17 * 1000, 10**30 * 1000, -(10**18) * 1000):
        bad = {**item, "amount": units}
        exc = refused(raw_bytes("InvoiceIssued", raw_invoice(items=[item, bad])))
        assert exc.code == "amount_out_of_range"
        assert "items[1].amount" in exc.detail


def test_a_megabyte_decimal_is_refused_at_once():
    item = {**raw_invoice()["items"][0], "amount": 1 << (8 * 1_000_000 - 2)}
    data = raw_bytes("InvoiceIssued", raw_invoice(items=[item]))
    started = time.monotonic()
    assert refused(data).code == "amount_out_of_range"
    assert time.monotonic() - started < 1.0  # fastavro's own Decimal takes minutes


def test_ids_longer_than_200_characters_are_refused_everywhere():
    base = raw_invoice()
    assert door(raw_bytes("InvoiceIssued", {**base, "invoice_id": "I" * 200}))
    assert refused(raw_bytes("InvoiceIssued", {**base, "invoice_id": "I" * 201})).code == \
        "id_too_long"
    item = {**base["items"][0], "item_id": "x" * 201}
    exc = refused(raw_bytes("InvoiceIssued", {**base, "items": [item]}))
    assert (exc.code, "items[0].item_id" in exc.detail) == ("id_too_long", True)
    run = CODEC.decode_raw(CODEC.encode("PaymentRunCompleted",
                                        sample("PaymentRunCompleted")))[1]
    exc = refused(raw_bytes("PaymentRunCompleted", {**run, "run_id": "R" * 1_000_000}))
    assert exc.code == "id_too_long"
    plan = CODEC.decode_raw(CODEC.encode("InstallmentPlanCreated",
                                         sample("InstallmentPlanCreated")))[1]
    plan["item_ids"] = [*plan["item_ids"], "y" * 300]
    assert refused(raw_bytes("InstallmentPlanCreated", plan)).code == "id_too_long"


def test_text_longer_than_1000_characters_is_refused():
    acc = CODEC.decode_raw(CODEC.encode("AccountUpserted", sample("AccountUpserted")))[1]
    acc["postal_address"]["lines"] = ["z" * 1001]
    exc = refused(raw_bytes("AccountUpserted", acc))
    assert (exc.code, "postal_address.lines[0]" in exc.detail) == ("text_too_long", True)
    rej = CODEC.decode_raw(CODEC.encode("ProposalRejected", sample("ProposalRejected")))[1]
    assert refused(raw_bytes("ProposalRejected", {**rej, "reason": "r" * 5000})).code == \
        "text_too_long"


def test_lists_longer_than_10000_entries_are_refused():
    base = raw_invoice()
    items = [{**base["items"][0], "item_id": f"i{n}"} for n in range(10_001)]
    assert refused(raw_bytes("InvoiceIssued", {**base, "items": items})).code == "list_too_long"


def test_dates_and_timestamps_outside_1900_to_2199_are_refused():
    epoch = 719163
    base = raw_invoice()
    for day in (date(1900, 1, 1), date(2199, 12, 31)):
        assert door(raw_bytes("InvoiceIssued", {**base, "issued_on": day.toordinal() - epoch}))
    for days in (date(1899, 12, 31).toordinal() - epoch, date(2200, 1, 1).toordinal() - epoch,
                 2**31 - 1, -(2**31)):
        assert refused(raw_bytes("InvoiceIssued", {**base, "issued_on": days})).code == \
            "date_out_of_range"
    assert refused(raw_bytes("InvoiceIssued", {**base, "occurred_at": 2**62})).code == \
        "date_out_of_range"


def test_a_record_larger_than_one_mebibyte_is_refused_before_decoding():
    limits.check_size(b"x" * limits.MAX_RECORD_BYTES)
    with pytest.raises(Unusable) as info:
        limits.check_size(b"x" * (limits.MAX_RECORD_BYTES + 1))
    assert info.value.code == "record_too_large"


def test_procedure_day_counts_are_bounded():
    proc = CODEC.decode_raw(CODEC.encode("DunningProcedureDefined",
                                         sample("DunningProcedureDefined")))[1]
    proc["min_days_between_dunnings"] = 2**31 - 1
    assert refused(raw_bytes("DunningProcedureDefined", proc)).code == "number_out_of_range"


def test_an_account_record_is_keyed_by_the_utf8_of_its_account_id_byte_for_byte():
    from processors.errors import check_key

    check_key("ACC-ü".encode(), "ACC-ü")
    for key in (None, b"", b"ACC-\xfc", "ACC-ü ".encode(), b"OTHER", "ACC-Ü".encode()):
        with pytest.raises(Unusable) as info:
            check_key(key, "ACC-ü")
        assert info.value.code == "key_mismatch"
