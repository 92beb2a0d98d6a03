"""The explanation of RULES.md section 9 on the records: a proposal, its letter and its
history record carry each item's interest parts, and the account row keeps them."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from domain.activity_run import execute
from domain.proposal_run import propose
from domain.review import record_proposals
from processors import convert
from processors.state_codec import pack, unpack
from schemas.codec import Codec
from tests.unit.domain.builders import account, day, invoice, item, level, pay, procedure, upsert

CODEC = Codec("single-object")
DUE = day("2024-05-01")
PROC = replace(
    procedure(level(1, 1, interest=True, activities=("letter",)), rate="36.5"),
    interest_base="daily_balance",
    day_count="act/360",
)


def _proposal():  # type: ignore[no-untyped-def]
    acc = account(upsert(), invoice("I", item("I-1", 100000, DUE)), pay("PAY-1", 40000, DUE + 10))
    (p,) = propose(acc, {"P": PROC}, DUE + 40, "R/1").proposals
    return acc, p


def test_the_proposal_record_carries_the_parts_in_both_encodings() -> None:
    """act/360 at 36.5 %: 100000*0.365*10/360 = 1013.89 and 60000*0.365*30/360 = 1825.00."""
    _, p = _proposal()
    fast = CODEC.encode_raw("DunningProposed", convert.proposal_record(p, raw=True))
    assert fast == CODEC.encode_raw(
        "DunningProposed", convert.to_avro("DunningProposed", p, raw=True, event_id=p.proposal_id)
    )
    _, record = CODEC.decode(fast)
    parts = record["items"][0]["interest_parts"]
    assert [(x["days"], x["base_amount"], x["amount"]) for x in parts] == [
        (10, Decimal("1000.000"), Decimal("10.140")),
        (30, Decimal("600.000"), Decimal("18.250")),
    ]
    assert parts[0]["rate_percent"] == Decimal("36.5") and parts[0]["day_count"] == "act/360"
    assert record["interest"] == Decimal("28.390")


def test_the_letter_and_the_history_carry_the_parts_and_the_row_keeps_them() -> None:
    acc, p = _proposal()
    pending = record_proposals(acc, [p])
    assert unpack(pack(pending)) == pending
    done, notice = execute(pending, p.proposal_id)
    assert unpack(pack(done)) == done
    outputs = convert.command_outputs(done, notice)
    letter = next(r for _, t, r in outputs if t == "PrintDunningLetter")
    _, decoded = CODEC.decode(CODEC.encode("PrintDunningLetter", letter))
    assert len(decoded["items"][0]["interest_parts"]) == 2
    rtype, history = convert.notice_history(done, notice)
    _, decoded = CODEC.decode(CODEC.encode(rtype, history))
    assert [x["days"] for x in decoded["items"][0]["interest_parts"]] == [10, 30]
