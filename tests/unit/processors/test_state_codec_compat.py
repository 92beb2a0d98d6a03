"""The packed account row of a procedure without the options of RULES.md section 9 is
byte for byte what it was before them: a pending proposal, and two executed notices (the
second with interest). The hex was packed by the code before the options were added."""

from __future__ import annotations

import itertools

import pytest

from domain.activity_run import execute
from domain.proposal_run import propose
from domain.review import record_proposals
from processors.state_codec import pack, unpack
from tests.unit.domain import builders
from tests.unit.domain.builders import account, day, invoice, item, pay, standard, upsert

PENDING = bytes.fromhex(
    "dc001103a54143432d3196ac416e6e61205363686d696474a26465a3455552a1509491ac4861757074737472"
    "2e203132a53130313135a64265726c696ea24445b0616e6e61406578616d706c652e636f6d9193a149c0cd22"
    "309295c4022d3100cd27100e6495c4022d3200cd138821009194a2503164c0cd225695c42453735d3a303f48"
    "c726c151774b1eafc318f6dedf0cb90ff13350297f6e9c1a5d0512135ecd223001260100a090909090909090"
    "91dc0010d92430636163316630642d653231322d353137372d613939652d316161383563623263356238a352"
    "2f31a150a0a3455552ce000b46650191000000cd3a34929ca3492d31a149cd26acce000b46461f0001a86164"
    "76616e63656400c0c0c09ca3492d32a149cd1388ce000b46590c0001a8616476616e63656400c0c0c09090c2"
    "c0"
)
EXECUTED = bytes.fromhex(
    "dc001003a54143432d3196ac416e6e61205363686d696474a26465a3455552a1509491ac4861757074737472"
    "2e203132a53130313135a64265726c696ea24445b0616e6e61406578616d706c652e636f6d9193a149c0cd22"
    "309299c4022d3100cd27100e640002ce000b4682ce000b468299c4022d3200cd138821000002ce000b4682ce"
    "000b46829194a2503164c0cd225695c42453735d3a303f48c726c151774b1eafc318f6dedf0cb90ff1335029"
    "7f6e9c1a5d0512135ecd223001260100a0909090909090929ea3522f31a150a0a345555201ce000b46659100"
    "00009299a3492d31c30001c0c000cd26acce000b464699a3492d32c30001c0c000cd1388ce000b465990c3c3"
    "909ea3522f32a150a0a345555202ce000b46829100cd01f4ccc59299a3492d31c30102ce000b4665c0cc92cd"
    "26acce000b464699a3492d32c30102ce000b4665c033cd1388ce000b465990c3c390"
)


def test_rows_of_a_procedure_without_options_are_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(builders, "_ids", itertools.count(1))  # the event ids of the hex
    acc = account(
        upsert(),
        invoice("I", item("I-1", 10000, day("2024-01-01")), item("I-2", 5000, day("2024-01-20"))),
        pay("P1", 100, day("2024-01-25")),
    )
    procs = {"P": standard()}
    (p,) = propose(acc, procs, day("2024-02-01"), "R/1").proposals
    pending = record_proposals(acc, [p])
    done, _ = execute(pending, p.proposal_id)
    (q,) = propose(done, procs, day("2024-03-01"), "R/2").proposals
    assert q.interest == 197
    executed, _ = execute(record_proposals(done, [q]), q.proposal_id)
    assert pack(pending) == PENDING and unpack(PENDING) == pending
    assert pack(executed) == EXECUTED and unpack(EXECUTED) == executed
