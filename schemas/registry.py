"""Schema ids for the Confluent framing (`00` + 4-byte big-endian schema id + Avro body).

Three providers of the same small interface (`SchemaIds`):

- `ConfluentSchemaRegistry`: a real Confluent Schema Registry over HTTP (urllib,
  synchronous, cached). Subjects follow TopicRecordNameStrategy:
  `<topic>-<record full name>`, e.g. `billing.accounts-dunning.AccountUpserted`.
  `id_for` looks the schema up under its subject and registers it when it is not there
  yet (with `auto_register=True`, the default); `schema_for` fetches a schema by id.
  Every answer is cached for the life of the object, so the network is used once per
  schema: call `Codec.prime()` at start-up, before any agent runs, and nothing blocks later.
- `StaticSchemaIds`: used when no registry URL is configured. The ids are small stable
  integers derived from the sorted record type names (1 = the first name in sorted order,
  ...), so every process built from the same `schemas/` package agrees on them without a
  registry. They identify a record *type*, not a schema version: adding a record type
  renumbers the ones sorting after it, and a changed schema keeps its id, so they are only
  for a deployment whose producers and consumers ship the same schemas (local runs, tests,
  the demo). Use a registry when versions must coexist.
- `InMemorySchemaRegistry`: the registry's behaviour without the network (ids from 1 in
  order of registration, one id per distinct schema), for tests and tools.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

import schemas

__all__ = [
    "ConfluentSchemaRegistry",
    "InMemorySchemaRegistry",
    "RegistryError",
    "SchemaIds",
    "StaticSchemaIds",
    "canonical_form",
    "schema_ids_for",
    "subject_name",
]

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(RuntimeError):
    """The schema registry refused a request, or an id or schema is unknown."""


class SchemaIds(Protocol):
    """Where the Confluent framing gets its schema ids from."""

    def id_for(self, topic: str, schema: dict[str, Any]) -> int:
        """The id of `schema` (self-contained JSON) as written to `topic`."""
        ...

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        """The self-contained JSON schema with this id."""
        ...


def canonical_form(schema: dict[str, Any]) -> str:
    """The Avro Parsing Canonical Form of a JSON schema (names, types, order; no docs)."""
    return str(to_parsing_canonical_form(parse_schema(schema, named_schemas={})))


def record_full_name(schema: dict[str, Any]) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    ns = schema.get("namespace")
    return f"{ns}.{name}" if ns else name


def subject_name(topic: str, schema: dict[str, Any]) -> str:
    """TopicRecordNameStrategy: `<topic>-<record full name>`."""
    return f"{topic}-{record_full_name(schema)}"


class StaticSchemaIds:
    """Ids 1..n from the sorted record type names; no registry (see the module docstring)."""

    def __init__(self, known: Mapping[str, dict[str, Any]] | None = None) -> None:
        known = {n: schemas.raw(n) for n in schemas.names()} if known is None else known
        self._by_id: dict[int, dict[str, Any]] = {}
        self._ids: dict[str, int] = {}
        self._canonical: dict[str, str] = {}
        for i, name in enumerate(sorted(known), start=1):
            schema = known[name]
            full = record_full_name(schema)
            self._by_id[i] = schema
            self._ids[full] = i
            self._canonical[full] = canonical_form(schema)

    def id_for(self, topic: str, schema: dict[str, Any]) -> int:
        full = record_full_name(schema)
        sid = self._ids.get(full)
        if sid is None:
            raise RegistryError(f"no static schema id for {full}: not a packaged record type")
        if canonical_form(schema) != self._canonical[full]:
            raise RegistryError(
                f"static schema ids know only the packaged schema of {full}; "
                "configure a schema registry to write another version"
            )
        return sid

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise RegistryError(f"unknown static schema id {schema_id}") from None

    def ids(self) -> dict[str, int]:
        """Record full name -> id, for documentation and tests."""
        return dict(self._ids)


class InMemorySchemaRegistry:
    """A schema registry in memory: one id per distinct canonical schema, from 1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}
        self.subjects: dict[str, list[int]] = {}

    def id_for(self, topic: str, schema: dict[str, Any]) -> int:
        canon = canonical_form(schema)
        with self._lock:
            sid = self._ids.get(canon)
            if sid is None:
                sid = len(self._ids) + 1
                self._ids[canon] = sid
                self._schemas[sid] = json.loads(json.dumps(schema))
            versions = self.subjects.setdefault(subject_name(topic, schema), [])
            if sid not in versions:
                versions.append(sid)
            return sid

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        try:
            return self._schemas[schema_id]
        except KeyError:
            raise RegistryError(f"schema id {schema_id} is not registered") from None


class ConfluentSchemaRegistry:
    """A Confluent Schema Registry reached over HTTP with urllib (synchronous, cached)."""

    def __init__(self, url: str, *, auto_register: bool = True, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.auto_register = auto_register
        self.timeout = timeout
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    # -- HTTP --------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}")
            except ValueError:
                detail = {}
            err = _HttpError(exc.code, detail.get("error_code"), detail.get("message", ""))
            raise err from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RegistryError(f"schema registry {self.url} unreachable: {exc}") from exc

    # -- the registry's REST API ------------------------------------------------------
    def lookup(self, subject: str, schema: dict[str, Any]) -> int | None:
        """The id of `schema` under `subject`, or None if it is not registered there."""
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}"
        try:
            answer = self._request("POST", path, {"schema": json.dumps(schema)})
        except _HttpError as exc:
            if exc.status == 404:
                return None
            raise RegistryError(f"lookup of {subject} failed: {exc}") from exc
        return int(answer["id"])

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register `schema` under `subject` (the registry checks compatibility) -> id."""
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        try:
            answer = self._request("POST", path, {"schema": json.dumps(schema)})
        except _HttpError as exc:
            raise RegistryError(f"registering {subject} failed: {exc}") from exc
        return int(answer["id"])

    def get_schema(self, schema_id: int) -> dict[str, Any]:
        try:
            answer = self._request("GET", f"/schemas/ids/{int(schema_id)}")
        except _HttpError as exc:
            if exc.status == 404:
                raise RegistryError(f"schema id {schema_id} is not registered") from exc
            raise RegistryError(f"fetching schema id {schema_id} failed: {exc}") from exc
        if answer.get("schemaType", "AVRO") != "AVRO":
            raise RegistryError(f"schema id {schema_id} is {answer['schemaType']}, not Avro")
        parsed = json.loads(answer["schema"])
        if not isinstance(parsed, dict):
            raise RegistryError(f"schema id {schema_id} is not a record schema")
        return parsed

    # -- SchemaIds ----------------------------------------------------------------------
    def id_for(self, topic: str, schema: dict[str, Any]) -> int:
        subject = subject_name(topic, schema)
        key = (subject, canonical_form(schema))
        with self._lock:
            cached = self._ids.get(key)
        if cached is not None:
            return cached
        sid = self.lookup(subject, schema)
        if sid is None:
            if not self.auto_register:
                raise RegistryError(f"{subject}: schema not registered and auto_register is off")
            sid = self.register(subject, schema)
        with self._lock:
            self._ids[key] = sid
            self._schemas.setdefault(sid, schema)
        return sid

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        with self._lock:
            cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        schema = self.get_schema(schema_id)
        with self._lock:
            self._schemas[schema_id] = schema
        return schema


class _HttpError(Exception):
    def __init__(self, status: int, error_code: Any, message: str) -> None:
        super().__init__(f"HTTP {status} (error_code {error_code}): {message}")
        self.status = status
        self.error_code = error_code


def schema_ids_for(registry_url: str | None) -> SchemaIds:
    """The provider for a configuration: a registry if a URL is set, static ids otherwise."""
    if registry_url:
        return ConfluentSchemaRegistry(registry_url)
    return StaticSchemaIds()
