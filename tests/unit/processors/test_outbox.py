"""processors.outbox: keyed records land where Kafka's default partitioner puts them,
batches are cut and refusals found record by record, a commit writes rows only after the
broker has them, history records are chained."""

from __future__ import annotations

import asyncio
from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from domain.state import new_account
from processors import limits
from processors.outbox import Outbox, Refused
from processors.state import StoredAccount
from processors.writes import Writes
from tests.unit.processors.fakes import MemTable, Rig
from tests.unit.processors.test_ingest_unit_of_work import FakeBroker


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return Rig(tmp_path, partitions=4)


def real_outbox(rig: Rig, broker: FakeBroker) -> Outbox:
    return Outbox(SimpleNamespace(producer=broker), rig.settings, rig.codec,
                  rig.tables.values())


def test_keyed_records_go_to_the_partition_of_kafkas_default_partitioner(rig: Rig) -> None:
    broker = FakeBroker()
    outbox = real_outbox(rig, broker)
    keys = [f"ACC-{i}".encode() for i in range(50)]
    asyncio.run(outbox.send([("t", k, b"v", None) for k in keys] + [("t", None, b"n", None)]))
    for (topic, partition), records in broker.log.items():
        for key, _ in records:
            expected = 0 if key is None else (murmur2(key) & 0x7FFFFFFF) % 4
            assert (topic, partition) == ("t", expected)
    assert sum(len(r) for r in broker.log.values()) == 51


def test_a_record_too_large_is_refused_and_the_others_sent(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_SEND_BYTES", 100)
    broker = FakeBroker()
    outbox = real_outbox(rig, broker)
    with pytest.raises(Refused) as caught:
        asyncio.run(outbox.send([("t", b"A", b"x" * 200, 0), ("t", b"B", b"ok", 0)]))
    ((out, why),) = caught.value.refused
    assert out[1] == b"A" and "more than the 100" in why
    assert broker.log[("t", 0)] == [(b"B", b"ok")]
    assert caught.value.offsets == {("t", 0): 0}


def test_a_refused_batch_is_sent_again_one_by_one_to_find_the_record(rig: Rig) -> None:
    broker = FakeBroker()
    broker.refuse = lambda topic, key, value: key == b"bad"
    outbox = real_outbox(rig, broker)
    with pytest.raises(Refused) as caught:
        asyncio.run(outbox.send([("t", k, b"v", 0) for k in (b"a", b"bad", b"c")]))
    assert [o[1] for o, _ in caught.value.refused] == [b"bad"]
    assert "refused by the broker" in caught.value.refused[0][1]
    assert [k for k, _ in broker.log[("t", 0)]] == [b"a", b"c"]


def test_a_commit_writes_its_rows_once_sent_and_none_when_refused(rig: Rig) -> None:
    table: MemTable = rig.tables["accounts"]
    w = Writes(0)
    w.set(table, b"A", b"row-A")
    asyncio.run(rig.outbox.commit([("t", b"A", b"rec", None)], w))
    assert table.get(b"A") == b"row-A"
    assert [o[0] for o in rig.outbox.sent] == ["t", "accounts-changelog"]
    rig.outbox.refuse = lambda out: "no" if out[0] == "t" else None
    w = Writes(0)
    w.set(table, b"A", b"row-A2")
    with pytest.raises(Refused):
        asyncio.run(rig.outbox.commit([("t", b"A", b"rec", None)], w))
    assert table.get(b"A") == b"row-A"
    # the changelog is followed by the row's current value again
    assert rig.outbox.sent[-1] == ("accounts-changelog", b"A", b"row-A", 0)


def test_history_records_are_chained_and_a_record_made_again_keeps_its_place(
        rig: Rig) -> None:
    stored = StoredAccount(new_account("A"))
    payload = {"event_id": "H-1", "proposal_id": "P", "run_id": "R/1", "reason": "paid",
               "detail": "", "recorded_for": date(2026, 9, 1)}
    first = rig.outbox.history(stored, "ProposalNotExecuted", payload)
    second = rig.outbox.history(stored, "ProposalNotExecuted", {**payload, "event_id": "H-2"})
    again = rig.outbox.history(stored, "ProposalNotExecuted", payload)
    r1, r2 = (rig.codec.decode(o[2])[1] for o in (first, second))
    assert (r1["seq"], r2["seq"]) == (1, 2)
    assert r2["prev_hash"] == stored.history_refs["H-2"][1] != r1["prev_hash"]
    assert again == first
    assert stored.account.history_seq == 2
