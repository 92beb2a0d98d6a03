"""`dunning schedule apply FILE.yaml` and `dunning schedule show`: the run schedule on the
compacted `dunning.schedules` topic (RULES.md, decision 11; CONTRACT.md, section 8)."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from domain.run_calendar import RunSchedule, ScheduleError, next_start, parse_schedule
from dunning.commands.common import publish_records, read_yaml, settings
from processors.convert import new_event_id, schedule, schedule_record
from topics.broker import ensure_broker
from topics.catalogue import SCHEDULES
from topics.clients import read_all

#: Starts `schedule show` lists.
SHOWN = 3


def cmd_schedule(args: argparse.Namespace) -> int:
    return _apply(args) if args.action == "apply" else _show()


def _apply(args: argparse.Namespace) -> int:
    if not args.file:
        raise SystemExit("dunning: schedule apply needs a FILE.yaml")
    s = settings()
    sched = read_yaml(args.file, lambda data: parse_schedule(
        data, set_at=int(time.time()), set_by=args.by), (ScheduleError,))
    publish_records(s, SCHEDULES, [("RunScheduleSet", schedule_record(sched, new_event_id()))])
    print(f"published schedule {sched.schedule_id}")
    for line in describe(sched, int(time.time())):
        print(line)
    return 0


def in_force(records: list[dict[str, Any]]) -> RunSchedule | None:
    """The schedule in force: the last one applied."""
    return schedule(records[-1]) if records else None


def _show() -> int:
    s = settings()
    ensure_broker(s)
    records = [r.record for r in asyncio.run(read_all(s, SCHEDULES)) if r.record]
    sched = in_force(records)
    if sched is None:
        print("no schedule: proposal runs start as their payment run completes, "
              "approvals are executed at once")
        return 0
    for line in describe(sched, int(time.time())):
        print(line)
    return 0


def iso(tick: int | None) -> str:
    return "-" if tick is None else datetime.fromtimestamp(tick, UTC).isoformat()


def describe(sched: RunSchedule, now: int) -> list[str]:
    """The schedule and its next starts after `now`, for a person."""
    d = schedule_record(sched, "")
    lines = [f"schedule {sched.schedule_id} (set {iso(sched.set_at)} by {sched.set_by or '-'})",
             f"  time zone {sched.time_zone}, weekdays {','.join(d['weekdays'])}, "
             f"holidays {','.join(h.isoformat() for h in d['holidays']) or '-'}",
             f"  proposal runs: {d['proposal_time'] or 'at once, as the payment run completes'}",
             f"  activity runs: {d['activity_mode']}"
             + (f" {d['activity_time']}" if d["activity_time"] else "")]
    for name, minutes in (("proposal", sched.proposal_time), ("activity", sched.activity_time)):
        after, starts = max(now, sched.set_at), list[str]()
        while minutes is not None and len(starts) < SHOWN:
            tick = next_start(sched, minutes, after)
            if tick is None:
                break
            starts.append(iso(tick))
            after = tick
        if starts:
            lines.append(f"  next {name} starts: {', '.join(starts)}")
    return lines


def next_scheduled(records: list[dict[str, Any]], now: int) -> dict[str, int]:
    """The next proposal and activity start after `now` of the schedule in force."""
    sched = in_force(records)
    if sched is None:
        return {}
    out = {}
    for name, minutes in (("proposal", sched.proposal_time), ("activity", sched.activity_time)):
        tick = None if minutes is None else next_start(sched, minutes, max(now, sched.set_at))
        if tick is not None:
            out[name] = tick
    return out


def register(subparsers: Any) -> None:
    sc = subparsers.add_parser("schedule", help="apply or show the run schedule")
    sc.add_argument("action", choices=["apply", "show"])
    sc.add_argument("file", nargs="?")
    sc.add_argument("--by", default="cli", help="who applies it (set_by)")
    sc.set_defaults(func=cmd_schedule)
