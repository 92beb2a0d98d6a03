"""Bounded state: what an account forgets once it is settled and old enough.

Interface only (the rules are being written): :func:`compact` returns the account without
the facts that are settled and older than ``keep_days`` before ``today``; today it keeps
everything. :func:`event_day` is the business day an input event speaks of, the "today"
ingest compacts with (dates come from events, never from a clock).
"""

from __future__ import annotations

from domain.events import InputEvent
from domain.state import Account


def compact(account: Account, today: int, keep_days: int) -> Account:
    """``account`` without what is settled and older than ``today - keep_days``."""
    del today, keep_days
    return account


def event_day(event: InputEvent) -> int | None:
    """The business day ``event`` speaks of (days since 1970-01-01), if it has one."""
    del event
    return None
