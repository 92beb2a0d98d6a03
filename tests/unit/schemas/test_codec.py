"""The wire codec: both framings, the fast raw path, and readable errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas.codec import (
    CONFLUENT_MAGIC,
    SINGLE_OBJECT_MAGIC,
    Codec,
    CodecError,
    fingerprint64,
)
from schemas.registry import (
    ConfluentSchemaRegistry,
    InMemorySchemaRegistry,
    RegistryError,
    StaticSchemaIds,
    canonical_form,
)

from .samples import SAMPLES, sample, to_raw

NAMES = schemas.names()
FORMATS = ("single-object", "confluent")
CODEC = Codec()


@pytest.fixture(scope="module", params=FORMATS)
def codec(request: pytest.FixtureRequest) -> Codec:
    return Codec(request.param)


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_record_type_round_trips(codec: Codec, name: str) -> None:
    data = codec.encode(name, SAMPLES[name])
    assert data.startswith(codec.header(name))
    assert codec.decode(data) == (name, SAMPLES[name])


@pytest.mark.parametrize("name", NAMES)
def test_encode_raw_writes_the_same_bytes_as_encode(codec: Codec, name: str) -> None:
    raw = to_raw(SAMPLES[name])
    data = codec.encode(name, SAMPLES[name])
    assert codec.encode_raw(name, raw) == data
    assert codec.decode_raw(data) == (name, raw)


def test_encode_raw_does_not_touch_the_callers_record() -> None:
    codec = Codec()
    raw = to_raw(SAMPLES["DunningProposed"])
    before = json.dumps(raw, sort_keys=True)
    codec.encode_raw("DunningProposed", raw)
    assert json.dumps(raw, sort_keys=True) == before


@settings(max_examples=300, deadline=None)
@given(
    charge=st.integers(min_value=-(10**20) + 1, max_value=10**20 - 1),
    small=st.sampled_from([0, 1, -1, 127, 128, -128, -129, 255, 256, -256, 32767, -32768]),
)
def test_encode_raw_matches_encode_for_any_amount(charge: int, small: int) -> None:
    record = sample("DunningProposed")
    record["charge"] = Decimal(charge).scaleb(-3)
    record["interest"] = Decimal(small).scaleb(-3)
    record["items"][0]["open_amount"] = Decimal(-charge).scaleb(-3)
    raw = to_raw(record)
    data = CODEC.encode("DunningProposed", record)
    assert CODEC.encode_raw("DunningProposed", raw) == data
    assert CODEC.decode(data)[1]["charge"] == record["charge"]


def test_decoded_amounts_are_decimals_at_the_wire_scale() -> None:
    codec = Codec()
    _, record = codec.decode(codec.encode("PaymentReceived", SAMPLES["PaymentReceived"]))
    assert record["amount"] == Decimal("50.00")
    assert str(record["amount"]) == "50.000"
    assert record["occurred_at"] is None and record["received_on"].isoformat() == "2025-03-20"


# -- framings ---------------------------------------------------------------------------

EMPTY = 0xC15D213AA4D7A795


def rabin64(data: bytes) -> int:
    """CRC-64-AVRO, straight from the Avro specification."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp)
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_rabin_reference_matches_the_specification() -> None:
    assert rabin64(b'"null"') == 0x63DD24E7CC258F8A


@pytest.mark.parametrize("name", NAMES)
def test_single_object_header_is_c301_and_the_little_endian_fingerprint(name: str) -> None:
    expected = rabin64(canonical_form(schemas.raw(name)).encode()).to_bytes(8, "little")
    assert fingerprint64(schemas.raw(name)) == expected
    data = Codec("single-object").encode(name, SAMPLES[name])
    assert data[:2] == SINGLE_OBJECT_MAGIC == b"\xc3\x01"
    assert data[2:10] == expected


def test_fingerprints_are_all_different() -> None:
    assert len({fingerprint64(schemas.raw(n)) for n in NAMES}) == len(NAMES)


def test_static_ids_are_small_and_follow_the_sorted_names() -> None:
    codec = Codec("confluent")
    for i, name in enumerate(sorted(NAMES), start=1):
        assert codec.header(name) == CONFLUENT_MAGIC + i.to_bytes(4, "big")
    ids = StaticSchemaIds().ids()
    assert ids["dunning.AccountUpserted"] == 1
    assert (
        ids["dunning.history.ProposalRejected"]
        == sorted(NAMES).index("history.ProposalRejected") + 1
    )


def test_static_ids_refuse_a_schema_they_do_not_know() -> None:
    changed = schemas.raw("RunDeleted")
    changed["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    with pytest.raises(CodecError, match="configure a schema registry"):
        Codec("confluent", schema_ids=StaticSchemaIds(), known={"RunDeleted": changed}).encode(
            "RunDeleted", SAMPLES["RunDeleted"]
        )


def test_confluent_ids_come_from_the_registry_by_subject() -> None:
    registry = InMemorySchemaRegistry()
    codec = Codec("confluent", schema_ids=registry, topic_prefix="t1.")
    data = codec.encode("history.ProposalRejected", SAMPLES["history.ProposalRejected"])
    assert data[:5] == b"\x00\x00\x00\x00\x01"
    assert registry.subjects == {"t1.dunning.history-dunning.history.ProposalRejected": [1]}
    assert Codec("confluent", schema_ids=registry).decode(data)[0] == "history.ProposalRejected"


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "data", "reason"),
    [
        ("single-object", b"", "truncated single-object header"),
        ("single-object", b"\xc3\x01\x00", "truncated single-object header"),
        ("single-object", b"garbage bytes here", "not Avro single-object encoding"),
        ("single-object", b"\x00\x00\x00\x00\x01abc", "Confluent framing"),
        ("single-object", b"\xc3\x01" + bytes(8) + b"\x02", "unknown schema fingerprint"),
        ("confluent", b"", "truncated Confluent header"),
        ("confluent", b"\x00\x00\x01", "truncated Confluent header"),
        ("confluent", b"garbage bytes", "not Confluent framing"),
        ("confluent", b"\xc3\x01" + bytes(8), "single-object"),
        ("confluent", b"\x00\x00\x00\x30\x39\x02", "unknown schema id 12345"),
    ],
)
def test_undecodable_bytes_raise_codec_error_with_a_reason(
    fmt: str, data: bytes, reason: str
) -> None:
    with pytest.raises(CodecError, match=reason):
        Codec(fmt).decode(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_and_overlong_bodies_are_refused(fmt: str) -> None:
    codec = Codec(fmt)
    data = codec.encode("AccountUpserted", SAMPLES["AccountUpserted"])
    header = len(codec.header("AccountUpserted"))
    for cut in range(header, len(data)):
        with pytest.raises(CodecError, match="AccountUpserted body"):
            codec.decode(data[:cut])
    with pytest.raises(CodecError, match="1 trailing bytes after the AccountUpserted body"):
        codec.decode(data + b"\x00")


def test_a_body_that_does_not_fit_the_schema_is_refused() -> None:
    codec = Codec()
    header = codec.header("DunningProposed")
    with pytest.raises(CodecError, match="DunningProposed body"):
        codec.decode(header + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")


def test_encoding_errors_name_the_record_and_field() -> None:
    codec = Codec()
    with pytest.raises(CodecError, match="unknown record type 'Nope'"):
        codec.encode("Nope", {})
    record = sample("PaymentReceived")
    del record["amount"]
    with pytest.raises(CodecError, match=r"cannot encode PaymentReceived: .*amount"):
        codec.encode("PaymentReceived", record)
    record = sample("PaymentReceived")
    record["amount"] = Decimal("1.0005")
    with pytest.raises(CodecError, match="PaymentReceived"):
        codec.encode("PaymentReceived", record)
    with pytest.raises(CodecError, match="PaymentReceived"):
        codec.encode_raw("PaymentReceived", {**to_raw(SAMPLES["PaymentReceived"]), "amount": 1.5})
    with pytest.raises(CodecError, match="precision"):
        codec.encode_raw(
            "PaymentReceived", {**to_raw(SAMPLES["PaymentReceived"]), "amount": 10**20}
        )


def test_unknown_wire_format_is_refused() -> None:
    with pytest.raises(ValueError, match="wire format"):
        Codec("json")


def test_from_settings() -> None:
    class S:
        wire_format = "confluent"
        schema_registry_url = None
        topic_prefix = ""

    assert Codec.from_settings(S()).header("AccountUpserted") == b"\x00\x00\x00\x00\x01"


# -- a real registry's HTTP API, served locally -----------------------------------------


class FakeRegistry(BaseHTTPRequestHandler):
    """The part of the Confluent Schema Registry REST API the client uses."""

    subjects: dict[str, dict[str, int]] = {}
    schemas_by_id: dict[int, str] = {}
    requests: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.requests.append(f"POST {self.path}")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        canon = canonical_form(json.loads(body["schema"]))
        parts = self.path.split("/")
        subject = parts[2]
        if len(parts) == 3:  # lookup
            sid = self.subjects.get(subject, {}).get(canon)
            if sid is None:
                return self._send(404, {"error_code": 40403, "message": "Schema not found"})
            return self._send(200, {"subject": subject, "id": sid, "version": 1})
        ids = {c: i for s in self.subjects.values() for c, i in s.items()}
        sid = ids.get(canon) or len(self.schemas_by_id) + 101
        self.schemas_by_id[sid] = body["schema"]
        self.subjects.setdefault(subject, {})[canon] = sid
        return self._send(200, {"id": sid})

    def do_GET(self) -> None:
        self.requests.append(f"GET {self.path}")
        sid = int(self.path.rsplit("/", 1)[1])
        if sid not in self.schemas_by_id:
            return self._send(404, {"error_code": 40403, "message": "Schema not found"})
        return self._send(200, {"schema": self.schemas_by_id[sid]})


@pytest.fixture
def registry_url() -> Iterator[str]:
    FakeRegistry.subjects, FakeRegistry.schemas_by_id, FakeRegistry.requests = {}, {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_registry_registers_under_topic_record_name_subjects(registry_url: str) -> None:
    writer = Codec("confluent", schema_ids=ConfluentSchemaRegistry(registry_url))
    a = writer.encode("PaymentReceived", SAMPLES["PaymentReceived"])
    b = writer.encode("PaymentReceived", SAMPLES["PaymentReceived"])
    assert a == b and a[:5] == b"\x00\x00\x00\x00\x65"  # id 101
    assert list(FakeRegistry.subjects) == ["billing.payments-dunning.PaymentReceived"]
    assert FakeRegistry.requests == [
        "POST /subjects/billing.payments-dunning.PaymentReceived",
        "POST /subjects/billing.payments-dunning.PaymentReceived/versions",
    ]  # cached: the second encode asked nothing
    reader = Codec("confluent", schema_ids=ConfluentSchemaRegistry(registry_url))
    assert reader.decode(a) == ("PaymentReceived", SAMPLES["PaymentReceived"])
    assert reader.decode(a)[0] == "PaymentReceived"
    assert FakeRegistry.requests[-1] == "GET /schemas/ids/101"
    assert sum(r.startswith("GET") for r in FakeRegistry.requests) == 1
    with pytest.raises(CodecError, match="unknown schema id 7"):
        reader.decode(b"\x00\x00\x00\x00\x07\x00")


def test_registry_prime_resolves_every_id_up_front(registry_url: str) -> None:
    codec = Codec("confluent", schema_ids=ConfluentSchemaRegistry(registry_url))
    codec.prime()
    assert len(FakeRegistry.subjects) == len(NAMES)
    before = len(FakeRegistry.requests)
    codec.encode("RunDeleted", SAMPLES["RunDeleted"])
    assert len(FakeRegistry.requests) == before


def test_registry_without_auto_register_and_unreachable() -> None:
    with pytest.raises(RegistryError, match="unreachable"):
        ConfluentSchemaRegistry("http://127.0.0.1:9", timeout=2).id_for(
            "billing.accounts", schemas.raw("AccountUpserted")
        )


def test_registry_without_auto_register_refuses_unknown_schema(registry_url: str) -> None:
    registry = ConfluentSchemaRegistry(registry_url, auto_register=False)
    with pytest.raises(RegistryError, match="not registered"):
        registry.id_for("billing.accounts", schemas.raw("AccountUpserted"))
