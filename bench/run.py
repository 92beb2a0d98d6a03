"""Proposal-run benchmark: the backlog run, the activity run and the next day's run over
100k, 300k and 1M accounts in state, on one and on two workers.

For every size N (and worker count), on a fresh embedded broker and namespace:

1. state: N accounts (`bench.gen`, about 3 items each) bulk-loaded into each worker's
   RocksDB table partitions (`bench.bulk`, cached; every worker gets all partitions, as
   Faust assigns partitions only at join time); worker(s) started, ready, partitions
   assigned;
2. backlog run: publish `PaymentRunCompleted` (as of 2026-11-20, most accounts overdue,
   about 65 % get a proposal), time until `ProposalRunCompleted` arrives on `dunning.runs`;
   then the DuckDB baseline (`bench.duckdb_stage1`): the same bulk state exported to
   Parquet (not timed), stage 1 as one SQL query over it (timed), its proposal count
   checked equal to the run's (the benchmark exits non-zero if not);
3. activity run: publish `RunApproved` for that run, time until `ActivityRunCompleted`;
4. daily run: the next day's payment run changes 2 % of the accounts (payments of an
   invoice, new invoices; published and applied first, timed apart), then
   `PaymentRunCompleted` as of the day after: time until `ProposalRunCompleted`. Only
   the accounts whose next rule day has come are evaluated (the due index).

Memory: VmHWM (peak RSS) and VmRSS of each worker from /proc/<pid>/status after each
phase, and bytes per account of state. Procedures: `dunning/data/procedures.yaml` with
`auto_approve` off, so the proposal run only proposes and `RunApproved` executes.

    python -m bench.run [--accounts 100000 300000 1000000] [--workers 1 2] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import bulk, common, duckdb_stage1, gen
from config.settings import Settings
from domain.dates import to_day
from dunning.sample import eid
from processors import faust_private
from schemas.codec import Codec
from topics.broker import free_port

TARGETS = {
    "daily_s (1 worker)": 1.5,
    "backlog_s at 1M (1 worker)": 20.0,
    "backlog_s at 1M (2 workers)": 12.0,
    "bytes per account": 256,
}


async def settle(workers: list[common.Proc], session: aiohttp.ClientSession,
                 timeout: float = 120.0) -> float:
    """Wait until every worker is ready and the assignment (`GET /router/`) names every
    worker and stays the same for 3 s. Returns the seconds it took."""
    t0 = time.monotonic()
    for w in workers:
        await w.wait_ready(session, timeout=timeout)
    if len(workers) == 1:
        return time.monotonic() - t0
    stable_since, last = 0.0, None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, body = await workers[0].get("/router/", session)
            routes = json.loads(body)
            ready = [(await w.get("/health/", session))[0] == 200 for w in workers]
        except (TimeoutError, OSError, ValueError):
            routes, ready = None, [False]
        key = json.dumps(routes, sort_keys=True)
        if routes and len(routes) == len(workers) and all(ready):
            if key != last:
                stable_since, last = time.monotonic(), key
            elif time.monotonic() - stable_since >= 3.0:
                return time.monotonic() - t0
        else:
            last = None
        await asyncio.sleep(0.25)
    raise TimeoutError("the workers' assignment did not settle")


async def applied(workers: list[common.Proc], session: aiohttp.ClientSession) -> int:
    total = 0
    for w in workers:
        counters = await w.counters(session)
        total += common.applied_total(counters) + common.applied_total(
            counters, "dunning_dead_letters_total")
    return total


async def drained(settings: Settings, since: float, timeout: float,
                  quiet: float = 1.5) -> float:
    """Seconds from `since` until the worker's table changelogs stop growing (no new
    record for `quiet` s): Faust sends a changelog record per table write through a
    buffer it drains one record at a time, so a worker stays busy after a run's last
    record is out. The quiet time is not counted."""
    tables = ("accounts", "due_index", "work_index", "runs")
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = []
        for t in tables:
            name = f"{settings.app_id}-{t}-changelog"
            parts = consumer.partitions_for_topic(name)
            if not parts:
                await faust_private.refresh_metadata(consumer)
                parts = consumer.partitions_for_topic(name) or set()
            tps += [TopicPartition(name, p) for p in parts]
        last, changed = None, time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ends = await consumer.end_offsets(tps) if tps else {}
            now = time.monotonic()
            if ends != last:
                last, changed = ends, now
            elif now - changed >= quiet:
                return round(max(0.0, changed - since), 3)
            await asyncio.sleep(0.1)
        raise TimeoutError("the changelogs did not settle")
    finally:
        await consumer.stop()


def memory(workers: list[common.Proc]) -> list[dict[str, int]]:
    return [w.memory() for w in workers]


class Profiler:
    """py-spy on the first worker during a phase, when asked for."""

    def __init__(self, enabled: bool, workers: list[common.Proc], stem: str) -> None:
        self.enabled, self.workers, self.stem = enabled, workers, stem

    def phase(self, name: str) -> Any:
        if not self.enabled:
            return _Null()
        return _Phase(self.workers[0].pid, common.RESULTS / f"{self.stem}-{name}")


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


class _Phase:
    def __init__(self, pid: int, stem: Path) -> None:
        self.stem = stem
        self.spy = common.PySpy(pid, stem.with_name(stem.name + ".collapsed"))

    def __enter__(self) -> None:
        self.spy.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.spy.__exit__(*exc)
        from bench import profiles

        profiles.report(self.spy.out, self.stem, self.stem.name)


async def _backlog(settings: Settings, runs: common.RunsWatcher, prof: Profiler,
                   workers: list[common.Proc], args: argparse.Namespace,
                   result: dict[str, Any]) -> dict[str, Any]:
    """The backlog run: the proposal run of the bulk state's payment run."""
    _, _, pr = gen.payment_run(gen.AS_OF)
    with prof.phase("backlog"):
        t0 = time.monotonic()
        await common.publish(settings, [gen.payment_run(gen.AS_OF)])
        t1, done = await runs.wait("ProposalRunCompleted", f"{pr['run_id']}/1", args.timeout)
    result["backlog"] = _run_result(t1 - t0, done)
    result["backlog"]["drained_s"] = await drained(settings, t0, args.timeout)
    result["memory_backlog"] = memory(workers)
    print(f"  backlog run: {result['backlog']}", flush=True)
    return done


async def _duckdb(cached: Path, partitions: int, result: dict[str, Any]) -> None:
    """Stage 1 in DuckDB on the same bulk state as the backlog run, its count checked."""
    _, _, pr = gen.payment_run(gen.AS_OF)
    backlog = result["backlog"]
    out = await asyncio.to_thread(
        duckdb_stage1.baseline, cached, partitions, to_day(gen.AS_OF), f"{pr['run_id']}/1",
        backlog["proposals"], backlog["seconds"])
    result["duckdb"] = out
    print(f"  duckdb stage 1: {out['proposals']} proposals in {out['seconds']} s "
          f"({out['threads']} threads); worker / duckdb: {out['worker_over_duckdb']}", flush=True)
    if not out["equal"]:
        print(f"  MISMATCH: duckdb stage 1 gave {out['proposals']} proposals, the worker "
              f"{backlog['proposals']}", flush=True)


async def _activity(settings: Settings, runs: common.RunsWatcher, prof: Profiler,
                    workers: list[common.Proc], run_id: str, args: argparse.Namespace,
                    result: dict[str, Any]) -> None:
    """The activity run: the backlog run approved."""
    with prof.phase("activity"):
        t0 = time.monotonic()
        await common.publish(settings, [(
            "dunning.decisions", "RunApproved", {
                "event_id": eid("approve", run_id), "run_id": run_id,
                "decided_by": "bench"})], key_field="run_id")
        t1, act = await runs.wait("ActivityRunCompleted", run_id, args.timeout)
    result["activity"] = {
        "seconds": round(t1 - t0, 3), "notices": act["notices"],
        "commands": act["commands"],
        "notices_per_s": round(act["notices"] / (t1 - t0), 1),
        "drained_s": await drained(settings, t0, args.timeout)}
    result["memory_activity"] = memory(workers)
    print(f"  activity run: {result['activity']}", flush=True)


async def _daily(settings: Settings, runs: common.RunsWatcher, prof: Profiler,
                 workers: list[common.Proc], session: aiohttp.ClientSession, n: int, k: int,
                 label: str, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Day `k` after the backlog: its payments and invoices, then its proposal run."""
    day = gen.AS_OF + timedelta(days=k)
    changes = [e for i in range(n) for e in
               gen.daily_events(i, args.seed, gen.AS_OF, day, args.share)]
    before = await applied(workers, session)
    t0 = time.monotonic()
    await common.publish(settings, changes)
    while await applied(workers, session) < before + len(changes):
        if time.monotonic() - t0 > args.timeout:
            raise TimeoutError("daily changes not applied")
        await asyncio.sleep(0.05)
    result[f"{label}_ingest"] = {
        "events": len(changes), "seconds": round(time.monotonic() - t0, 3)}
    _, _, pr2 = gen.payment_run(day)
    with prof.phase(label):
        t0 = time.monotonic()
        await common.publish(settings, [gen.payment_run(day)])
        t1, done2 = await runs.wait("ProposalRunCompleted", f"{pr2['run_id']}/1", args.timeout)
    result[label] = _run_result(t1 - t0, done2)
    result[label]["drained_s"] = await drained(settings, t0, args.timeout)
    result[f"memory_{label}"] = memory(workers)
    print(f"  {label} run ({day}): {result[label]} after "
          f"{result[f'{label}_ingest']}", flush=True)


async def one(n: int, n_workers: int, args: argparse.Namespace) -> dict[str, Any]:
    spec = bulk.Spec(n, args.seed, partitions=args.partitions, indexed=args.indexed)
    t = common.Timer()
    cached, info = bulk.cached_state(spec)
    load_s = t()
    work = common.workdir(f"run-{n}-{n_workers}w")
    result: dict[str, Any] = {"accounts": n, "workers": n_workers, "seed": args.seed,
                              "partitions": args.partitions, "bulk": info,
                              "bulk_or_cache_s": round(load_s, 2), "profiled": args.profile}
    codec = Codec.from_settings(Settings())
    with common.broker(work) as b:
        settings = common.namespace(b, work / "ns", args.partitions)
        await common.provision(settings)
        workers = []
        copy_s = 0.0
        for k in range(n_workers):
            wset = replace(settings, web_port=free_port(), state_dir=work / f"w{k}")
            copy_s += bulk.install(cached, wset.state_dir)
            workers.append(common.worker(wset, work / "logs", f"worker{k}"))
        result["copy_state_s"] = round(copy_s, 2)
        prof = Profiler(args.profile, workers, f"run-{n}-{n_workers}w")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                t = common.Timer()
                for w in workers:
                    w.start()
                result["start_s"] = round(await settle(workers, session), 2)
                result["memory_idle"] = memory(workers)
                print(f"  {n:,} accounts, {n_workers} worker(s): ready in "
                      f"{result['start_s']} s, RSS "
                      f"{[m['VmRSS'] // 2**20 for m in result['memory_idle']]} MiB", flush=True)
                async with common.RunsWatcher(settings, codec) as runs:
                    done = await _backlog(settings, runs, prof, workers, args, result)
                    await _duckdb(cached, args.partitions, result)
                    if not args.no_activity:
                        await _activity(settings, runs, prof, workers, done["run_id"], args,
                                        result)
                    for k, label in ((1, "daily"), (2, "daily2"))[:0 if args.no_daily else 2]:
                        await _daily(settings, runs, prof, workers, session, n, k, label, args,
                                     result)
        finally:
            for w in workers:
                w.stop()
            if not args.keep:
                common.drop_state(work)
    result["workdir"] = str(work)
    return result


def _run_result(seconds: float, done: dict[str, Any]) -> dict[str, Any]:
    return {"seconds": round(seconds, 3), "accounts_evaluated": done["accounts_evaluated"],
            "proposals": done["proposals"],
            "unknown_procedure": done["accounts_unknown_procedure"],
            "accounts_per_s": round(done["accounts_evaluated"] / seconds, 1)}


def peak(result: dict[str, Any]) -> int:
    """Peak RSS over every phase, summed over the workers (each holds its share of the
    accounts)."""
    phases = [m for k, m in result.items() if k.startswith("memory_")]
    return sum(max(m[w]["VmHWM"] for m in phases) for w in range(result["workers"]))


def idle(result: dict[str, Any]) -> int:
    """RSS with the state loaded, before any run, summed over the workers."""
    return sum(m["VmRSS"] for m in result["memory_idle"])


def rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    out = []
    for r in results:
        n = r["accounts"]
        hwm = peak(r)
        rss = idle(r)

        def get(phase: str, key: str, r: dict[str, Any] = r) -> Any:
            return r.get(phase, {}).get(key, "")

        out.append([
            n, r["workers"], get("backlog", "seconds"), get("backlog", "drained_s"),
            get("backlog", "accounts_evaluated"), get("backlog", "proposals"),
            get("duckdb", "seconds"), get("duckdb", "worker_over_duckdb"),
            get("activity", "seconds"), get("activity", "drained_s"), get("activity", "notices"),
            get("daily", "seconds"), get("daily", "drained_s"), get("daily", "accounts_evaluated"),
            get("daily2", "seconds"), get("daily2", "drained_s"),
            get("daily2", "accounts_evaluated"),
            f"{rss / 2**20:.0f}", f"{hwm / 2**20:.0f}", round(rss / n), round(hwm / n),
        ])
    return out


HEADERS = ["accounts", "workers", "backlog s", "drained s", "evaluated", "proposals",
           "duckdb s", "worker/duckdb",
           "activity s", "drained s", "notices", "day+1 s", "drained s", "evaluated",
           "day+2 s", "drained s", "evaluated", "RSS before MiB", "peak RSS MiB",
           "before B/acct", "peak B/acct"]
"""Memory columns are summed over the workers."""


def marginal(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Memory per extra account between the smallest and the largest size (1 worker)."""
    one = sorted((r for r in results if r["workers"] == 1), key=lambda r: r["accounts"])
    if len(one) < 2:
        return {}
    a, b = one[0], one[-1]
    dn = b["accounts"] - a["accounts"]
    return {"peak_bytes_per_extra_account": round((peak(b) - peak(a)) / dn, 1),
            "idle_bytes_per_extra_account": round((idle(b) - idle(a)) / dn, 1)}


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for w in sorted({r["workers"] for r in results}):
        rs = sorted((r for r in results if r["workers"] == w), key=lambda r: r["accounts"])
        xs = [r["accounts"] for r in rs]
        for phase, style in (("backlog", "o-"), ("activity", "s--"), ("daily", "^:"),
                             ("daily2", "v:")):
            ys = [r.get(phase, {}).get("seconds") for r in rs]
            if any(y is not None for y in ys):
                ax1.plot(xs, ys, style, label=f"{phase}, {w} worker{'s' * (w > 1)}")
        ys = [r.get("duckdb", {}).get("seconds") for r in rs]
        if any(y is not None for y in ys):
            ax1.plot(xs, ys, "d-.", label=f"duckdb stage 1 (baseline of the {w}-worker run)")
        ax2.plot(xs, [peak(r) / r["accounts"] for r in rs], "o-",
                 label=f"peak RSS / account, {w} worker{'s' * (w > 1)} (summed)")
        ax2.plot(xs, [idle(r) / r["accounts"] for r in rs], "x--",
                 label=f"RSS before the runs / account, {w} w")
    ax1.axhline(20, color="r", lw=0.8, ls="--", label="backlog target at 1M, 1 worker")
    ax1.axhline(1.5, color="m", lw=0.8, ls="--", label="daily target")
    ax1.set_xlabel("accounts")
    ax1.set_ylabel("seconds")
    ax1.set_yscale("log")
    ax1.set_title("run time")
    ax1.legend(fontsize=7)
    ax2.axhline(256, color="r", lw=0.8, ls="--", label="target 256 B")
    ax2.set_xlabel("accounts")
    ax2.set_ylabel("bytes per account")
    ax2.set_yscale("log")
    ax2.set_title("worker memory per account")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=common.PARTITIONS)
    ap.add_argument("--share", type=float, default=0.02,
                    help="share of the accounts the next day's payment run changes")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--indexed", action="store_true",
                    help="state as after an earlier run (the backlog run uses the due index "
                    "instead of looking at every account, as the first run after ingest does)")
    ap.add_argument("--no-activity", action="store_true",
                    help="no activity run (the daily runs follow the unapproved backlog run)")
    ap.add_argument("--no-daily", action="store_true", help="no daily runs")
    ap.add_argument("--keep", action="store_true",
                    help="keep the workers' state dirs (bench-results/tmp/)")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy on the first worker during each phase (slows it)")
    ap.add_argument("--name", default="run", help="results file name stem")
    ap.add_argument("--from-json", type=Path, nargs="+",
                    help="no benchmark: table and plot of earlier results (merged)")
    args = ap.parse_args()
    common.quiet()
    results = []
    if args.from_json:
        for path in args.from_json:
            results += json.loads(path.read_text())["results"]
        results.sort(key=lambda r: (r["workers"], r["accounts"]))
    for n, w in [] if args.from_json else [(n, w) for n in args.accounts for w in args.workers]:
        print(f"{n:,} accounts, {w} worker(s)", flush=True)
        results.append(asyncio.run(one(n, w, args)))
        if not results[-1]["duckdb"]["equal"]:
            break
    print()
    print(common.table(rows(results), HEADERS))
    m = marginal(results)
    if m:
        print(f"\nmarginal memory per account (1 worker, {results[0]['accounts']:,} → "
              f"largest): peak {m['peak_bytes_per_extra_account']} B, "
              f"idle {m['idle_bytes_per_extra_account']} B")
    print("\ntargets: " + "; ".join(f"{k} <= {v}" for k, v in TARGETS.items()))
    data = {"benchmark": "run", "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": common.machine(), "targets": TARGETS, "results": results,
            "marginal_memory": m}
    path = common.write_json(args.name, data)
    plot(results, common.RESULTS / f"{args.name}.png")
    print(f"results: {path} and {args.name}.png")
    unequal = [r for r in results if not r.get("duckdb", {}).get("equal", True)]
    for r in unequal:
        print(f"FAILED: at {r['accounts']:,} accounts ({r['workers']} worker(s)) duckdb stage 1 "
              f"gave {r['duckdb']['proposals']} proposals, the worker's backlog run "
              f"{r['backlog']['proposals']}", file=sys.stderr)
    if unequal:
        sys.exit(1)


if __name__ == "__main__":
    main()
