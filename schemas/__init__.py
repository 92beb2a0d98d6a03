"""The Avro schemas: the binding form of every record (see CONTRACT.md, ARCHITECTURE.md).

Files in this package:

- `<Name>.avsc`: one per record type, namespace `dunning`; the history records live in
  namespace `dunning.history`. The history copy of `ProposalRejected`
  (`dunning.history.ProposalRejected`) is in `history.ProposalRejected.avsc` and keyed
  `history.ProposalRejected`, so it never clashes with the decision `ProposalRejected`.
- `_<Name>.avsc`: a nested record shared by several records (`InvoiceItem`,
  `PostalAddress`, `NoticeItemChange`, ...), defined once. Records refer to it by name.

`raw(name)` gives a record's schema *self-contained*: every nested type it uses is
inlined at its first use and referred to by full name after, which is what a schema
registry, the `avro` library and the Parsing Canonical Form need.

Loading goes through `importlib.resources` and is cached; the schemas are read once.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any, cast

from fastavro import parse_schema

__all__ = [
    "PRIMITIVES",
    "TOPICS",
    "SchemaError",
    "compatibility_problems",
    "full_name",
    "load",
    "load_all",
    "name_of",
    "names",
    "raw",
    "topic_of",
]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})

#: Record type -> the topic it is published on (CONTRACT.md). The one place this is said:
#: `topics.catalogue` takes each topic's record types from here.
TOPICS: dict[str, str] = {
    "AccountUpserted": "billing.accounts",
    "DunningLockSet": "billing.accounts",
    "DunningLockReleased": "billing.accounts",
    "DunningHistoryImported": "billing.accounts",
    "InvoiceIssued": "billing.invoices",
    "InvoiceCancelled": "billing.invoices",
    "PaymentReceived": "billing.payments",
    "PaymentReversed": "billing.payments",
    "DueDateChanged": "billing.due-dates",
    "InstallmentPlanCreated": "billing.due-dates",
    "InstallmentPlanCancelled": "billing.due-dates",
    "PaymentRunCompleted": "billing.payment-runs",
    "DunningProcedureDefined": "dunning.procedures",
    "RunScheduleSet": "dunning.schedules",
    "InterestRateSet": "dunning.rates",
    "ProposalApproved": "dunning.decisions",
    "ProposalRejected": "dunning.decisions",
    "RunApproved": "dunning.decisions",
    "RunDeleted": "dunning.decisions",
    "ProposalRunRequested": "dunning.decisions",
    "NoticeReversalRequested": "dunning.decisions",
    "ProposalRunStarted": "dunning.runs",
    "ProposalRunCompleted": "dunning.runs",
    "ActivityRunCompleted": "dunning.runs",
    "RunDecisionRefused": "dunning.runs",
    "ScheduledStartMissed": "dunning.runs",
    "DunningProposed": "dunning.proposals",
    "PrintDunningLetter": "dunning.letters",
    "LetterSent": "dunning.letter-deliveries",
    "LetterDeliveryFailed": "dunning.letter-deliveries",
    "LetterPrinted": "dunning.letter-deliveries",
    "SetDunningLock": "dunning.locks",
    "ReleaseToCollectionAgency": "dunning.collections",
    "RequestSecurityDeposit": "dunning.deposits",
    "NotifyAgent": "dunning.workflows",
    "DeactivateInstallmentPlan": "dunning.workflows",
    "PostDunningCharge": "dunning.postings",
    "PostDunningInterest": "dunning.postings",
    "PostDunningChargeReversal": "dunning.postings",
    "PostDunningInterestReversal": "dunning.postings",
    "DunningNoticeIssued": "dunning.history",
    "DunningNoticeReversed": "dunning.history",
    "ItemLevelChanged": "dunning.history",
    "history.ProposalRejected": "dunning.history",
    "ProposalNotExecuted": "dunning.history",
    "NoticeReversalRefused": "dunning.history",
    "DunningLevelImported": "dunning.history",
    "LetterDeliveryRecorded": "dunning.history",
    "DeadLetter": "dunning.dead-letters",
}


class SchemaError(ValueError):
    """A schema file is missing, malformed or inconsistent with its name."""


def _resolve(name: str, namespace: str) -> str:
    if name in PRIMITIVES or "." in name:
        return name
    return f"{namespace}.{name}" if namespace else name


def _record_full_name(schema: dict[str, Any], enclosing: str) -> str:
    ns = schema.get("namespace", enclosing)
    return _resolve(schema["name"], ns)


@cache
def _files() -> dict[str, dict[str, Any]]:
    """File stem -> parsed JSON, for every `.avsc` of the package."""
    out: dict[str, dict[str, Any]] = {}
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".avsc"):
            stem = entry.name[: -len(".avsc")]
            try:
                out[stem] = json.loads(entry.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise SchemaError(f"{entry.name}: not valid JSON: {exc}") from exc
    return out


@cache
def _shared() -> dict[str, dict[str, Any]]:
    """Full name -> JSON of every shared nested type (`_<Name>.avsc`)."""
    out: dict[str, dict[str, Any]] = {}
    for stem, schema in _files().items():
        if stem.startswith("_"):
            full = _record_full_name(schema, "")
            if full.rsplit(".", 1)[-1] != stem[1:]:
                raise SchemaError(f"_{stem}.avsc defines {full}, expected {stem[1:]}")
            out[full] = schema
    return out


def _inline(node: Any, namespace: str, defined: set[str]) -> Any:
    """A copy of `node` in which every shared type is defined at its first use."""
    shared = _shared()
    if isinstance(node, str):
        full = _resolve(node, namespace)
        if full in shared and full not in defined:
            return _inline(shared[full], namespace, defined)
        return full
    if isinstance(node, list):
        return [_inline(branch, namespace, defined) for branch in node]
    if isinstance(node, dict):
        kind = node.get("type")
        out = dict(node)
        if kind in ("record", "error"):
            full = _record_full_name(node, namespace)
            defined.add(full)
            inner_ns = full.rpartition(".")[0]
            out["fields"] = [
                {**fld, "type": _inline(fld["type"], inner_ns, defined)} for fld in node["fields"]
            ]
        elif kind in ("enum", "fixed"):
            defined.add(_record_full_name(node, namespace))
        elif kind == "array":
            out["items"] = _inline(node["items"], namespace, defined)
        elif kind == "map":
            out["values"] = _inline(node["values"], namespace, defined)
        elif isinstance(kind, (str, list, dict)) and kind not in PRIMITIVES:
            out["type"] = _inline(kind, namespace, defined)
        return out
    raise SchemaError(f"unexpected schema node {node!r}")


@cache
def _standalone() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for stem, schema in sorted(_files().items()):
        if stem.startswith("_"):
            continue
        full = _record_full_name(schema, "")
        short = full.rsplit(".", 1)[-1]
        if stem not in (short, f"history.{short}"):
            raise SchemaError(f"{stem}.avsc defines {full}; the file must be named {short}.avsc")
        if stem.startswith("history.") and not full.startswith("dunning.history."):
            raise SchemaError(f"{stem}.avsc must be in namespace dunning.history, not {full}")
        out[stem] = _inline(schema, "", set())
    missing = set(TOPICS) - set(out)
    extra = set(out) - set(TOPICS)
    if missing or extra:
        raise SchemaError(
            f"schema files and TOPICS disagree: missing {sorted(missing)}, extra {sorted(extra)}"
        )
    return out


def names() -> tuple[str, ...]:
    """Every record type name (the keys of `load_all()`), sorted."""
    return tuple(sorted(_standalone()))


def raw(name: str) -> dict[str, Any]:
    """The self-contained JSON schema of a record type (a fresh copy, free to change)."""
    try:
        return copy.deepcopy(_standalone()[name])
    except KeyError:
        raise SchemaError(f"unknown record type {name!r}") from None


@cache
def load_all() -> dict[str, dict[str, Any]]:
    """Record type name -> fastavro parsed schema. Cached: treat the result as read-only."""
    out: dict[str, dict[str, Any]] = {}
    for name, schema in _standalone().items():
        try:
            out[name] = cast(dict[str, Any], parse_schema(copy.deepcopy(schema), named_schemas={}))
        except Exception as exc:
            raise SchemaError(f"{name}.avsc does not parse: {exc}") from exc
    return out


def load(name: str) -> dict[str, Any]:
    """The fastavro parsed schema of one record type."""
    try:
        return load_all()[name]
    except KeyError:
        raise SchemaError(f"unknown record type {name!r}") from None


@cache
def _by_full_name() -> dict[str, str]:
    return {_record_full_name(s, ""): name for name, s in _standalone().items()}


def full_name(name: str) -> str:
    """`AccountUpserted` -> `dunning.AccountUpserted`; history records are `dunning.history.*`."""
    try:
        return _record_full_name(_standalone()[name], "")
    except KeyError:
        raise SchemaError(f"unknown record type {name!r}") from None


def name_of(full: str) -> str | None:
    """The record type name of an Avro full name, or None if it is not one of ours."""
    return _by_full_name().get(full)


def topic_of(name: str) -> str:
    """The topic a record type is published on (CONTRACT.md)."""
    try:
        return TOPICS[name]
    except KeyError:
        raise SchemaError(f"unknown record type {name!r}") from None


# -- compatibility ----------------------------------------------------------------------


def compatibility_problems(reader: dict[str, Any], writer: dict[str, Any]) -> list[str]:
    """Why records written with `writer` cannot be read with `reader`; [] if they can.

    The `avro` library's `ReaderWriterCompatibilityChecker` decides on the Avro types; on
    top of it, a decimal whose precision or scale differs, or a logical type that changes,
    is a problem too: Avro resolution ignores logical types, and so does the Parsing
    Canonical Form (the single-object fingerprint), so a scale change would silently
    read 119.00 as 11.900.
    """
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
    from avro.schema import parse as avro_parse

    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro_parse(json.dumps(reader)), avro_parse(json.dumps(writer))
    )
    problems: list[str] = []
    if result.compatibility is not SchemaCompatibilityType.compatible:
        locations = sorted(result.locations)
        problems += [f"{m} (at {', '.join(locations)})" for m in sorted(result.messages)]
    named_r: dict[str, Any] = {}
    named_w: dict[str, Any] = {}
    _collect_named(reader, "", named_r)
    _collect_named(writer, "", named_w)
    _logical_mismatches(reader, writer, "", "", "", named_r, named_w, problems, set())
    return problems


def _collect_named(node: Any, namespace: str, named: dict[str, Any]) -> None:
    if isinstance(node, list):
        for branch in node:
            _collect_named(branch, namespace, named)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            full = _record_full_name(node, namespace)
            named[full] = node
            for fld in node.get("fields", []):
                _collect_named(fld["type"], full.rpartition(".")[0], named)
        elif kind == "array":
            _collect_named(node["items"], namespace, named)
        elif kind == "map":
            _collect_named(node["values"], namespace, named)
        elif isinstance(kind, (dict, list)):
            _collect_named(kind, namespace, named)


def _deref(node: Any, namespace: str, named: dict[str, Any]) -> tuple[Any, str]:
    while True:
        if isinstance(node, str) and node not in PRIMITIVES:
            full = _resolve(node, namespace)
            if full not in named:
                return node, namespace
            node, namespace = named[full], full.rpartition(".")[0]
        elif isinstance(node, list) and len([b for b in node if b != "null"]) == 1:
            node = next(b for b in node if b != "null")
        elif isinstance(node, dict) and isinstance(node.get("type"), (dict, list)):
            node = node["type"]
        else:
            return node, namespace


def _logical_mismatches(
    r: Any,
    w: Any,
    path: str,
    ns_r: str,
    ns_w: str,
    named_r: dict[str, Any],
    named_w: dict[str, Any],
    out: list[str],
    seen: set[tuple[str, str]],
) -> None:
    r, ns_r = _deref(r, ns_r, named_r)
    w, ns_w = _deref(w, ns_w, named_w)
    if not (isinstance(r, dict) and isinstance(w, dict)):
        return
    kind = r.get("type")
    if kind != w.get("type"):
        return  # the avro checker reports type changes
    if kind in ("record", "error"):
        full_r, full_w = _record_full_name(r, ns_r), _record_full_name(w, ns_w)
        if (full_r, full_w) in seen:
            return
        seen.add((full_r, full_w))
        fields_w = {f["name"]: f for f in w["fields"]}
        for fld in r["fields"]:
            other = fields_w.get(fld["name"])
            if other is not None:
                where = f"{path}.{fld['name']}" if path else fld["name"]
                _logical_mismatches(
                    fld["type"], other["type"], where, full_r.rpartition(".")[0],
                    full_w.rpartition(".")[0], named_r, named_w, out, seen,
                )  # fmt: skip
    elif kind == "array":
        _logical_mismatches(
            r["items"], w["items"], f"{path}[]", ns_r, ns_w, named_r, named_w, out, seen
        )
    elif kind == "map":
        _logical_mismatches(
            r["values"], w["values"], f"{path}{{}}", ns_r, ns_w, named_r, named_w, out, seen
        )
    else:
        attrs = ("logicalType", "precision", "scale")
        got_r = tuple(r.get(a) for a in attrs)
        got_w = tuple(w.get(a) for a in attrs)
        if got_r != got_w:
            out.append(f"{path}: writer has {_logical(got_w)}, reader has {_logical(got_r)}")


def _logical(attrs: tuple[Any, ...]) -> str:
    logical, precision, scale = attrs
    if logical is None:
        return "no logical type"
    if logical == "decimal":
        return f"decimal({precision},{scale or 0})"
    return str(logical)
