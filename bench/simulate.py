"""Simulation benchmark: how fast `dunning runs simulate` evaluates a copy of the state,
and how much it slows a worker's ingest on the same machine.

On a fresh embedded broker: N accounts' events (`bench.gen`) are published, and a worker
("state") ingests them, which fills the accounts table's changelog, the copy a
simulation reads. Then, one after the other, a fresh worker ingests the same events from
the start (its own app id and state):

* alone      – nothing else running;
* simulating – `dunning runs simulate` against the state worker's changelog, again and
               again (at its default idle CPU priority) for as long as the ingest lasts;
* burning    – the control: a process that only burns CPU, at the same priority;

each once per round (`--rounds`, 3), in turn; the medians are compared.

Prints the ingest rates, the slowdowns (1 - median rate / median alone) and the
simulation's own seconds and accounts per second. On a machine of two cores any busy
second process slows the worker; the control says how much of the slowdown is that.

    python -m bench.simulate [--accounts 30000] [--seed 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import common, gen
from bench.ingest import counted, publish_events
from schemas.codec import Codec
from topics.broker import free_port

TARGET = 0.05
"""At most a few per cent slower ingest while simulations run (issue 18)."""


BURN = ("import os\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
        "while True:\n    pass\n")
"""The control: a process that only burns CPU, at the simulation's (idle) priority."""


class Simulations:
    """`dunning runs simulate` of one namespace, one after the other, in the background."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.argv = [sys.executable, "-m", "dunning", "runs", "simulate", "--as-of",
                     gen.AS_OF.isoformat(), "--json", "--quiet"]
        self.env = env
        self.log = log
        self.seconds: list[float] = []
        self._stop = False

    def once(self) -> float:
        started = time.monotonic()
        with open(self.log, "ab") as err:
            subprocess.run(self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=err,
                           check=True, cwd=str(common.ROOT), timeout=600)
        return time.monotonic() - started

    async def loop(self) -> None:
        while not self._stop:
            self.seconds.append(await asyncio.to_thread(self.once))

    def restart(self) -> None:
        self._stop = False

    def stop(self) -> None:
        self._stop = True


async def _ingest(settings: Any, work: Path, name: str, total: int,
                  timeout: float) -> dict[str, Any]:
    wset = replace(settings, app_id=f"{settings.app_id}-{name}", web_port=free_port(),
                   state_dir=work / name)
    result = await counted(common.worker(wset, work / "logs", name), total, timeout)
    common.drop_state(wset.state_dir)
    return result


async def _simulating(settings: Any, work: Path, name: str, total: int, timeout: float,
                      sims: Simulations) -> dict[str, Any]:
    sims.restart()
    loop = asyncio.create_task(sims.loop())
    try:
        return await _ingest(settings, work, name, total, timeout)
    finally:
        sims.stop()
        await loop


async def _burning(settings: Any, work: Path, name: str, total: int,
                   timeout: float) -> dict[str, Any]:
    burner = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        return await _ingest(settings, work, name, total, timeout)
    finally:
        burner.kill()
        burner.wait()


async def _rounds(settings: Any, work: Path, total: int, args: argparse.Namespace,
                  sims: Simulations) -> dict[str, list[dict[str, Any]]]:
    """Each phase once per round, in turn, so a change of the machine's load over the
    benchmark touches every phase alike."""
    phases: dict[str, list[dict[str, Any]]] = {"alone": [], "simulating": [], "burning": []}
    for r in range(args.rounds):
        for name in phases:
            label = f"{name}-{r}"
            if name == "simulating":
                got = await _simulating(settings, work, label, total, args.timeout, sims)
            elif name == "burning":
                got = await _burning(settings, work, label, total, args.timeout)
            else:
                got = await _ingest(settings, work, label, total, args.timeout)
            phases[name].append(got)
            print(f"round {r + 1}: {name} {got['events_per_s']:,.0f} events/s", flush=True)
    return phases


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = common.workdir("simulate")
    with common.broker(work) as b:
        settings = common.namespace(b, work / "ns", args.partitions)
        await common.provision(settings)
        total, _, _ = await publish_events(settings, Codec.from_settings(settings), args)
        state = replace(settings, app_id=f"{settings.app_id}-state")
        await _ingest(settings, work, "state", total, args.timeout)
        sims = Simulations(common.worker_env(state), work / "logs" / "simulate.log")
        alone_sim = await asyncio.to_thread(sims.once)  # the simulation on an idle machine
        print(f"simulation alone: {alone_sim:.2f} s", flush=True)
        phases = await _rounds(settings, work, total, args, sims)
    common.drop_state(work)
    rate = {name: statistics.median(p["events_per_s"] for p in runs)
            for name, runs in phases.items()}
    slowdown = 1 - rate["simulating"] / rate["alone"]
    burning = 1 - rate["burning"] / rate["alone"]
    return {
        "benchmark": "simulate", "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": common.machine(), "accounts": args.accounts, "seed": args.seed,
        "partitions": args.partitions, "events": total, "rounds": args.rounds,
        "phases": phases, "median_events_per_s": rate,
        "simulation_alone_s": round(alone_sim, 2),
        "simulation_accounts_per_s": round(args.accounts / alone_sim),
        "simulations_during_ingest": len(sims.seconds),
        "simulation_during_ingest_s": [round(s, 2) for s in sims.seconds],
        "ingest_slowdown": round(slowdown, 4),
        "ingest_slowdown_cpu_burner": round(burning, 4),
        "target": {"slowdown <=": TARGET, "met": slowdown <= TARGET},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=common.PARTITIONS)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    common.quiet()
    results = asyncio.run(main_async(args))
    rows = [[name, len(runs), ", ".join(f"{p['events_per_s']:,.0f}" for p in runs),
             f"{results['median_events_per_s'][name]:,.0f}"]
            for name, runs in results["phases"].items()]
    print()
    print(common.table(rows, ["ingest", "rounds", "events/s", "median events/s"]))
    print(f"\nsimulation of {results['accounts']:,} accounts: {results['simulation_alone_s']} s "
          f"alone ({results['simulation_accounts_per_s']:,} accounts/s); "
          f"{results['simulations_during_ingest']} ran during the ingest "
          f"({', '.join(map(str, results['simulation_during_ingest_s']))} s)")
    print(f"ingest slowdown while simulating: {results['ingest_slowdown']:.1%} "
          f"(target <= {TARGET:.0%}: {'met' if results['target']['met'] else 'MISSED'}); "
          f"{os.cpu_count()} cores; with a process that only burns CPU at the same priority: "
          f"{results['ingest_slowdown_cpu_burner']:.1%}")
    path = common.write_json(f"simulate-{results['accounts']}", results)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
