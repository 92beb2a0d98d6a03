"""When can an account next get a proposal?

Without new events an account only changes with the calendar: an item reaches the days
in arrears of its next level, a lock ends, the frequency gap of a group passes. A
proposal needs at least one item that advances on that day, in a group whose last notice
is far enough back, on a day without an account lock. :func:`next_evaluation_day` takes,
for every item that can ever advance, the first such day and returns the earliest: a
lower bound on the first day :func:`domain.proposal_run.propose` returns a proposal (it may
still return none that day, e.g. when the group's total stays below its minimum).

A group with an undecided proposal gets no new one (RULES.md "Undecided proposals"), so
it does not count until the proposal is decided.

The index built from it must be refreshed after every change of the account (a decision
included) *and* after a change of a procedure the account uses.
"""

from __future__ import annotations

from collections.abc import Mapping

from domain.procedures import Procedure, Terms
from domain.state import Account, Lock, group_last_notice_day

__all__ = ["next_evaluation_day"]


def _first_free_day(locks: tuple[Lock, ...], item_id: str | None, day: int) -> int:
    """The first day ``>= day`` on which neither the account nor ``item_id`` is locked
    (``item_id=None``: only account locks count)."""
    moved = True
    while moved:
        moved = False
        for lock in locks:
            if (lock.item_id is None or lock.item_id == item_id) and (
                lock.valid_from <= day <= lock.valid_to
            ):
                day = lock.valid_to + 1
                moved = True
    return day


def next_evaluation_day(
    account: Account, procedures: Mapping[str, Procedure], after: int
) -> int | None:
    """A lower bound on the first day ``d >= after`` on which ``propose(account,
    procedures, d, ...)`` can return a proposal, or ``None`` when no day can without new
    events (or a procedure change)."""
    master = account.master
    if master is None:
        return None
    default_id = master.dunning_procedure
    if default_id not in procedures:
        return None
    candidates: dict[tuple[str, str, str], int] = {}
    totals: dict[tuple[str, str, str], int] = {}
    terms_of: dict[tuple[str, str, str], Terms] = {}
    for it in account.items:
        if it.status or it.open_amount <= 0:
            continue
        pid = it.procedure or default_id
        procedure = procedures.get(pid)
        if procedure is None:
            continue
        terms = procedure.terms(it.currency)
        key = (pid, it.currency, it.group)
        totals[key] = totals.get(key, 0) + it.open_amount
        terms_of[key] = terms
        cur = it.level
        if cur >= terms.top:
            continue
        nxt = terms.levels[cur + 1]
        assert nxt is not None
        if it.open_amount < nxt.min_item:
            continue
        wait = nxt.days_in_arrears if nxt.days_in_arrears > 1 else 1
        day = it.due_day + wait
        if day < after:
            day = after
        if account.locks:
            day = _first_free_day(account.locks, it.item_id, day)
        best = candidates.get(key)
        if best is None or day < best:
            candidates[key] = day
    waiting = {(p.procedure_id, p.currency, p.dunning_group) for p in account.pending}
    result: int | None = None
    for key, day in candidates.items():
        if key in waiting:
            continue  # no new proposal until the pending one is decided (then re-indexed)
        terms = terms_of[key]
        if totals[key] < terms.min_total_floor:
            continue
        last = group_last_notice_day(account, *key)
        if last is not None and day < last + terms.min_days_between_dunnings:
            day = last + terms.min_days_between_dunnings
            if account.locks:
                day = _first_free_day(account.locks, None, day)
        if result is None or day < result:
            result = day
    return result
