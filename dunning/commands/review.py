"""`dunning proposals …`, `dunning runs …` and `dunning reverse …`: look at the proposals and
runs (with the run schedule's next and last starts), and publish the review's decisions
and requests to `dunning.decisions`."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from dunning.commands import simulate
from dunning.commands.common import settings
from dunning.commands.schedule import iso, next_scheduled
from processors.convert import new_event_id
from schemas.jsonio import dumps
from topics.broker import ensure_broker
from topics.catalogue import DECISIONS, HISTORY, PROPOSALS, RUNS, SCHEDULES
from topics.clients import Received, publish, read_all


def _decide(rtype: str, records: list[dict[str, Any]]) -> int:
    s = settings()
    ensure_broker(s)
    for r in records:
        r.setdefault("event_id", new_event_id())
    n = asyncio.run(publish(s, DECISIONS, [(rtype, r) for r in records]))
    print(f"published {n} {rtype}")
    return 0


def _read(*topics: str) -> list[list[Received]]:
    """Every record of each topic, once the broker is there."""
    s = settings()
    ensure_broker(s)
    return [asyncio.run(read_all(s, topic)) for topic in topics]


def proposal_status(history: list[Any]) -> dict[str, str]:
    """Each decided proposal's outcome, from the history topic: ``executed``, ``rejected``
    or ``not executed (REASON)``; a proposal not named is undecided."""
    status: dict[str, str] = {}
    for rec in history:
        r = rec.record or {}
        if rec.record_type == "DunningNoticeIssued":
            status[r["proposal_id"]] = "executed"
        elif rec.record_type == "history.ProposalRejected":
            status[r["proposal_id"]] = "rejected"
        elif rec.record_type == "ProposalNotExecuted":
            status[r["proposal_id"]] = f"not executed ({r['reason']})"
    return status


def _list_proposals(args: argparse.Namespace) -> int:
    recs, history = _read(PROPOSALS, HISTORY)
    status = proposal_status(history)
    for rec in recs:
        if rec.record and (args.run is None or rec.record["run_id"] == args.run):
            r = rec.record
            if args.json:
                print(dumps("DunningProposed", r))
            else:
                print(f"{r['proposal_id']}  run {r['run_id']}  {r['account_id']}  "
                      f"level {r['level']}  {r['total_due']} {r['currency']}  "
                      f"{','.join(r['activities'])}  "
                      f"{status.get(r['proposal_id'], 'undecided')}")
    return 0


def cmd_proposals(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list_proposals(args)
    user = args.by
    if args.action == "approve":
        return _decide("ProposalApproved",
                       [{"proposal_id": p, "decided_by": user} for p in args.ids])
    return _decide("ProposalRejected", [
        {"proposal_id": p, "decided_by": user, "reason": args.reason} for p in args.ids])


def _list_runs() -> int:
    runs, schedules = _read(RUNS, SCHEDULES)
    for rec in runs:
        r = rec.record or {}
        extra = {k: v for k, v in r.items() if k not in ("event_id", "run_id")}
        print(f"{rec.record_type:<22} {r.get('run_id') or r.get('schedule_id')}  "
              + " ".join(f"{k}={v}" for k, v in extra.items()))
    for line in schedule_summary(runs, [r.record for r in schedules if r.record],
                                 int(time.time())):
        print(line)
    return 0


def schedule_summary(runs: list[Received], schedules: list[dict[str, Any]],
                     now: int) -> list[str]:
    """The run schedule's next starts, its last scheduled start and its last missed one
    (none without a schedule)."""
    if not schedules:
        return []
    upcoming = next_scheduled(schedules, now)
    started = [r.record["scheduled_at"] for r in runs if r.record_type == "ProposalRunStarted"
               and r.record and r.record.get("scheduled_at")]
    missed = [r.record["scheduled_at"] for r in runs
              if r.record_type == "ScheduledStartMissed" and r.record]
    return [f"schedule: next proposal start {iso(upcoming.get('proposal'))}, "
            f"next activity start {iso(upcoming.get('activity'))}",
            f"schedule: last scheduled start {max(started).isoformat() if started else '-'}, "
            f"last missed start {max(missed).isoformat() if missed else '-'} "
            f"({len(missed)} missed)"]


def cmd_runs(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list_runs()
    if args.action == "simulate":
        return simulate.cmd_simulate(args)
    if args.action == "approve":
        return _decide("RunApproved", [{"run_id": r, "decided_by": args.by} for r in args.ids])
    if args.action == "delete":
        return _decide("RunDeleted", [{"run_id": r, "decided_by": args.by} for r in args.ids])
    return _decide("ProposalRunRequested",
                   [{"payment_run_id": r, "requested_by": args.by} for r in args.ids])


def cmd_reverse(args: argparse.Namespace) -> int:
    record: dict[str, Any] = {"requested_by": args.by, "reason": args.reason,
                              "notice_id": args.notice, "run_id": args.run,
                              "item_ids": args.item or None}
    return _decide("NoticeReversalRequested", [record])


def register(subparsers: Any) -> None:
    ps = subparsers.add_parser("proposals", help="list, approve or reject proposals")
    ps.add_argument("action", choices=["list", "approve", "reject"])
    ps.add_argument("ids", nargs="*")
    ps.add_argument("--run", default=None)
    ps.add_argument("--json", action="store_true")
    ps.add_argument("--by", default="cli")
    ps.add_argument("--reason", default="rejected at review")
    ps.set_defaults(func=cmd_proposals)

    r = subparsers.add_parser(
        "runs", help="list, approve, delete, rerun or simulate proposal runs")
    r.add_argument("action", choices=["list", "approve", "delete", "rerun", "simulate"])
    r.add_argument("ids", nargs="*", help="run ids (rerun: payment run ids)")
    r.add_argument("--by", default="cli")
    simulate.add_arguments(r)
    r.set_defaults(func=cmd_runs)

    rv = subparsers.add_parser("reverse", help="reverse a notice, some of its items, or a run")
    g = rv.add_mutually_exclusive_group(required=True)
    g.add_argument("--notice")
    g.add_argument("--run")
    rv.add_argument("--item", action="append", default=[])
    rv.add_argument("--reason", default="reversed on request")
    rv.add_argument("--by", default="cli")
    rv.set_defaults(func=cmd_reverse)
