"""JSON lines of CONTRACT.md <-> Avro dicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

import schemas
from schemas.codec import Codec
from schemas.jsonio import JsonRecordError, dumps, json_type, parse_line, parse_lines, to_json

from .samples import SAMPLES, sample

NAMES = schemas.names()

PAYMENT = {
    "type": "PaymentReceived",
    "event_id": "pay-1",
    "account_id": "ACC-1",
    "payment_id": "PAY-1",
    "amount": "119.00",
    "currency": "EUR",
    "received_on": "2025-03-20",
}


def line(**changes: object) -> str:
    obj = {**PAYMENT, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...})


@pytest.mark.parametrize("name", NAMES)
def test_every_sample_round_trips_through_a_json_line(name: str) -> None:
    text = dumps(name, SAMPLES[name])
    assert "\n" not in text
    assert text.startswith(f'{{"type":"{json_type(name)}",')
    assert parse_line(text, 1) == (name, SAMPLES[name])


@pytest.mark.parametrize("name", NAMES)
def test_json_survives_the_wire(name: str) -> None:
    codec = Codec()
    record_type, record = parse_line(dumps(name, SAMPLES[name]), 1)
    assert dumps(*codec.decode(codec.encode(record_type, record))) == dumps(name, SAMPLES[name])


def test_values_are_typed_exactly() -> None:
    name, record = parse_line(line(occurred_at="2025-03-20T10:15:30.250+02:00"), 1)
    assert name == "PaymentReceived"
    assert record["amount"] == Decimal("119.00") and isinstance(record["amount"], Decimal)
    assert record["received_on"].isoformat() == "2025-03-20"
    assert record["occurred_at"] == datetime(2025, 3, 20, 8, 15, 30, 250000, tzinfo=UTC)
    assert record["allocations"] is None and record["payment_run_id"] is None


@pytest.mark.parametrize(
    ("currency", "amount", "shown"),
    [
        ("EUR", "119", "119.00"),
        ("EUR", "119.5", "119.50"),
        ("EUR", "-0.000", "0.00"),
        ("JPY", "500.000", "500"),
        ("KRW", "12000", "12000"),
        ("KWD", "1.25", "1.250"),
        ("BHD", "0.005", "0.005"),
        ("EUR", "0.314", "0.314"),  # never rounds: exact digits are kept
        ("XYZ", "3.1", "3.10"),  # unknown currency: 2 decimals
    ],
)
def test_amounts_are_quantized_to_the_currency(currency: str, amount: str, shown: str) -> None:
    _, record = parse_line(line(currency=currency, amount=amount), 1)
    assert json.loads(dumps("PaymentReceived", record))["amount"] == shown


def test_nested_amounts_use_the_enclosing_currency() -> None:
    letter = sample("PrintDunningLetter")
    letter["currency"] = "JPY"
    letter["items"][0]["open_amount"] = Decimal("11900")
    out = to_json("PrintDunningLetter", letter)
    assert out["items"][0]["open_amount"] == "11900"
    assert out["charge"] == "5"


def test_records_without_currency_show_two_decimals_at_least() -> None:
    out = to_json("DunningProcedureDefined", SAMPLES["DunningProcedureDefined"])
    assert out["interest_rate_percent"] == "9.00"
    assert out["min_interest_amount"] == "1.00"
    rate = sample("DunningProcedureDefined")
    rate["interest_rate_percent"] = Decimal("8.125")
    assert to_json("DunningProcedureDefined", rate)["interest_rate_percent"] == "8.125"


def test_bytes_are_base64() -> None:
    out = to_json("DeadLetter", SAMPLES["DeadLetter"])
    assert out["key"] == "QUNDLTEwMDA0Mg=="
    assert out["failed_at"] == "2025-03-31T22:16:02.005Z"


# -- errors name the line and the field -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            line(amount=119.0),
            'line 42: PaymentReceived.amount: must be a decimal string like "119.00", not the JSON '
            "number 119.0",
        ),
        (line(amount=119), "line 42: PaymentReceived.amount: must be a decimal string"),
        (
            line(amount="12a"),
            'line 42: PaymentReceived.amount: must be a decimal string like "119.00", not "12a"',
        ),
        (line(amount="1e3"), "line 42: PaymentReceived.amount: must be a decimal string"),
        (line(amount="NaN"), "line 42: PaymentReceived.amount: must be a decimal string"),
        (line(amount=" 1.00"), "line 42: PaymentReceived.amount: must be a decimal string"),
        (line(amount="1.0001"), "line 42: PaymentReceived.amount: 1.0001 has more than 3 decimals"),
        (
            line(amount="1" * 18),
            "line 42: PaymentReceived.amount: " + "1" * 18 + " does not fit decimal(20,3)",
        ),
        (line(received_on="2025-02-30"), "line 42: PaymentReceived.received_on: not a valid date"),
        (
            line(received_on="20250320"),
            "line 42: PaymentReceived.received_on: must be a date YYYY-MM-DD",
        ),
        (line(received_on=...), "line 42: PaymentReceived.received_on: missing required field"),
        (
            line(occurred_at="2025-03-20T10:00:00"),
            "line 42: PaymentReceived.occurred_at: timestamp '2025-03-20T10:00:00' needs a UTC "
            "offset",
        ),
        (
            line(occurred_at="yesterday"),
            "line 42: PaymentReceived.occurred_at: must be an ISO 8601 timestamp",
        ),
        (
            line(allocations=[{"item_id": "I-1", "amount": 5.5}]),
            "line 42: PaymentReceived.allocations[0].amount: must be a decimal string",
        ),
        (
            line(allocations=[{"item_id": "I-1"}]),
            "line 42: PaymentReceived.allocations[0].amount: missing required field",
        ),
        (line(colour="red"), "line 42: PaymentReceived.colour: unknown field"),
        (
            line(account_id=7),
            "line 42: PaymentReceived.account_id: must be a string, not the number 7",
        ),
        (line(event_id=" "), "line 42: PaymentReceived.event_id: must not be empty"),
        (line(type="Nope"), "line 42: type: unknown record type 'Nope'"),
        (line(type=...), 'line 42: type: every line needs a "type"'),
        (
            '{"type": "RunDeleted", "run_id": "r", "run_id": "s"}',
            "line 42: not valid JSON: duplicate key 'run_id'",
        ),
        (
            '{"type": "PaymentReceived", "amount": NaN}',
            "line 42: not valid JSON: NaN is not allowed",
        ),
        ("[1, 2]", "line 42: a record must be a JSON object"),
        ('{"type": ', "line 42: not valid JSON"),
    ],
)
def test_errors_name_the_line_and_the_field(text: str, message: str) -> None:
    with pytest.raises(JsonRecordError) as caught:
        parse_line(text, 42)
    assert str(caught.value).startswith(message)
    assert caught.value.lineno == 42


def test_int_ranges_are_checked() -> None:
    text = dumps("NotifyAgent", SAMPLES["NotifyAgent"]).replace('"level":3', '"level":4294967296')
    with pytest.raises(JsonRecordError, match=r"line 3: NotifyAgent.level: .* out of range"):
        parse_line(text, 3)


def test_parse_lines_skips_blank_lines_and_counts_them() -> None:
    text = ["\n", line() + "\n", "   \n", line(amount=1.5)]
    seen = []
    with pytest.raises(JsonRecordError, match="^line 4: "):
        for lineno, name, _ in parse_lines(text):
            seen.append((lineno, name))
    assert seen == [(2, "PaymentReceived")]


# -- derived ids ------------------------------------------------------------------------


def test_a_missing_event_id_is_derived_deterministically() -> None:
    _, a = parse_line(line(event_id=...), 1)
    _, b = parse_line(line(event_id=None), 2)
    assert a["event_id"] == b["event_id"] != "pay-1"
    assert len(a["event_id"]) == 36
    # Key order, spacing and trailing zeros do not change the id ...
    same = {k: v for k, v in reversed(PAYMENT.items()) if k != "event_id"}
    _, c = parse_line(json.dumps({**same, "amount": "119.0"}, indent=1).replace("\n", " "), 3)
    assert c["event_id"] == a["event_id"]
    # ... a different value does.
    _, d = parse_line(line(event_id=..., amount="119.01"), 4)
    assert d["event_id"] != a["event_id"]


def test_a_given_event_id_is_kept() -> None:
    assert parse_line(line(), 1)[1]["event_id"] == "pay-1"


def test_a_missing_command_id_is_derived_too() -> None:
    obj = json.loads(dumps("SetDunningLock", SAMPLES["SetDunningLock"]))
    del obj["command_id"]
    _, record = parse_line(json.dumps(obj), 1)
    assert record["command_id"] and record["command_id"] != SAMPLES["SetDunningLock"]["command_id"]


# -- the two ProposalRejected -----------------------------------------------------------


def test_history_proposal_rejected_is_written_with_the_contract_name() -> None:
    text = dumps("history.ProposalRejected", SAMPLES["history.ProposalRejected"])
    assert json.loads(text)["type"] == "ProposalRejected"
    assert parse_line(text, 1)[0] == "history.ProposalRejected"  # it has `seq`
    decision = dumps("ProposalRejected", SAMPLES["ProposalRejected"])
    assert parse_line(decision, 1)[0] == "ProposalRejected"


def test_topic_decides_and_checks() -> None:
    text = dumps("history.ProposalRejected", SAMPLES["history.ProposalRejected"])
    assert parse_line(text, 1, topic="dunning.history")[0] == "history.ProposalRejected"
    with pytest.raises(JsonRecordError, match="line 1: ProposalRejected.account_id: unknown field"):
        parse_line(text, 1, topic="dunning.decisions")
    with pytest.raises(
        JsonRecordError, match="PaymentReceived does not belong on billing.accounts"
    ):
        parse_line(line(), 1, topic="billing.accounts")
    explicit = text.replace('"ProposalRejected"', '"dunning.history.ProposalRejected"', 1)
    assert parse_line(explicit, 1)[0] == "history.ProposalRejected"
