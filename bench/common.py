"""What every benchmark needs: a fresh broker and namespace, batched publishing, worker
processes (started the way `tests/integration/harness.py` starts them), their counters,
memory and profiles, and the JSON, table and plot of the results.

Every process started here is stopped here, by its pid (process group of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from config.settings import Settings
from config.worker_env import worker_env as dunning_worker_env
from domain.procedures import parse_procedures
from processors.convert import procedure_record
from schemas.codec import Codec
from topics.broker import EmbeddedBroker, free_port
from topics.catalogue import PROCEDURES as PROCEDURES_TOPIC
from topics.catalogue import RUNS
from topics.clients import partition_of
from topics.provision import apply_topics

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results"
PROCEDURES_FILE = ROOT / "dunning" / "data" / "procedures.yaml"
PARTITIONS = 8

Event = tuple[str, str, dict[str, Any]]


def quiet() -> None:
    """Warnings and errors only from this process's loggers (structlog included)."""
    from config.logs import configure

    configure("console", "WARNING")


# ------------------------------------------------------------------ procedures
def procedure_records(auto_approve: bool = False) -> list[dict[str, Any]]:
    """The procedures of `dunning/data/procedures.yaml` as Avro records. With
    `auto_approve=False` (the benchmarks' default) no procedure executes its proposals in
    the proposal run: the run proposes, `RunApproved` executes."""
    procs = parse_procedures(yaml.safe_load(PROCEDURES_FILE.read_text()))
    if not auto_approve:
        procs = tuple(replace(p, auto_approve=False) for p in procs)
    return [procedure_record(p) for p in procs]


def catalog(settings: Settings, codec: Codec, records: list[dict[str, Any]]) -> Any:
    """A `ProcedureCatalog` holding `records`, ready, as a worker has it after start-up."""
    from processors.procedures import ProcedureCatalog

    cat = ProcedureCatalog(settings, codec)
    for rec in records:
        cat.apply(codec.encode("DunningProcedureDefined", rec))
    cat.ready.set()
    return cat


# ------------------------------------------------------------------ broker, namespace
@contextlib.contextmanager
def broker(workdir: Path) -> Iterator[EmbeddedBroker]:
    """A fresh embedded broker (Tansu, in memory) on a free port, stopped by pid at exit."""
    b = EmbeddedBroker(workdir / "broker", free_port())
    b.start()
    try:
        yield b
    finally:
        b.stop()


def namespace(b: EmbeddedBroker, state_dir: Path, partitions: int = PARTITIONS,
              name: str | None = None) -> Settings:
    """Settings of a fresh namespace: its own topic prefix and app id."""
    name = name or uuid.uuid4().hex[:8]
    return Settings(embedded_port=b.port, app_id=f"bench-{name}", partitions=partitions,
                    topic_prefix=f"b{name}.", state_dir=state_dir, web_port=free_port())


async def provision(settings: Settings, procedures: list[dict[str, Any]] | None = None) -> None:
    """Every topic of the catalogue, and the procedures published."""
    procedures = procedures or procedure_records()
    await apply_topics(settings)
    await publish(settings, [(PROCEDURES_TOPIC, "DunningProcedureDefined", p)
                             for p in procedures], key_field="procedure_id")


# ------------------------------------------------------------------ publishing
Grouped = dict[tuple[str, int], list[tuple[bytes, bytes]]]


def encode_events(codec: Codec, events: Iterable[Event], partitions: dict[str, int],
                  key_field: str = "account_id") -> Grouped:
    """Encode and group by (logical topic, partition) keeping the order within each."""
    out: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
    for topic, rtype, record in events:
        key = str(record.get(key_field) or record.get("run_id")).encode()
        n = partitions.get(topic, 1)
        out[(topic, partition_of(key, n) if n > 1 else 0)].append(
            (key, codec.encode(rtype, record)))
    return out


async def publish(settings: Settings, events: Iterable[Event], key_field: str = "account_id",
                  codec: Codec | None = None) -> int:
    """Publish in batches per partition (`create_batch`/`send_batch`): the fast way."""
    codec = codec or Codec.from_settings(settings)
    from topics.catalogue import BY_NAME

    parts = {name: spec.partition_count(settings.partitions) for name, spec in BY_NAME.items()}
    grouped = encode_events(codec, events, parts, key_field)
    return await publish_encoded(settings, grouped)


async def publish_encoded(settings: Settings, grouped: Grouped) -> int:
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), linger_ms=5,
                                max_batch_size=512 * 1024, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        n = 0
        futures = []
        for (topic, partition), records in grouped.items():
            batch = producer.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, settings.topic(topic),
                                                             partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
                n += 1
            futures.append(await producer.send_batch(batch, settings.topic(topic),
                                                     partition=partition))
        await asyncio.gather(*futures)
        return n
    finally:
        await producer.stop()


# ------------------------------------------------------------------ worker processes
def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """A benchmark worker's environment: auto-approval as set, this checkout first on the
    module path, then `extra`."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return dunning_worker_env(settings, with_auto_approve=True, **{"PYTHONPATH": path, **extra})


@dataclass
class Proc:
    """A benchmark subprocess in a process group of its own, with an HTTP port."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=str(ROOT))
        self.started = time.monotonic()
        return self

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def get(self, path: str, session: Any) -> tuple[int, str]:
        async with session.get(f"http://127.0.0.1:{self.port}{path}") as resp:
            return resp.status, await resp.text()

    async def wait_ready(self, session: Any, path: str = "/health/", timeout: float = 180.0,
                         ) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()}")
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                status, body = await self.get(path, session)
                if status == 200:
                    return time.monotonic() - self.started
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout} s:\n{self.log()}")

    async def counters(self, session: Any) -> dict[str, float]:
        """`GET /metrics/` (Prometheus text format): `{'name{labels}': value}`."""
        _, text = await self.get("/metrics/", session)
        return parse_metrics(text)

    def memory(self) -> dict[str, int]:
        return memory_of(self.pid)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        return code


def worker(settings: Settings, logs: Path, name: str = "worker", **env: str) -> Proc:
    """`python -m dunning worker` with the environment of `settings`."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return Proc(name, [sys.executable, "-m", "dunning", "worker"], worker_env(settings, **env),
                settings.web_port, logs / f"{name}-{settings.web_port}.log")


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name:
            out[name] = float(value)
    return out


def applied_total(counters: dict[str, float], prefix: str = "dunning_applied_total") -> int:
    """The sum of the counters named `prefix` (every label): events applied, by default."""
    return int(sum(v for k, v in counters.items()
                   if k == prefix or k.startswith(prefix + "{")))


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


class RssSampler:
    """Samples VmRSS of some pids every `interval` seconds in a thread: (t, {pid: rss})."""

    def __init__(self, pids: Sequence[int], interval: float = 0.25) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.samples: list[tuple[float, dict[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = time.monotonic()

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample = {}
            for pid in self.pids:
                with contextlib.suppress(OSError, KeyError):
                    sample[pid] = memory_of(pid)["VmRSS"]
            self.samples.append((time.monotonic() - self.t0, sample))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, pid: int) -> int:
        return max((s.get(pid, 0) for _, s in self.samples), default=0)


# ------------------------------------------------------------------ runs topic
class RunsWatcher:
    """Reads `dunning.runs` from its current end, so a run's records are seen the moment
    they arrive. Start it before publishing what starts the run."""

    def __init__(self, settings: Settings, codec: Codec) -> None:
        self.settings = settings
        self.codec = codec
        self.seen: list[tuple[float, str, dict[str, Any]]] = []
        self.consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> RunsWatcher:
        self.consumer = AIOKafkaConsumer(**self.settings.kafka_client_kwargs(),
                                         enable_auto_commit=False, fetch_max_wait_ms=10)
        await self.consumer.start()
        tp = TopicPartition(self.settings.topic(RUNS), 0)
        self.consumer.assign([tp])
        await self.consumer.seek_to_end(tp)
        await self.consumer.position(tp)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.consumer is not None
        await self.consumer.stop()

    async def wait(self, rtype: str, run_id: str, timeout: float) -> tuple[float, dict[str, Any]]:
        """(monotonic time of arrival, record) of the first `rtype` record of `run_id`."""
        assert self.consumer is not None
        deadline = time.monotonic() + timeout
        while True:
            for t, rt, rec in self.seen:
                if rt == rtype and rec.get("run_id") == run_id:
                    return t, rec
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {rtype} for {run_id} in {timeout} s")
            batch = await self.consumer.getmany(timeout_ms=50)
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    rt, rec = self.codec.decode(r.value)
                    self.seen.append((now, rt, rec))


# ------------------------------------------------------------------ profiles
class PySpy:
    """`py-spy record --format raw` of a pid until stopped (SIGINT makes it write)."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.out = out
        # py-spy beside this Python (a venv not activated), else on the PATH
        beside = Path(sys.executable).parent / "py-spy"
        self.argv = [str(beside) if beside.exists() else "py-spy", "record", "--pid", str(pid),
                     "--format", "raw", "--rate", str(rate), "-o", str(out)]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PySpy:
        if shutil.which(self.argv[0]) is None:
            raise RuntimeError("py-spy is not installed: pip install -e '.[bench]'")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(0.5)  # attached
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


# ------------------------------------------------------------------ reporting
def machine() -> dict[str, Any]:
    """The machine and the code measured (commit, and whether the engine's files differ
    from it: other engineers change them while benchmarks run)."""
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "engine_changes_uncommitted": git("status", "--porcelain", "--", "processors",
                                              "domain", "dunning", "topics").splitlines(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "mem_total_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                   / 2**30, 1)}


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


@dataclass
class Timer:
    start: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return time.monotonic() - self.start


def workdir(name: str) -> Path:
    """A scratch directory of this process under bench-results/tmp (several benchmarks
    may run at once): `<name>-<pid>`, emptied first."""
    path = RESULTS / "tmp" / f"{name}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def drop_state(path: Path) -> None:
    """Remove the state dirs (RocksDB copies) under a workdir; logs and the broker's dir
    (its pid file: the broker is stopped by it) stay."""
    for child in path.iterdir():
        if child.is_dir() and child.name not in ("logs", "broker"):
            shutil.rmtree(child, ignore_errors=True)
