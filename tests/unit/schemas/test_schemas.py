"""Every record type of CONTRACT.md has a schema, and the schemas keep our conventions."""

from __future__ import annotations

import json
from typing import Any

import avro.schema
import pytest
from fastavro import parse_schema

import schemas

from .samples import SAMPLES

CONTRACT_TOPICS = {
    "billing.accounts": {
        "AccountUpserted", "DunningLockSet", "DunningLockReleased", "DunningHistoryImported",
    },
    "billing.invoices": {"InvoiceIssued", "InvoiceCancelled"},
    "billing.payments": {"PaymentReceived", "PaymentReversed"},
    "billing.due-dates": {"DueDateChanged", "InstallmentPlanCreated", "InstallmentPlanCancelled"},
    "billing.payment-runs": {"PaymentRunCompleted"},
    "dunning.procedures": {"DunningProcedureDefined"},
    "dunning.schedules": {"RunScheduleSet"},
    "dunning.rates": {"InterestRateSet"},
    "dunning.decisions": {
        "ProposalApproved",
        "ProposalRejected",
        "RunApproved",
        "RunDeleted",
        "ProposalRunRequested",
        "NoticeReversalRequested",
    },
    "dunning.runs": {
        "ProposalRunStarted",
        "ProposalRunCompleted",
        "ActivityRunCompleted",
        "RunDecisionRefused",
        "ScheduledStartMissed",
    },
    "dunning.proposals": {"DunningProposed"},
    "dunning.letters": {"PrintDunningLetter"},
    "dunning.letter-deliveries": {"LetterSent", "LetterDeliveryFailed", "LetterPrinted"},
    "dunning.locks": {"SetDunningLock"},
    "dunning.collections": {"ReleaseToCollectionAgency"},
    "dunning.deposits": {"RequestSecurityDeposit"},
    "dunning.workflows": {"NotifyAgent", "DeactivateInstallmentPlan"},
    "dunning.postings": {
        "PostDunningCharge",
        "PostDunningInterest",
        "PostDunningChargeReversal",
        "PostDunningInterestReversal",
    },
    "dunning.history": {
        "DunningNoticeIssued",
        "DunningNoticeReversed",
        "ItemLevelChanged",
        "history.ProposalRejected",
        "ProposalNotExecuted",
        "NoticeReversalRefused",
        "DunningLevelImported",
        "LetterDeliveryRecorded",
    },
    "dunning.dead-letters": {"DeadLetter"},
}
COMMAND_TOPICS = {
    "dunning.letters",
    "dunning.locks",
    "dunning.collections",
    "dunning.deposits",
    "dunning.workflows",
    "dunning.postings",
}
MONEY = {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 3}
NAMES = schemas.names()


def walk(node: Any) -> Any:
    """Every dict node of a JSON schema."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_every_contract_record_type_has_a_schema_and_nothing_else_does() -> None:
    expected = set().union(*CONTRACT_TOPICS.values())
    assert set(NAMES) == expected
    assert set(SAMPLES) == expected


def test_topics_follow_the_contract() -> None:
    for topic, names in CONTRACT_TOPICS.items():
        assert {n for n in NAMES if schemas.topic_of(n) == topic} == names


def test_the_topic_catalogue_has_the_record_types_of_the_contract() -> None:
    from topics import catalogue  # imported, never skipped: a broken import fails
    declared = {t.name: set(t.records) for t in catalogue.CATALOGUE if t.records}
    assert declared == CONTRACT_TOPICS
    assert all(not t.records for t in catalogue.CATALOGUE if t.internal)


@pytest.mark.parametrize("name", NAMES)
def test_schema_parses_with_fastavro_and_avro(name: str) -> None:
    raw = schemas.raw(name)
    parse_schema(raw, named_schemas={})
    avro.schema.parse(json.dumps(raw))
    assert schemas.load(name)["type"] == "record"


@pytest.mark.parametrize("name", NAMES)
def test_first_field_is_the_dedup_id(name: str) -> None:
    first = schemas.raw(name)["fields"][0]
    kind = "command_id" if schemas.topic_of(name) in COMMAND_TOPICS else "event_id"
    assert first == {**first, "name": kind, "type": "string"}


@pytest.mark.parametrize("name", NAMES)
def test_namespace_and_name(name: str) -> None:
    raw = schemas.raw(name)
    history = schemas.topic_of(name) == "dunning.history"
    assert raw["namespace"] == ("dunning.history" if history else "dunning")
    assert raw["name"] == name.removeprefix("history.")
    assert schemas.name_of(schemas.full_name(name)) == name


def test_the_two_proposal_rejected_records_are_distinct() -> None:
    assert schemas.full_name("ProposalRejected") == "dunning.ProposalRejected"
    assert schemas.full_name("history.ProposalRejected") == "dunning.history.ProposalRejected"


@pytest.mark.parametrize("name", NAMES)
def test_optional_fields_are_null_unions_defaulting_to_null(name: str) -> None:
    """Optional fields are ``["null", T]`` with default null; a count or text added to a
    record later (CONTRACT.md: ``not_executed``, default 0; ``auto_approved``, default
    false) has a default of its own type, so old records still read."""
    own_type = {"long": int, "int": int, "string": str, "boolean": bool}
    for node in walk(schemas.raw(name)):
        if isinstance(node.get("type"), list):
            assert node["type"][0] == "null" and len(node["type"]) == 2, node
            assert node.get("default", "missing") is None, node
        elif "default" in node:
            kind = own_type.get(node["type"]) if isinstance(node["type"], str) else None
            assert kind is not None and type(node["default"]) is kind, node


@pytest.mark.parametrize("name", NAMES)
def test_logical_types_have_the_documented_shapes(name: str) -> None:
    for node in walk(schemas.raw(name)):
        logical = node.get("logicalType")
        if logical == "decimal":
            rate = node.get("scale") == 6
            assert node == ({**MONEY, "precision": 12, "scale": 6} if rate else MONEY), node
        elif logical == "date":
            assert node == {"type": "int", "logicalType": "date"}
        elif logical is not None:
            assert node == {"type": "long", "logicalType": "timestamp-millis"}


def test_amount_fields_are_money_dates_are_dates() -> None:
    for name in NAMES:
        for node in walk(schemas.raw(name)):
            for fld in node.get("fields", []):
                n, t = fld["name"], fld["type"]
                t = t[1] if isinstance(t, list) else t
                if n in {"amount", "charge", "total_due", "open_amount"} or n.endswith("_amount"):
                    assert t == MONEY, (name, n)
                if n.endswith("_date") or n in {"issued_on", "received_on", "valid_from"}:
                    assert t == {"type": "int", "logicalType": "date"}, (name, n)
                if n.endswith("_at"):
                    assert t == {"type": "long", "logicalType": "timestamp-millis"}, (name, n)


def test_nested_types_are_defined_once_in_shared_files() -> None:
    shared = {"_" + n.rsplit(".", 1)[-1] for n in schemas._shared()}
    assert shared == {
        "_ActivityMinAmount",
        "_InterestPart",
        "_InvoiceItem",
        "_Allocation",
        "_Installment",
        "_PostalAddress",
        "_ProcedureLevel",
        "_ProposedItem",
        "_LevelChange",
        "_LeftOutItem",
        "_NoticeItem",
        "_Recipient",
        "_NoticeItemChange",
        "_NoticeClaim",
    }
    # The record files only refer to them by name: one definition each, in its own file.
    for stem, schema in schemas._files().items():
        inner = [n for n in walk(schema) if n.get("type") == "record"][1:]
        assert inner == [], f"{stem}.avsc defines {[n['name'] for n in inner]} inline"


def test_raw_is_self_contained_and_a_fresh_copy() -> None:
    a = schemas.raw("PrintDunningLetter")
    a["fields"].clear()
    b = schemas.raw("PrintDunningLetter")
    assert b["fields"]
    defined = [n["name"] for n in walk(b) if n.get("type") == "record"]
    assert defined == [
        "PrintDunningLetter", "Recipient", "PostalAddress", "NoticeItem", "InterestPart"
    ]  # fmt: skip


def test_field_order_follows_the_architecture() -> None:
    fields = [f["name"] for f in schemas.raw("DunningProposed")["fields"]]
    assert fields == [
        "event_id", "proposal_id", "run_id", "account_id", "procedure_id", "dunning_group",
        "currency", "as_of_date", "level", "activities", "charge", "interest", "total_due",
        "items", "level_changes", "left_out", "activities_below_minimum", "pay_within_days",
    ]  # fmt: skip
    history = [f["name"] for f in schemas.raw("ItemLevelChanged")["fields"]]
    assert history == [
        "event_id", "account_id", "seq", "prev_hash", "recorded_for",
        "item_id", "old_level", "new_level", "reason",
    ]  # fmt: skip
    dead = [f["name"] for f in schemas.raw("DeadLetter")["fields"]]
    assert dead == [
        "event_id", "source_topic", "partition", "offset", "key", "value", "reason", "detail",
        "failed_at",
    ]  # fmt: skip


def test_load_all_is_cached_and_keyed_by_name() -> None:
    assert schemas.load_all() is schemas.load_all()
    assert tuple(sorted(schemas.load_all())) == NAMES == tuple(sorted(NAMES))
    with pytest.raises(schemas.SchemaError):
        schemas.raw("NoSuchRecord")
