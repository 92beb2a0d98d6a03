"""Bulk loader: account state written straight into a worker's RocksDB table partitions.

Ingesting a million accounts through Kafka takes longer than a benchmark should; the
loader builds the same rows in-process and writes them where the worker's Faust RocksDB
store will open them:

* the path of each table partition is the store's own (`Store.partition_path`, under
  `<state_dir>/worker/v1/tables/<table>-<partition>.db`), asked of the app
  `processors.app.create_app` builds, and each DB is opened with the store's options;
* an account lands in the partition the Kafka default partitioner (murmur2 of the key)
  gives its id: the partition its input events would have been published to;
* the rows are made by the worker's own ingest code: `processors.core.Worker.
  apply_unit` over each account's generated events (the batch a worker gets; the Avro
  encode/decode round trip is skipped: the records are already what the codec returns),
  writing through `processors.store.Store` into memory: one `StoredAccount.dumps()` per
  account under `account_key`, its due-index key `due_key(index_day, account)` with the
  `index_day` the store computed. Nothing else: like a worker
  that has only ingested, the first run looks at every account (no `v|index` key in
  `work_index`); with `Spec(indexed=True)` the loader writes that key (the procedures'
  version) as an earlier run would, and the first run uses the due index.

The changelog topics stay empty: Faust's recovery then has nothing to replay and keeps
the local state. Loaded state is cached under `bench-results/cache/` (keyed by the
parameters and the source of the code that makes the rows) and copied per worker.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from bench import common, gen

# The files whose code shapes the state a bulk load writes: a change to any of them makes
# the cached state stale.
SOURCES = ("bench/gen.py", "bench/bulk.py", "processors/*.py", "domain/*.py")
TABLES = ("accounts", "due_index", "work_index")
FLUSH_EVERY = 20000


@dataclass(frozen=True)
class Spec:
    accounts: int
    seed: int = 1
    as_of: date = gen.AS_OF
    partitions: int = common.PARTITIONS
    prefix: str = "ACC"
    #: Write `v|index` (the procedures' version) in `work_index`, as an earlier run
    #: would: the first run then trusts the due index. Off: the state is exactly what
    #: ingest leaves, and the first run looks at every account (as after ingest).
    indexed: bool = False

    def key(self, procedures: list[dict[str, Any]]) -> str:
        h = hashlib.sha256(repr((self, procedures)).encode())
        for pattern in SOURCES:
            for src in sorted(common.ROOT.glob(pattern)):
                h.update(src.read_bytes())
        return f"n{self.accounts}-s{self.seed}-{self.as_of.isoformat()}-p{self.partitions}-" \
               f"{'i' if self.indexed else 'f'}-{h.hexdigest()[:12]}"


class _Msg:
    """What the ingest handler reads of a Kafka message; `decoded` skips the Avro decode."""

    __slots__ = ("topic", "key", "value", "partition", "offset", "headers", "decoded")

    def __init__(self, topic: str, key: bytes, partition: int,
                 decoded: tuple[str, dict[str, Any]]) -> None:
        self.topic, self.key, self.value, self.decoded = topic, key, b"-", decoded
        self.partition, self.offset, self.headers = partition, 0, None


class _Rows(dict):  # type: ignore[type-arg]
    """One table partition in memory, with the RocksDB calls `processors.writes` makes."""

    def put(self, key: bytes, value: bytes) -> None:
        self[key] = value

    def delete(self, key: bytes) -> None:
        self.pop(key, None)


class _Topic:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class _Table:
    """A stand-in for a Faust table: `table.data._db_for_partition(p)` is a `_Rows`; no
    changelog (offsets are not kept: the loaded state has no changelog records)."""

    def __init__(self, name: str = "table") -> None:
        self.data = self
        self.parts: dict[int, _Rows] = {}
        self.changelog_topic = _Topic(f"{name}-changelog")

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        return None

    def _db_for_partition(self, partition: int) -> _Rows:
        return self.parts.setdefault(partition, _Rows())

    def get(self, key: bytes) -> bytes | None:  # the Faust table API, outside a unit
        return next((p[key] for p in self.parts.values() if key in p), None)


def loader_worker(settings: Any, procedures: list[dict[str, Any]]) -> Any:
    """The worker's core over in-memory tables: its batch ingest (`apply_unit`:
    fold a partition's events into their accounts, store each changed account once with
    its due-index entry) writes through `processors.writes.Writes` into `_Table`s; the
    caller moves the rows to RocksDB."""
    from processors.core import Worker
    from schemas.codec import Codec

    class Loader(Worker):
        def decode(self, message: Any, allowed: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
            rtype, record = message.decoded
            if rtype not in allowed:
                raise AssertionError(f"{rtype} on {message.topic}")
            return rtype, record

        async def commit(self, outs: list[Any], writes: Any) -> None:
            if outs:  # dead letters: the generated data must all be usable
                raise RuntimeError(f"{len(outs)} generated events were not usable")
            writes.apply()

    codec = Codec.from_settings(settings)
    cat = common.catalog(settings, codec, procedures)
    return Loader(app=None, settings=settings, codec=codec, procedures=cat,
                  accounts=_Table("accounts"), due_index=_Table("due_index"),
                  work_index=_Table("work_index"), runs=_Table("runs"), topic=None)


def _drive(coro: Any) -> None:
    """Run a coroutine that never suspends (the ingest path awaits only `commit`)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("the ingest handler suspended")


def build_rows(worker: Any, index: int, spec: Spec, partition: int) -> None:
    """Apply account `index`'s events (one batch, as a worker receiving them together
    would); its rows land in `worker.accounts/due_index` partition `partition`."""
    messages = [_Msg(topic, record["account_id"].encode(), partition, (rtype, record))
                for topic, rtype, record in gen.account_events(index, spec.seed, spec.as_of,
                                                               spec.prefix)]
    _drive(worker.apply_unit(partition, messages))


def table_paths(settings: Any) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The RocksDB path of every partition of the account tables, and the store options,
    as the worker's Faust app has them."""
    from processors.app import create_app

    app = create_app(settings)
    paths = {name: [str(app.tables[name].data.partition_path(p))
                    for p in range(settings.partitions)] for name in TABLES}
    opts = app.tables["accounts"].data.rocksdb_options
    options = {k: getattr(opts, k) for k in (
        "max_open_files", "write_buffer_size", "max_write_buffer_number",
        "target_file_size_base", "block_cache_size", "block_cache_compressed_size",
        "bloom_filter_size", "use_rocksdict", "ttl")}
    options.update(opts.extra_options)
    return paths, options


def _load_partitions(args: tuple[Spec, list[dict[str, Any]], list[int],
                                 dict[str, list[str]], dict[str, Any], Any]) -> dict[str, int]:
    spec, procedures, mine, paths, options, settings = args
    from faust.stores.rocksdb import RocksDBOptions

    worker = loader_worker(settings, procedures)
    rocks = RocksDBOptions(**options)
    dbs = {(t, p): rocks.open(Path(paths[t][p])) for t in TABLES for p in mine}
    counts = {"accounts": 0, "due": 0, "bytes": 0}
    wanted = set(mine)
    try:
        for i in range(spec.accounts):
            key = gen.account_id(i, spec.prefix).encode()
            p = common.partition_of(key, spec.partitions)
            if p not in wanted:
                continue
            build_rows(worker, i, spec, p)
            counts["accounts"] += 1
            if counts["accounts"] % FLUSH_EVERY == 0:
                _flush(worker, dbs, counts)
        _flush(worker, dbs, counts)
        if spec.indexed:
            for p in mine:
                dbs[("work_index", p)].put(b"v|index", worker.procedures.version.encode())
        for db in dbs.values():
            db.flush()
    finally:
        for db in dbs.values():
            db.close()
    return counts


def _flush(worker: Any, dbs: dict[tuple[str, int], Any], counts: dict[str, int]) -> None:
    """Move the rows made so far from the in-memory tables to the RocksDB partitions."""
    from rocksdict import WriteBatch

    for name in TABLES:
        table = getattr(worker, name)
        for p, rows in table.parts.items():
            if not rows:
                continue
            batch = WriteBatch(raw_mode=True)
            for key, value in rows.items():
                batch.put(key, value)
            dbs[(name, p)].write(batch)
            if name == "accounts":
                counts["bytes"] += sum(len(v) for v in rows.values())
            elif name == "due_index":
                counts["due"] += len(rows)
            rows.clear()


def load(spec: Spec, settings: Any, procedures: list[dict[str, Any]] | None = None,
         processes: int = 2, verbose: bool = True) -> dict[str, Any]:
    """Write the state of `spec` into the table partitions under `settings.state_dir`."""
    procedures = procedures or common.procedure_records()
    paths, options = table_paths(settings)
    for name in TABLES:
        for p in paths[name]:
            shutil.rmtree(p, ignore_errors=True)
            Path(p).parent.mkdir(parents=True, exist_ok=True)
    shares = [[p for p in range(spec.partitions) if p % processes == k]
              for k in range(processes)]
    jobs = [(spec, procedures, mine, paths, options, settings) for mine in shares if mine]
    t0 = time.monotonic()
    if len(jobs) == 1:
        results = [_load_partitions(jobs[0])]
    else:
        # spawn, not fork: a forked child of a process that has opened RocksDB before (the
        # DuckDB export of a smaller size reads the state) inherits RocksDB's environment
        # without its background threads, so its memtables are never flushed and the
        # first write past the write buffers waits for ever.
        with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
            results = pool.map(_load_partitions, jobs)
    total = {k: sum(r[k] for r in results) for k in results[0]}
    total["seconds"] = round(time.monotonic() - t0, 2)
    total["mean_row_bytes"] = round(total["bytes"] / max(1, total["accounts"]), 1)
    if verbose:
        print(f"bulk load: {total['accounts']:,} accounts, {total['due']:,} due keys, "
              f"{total['mean_row_bytes']} B/row, {total['seconds']} s", flush=True)
    return total


def cached_state(spec: Spec, procedures: list[dict[str, Any]] | None = None,
                 processes: int = 2) -> tuple[Path, dict[str, Any]]:
    """The loaded state of `spec` in the cache (built on first use): the directory to use
    as a worker's `DUNNING_STATE_DIR` after copying it (`install`)."""
    import json

    from config.settings import Settings

    procedures = procedures or common.procedure_records()
    cache = common.RESULTS / "cache" / spec.key(procedures)
    info = cache / "info.json"
    if info.exists():
        return cache / "state", json.loads(info.read_text())
    # caches of the same spec made by older code are stale
    stem = cache.name.rsplit("-", 1)[0]
    for old in cache.parent.glob(f"{stem}-*"):
        if old.name != cache.name and ".building-" not in old.name:
            shutil.rmtree(old, ignore_errors=True)
    # built aside and renamed into place: another benchmark may build the same at once
    building = cache.with_name(f"{cache.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    settings = Settings(partitions=spec.partitions, state_dir=building / "state",
                        app_id="bench-bulk")
    total = load(spec, settings, procedures, processes)
    (building / "info.json").write_text(json.dumps(total))
    try:
        building.rename(cache)
    except OSError:  # built by another process meanwhile
        shutil.rmtree(building, ignore_errors=True)
    return cache / "state", json.loads(info.read_text())


def install(cached: Path, state_dir: Path) -> float:
    """Copy a cached state into a worker's state dir (RocksDB rewrites its MANIFEST, so a
    copy, not links). Returns the seconds it took."""
    t0 = time.monotonic()
    shutil.rmtree(state_dir / "worker", ignore_errors=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(cached / "worker", state_dir / "worker")
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=common.PARTITIONS)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    common.quiet()
    path, info = cached_state(Spec(args.accounts, args.seed, partitions=args.partitions),
                              processes=args.processes)
    print(path, info)


if __name__ == "__main__":
    main()
