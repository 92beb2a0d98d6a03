"""A worker's processing core without a broker: in-memory tables (with RocksDB's key
range scan), an outbox that records what it sends (and refuses what a test says), and
the real store, error policy and agents over them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from types import SimpleNamespace
from typing import Any

from bench import common
from config.settings import Settings
from processors.activity_run import ActivityRun
from processors.control import Control
from processors.errors import ErrorPolicy
from processors.ingest import Ingest
from processors.metrics import Metrics
from processors.outbox import Outbox, Refused
from processors.proposal_run import ProposalRun
from processors.state import StoredAccount, account_key
from processors.store import Store
from processors.writes import Out
from schemas.codec import Codec

PARTITION = 0


class MemDB(dict):  # type: ignore[type-arg]
    """One table partition: the RocksDB calls the worker makes."""

    def put(self, key: bytes, value: bytes) -> None:
        self[key] = value

    def delete(self, key: bytes) -> None:
        self.pop(key, None)

    def keys(self, from_key: bytes | None = None) -> Iterable[bytes]:  # type: ignore[override]
        return iter(sorted(k for k in list(super().keys()) if from_key is None or k >= from_key))


class MemTable:
    """A stand-in for a Faust table (its table API writes to partition 0)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.data = self
        self.parts: dict[int, MemDB] = {}
        self.persisted: dict[Any, int] = {}
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: f"{name}-changelog")

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset

    def _db_for_partition(self, partition: int) -> MemDB:
        return self.parts.setdefault(partition, MemDB())

    def get(self, key: bytes) -> bytes | None:
        return self._db_for_partition(PARTITION).get(key)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._db_for_partition(PARTITION)[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self._db_for_partition(PARTITION)[key]


async def _flushed() -> None:
    return None


class FakeOutbox(Outbox):
    """Sends nothing anywhere: `sent` has every record it took; `refuse(out)` returns why
    it will not take one (None: taken)."""

    def __init__(self, settings: Settings, codec: Codec, tables: Iterable[Any]) -> None:
        app = SimpleNamespace(producer=SimpleNamespace(buffer=SimpleNamespace(flush=_flushed)))
        super().__init__(app, settings, codec, tables)
        self.sent: list[Out] = []
        self.refuse: Callable[[Out], str | None] = lambda out: None

    async def send(self, outs: Iterable[Out]) -> dict[tuple[str, int], int]:
        refused, taken = [], []
        for out in outs:
            why = self.refuse(out)
            if why is None:
                taken.append(out)
            else:
                refused.append((out, why))
        self.sent += taken
        if refused:
            raise Refused(refused, {})
        return {}

    def on(self, topic: str) -> list[Out]:
        return [o for o in self.sent if o[0] == self.settings.topic(topic)]

    def records(self, topic: str) -> list[tuple[str, dict[str, Any]]]:
        return [self.codec.decode(o[2]) for o in self.on(topic) if o[2] is not None]


class Rig:
    """The agents of one worker over the fakes."""

    def __init__(self, tmp_path: Any, partitions: int = 1, **settings: Any) -> None:
        self.settings = Settings(partitions=partitions, state_dir=tmp_path, app_id="unit",
                                 **settings)
        self.codec = Codec.from_settings(self.settings)
        self.procedures = common.catalog(self.settings, self.codec,
                                         common.procedure_records())
        self.metrics = Metrics()
        self.tables = {n: MemTable(n) for n in ("accounts", "due_index", "work_index", "runs")}
        t = self.tables
        self.outbox = FakeOutbox(self.settings, self.codec,
                                 (t["accounts"], t["due_index"], t["work_index"]))
        self.errors = ErrorPolicy(self.settings, self.codec, self.metrics, self.outbox)
        self.store = Store(settings=self.settings, procedures=self.procedures,
                           accounts=t["accounts"], due_index=t["due_index"],
                           work_index=t["work_index"], metrics=self.metrics,
                           commit=self.outbox.commit)
        self.ingest = Ingest(store=self.store, outbox=self.outbox, errors=self.errors,
                             metrics=self.metrics)
        self.activities = ActivityRun(store=self.store, outbox=self.outbox,
                                      metrics=self.metrics)
        self.applied: dict[tuple[str, int], int] = {}
        self.proposal_run = ProposalRun(
            store=self.store, outbox=self.outbox, codec=self.codec, metrics=self.metrics,
            activities=self.activities,
            applied_offset=lambda topic, p: self.applied.get((topic, p), 0))
        self.control = Control(settings=self.settings, runs=t["runs"], outbox=self.outbox,
                               errors=self.errors, metrics=self.metrics,
                               end_offsets=self._ends)

    async def _ends(self, tps: list[Any]) -> dict[Any, int]:
        return {tp: 0 for tp in tps}

    def message(self, topic: str, rec: tuple[str, dict[str, Any]], offset: int = 0,
                key: bytes | None = None) -> Message:
        rtype, record = rec
        if key is None and "account_id" in record:
            key = record["account_id"].encode()
        return Message(self.settings.topic(topic), key, self.codec.encode(rtype, record),
                       offset)

    def account(self, account_id: str) -> Any:
        raw = self.tables["accounts"].get(account_key(account_id))
        return None if raw is None else StoredAccount.loads(raw).account

    def counted(self, topic: str, outcome: str) -> float:
        return self.metrics.records.labels(topic, outcome)._value.get()  # noqa: SLF001


class Message:
    def __init__(self, topic: str, key: bytes | None, value: bytes | None, offset: int,
                 partition: int = PARTITION) -> None:
        self.topic, self.key, self.value = topic, key, value
        self.partition, self.offset, self.headers = partition, offset, None


class Event:
    def __init__(self, message: Message) -> None:
        self.message = message


D = date(2026, 9, 1)
