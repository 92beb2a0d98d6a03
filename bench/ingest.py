"""Ingest benchmark: events per second applied to account state by one worker, against
its baselines, in the same run, on the same data.

On a fresh embedded broker and a fresh namespace: N accounts' events (`bench.gen`: invoices
of 1–3 items, full, partial and unallocated payments, due-date changes, locks) are
Avro-encoded with `schemas.codec.Codec` and published in batches per partition to the
four account input topics. Then, one after the other, each reading every event from the
start:

* raw     – an `AIOKafkaConsumer` (`getmany`), nothing else;
* raw+dec – the same, plus `Codec.decode` of every value;
* faust   – `bench/faust_baseline.py`: a Faust agent with the worker's settings that only
            decodes and counts (a subprocess, counters on `GET /metrics/`); and the same
            over `stream.take(1000)` batches (`--take`, to show what batching buys);
* worker  – `python -m dunning worker` with an empty state dir: events applied to account
            state (`dunning_applied_total` of `GET /metrics/`).

Rate = events / seconds from the first to the last event seen (counters polled every 0.2 s;
process start-up and group join are left out and shown apart). With `--profile`, the
worker phase runs a second time under py-spy (so the measured rate stays unperturbed).

    python -m bench.ingest [--accounts 30000] [--seed 1] [--take 1000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import common, gen, profiles
from config.settings import Settings
from schemas.codec import Codec
from topics import catalogue as cat
from topics.broker import free_port

TARGET = 1.0
"""Worker ingest rate / Faust decode-and-count rate (developers' guide)."""
POLL = 0.2
"""Seconds between two reads of the counters: the worker's `/metrics/` is not free (table
sizes from RocksDB, consumer lag); at 50 ms it took about 5 % of the worker."""


async def raw_consume(settings: Settings, total: int, decode: Codec | None) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    t_start = time.monotonic()
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic(t), p) for t in cat.ACCOUNT_INPUTS
               for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        n = 0
        first = last = 0.0
        while n < total:
            batch = await consumer.getmany(timeout_ms=200, max_records=10000)
            for records in batch.values():
                if records and not first:
                    first = time.monotonic()
                if decode is not None:
                    for r in records:
                        decode.decode(r.value)
                n += len(records)
            last = time.monotonic()
        return _result(n, first, last, t_start)
    finally:
        await consumer.stop()


def _result(n: int, first: float, last: float, t_start: float,
            samples: list[tuple[float, int]] | None = None) -> dict[str, Any]:
    span = max(last - first, 1e-9)
    return {"events": n, "seconds": round(span, 3), "events_per_s": round(n / span, 1),
            "startup_s": round(first - t_start, 2), "samples": samples or []}


async def counted(proc: common.Proc, total: int, timeout: float,
                  on_ready: Any = None) -> dict[str, Any]:
    """Start `proc`, poll its counters every `POLL` s until they reach `total`."""
    samples: list[tuple[float, int]] = []
    t_start = time.monotonic()
    proc.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            await proc.wait_ready(session, "/metrics/")
            if on_ready is not None:
                on_ready()
            deadline = time.monotonic() + timeout
            first = 0.0
            first_count = 0
            while True:
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited:\n{proc.log()}")
                counters = await proc.counters(session)
                now = time.monotonic()
                n = common.applied_total(counters) + common.applied_total(
                    counters, "dunning_dead_letters_total")
                samples.append((round(now - t_start, 3), n))
                if n and not first:
                    first, first_count = now, n
                if n >= total:
                    break
                if now > deadline:
                    raise TimeoutError(f"{proc.name}: {n} of {total} in {timeout} s")
                await asyncio.sleep(POLL)
            memory = proc.memory()
            dead = common.applied_total(counters, "dunning_dead_letters_total")
    finally:
        proc.stop()
    span = max(now - first, 1e-9)
    # The first sample already holds events applied since the previous poll: count the
    # events after it over the time after it.
    rate = (n - first_count) / span if n > first_count else float("nan")
    return {"events": n, "dead_letters": dead, "seconds": round(span, 3),
            "events_per_s": round(rate, 1), "startup_s": round(first - t_start, 2),
            "rss_bytes": memory.get("VmRSS"), "peak_rss_bytes": memory.get("VmHWM"),
            "samples": samples}


def plot(results: dict[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [k for k in results["phases"] if "py-spy" not in k]
    rates = [results["phases"][k]["events_per_s"] for k in names]
    bars = ax1.bar(names, rates, color=["#c53" if k == "worker" else "#4a7"
                                        if k.startswith("faust") else "#888" for k in names])
    ax1.tick_params(axis="x", labelsize=8)
    ax1.bar_label(bars, labels=[f"{r:,.0f}" for r in rates])
    ax1.set_ylabel("events / s")
    ax1.set_yscale("log")
    ax1.set_title(f"ingest, {results['events']:,} events ({results['accounts']:,} accounts)")
    for k in ("faust", "worker"):
        samples = results["phases"].get(k, {}).get("samples")
        if samples:
            t0 = next((t for t, n in samples if n), 0.0)
            ax2.plot([t - t0 for t, n in samples if n], [n for t, n in samples if n], label=k)
    ax2.set_xlabel("seconds since the first event")
    ax2.set_ylabel("events applied")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def publish_events(settings: Settings, codec: Codec,
                         args: argparse.Namespace) -> tuple[int, dict[str, int], dict[str, float]]:
    """Generate, encode and publish the accounts' events: how many, the record type mix, and
    the seconds of each step."""
    t = common.Timer()
    events = list(gen.events(range(args.accounts), args.seed))
    t_gen = t()
    parts = {name: spec.partition_count(settings.partitions)
             for name, spec in cat.BY_NAME.items()}
    t = common.Timer()
    grouped = common.encode_events(codec, events, parts)
    t_enc = t()
    t = common.Timer()
    total = await common.publish_encoded(settings, grouped)
    t_pub = t()
    mix: dict[str, int] = {}
    for _, rtype, _ in events:
        mix[rtype] = mix.get(rtype, 0) + 1
    print(f"{total:,} events of {args.accounts:,} accounts: generated {t_gen:.1f} s, "
          f"encoded {t_enc:.1f} s, published {t_pub:.1f} s ({total / t_pub:,.0f}/s)",
          flush=True)
    return total, mix, {"generate_s": t_gen, "encode_s": t_enc, "publish_s": t_pub}


def _baseline(settings: Settings, name: str, log: Path, **extra: str) -> common.Proc:
    """The plain Faust baseline (bench.faust_baseline) under its own app id and port."""
    return common.Proc(name, [sys.executable, "-m", "bench.faust_baseline"],
                       common.worker_env(settings, **extra), settings.web_port, log)


async def _profiled(settings: Settings, work: Path, logs: Path, total: int,
                    args: argparse.Namespace, phases: dict[str, Any]) -> None:
    """The baseline and the worker again under py-spy, with a flame graph report each."""
    for label, argv_name in (("faust", "baseline"), ("worker", "worker")):
        pset = replace(settings, app_id=f"{settings.app_id}-profiled-{argv_name}",
                       web_port=free_port(), state_dir=work / f"profiled-{argv_name}")
        if argv_name == "worker":
            proc = common.worker(pset, logs, "profiled")
        else:
            proc = _baseline(pset, "faust-profiled", logs / "faust-profiled.log")
        raw = common.RESULTS / f"ingest-{argv_name}-profile.collapsed"
        spy: list[common.PySpy] = []

        def attach(proc: common.Proc = proc, raw: Any = raw,
                   spy: list[common.PySpy] = spy) -> None:
            spy.append(common.PySpy(proc.pid, raw).__enter__())

        try:
            phases[f"{label} (py-spy)"] = await counted(proc, total, args.timeout * 2,
                                                        on_ready=attach)
        finally:
            for sp in spy:
                sp.__exit__(None, None, None)
        profiles.report(raw, common.RESULTS / f"ingest-{argv_name}-profile",
                        f"ingest, {label}, {total:,} events")


async def _phases(settings: Settings, codec: Codec, work: Path, total: int,
                  args: argparse.Namespace) -> dict[str, Any]:
    """Reading the events back: raw, raw and decoded, Faust, the worker (and profiled)."""
    phases: dict[str, Any] = {}
    phases["raw"] = await raw_consume(settings, total, None)
    print("raw", phases["raw"]["events_per_s"], flush=True)
    phases["raw+decode"] = await raw_consume(settings, total, codec)
    print("raw+decode", phases["raw+decode"]["events_per_s"], flush=True)
    logs = work / "logs"
    base = replace(settings, app_id=settings.app_id + "-baseline", web_port=free_port(),
                   state_dir=work / "baseline")
    baseline = _baseline(base, "faust", logs / "faust-baseline.log")
    phases["faust"] = await counted(baseline, total, args.timeout)
    print("faust", phases["faust"]["events_per_s"], flush=True)
    if args.take:
        tset = replace(settings, app_id=settings.app_id + "-take", web_port=free_port(),
                       state_dir=work / "take")
        taker = _baseline(tset, "faust-take", logs / "faust-take.log",
                          BENCH_BASELINE_TAKE=str(args.take))
        phases[f"faust take({args.take})"] = await counted(taker, total, args.timeout)
        print("faust take", phases[f"faust take({args.take})"]["events_per_s"], flush=True)
    wset = replace(settings, web_port=free_port(), state_dir=work / "worker")
    phases["worker"] = await counted(common.worker(wset, logs), total, args.timeout)
    print("worker", phases["worker"]["events_per_s"], flush=True)
    if args.profile:
        await _profiled(settings, work, logs, total, args, phases)
    return phases


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = common.workdir("ingest")
    with common.broker(work) as b:
        settings = common.namespace(b, work / "ns", args.partitions)
        await common.provision(settings)
        codec = Codec.from_settings(settings)
        total, mix, seconds = await publish_events(settings, codec, args)
        phases = await _phases(settings, codec, work, total, args)
    common.drop_state(work)
    w, f = phases["worker"]["events_per_s"], phases["faust"]["events_per_s"]
    return {
        "benchmark": "ingest", "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": common.machine(), "accounts": args.accounts, "seed": args.seed,
        "partitions": args.partitions, "events": total, "mix": mix,
        **{name: round(value, 2) for name, value in seconds.items()},
        "phases": phases,
        "ratios": {"worker/faust": round(w / f, 3),
                   "worker/raw": round(w / phases["raw"]["events_per_s"], 4),
                   "worker/raw+decode": round(w / phases["raw+decode"]["events_per_s"], 4),
                   "faust/raw": round(f / phases["raw"]["events_per_s"], 4)},
        "target": {"worker/faust >=": TARGET, "met": w / f >= TARGET},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=30_000)
    ap.add_argument("--take", type=int, default=1000,
                    help="also a Faust baseline over stream.take(N) batches (0: not)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=common.PARTITIONS)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--profile", action="store_true",
                    help="run the worker phase again under py-spy; write the profile")
    args = ap.parse_args()
    common.quiet()
    results = asyncio.run(main_async(args))
    rows = []
    for name, ph in results["phases"].items():
        rows.append([name, ph["events"], ph["seconds"], ph["events_per_s"],
                     ph.get("startup_s", ""),
                     f"{ph['peak_rss_bytes'] / 2**20:.0f}" if ph.get("peak_rss_bytes") else ""])
    print()
    print(common.table(rows, ["consumer", "events", "seconds", "events/s", "start-up s",
                              "peak RSS MiB"]))
    r = results["ratios"]
    print(f"\nworker / faust decode-and-count = {r['worker/faust']:.3f} "
          f"(target >= {TARGET}: {'met' if results['target']['met'] else 'MISSED'}); "
          f"worker / raw = {r['worker/raw']:.4f}; worker / raw+decode = "
          f"{r['worker/raw+decode']:.4f}; faust / raw = {r['faust/raw']:.4f}")
    name = f"ingest-{results['accounts']}"
    path = common.write_json(name, results)
    plot(results, common.RESULTS / f"{name}.png")
    print(f"results: {path} and {name}.png")


if __name__ == "__main__":
    main()
