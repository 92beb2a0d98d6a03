"""`dunning runs simulate --as-of DATE [--procedures FILE] [--accounts ID...] [--json]`:
what a proposal run on DATE would propose, with the procedures in force or with those of
FILE in their place, on a copy of the workers' state (`processors.simulation`). Publishes
nothing; runs at idle CPU priority so that workers on the same machine keep theirs."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import date
from typing import Any

import orjson

from config.logs import configure
from domain.money import from_minor
from domain.procedures import ProcedureError, parse_procedures
from domain.simulation import Simulation, SummaryKey, Totals
from domain.state import Proposal
from dunning.commands.common import read_yaml, settings
from processors import convert
from processors.simulation import SimulationRun, simulate
from schemas.jsonio import to_json
from topics.broker import ensure_broker


def _as_of(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _changes(path: str | None) -> tuple[Any, ...]:
    if path is None:
        return ()
    return read_yaml(path, parse_procedures, (ProcedureError,))


def _lower_priority(priority: str) -> None:
    """`idle`: the scheduler runs the command only on CPU time nothing else wants
    (SCHED_IDLE), so workers on the same machine keep theirs; `low`: nice 10."""
    if priority == "idle" and hasattr(os, "sched_setscheduler"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif priority in ("idle", "low"):
        os.nice(10)


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.as_of is None:
        raise SystemExit("dunning: runs simulate needs --as-of DATE")
    changes = _changes(args.procedures)
    s = settings()
    configure(level="WARNING")  # on stderr: stdout is the result
    ensure_broker(s)
    _lower_priority(args.priority)

    def progress(done: int, partitions: int, accounts: int) -> None:
        print(f"simulate: {done}/{partitions} partitions, {accounts:,} accounts",
              file=sys.stderr, flush=True)

    run = asyncio.run(simulate(s, convert.day(args.as_of), changes, args.accounts,
                               progress if not args.quiet else None))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(simulation_json(run, args.as_of),
                                             option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(render(run, args.as_of, args.limit))
    return 0


# ---------------------------------------------------------------- what it says
def _money(amount: int, currency: str) -> str:
    return str(from_minor(amount, currency))


def _summary(lines: dict[SummaryKey, Totals]) -> list[dict[str, Any]]:
    return [{"level": level, "procedure_id": proc, "currency": cur,
             "proposals": t.proposals, "total_due": _money(t.total_due, cur)}
            for (level, proc, cur), t in sorted(lines.items())]


def proposal_json(p: Proposal) -> dict[str, Any]:
    """A simulated proposal as `dunning.proposals` would carry it, without the ids a real
    run gives it (they name the run)."""
    body = to_json("DunningProposed", convert.proposal_record(p))
    for name in ("event_id", "proposal_id", "run_id"):
        body.pop(name, None)
    return body


def _brief(p: Proposal) -> dict[str, Any]:
    return {"account_id": p.account_id, "procedure_id": p.procedure_id,
            "currency": p.currency, "dunning_group": p.dunning_group, "level": p.level,
            "total_due": _money(p.total_due, p.currency),
            "items": [i.item_id for i in p.items]}


def simulation_json(run: SimulationRun, as_of: date) -> dict[str, Any]:
    sim = run.simulation
    return {
        "as_of": as_of.isoformat(), "state": run.changelog, "partitions": run.partitions,
        "accounts": sim.accounts, "unknown_procedure": sim.unknown_procedure,
        "groups_pending_proposal": sim.pending_groups, "unreadable": run.unreadable,
        "missing": run.missing,
        "procedures": {"in_force": sorted(run.in_force), "changed": run.changed},
        "summary": {"simulated": _summary(sim.simulated), "in_force": _summary(sim.in_force)},
        "proposals": [proposal_json(p) for p in sim.proposals],
        "differences": {
            "new": [_brief(p) for p in sim.new],
            "gone": [_brief(p) for p in sim.gone],
            "changed": [{"in_force": _brief(a), "simulated": _brief(b)}
                        for a, b in sim.changed],
        },
    }


def _table(sim: Simulation) -> list[str]:
    keys = sorted(set(sim.simulated) | set(sim.in_force))
    out = [f"  {'level':>5}  {'procedure':<12} {'cur':<4} {'proposals':>10} {'total due':>16}"
           f"   {'in force':>10} {'total due':>16}"]
    for key in keys:
        level, proc, cur = key
        a, b = sim.simulated.get(key, Totals()), sim.in_force.get(key, Totals())
        out.append(f"  {level:>5}  {proc:<12} {cur:<4} {a.proposals:>10,} "
                   f"{_money(a.total_due, cur):>16}   {b.proposals:>10,} "
                   f"{_money(b.total_due, cur):>16}")
    return out


def _line(sign: str, p: Proposal) -> str:
    group = f" group {p.dunning_group}" if p.dunning_group else ""
    return (f"  {sign} {p.account_id}  {p.procedure_id} {p.currency}{group}  level {p.level}  "
            f"{_money(p.total_due, p.currency)} {p.currency}")


def render(run: SimulationRun, as_of: date, limit: int) -> str:
    sim = run.simulation
    changed = f", {', '.join(run.changed)} from the file" if run.changed else ""
    lines = [f"simulated proposal run as of {as_of.isoformat()}: {sim.accounts:,} accounts "
             f"(from {run.changelog}), {len(sim.proposals):,} proposals; published nothing",
             f"procedures: {', '.join(sorted(run.simulated)) or '-'}{changed}"]
    if sim.unknown_procedure or sim.pending_groups or run.unreadable or run.missing:
        lines.append(f"  {sim.unknown_procedure} accounts with an unknown procedure, "
                     f"{sim.pending_groups} groups left out (pending proposal), "
                     f"{len(run.unreadable)} unreadable rows, {len(run.missing)} accounts "
                     "not found" + (f": {', '.join(run.missing[:limit])}" if run.missing
                                    else ""))
    lines += ["", *_table(sim)]
    if run.changed:
        lines += ["", f"against the procedures in force: {len(sim.new):,} groups would get a "
                  f"notice they would not get today, {len(sim.gone):,} would not get one they "
                  f"would get today, {len(sim.changed):,} would get a different one"]
        lines += [_line("+", p) for p in sim.new[:limit]]
        lines += [_line("-", p) for p in sim.gone[:limit]]
        for a, b in sim.changed[:limit]:
            lines += [_line("~", b) + f"  (today: level {a.level}, "
                                      f"{_money(a.total_due, a.currency)})"]
    return "\n".join(lines)


def add_arguments(r: Any) -> None:
    """The options of `dunning runs simulate` (on the `runs` command)."""
    r.add_argument("--as-of", type=_as_of, default=None, metavar="DATE",
                   help="simulate: the run's as-of date")
    r.add_argument("--procedures", default=None, metavar="FILE",
                   help="simulate: procedures that replace those in force (by id)")
    r.add_argument("--accounts", nargs="+", default=None, metavar="ID",
                   help="simulate: only these accounts")
    r.add_argument("--json", action="store_true", help="simulate: the whole result as JSON")
    r.add_argument("--limit", type=int, default=20,
                   help="simulate: differences shown per kind (text)")
    r.add_argument("--priority", choices=["idle", "low", "normal"], default="idle",
                   help="simulate: CPU priority (idle: only CPU time nothing else wants)")
    r.add_argument("--quiet", action="store_true", help="simulate: no progress on stderr")
