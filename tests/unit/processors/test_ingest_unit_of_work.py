"""The ingest's error policy covers its whole unit of work (`Ingest.apply_unit`): an
account whose change cannot be packed, stored or sent costs only its own events of the
batch, never the batch, never the worker. The broker is a fake here (what it takes, what
it refuses); the worker's core, tables' rows and codec are the worker's."""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from bench import bulk, common
from config.settings import Settings
from processors import limits
from processors.core import Worker
from processors.state import StoredAccount, account_key
from schemas.codec import Codec
from tests.integration import events as e

D = date(2026, 9, 1)
PARTITION = 0


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: Any) -> Any:
        if len(self.records) >= 3:  # small batches: a unit spans several
            return None
        self.records.append((key, value))
        return object()


class FakeBroker:
    """Takes every batch unless `refuse(topic, key, value)` says no to one of its records
    (then the whole batch is refused, as Kafka does)."""

    def __init__(self) -> None:
        self.log: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = \
            defaultdict(list)
        self.refuse = lambda topic, key, value: False
        self.buffer = SimpleNamespace(flush=self._flush)

    async def _flush(self) -> None:
        return None

    def _ensure_producer(self) -> FakeBroker:
        return self

    async def partitions_for(self, topic: str) -> set[int]:
        return {0} if "dead-letters" in topic else {0, 1, 2, 3}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        future = asyncio.get_running_loop().create_future()
        if any(self.refuse(topic, k, v) for k, v in batch.records):
            future.set_exception(MessageSizeTooLargeError("too large for the broker"))
        else:
            log = self.log[(topic, partition)]
            future.set_result(SimpleNamespace(topic=topic, partition=partition,
                                              offset=len(log)))
            log.extend(batch.records)
        return future

    def last(self, topic: str) -> dict[bytes | None, bytes | None]:
        """The latest value of each key of a topic's partition 0 (a compacted view)."""
        return dict(self.log[(topic, PARTITION)])


class Message:
    def __init__(self, topic: str, key: bytes | None, value: bytes | None, offset: int) -> None:
        self.topic, self.key, self.value = topic, key, value
        self.partition, self.offset, self.headers = PARTITION, offset, None


@pytest.fixture
def h(tmp_path: Any) -> Worker:
    settings = Settings(partitions=4, state_dir=tmp_path, app_id="unit-of-work")
    codec = Codec.from_settings(settings)
    broker = FakeBroker()
    handlers = Worker(
        app=SimpleNamespace(producer=broker), settings=settings, codec=codec,
        procedures=common.catalog(settings, codec, common.procedure_records()), topic=None,
        **{name: bulk._Table(name) for name in ("accounts", "due_index", "work_index", "runs")})
    handlers.broker = broker  # type: ignore[attr-defined]
    return handlers


def messages(h: Worker, records: list[tuple[str, tuple[str, dict[str, Any]]]]) -> list[Message]:
    return [Message(h.settings.topic(topic), rec["account_id"].encode(),
                    h.codec.encode(rtype, rec), offset)
            for offset, (topic, (rtype, rec)) in enumerate(records)]


def apply(h: Worker, batch: list[Message]) -> None:
    asyncio.run(h.apply_unit(PARTITION, batch))


def account(h: Worker, account_id: str) -> Any:
    raw = h.accounts._db_for_partition(PARTITION).get(account_key(account_id))
    return None if raw is None else StoredAccount.loads(raw).account


def dead_letters(h: Worker) -> list[dict[str, Any]]:
    topic = h.settings.topic("dunning.dead-letters")
    return [h.codec.decode(v)[1] for _, v in h.broker.log[(topic, 0)]]  # type: ignore[attr-defined]


def metric(h: Worker, topic: str, outcome: str) -> float:
    return h.metrics.records.labels(topic, outcome)._value.get()  # noqa: SLF001


def story(h: Worker) -> list[Message]:
    return messages(h, [
        ("billing.accounts", e.account("A")),
        ("billing.invoices", e.invoice("A", "A1", [("A1-a", "100.00", D)])),
        ("billing.accounts", e.account("B")),
        ("billing.invoices", e.invoice("A", "BOOM", [("BOOM-a", "7777.77", D)])),
        ("billing.invoices", e.invoice("B", "B1", [("B1-a", "50.00", D)])),
        ("billing.payments", e.payment("A", "PA", "30.00", D)),
    ])


def test_an_event_whose_change_does_not_pack_is_dead_lettered_and_the_rest_applied(
        h: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    dumps = StoredAccount.dumps

    def overflowing(self: StoredAccount) -> bytes:
        if any(it.amount == 777777 for it in self.account.items):
            raise OverflowError("Integer value out of range")  # as msgpack says it
        return dumps(self)

    monkeypatch.setattr(StoredAccount, "dumps", overflowing)
    batch = story(h)
    apply(h, batch)
    (letter,) = dead_letters(h)
    assert (letter["reason"], letter["offset"], letter["value"]) == \
        ("unstorable", 3, batch[3].value)
    assert "OverflowError" in letter["detail"]
    a = account(h, "A")
    assert {it.item_id: it.open_amount for it in a.items} == {"A1-a": 7000}
    assert [it.item_id for it in account(h, "B").items] == ["B1-a"]
    assert metric(h, "billing.invoices", "dead_lettered") == 1
    assert metric(h, "billing.invoices", "applied") == 2
    assert metric(h, "billing.accounts", "applied") == 2
    assert metric(h, "billing.payments", "applied") == 1


def test_an_event_that_would_make_its_account_row_too_large_is_dead_lettered(
        h: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    apply(h, messages(h, [("billing.accounts", e.account("A"))]))
    size = len(h.accounts._db_for_partition(PARTITION).get(b"A"))
    monkeypatch.setattr(limits, "MAX_ROW_BYTES", size + 60)
    batch = messages(h, [
        ("billing.invoices", e.invoice("A", "I1", [("I1-a", "10.00", D)])),
        ("billing.invoices", e.invoice("A", "I2", [(f"I2-{n}", "10.00", D) for n in range(9)])),
        ("billing.payments", e.payment("A", "P", "1.00", D)),
    ])
    apply(h, batch)
    (letter,) = dead_letters(h)
    assert (letter["reason"], letter["value"]) == ("account_too_large", batch[1].value)
    assert [it.item_id for it in account(h, "A").items] == ["I1-a"]
    assert [p.payment_id for p in account(h, "A").payments] == ["P"]


def test_an_import_beside_an_unstorable_event_keeps_its_history_record(
        h: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    """A's unit: an import, an invoice whose change does not pack, a second import. The
    events are tried one by one: the invoice is dead-lettered, both imports stand, and
    their history records go out once each, chained seq 1 and 2."""
    dumps = StoredAccount.dumps

    def overflowing(self: StoredAccount) -> bytes:
        if any(it.amount == 777777 for it in self.account.items):
            raise OverflowError("Integer value out of range")
        return dumps(self)

    monkeypatch.setattr(StoredAccount, "dumps", overflowing)
    apply(h, messages(h, [
        ("billing.accounts", e.account("A")),
        ("billing.accounts", e.imported("A", "X1", 2, D, event_id="imp-x1")),
        ("billing.invoices", e.invoice("A", "BOOM", [("BOOM-a", "7777.77", D)])),
        ("billing.accounts", e.imported("A", "X2", 3, D, event_id="imp-x2")),
    ]))
    assert [d["reason"] for d in dead_letters(h)] == ["unstorable"]
    topic = h.settings.topic("dunning.history")
    log = h.broker.log  # type: ignore[attr-defined]
    history = [h.codec.decode(v)[1] for (t, _), recs in log.items() if t == topic
               for _, v in recs]
    assert [(r["seq"], r["item_id"], r["new_level"]) for r in history] == [
        (1, "X1", 2), (2, "X2", 3)]
    a = account(h, "A")
    assert a.history_seq == 2 and [i.item_id for i in a.imports] == ["X1", "X2"]


def test_a_row_the_broker_refuses_dead_letters_its_accounts_events_and_no_others(
        h: Worker) -> None:
    accounts_changelog = h.accounts.changelog_topic.get_topic_name()
    h.broker.refuse = lambda topic, key, value: (  # type: ignore[attr-defined]
        topic == accounts_changelog and key == b"A")
    batch = story(h)
    apply(h, batch)
    letters = dead_letters(h)
    assert sorted((r["reason"], r["offset"]) for r in letters) == [
        ("refused_by_broker", 0), ("refused_by_broker", 1), ("refused_by_broker", 3),
        ("refused_by_broker", 5)]
    assert all(r["value"] == batch[r["offset"]].value for r in letters)
    assert account(h, "A") is None
    assert [it.item_id for it in account(h, "B").items] == ["B1-a"]
    # the changelog says what the local store says (what went out of A was taken back)
    for table in (h.accounts, h.due_index):
        changelog = h.broker.last(table.changelog_topic.get_topic_name())  # type: ignore[attr-defined]
        local = dict(table._db_for_partition(PARTITION))
        assert {k: v for k, v in changelog.items() if v is not None} == local
    assert metric(h, "billing.accounts", "dead_lettered") == 1
    assert metric(h, "billing.accounts", "applied") == 1


def test_a_dead_letter_too_large_to_send_keeps_the_first_bytes_and_says_so(
        h: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_SEND_BYTES", 20_000)
    monkeypatch.setattr(limits, "DEAD_LETTER_KEEP", 1000)
    huge = bytes(range(256)) * 100
    batch = [Message(h.settings.topic("billing.invoices"), b"A", huge, 0),
             *messages(h, [("billing.accounts", e.account("A"))])]
    batch[1].offset = 1
    apply(h, batch)
    (letter,) = dead_letters(h)
    assert letter["reason"] == "undecodable"
    assert letter["value"] == huge[:1000]
    assert hashlib.sha256(huge).hexdigest() in letter["detail"]
    assert f"of {len(huge)} bytes" in letter["detail"]
    assert account(h, "A") is not None
