"""The wire codec: Avro binary with a header that identifies the writer schema.

Two framings (CONTRACT.md), chosen by configuration (`Settings.wire_format`):

- `"single-object"`: Avro single-object encoding, `C3 01` + the 8-byte little-endian
  CRC-64-AVRO (Rabin) fingerprint of the schema's Parsing Canonical Form + the body.
- `"confluent"`: `00` + 4-byte big-endian schema id + the body. Ids come from a
  `schemas.registry.SchemaIds` provider: a Confluent Schema Registry when a URL is
  configured (subjects `<topic>-<record full name>`), otherwise static ids 1..n from the
  sorted record type names (see `schemas.registry`).

API::

    codec = Codec("single-object")                 # or Codec.from_settings(settings)
    data = codec.encode("PaymentReceived", record) # Decimal amounts, date, datetime
    record_type, record = codec.decode(data)       # CodecError if undecodable
    record_type, record = codec.decode(data, reader=other_schema)   # schema evolution
    data = codec.encode_raw("DunningProposed", raw_record)           # the fast path

The fast path `encode_raw` takes decimals as `int` *unscaled at the schema's scale*
(amounts: scale 3, so EUR 119.00 is `119000`; rates: scale 6) and dates as `int` days
since 1970-01-01 (the Avro `date`; `date.toordinal() - EPOCH_ORDINAL`), timestamps as
`int` milliseconds since the epoch. It writes the same bytes as `encode` for equal values:
it encodes with a copy of the schema whose logical types are stripped (same Parsing
Canonical Form, same fingerprint) after turning the decimal ints into two's-complement
big-endian bytes exactly as fastavro does for a `Decimal`. `decode_raw` is its mirror.

Decoding always returns a record in the codec's current schema of that record type: a
writer schema that differs (an older or newer version) is resolved against it with Avro
schema resolution; `reader=` picks another reader schema.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from typing import Any, Literal, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

import schemas
from schemas.registry import SchemaIds, StaticSchemaIds, record_full_name, schema_ids_for
from schemas.writer import Writer, compile_writer

__all__ = [
    "CONFLUENT_MAGIC",
    "EPOCH_ORDINAL",
    "SINGLE_OBJECT_MAGIC",
    "WIRE_FORMATS",
    "Codec",
    "CodecError",
    "WireFormat",
    "fingerprint64",
    "strip_logical_types",
]

WireFormat = Literal["single-object", "confluent"]
WIRE_FORMATS: tuple[str, ...] = ("single-object", "confluent")
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
#: `date(1970, 1, 1).toordinal()`: Avro date = `d.toordinal() - EPOCH_ORDINAL`.
EPOCH_ORDINAL = 719163

Converter = Callable[[Any], Any]


class CodecError(ValueError):
    """Bytes that cannot be decoded, or a record that cannot be encoded; says why."""


def fingerprint64(schema: dict[str, Any]) -> bytes:
    """CRC-64-AVRO of the Parsing Canonical Form, as the 8 little-endian header bytes."""
    canonical = to_parsing_canonical_form(_parse(schema))
    # fastavro gives the fingerprint as the hex of its little-endian bytes.
    return bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))


def strip_logical_types(node: Any) -> Any:
    """A copy of a JSON schema without `logicalType` (and the attributes that go with it)."""
    if isinstance(node, list):
        return [strip_logical_types(n) for n in node]
    if isinstance(node, dict):
        out = {k: strip_logical_types(v) for k, v in node.items()}
        if "logicalType" in out:
            for attr in ("logicalType", "precision", "scale"):
                out.pop(attr, None)
            if set(out) == {"type"} and isinstance(out["type"], str):
                return out["type"]
        return out
    return node


# -- decimal int <-> bytes converters for the raw paths ---------------------------------
#
# Generated once per schema as straight-line Python (as dataclasses does for __init__):
# one function per record type that holds a decimal somewhere, copying the dict and
# converting only the decimal fields. About twice as fast as generic closures.

_TO_WIRE = (
    "if not -{limit} < v < {limit}: _too_big(v, {precision})",
    "v = v.to_bytes(((v if v >= 0 else -v).bit_length() + 8) // 8, 'big', signed=True)",
)  # the length rule of fastavro for a Decimal: from the magnitude, plus a sign bit
_FROM_WIRE = ("v = _from_bytes(v, 'big', signed=True)",)


def _too_big(value: int, precision: int) -> None:
    raise ValueError(f"{value} exceeds decimal precision {precision}")


def _full_name(node: dict[str, Any], enclosing: str) -> str:
    name = str(node["name"])
    if "." in name:
        return name
    ns = node.get("namespace", enclosing)
    return f"{ns}.{name}" if ns else name


def _indented(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


class _Generator:
    """The source of the converter functions of one schema, built as its types are met:
    `_r<n>` converts a record, `_e<n>` an element of an array or map."""

    def __init__(self, decimal_stmts: tuple[str, ...]) -> None:
        self.decimal_stmts = decimal_stmts
        self.named: dict[str, dict[str, Any]] = {}
        self.funcs: dict[str, str | None] = {}
        self.source: list[str] = []

    def resolve(self, node: Any, ns: str) -> tuple[Any, str]:
        """A type with names and `['null', T]` unions looked through."""
        if isinstance(node, str) and node not in schemas.PRIMITIVES:
            full = node if "." in node or not ns else f"{ns}.{node}"
            if full not in self.named:
                raise schemas.SchemaError(f"type {full} used before it is defined")
            return self.named[full], full.rpartition(".")[0]
        if isinstance(node, list):
            branches = [b for b in node if b != "null"]
            if len(branches) == 1:
                return self.resolve(branches[0], ns)
            if any(self.stmts(b, ns) != [] for b in branches):
                raise schemas.SchemaError(f"raw codec supports only ['null', T] unions: {node}")
            return "null", ns
        if isinstance(node, dict) and isinstance(node["type"], (dict, list)):
            return self.resolve(node["type"], ns)
        return node, ns

    def record_func(self, node: dict[str, Any], ns: str) -> str | None:
        """The name of the function converting a record of `node`; None if it has no
        decimal."""
        full = _full_name(node, ns)
        if full in self.funcs:
            return self.funcs[full]
        self.named[full] = node
        self.funcs[full] = None  # provisional (no recursive types here)
        inner = full.rpartition(".")[0]
        body: list[str] = []
        for fld in node["fields"]:
            convert = self.stmts(fld["type"], inner)
            if convert:
                body += [f"v = o.get({fld['name']!r})", "if v is not None:"]
                body += _indented(convert)
                body += [f"    o[{fld['name']!r}] = v"]
        if not body:
            return None
        name = f"_r{len(self.source)}"
        self.source.append(
            "\n".join([f"def {name}(r):", "    o = dict(r)", *_indented(body)]) + "\n    return o\n"
        )
        self.funcs[full] = name
        return name

    def stmts(self, node: Any, ns: str) -> list[str]:
        """Statements converting `v` of type `node` in place; [] if nothing to convert."""
        node, ns = self.resolve(node, ns)
        if not isinstance(node, dict):
            return []
        kind = node["type"]
        if kind == "bytes" and node.get("logicalType") == "decimal":
            precision = int(node["precision"])
            return [s.format(limit=10**precision, precision=precision)
                    for s in self.decimal_stmts]
        if kind in ("record", "error"):
            func = self.record_func(node, ns)
            return [f"v = {func}(v)"] if func else []
        if kind in ("enum", "fixed"):
            self.named[_full_name(node, ns)] = node
            return []
        if kind in ("array", "map"):
            return self.container_stmts(node, ns)
        return []

    def container_stmts(self, node: dict[str, Any], ns: str) -> list[str]:
        """Statements converting every element of an array or map `v`; [] if none needs it."""
        kind = node["type"]
        inner = self.stmts(node["items" if kind == "array" else "values"], ns)
        if not inner:
            return []
        if len(inner) == 1 and inner[0].startswith("v = _r") and inner[0].endswith("(v)"):
            name = inner[0][4:-3]  # an array of records: call the record's function
        else:
            name = f"_e{len(self.source)}"
            self.source.append(
                "\n".join([f"def {name}(v):", *_indented(inner)]) + "\n    return v\n"
            )
        if kind == "array":
            return [f"v = [{name}(x) for x in v]"]
        return [f"v = {{k: {name}(x) for k, x in v.items()}}"]


def _generate(schema: dict[str, Any], decimal_stmts: tuple[str, ...]) -> Converter | None:
    """A function converting every decimal of a record of `schema`, None if it has none.

    `decimal_stmts` turn `v` (a decimal value) into its other form, in place.
    """
    gen = _Generator(decimal_stmts)
    top = gen.record_func(schema, "")
    if top is None:
        return None
    namespace: dict[str, Any] = {"_too_big": _too_big, "_from_bytes": int.from_bytes}
    exec(compile("\n".join(gen.source), f"<raw codec {schema['name']}>", "exec"), namespace)  # noqa: S102
    return cast(Converter, namespace[top])


# -- the codec --------------------------------------------------------------------------


@dataclass
class _Schema:
    """One record schema, parsed for the codec."""

    name: str
    raw: dict[str, Any]
    parsed: dict[str, Any]
    plain: dict[str, Any]  # logical types stripped, for the raw paths
    fingerprint: bytes
    to_wire: Converter | None  # raw record: decimal ints -> bytes
    from_wire: Converter | None  # raw record: decimal bytes -> ints
    header: bytes | None = None  # framing header; lazily for confluent
    reader: dict[str, Any] | None = None  # current schema, when this one is another version
    plain_reader: dict[str, Any] | None = None
    writer: Writer | None = None  # compiled writer of the plain schema (schemas.writer)


def _parse(schema: dict[str, Any]) -> dict[str, Any]:
    """fastavro's parsed form of a JSON record schema, on its own (no shared names)."""
    return cast(dict[str, Any], parse_schema(copy.deepcopy(schema), named_schemas={}))


@lru_cache(maxsize=1024)
def _prepared(text: str) -> tuple[Any, ...]:
    """The read-only parts of `_Schema` for one JSON schema text; shared by every codec."""
    raw = json.loads(text)
    plain = strip_logical_types(raw)
    return (
        _parse(raw),
        _parse(plain),
        fingerprint64(raw),
        _generate(raw, _TO_WIRE),
        _generate(raw, _FROM_WIRE),
        compile_writer(plain, str(raw.get("name", "record"))),
    )


def _prepare(name: str, raw: dict[str, Any]) -> _Schema:
    parsed, plain, fingerprint, to_wire, from_wire, writer = _prepared(
        json.dumps(raw, sort_keys=True))
    return _Schema(
        name=name,
        raw=raw,
        parsed=parsed,
        plain=plain,
        fingerprint=fingerprint,
        to_wire=to_wire,
        from_wire=from_wire,
        writer=writer,
    )


class Codec:
    """Encode and decode records of the schemas in `schemas/` in one wire format."""

    def __init__(
        self,
        wire_format: str = "single-object",
        *,
        schema_ids: SchemaIds | None = None,
        known: Mapping[str, dict[str, Any]] | None = None,
        topic_prefix: str = "",
    ) -> None:
        """`known`: record type -> self-contained JSON schema (default: the package's).

        `schema_ids` is used by the confluent framing only; default: static ids.
        `topic_prefix` is put before the topic of a record type in registry subjects.
        """
        if wire_format not in WIRE_FORMATS:
            raise ValueError(f"wire format must be one of {WIRE_FORMATS}, not {wire_format!r}")
        self.wire_format = wire_format
        self.topic_prefix = topic_prefix
        if known is None:
            known = {n: schemas.raw(n) for n in schemas.names()}
        self._schemas: dict[str, _Schema] = {n: _prepare(n, s) for n, s in known.items()}
        self._full_names = {record_full_name(s.raw): n for n, s in self._schemas.items()}
        self._by_fingerprint: dict[bytes, _Schema] = {}
        self._by_id: dict[int, _Schema] = {}
        self._readers: dict[str, dict[str, Any]] = {}
        self._ids: SchemaIds | None = None
        if wire_format == "single-object":
            for s in self._schemas.values():
                s.header = SINGLE_OBJECT_MAGIC + s.fingerprint
                self._by_fingerprint[s.fingerprint] = s
        else:
            self._ids = schema_ids if schema_ids is not None else StaticSchemaIds(known)

    @classmethod
    def from_settings(cls, settings: Any) -> Codec:
        """From an object with `wire_format`, `schema_registry_url` and `topic_prefix`."""
        ids = None
        if settings.wire_format == "confluent":
            ids = schema_ids_for(getattr(settings, "schema_registry_url", None))
        return cls(
            settings.wire_format,
            schema_ids=ids,
            topic_prefix=getattr(settings, "topic_prefix", ""),
        )

    # -- introspection ---------------------------------------------------------------------
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._schemas))

    def schema(self, record_type: str) -> dict[str, Any]:
        """The parsed (fastavro) schema of a record type."""
        return self._entry(record_type).parsed

    def header(self, record_type: str) -> bytes:
        """The framing header written before every record of this type."""
        entry = self._entry(record_type)
        return entry.header if entry.header is not None else self._confluent_header(entry)

    def prime(self) -> None:
        """Resolve every header now (registry round trips happen here, not in an agent)."""
        for entry in self._schemas.values():
            if entry.header is None:
                self._confluent_header(entry)

    def add_writer_schema(self, schema: dict[str, Any]) -> None:
        """Make another version of one of our record schemas decodable (single-object).

        With the confluent framing, writer schemas come from the registry by id instead.
        """
        full = record_full_name(schema)
        name = self._full_names.get(full)
        if name is None:
            raise CodecError(f"{full} is not one of the codec's record types")
        entry = _prepare(name, copy.deepcopy(schema))
        current = self._schemas[name]
        if entry.fingerprint != current.fingerprint:
            entry.reader, entry.plain_reader = current.parsed, current.plain
            self._by_fingerprint[entry.fingerprint] = entry

    # -- encoding --------------------------------------------------------------------------
    def encode(self, record_type: str, record: Mapping[str, Any]) -> bytes:
        """Frame + Avro body of a record with `Decimal`, `date` and `datetime` values."""
        entry = self._entry(record_type)
        header = entry.header if entry.header is not None else self._confluent_header(entry)
        buf = BytesIO()
        buf.write(header)
        try:
            schemaless_writer(buf, entry.parsed, record)
        except Exception as exc:
            raise self._encode_error(entry, record, exc) from exc
        return buf.getvalue()

    def encode_raw(self, record_type: str, record: Mapping[str, Any]) -> bytes:
        """The fast path: decimals as unscaled `int`, dates as `int` days (module docstring)."""
        entry = self._entry(record_type)
        header = entry.header if entry.header is not None else self._confluent_header(entry)
        buf = BytesIO()
        buf.write(header)
        try:
            body = entry.to_wire(record) if entry.to_wire is not None else record
            if entry.writer is not None:
                buf.write(entry.writer(body))
            else:
                schemaless_writer(buf, entry.plain, body)
        except Exception as exc:
            raise self._encode_error(entry, record, exc, raw=True) from exc
        return buf.getvalue()

    # -- decoding --------------------------------------------------------------------------
    def decode(
        self, data: bytes, reader: str | dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """(record type, record) of framed bytes; `reader`: a record type or a schema."""
        entry, offset = self._writer_of(data)
        if reader is None:
            reader_schema = entry.reader
            name = entry.name
        else:
            reader_schema, name = self._reader(reader, entry)
        return name, self._read(data, offset, entry.parsed, reader_schema, entry)

    def decode_raw(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Like `decode`, but decimals come back as unscaled `int`, dates and times as `int`."""
        entry, offset = self._writer_of(data)
        record = self._read(data, offset, entry.plain, entry.plain_reader, entry)
        # The record has the shape of the current schema when the writer was another version.
        from_wire = self._schemas[entry.name].from_wire
        if from_wire is not None:
            record = from_wire(record)
        return entry.name, record

    # -- internals -------------------------------------------------------------------------
    def _entry(self, record_type: str) -> _Schema:
        try:
            return self._schemas[record_type]
        except KeyError:
            raise CodecError(f"unknown record type {record_type!r}") from None

    def _confluent_header(self, entry: _Schema) -> bytes:
        assert self._ids is not None
        topic = self.topic_prefix + schemas.TOPICS.get(entry.name, entry.name)
        try:
            sid = self._ids.id_for(topic, entry.raw)
        except Exception as exc:
            raise CodecError(f"no schema id for {entry.name}: {exc}") from exc
        entry.header = CONFLUENT_MAGIC + sid.to_bytes(4, "big")
        self._by_id[sid] = entry
        return entry.header

    def _writer_of(self, data: bytes) -> tuple[_Schema, int]:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CodecError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if self.wire_format == "single-object":
            if data[:1] == CONFLUENT_MAGIC and len(data) >= 5:
                raise CodecError(
                    "not Avro single-object encoding (starts with 00: Confluent framing?); "
                    "this codec is configured for single-object"
                )
            if len(data) < 10:
                if SINGLE_OBJECT_MAGIC.startswith(data[:2]):
                    raise CodecError(f"truncated single-object header ({len(data)} of 10 bytes)")
                raise CodecError(f"not Avro single-object encoding: starts with {data[:2].hex()}")
            if data[:2] != SINGLE_OBJECT_MAGIC:
                raise CodecError(
                    f"not Avro single-object encoding: starts with {data[:2].hex()}, not c301"
                )
            fp = data[2:10]
            entry = self._by_fingerprint.get(fp)
            if entry is None:
                raise CodecError(f"unknown schema fingerprint {fp.hex()}")
            return entry, 10
        if data[:2] == SINGLE_OBJECT_MAGIC:
            raise CodecError(
                "not Confluent framing (starts with c301: Avro single-object encoding?); "
                "this codec is configured for confluent"
            )
        if len(data) < 5:
            if data[:1] in (b"", CONFLUENT_MAGIC):
                raise CodecError(f"truncated Confluent header ({len(data)} of 5 bytes)")
            raise CodecError(f"not Confluent framing: magic byte {data[:1].hex()}, not 00")
        if data[:1] != CONFLUENT_MAGIC:
            raise CodecError(f"not Confluent framing: magic byte {data[:1].hex()}, not 00")
        sid = int.from_bytes(data[1:5], "big")
        entry = self._by_id.get(sid)
        if entry is None:
            entry = self._fetch_writer(sid)
        return entry, 5

    def _fetch_writer(self, sid: int) -> _Schema:
        assert self._ids is not None
        try:
            raw = self._ids.schema_for(sid)
        except Exception as exc:
            raise CodecError(f"unknown schema id {sid}: {exc}") from exc
        full = record_full_name(raw) if isinstance(raw, dict) and "name" in raw else "?"
        name = self._full_names.get(full)
        if name is None:
            raise CodecError(f"schema id {sid} is {full}, not one of the codec's record types")
        try:
            entry = _prepare(name, copy.deepcopy(raw))
        except Exception as exc:
            raise CodecError(f"schema id {sid} ({full}) does not parse: {exc}") from exc
        current = self._schemas[name]
        if entry.fingerprint == current.fingerprint:
            entry = current
        else:
            entry.reader, entry.plain_reader = current.parsed, current.plain
        self._by_id[sid] = entry
        return entry

    def _reader(self, reader: str | dict[str, Any], writer: _Schema) -> tuple[Any, str]:
        if isinstance(reader, str):
            target = self._entry(reader)
            if target is writer:
                return None, target.name
            return target.parsed, target.name
        if reader.get("__fastavro_parsed"):
            parsed = reader
        else:
            key = json.dumps(reader, sort_keys=True)
            cached = self._readers.get(key)
            if cached is None:
                try:
                    cached = _parse(reader)
                except Exception as exc:
                    raise CodecError(f"reader schema does not parse: {exc}") from exc
                self._readers[key] = cached
            parsed = cached
        name = self._full_names.get(record_full_name(parsed), writer.name)
        return parsed, name

    @staticmethod
    def _read(
        data: bytes, offset: int, writer: dict[str, Any], reader: Any, entry: _Schema
    ) -> dict[str, Any]:
        buf = BytesIO(data)
        buf.seek(offset)
        try:
            record = schemaless_reader(buf, writer, reader)
        except EOFError as exc:
            why = f": {exc}" if str(exc) else ""
            raise CodecError(
                f"truncated {entry.name} body ({len(data) - offset} bytes){why}"
            ) from exc
        except Exception as exc:
            raise CodecError(f"undecodable {entry.name} body: {type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise CodecError(f"{len(data) - buf.tell()} trailing bytes after the {entry.name} body")
        if not isinstance(record, dict):
            raise CodecError(f"{entry.name} body is not a record")
        return record

    @staticmethod
    def _encode_error(entry: _Schema, record: Any, exc: Exception, raw: bool = False) -> CodecError:
        detail = f"{type(exc).__name__}: {exc}"
        if not raw:
            try:
                validate(record, entry.parsed, raise_errors=True)
            except ValidationError as verr:
                detail = "; ".join(str(e) for e in verr.errors) or detail
            except Exception:  # noqa: S110 - the original error says enough
                pass
        return CodecError(f"cannot encode {entry.name}: {detail}")
