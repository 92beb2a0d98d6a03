"""Why a run started when it did, for the auditor: each proposal run's start as
`dunning.runs` records it (`ProposalRunStarted`: when, and the scheduled start it was
for, with the starts a catch-up run covered). The history records name their run; the
report puts its start beside each notice."""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from topics.catalogue import RUNS
from topics.clients import read_all

RunStarts = dict[str, dict[str, Any]]


async def run_starts(settings: Settings) -> RunStarts:
    """run id -> {started_at, scheduled_at, ticks_caught_up} (the last start recorded)."""
    out: RunStarts = {}
    for rec in await read_all(settings, RUNS, idle_timeout=0.2):
        if rec.record_type == "ProposalRunStarted" and rec.record:
            r = rec.record
            out[r["run_id"]] = {"started_at": r.get("started_at"),
                                "scheduled_at": r.get("scheduled_at"),
                                "ticks_caught_up": r.get("ticks_caught_up") or 0}
    return out


def start_text(start: dict[str, Any] | None) -> str:
    """A run's start for a person: when it started, and the scheduled start it was for."""
    if not start:
        return ""
    started = start.get("started_at")
    text = f"started {started.isoformat() if started else '?'}"
    scheduled = start.get("scheduled_at")
    if scheduled is not None:
        text += f", scheduled for {scheduled.isoformat()}"
        if start.get("ticks_caught_up"):
            text += f" (catching up {start['ticks_caught_up']} missed starts)"
    else:
        text += " as its payment run completed"
    return text
