"""The bulk loader writes rows a worker reads: in the partition the Kafka default
partitioner gives the account, in the RocksDB files the worker's Faust store opens, and
byte for byte what the worker's ingest handler stores for the same events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench import bulk, common, gen
from config.settings import Settings
from processors.core import Worker
from processors.state import NO_DAY, StoredAccount, account_key, due_key
from schemas.codec import Codec

N = 120


class _Message:
    def __init__(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.topic, self.key, self.value = topic, key, value
        self.partition, self.offset, self.headers = partition, 0, None


class _Ingest(Worker):
    """The worker's core with the broker left out: a unit's rows are written as soon
    as it commits."""

    async def commit(self, outs: list, writes: object) -> None:
        assert not outs, outs
        writes.apply()  # type: ignore[attr-defined]


def _ingested(settings: Settings) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """The rows the worker's own ingest stores for the generated events, each event
    Avro-encoded and decoded as a Kafka record would be, one event per batch."""
    codec = Codec.from_settings(settings)
    procedures = common.catalog(settings, codec, common.procedure_records())
    tables = {name: bulk._Table(name) for name in ("accounts", "due_index", "work_index", "runs")}
    worker = _Ingest(app=None, settings=settings, codec=codec, procedures=procedures,
                       topic=None, **tables)

    async def apply() -> None:
        for topic, rtype, record in gen.events(range(N), seed=9):
            key = record["account_id"].encode()
            p = common.partition_of(key, settings.partitions)
            await worker.apply_unit(p, [_Message(
                settings.topic(topic), key, codec.encode(rtype, record), p)])

    asyncio.run(apply())
    merged = {name: {k: v for rows in t.parts.values() for k, v in rows.items()}
              for name, t in tables.items()}
    return merged["accounts"], merged["due_index"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    state = Path(tmp_path_factory.mktemp("bulk"))
    settings = Settings(partitions=4, state_dir=state, app_id="bench-test")
    info = bulk.load(bulk.Spec(N, seed=9, partitions=4), settings, processes=1,
                     verbose=False)
    return settings, info


def _worker_tables(settings: Settings) -> dict:
    from processors.app import create_app

    app = create_app(settings)
    return {name: app.tables[name].data for name in ("accounts", "due_index", "work_index")}


def test_rows_in_the_partitions_the_worker_reads(loaded: tuple[Settings, dict]) -> None:
    settings, info = loaded
    assert info["accounts"] == N
    stores = _worker_tables(settings)
    for i in range(N):
        key = account_key(gen.account_id(i))
        partition = common.partition_of(key, settings.partitions)
        for p in range(settings.partitions):
            raw = stores["accounts"]._db_for_partition(p).get(key)  # noqa: SLF001
            assert (raw is not None) == (p == partition)
        stored = StoredAccount.loads(stores["accounts"]._db_for_partition(partition)  # noqa: SLF001
                                     .get(key))
        assert stored.account.account_id == gen.account_id(i)
        if stored.index_day != NO_DAY:
            due_db = stores["due_index"]._db_for_partition(partition)  # noqa: SLF001
            assert due_db.get(due_key(stored.index_day, gen.account_id(i))) == b""
    for store in stores.values():
        for db in store._dbs.values():  # noqa: SLF001
            db.close()


def test_rows_equal_what_ingest_stores(loaded: tuple[Settings, dict]) -> None:
    settings, _ = loaded
    accounts, due = _ingested(settings)
    stores = _worker_tables(settings)
    loaded_due: set[bytes] = set()
    try:
        for i in range(N):
            key = account_key(gen.account_id(i))
            db = stores["accounts"]._db_for_partition(  # noqa: SLF001
                common.partition_of(key, settings.partitions))
            assert db.get(key) == accounts[key], gen.account_id(i)
        for p in range(settings.partitions):
            db = stores["due_index"]._db_for_partition(p)  # noqa: SLF001
            loaded_due |= {k for k in db.keys() if not k.startswith(b"__faust")}  # noqa: SIM118
        assert loaded_due == set(due)
        # like a worker that has only ingested: no procedure version, the first run
        # looks at every account
        for p in range(settings.partitions):
            assert stores["work_index"]._db_for_partition(p).get(b"v|index") is None  # noqa: SLF001
    finally:
        for store in stores.values():
            for db in store._dbs.values():  # noqa: SLF001
                db.close()


def test_the_partitioner_is_the_producers() -> None:
    from aiokafka.partitioner import murmur2

    for i in range(200):
        key = gen.account_id(i).encode()
        assert common.partition_of(key, 8) == (murmur2(key) & 0x7FFFFFFF) % 8
