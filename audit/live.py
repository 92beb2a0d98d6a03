"""The rebuilt history next to the live state a worker serves (`GET /accounts/{id}/`,
`processors.convert.account_json`).

Compared per account: every item's level, last-dunned and interest-until date (an item
the history never touched must be at level 0, never dunned); the notices (ids, run,
level, as-of date, charge, interest, reversed items, in effect); the charge and interest
items notices keep (what each claims after reversals, its due date: RULES.md decision 12;
their open amounts depend on payments, which the history does not hold); and `history_seq`, the
last seq the worker wrote, which also catches records missing at the end of a chain.
Every difference names the record (seq) that set the rebuilt value.

The chain protects every record but the last of each account: nothing points at it yet.
When the worker serves `history_head` (the hash it chained last; `Account.history_head`),
it is compared too, which anchors the last record as well; without it, a change to the last
record shows only where it touches the compared state.

Run it while no proposal run or decision is being processed: a record written between
the end of the replay and the look at the worker shows as a difference.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from audit.problems import Problem
from audit.rebuild import AccountHistory
from audit.report import iso


class WorkerError(RuntimeError):
    """The worker cannot be asked."""


async def fetch_accounts(url: str, account_ids: list[str],
                         concurrency: int = 16) -> dict[str, dict[str, Any] | None]:
    """account id -> the worker's JSON of the account, None when it does not know it."""
    import aiohttp

    base = url.rstrip("/")
    out: dict[str, dict[str, Any] | None] = {}
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=30)

    async def one(session: aiohttp.ClientSession, account_id: str) -> None:
        async with gate:
            target = f"{base}/accounts/{quote(account_id, safe='')}/"
            try:
                async with session.get(target) as resp:
                    if resp.status == 404:
                        out[account_id] = None
                        return
                    if resp.status != 200:
                        raise WorkerError(f"{target}: HTTP {resp.status}")
                    out[account_id] = await resp.json(content_type=None)
            except aiohttp.ClientError as exc:
                raise WorkerError(f"no answer from the worker at {base}: {exc}") from exc

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(one(session, a) for a in account_ids))
    return out


def _dec(text: Any) -> Decimal | None:
    try:
        return Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None


def compare(acc: AccountHistory, live: dict[str, Any] | None) -> list[Problem]:
    """The differences between one rebuilt account and the worker's view of it."""
    found: list[Problem] = []
    refs = {ref.seq: ref for ref in acc.records}

    def diff(detail: str, seq: int | None = None) -> None:
        ref = refs.get(seq) if seq is not None else None
        found.append(Problem("live", acc.account_id, detail, seq,
                             ref.where if ref else None, ref.record_type if ref else None,
                             ref.event_id if ref else None))

    if live is None:
        diff(f"the history holds {len(acc.records)} records (up to seq {acc.seq}), "
             "but the worker does not know the account")
        return found
    live_seq = live.get("history_seq")
    if live_seq != acc.seq:
        more = "records missing at the end of the chain" if isinstance(live_seq, int) \
            and live_seq > acc.seq else "the worker's state is behind the history"
        diff(f"the history's chain ends at seq {acc.seq}, the worker's history_seq is "
             f"{live_seq} ({more})", acc.seq)
    live_head = live.get("history_head")
    if live_head is not None and live_seq == acc.seq and live_head != acc.head:
        diff(f"the hash of the chain's last record (seq {acc.seq}) is {acc.head[:16]}…, the "
             f"worker's history_head is {str(live_head)[:16]}…: the last record was altered",
             acc.seq)
    live_items: dict[str, Any] = live.get("items") or {}
    # an imported level whose item has not arrived yet is kept with the account's imports
    imports: dict[str, Any] = live.get("imports") or {}
    for item_id, it in sorted(acc.items.items()):
        got = live_items.get(item_id, imports.get(item_id))
        if got is None:
            diff(f"item {item_id} is in the history (level {it.level}, seq {it.changed_by}) "
                 "but not in the worker's state", it.changed_by)
            continue
        for name, value in (("level", it.level), ("last_dunned", iso(it.last_dunned)),
                            ("interest_until", iso(it.interest_until))):
            if got.get(name) != value:
                diff(f"item {item_id}: {name} {value} in the history (set by seq "
                     f"{it.changed_by}), {got.get(name)} in the worker's state", it.changed_by)
    for item_id, got in sorted(live_items.items()):
        if item_id in acc.items:
            continue
        if got.get("level", 0) != 0 or got.get("last_dunned") or got.get("interest_until"):
            diff(f"item {item_id} is at level {got.get('level')} (last dunned "
                 f"{got.get('last_dunned')}) in the worker's state, but no history record "
                 "ever changed it")
    live_notices = {n["notice_id"]: n for n in live.get("notices") or []}
    for notice_id, n in acc.notices.items():
        got = live_notices.get(notice_id)
        if got is None:
            diff(f"notice {notice_id} (seq {n.seq}) is not in the worker's state", n.seq)
            continue
        mine: dict[str, Any] = {
            "run_id": n.run_id, "level": n.level, "as_of": iso(n.as_of),
            "charge": n.charge, "interest": n.interest, "in_effect": n.in_effect,
            "reversed_items": sorted(n.reversed_items),
        }
        theirs: dict[str, Any] = {
            "run_id": got.get("run_id"), "level": got.get("level"), "as_of": got.get("as_of"),
            "charge": _dec(got.get("charge")), "interest": _dec(got.get("interest")),
            "in_effect": got.get("in_effect"),
            "reversed_items": sorted(got.get("reversed_items") or []),
        }
        for name, value in mine.items():
            if theirs[name] != value:
                diff(f"notice {notice_id}: {name} {value} in the history (seq {n.seq}), "
                     f"{theirs[name]} in the worker's state", n.seq)
    for notice_id in sorted(set(live_notices) - set(acc.notices)):
        diff(f"notice {notice_id} is in the worker's state but not in the history")
    # charge and interest items (RULES.md decision 12): what they claim and their due date
    live_claims: dict[str, Any] = live.get("claims") or {}
    for item_id, c in sorted(acc.claims.items()):
        got = live_claims.get(item_id)
        mine_claim = (c.claimed, iso(c.due_date))
        theirs_claim = None if got is None else (_dec(got.get("amount")), got.get("due_date"))
        if theirs_claim != mine_claim:
            diff(f"{c.kind} item {item_id}: claims {mine_claim[0]} due {mine_claim[1]} in the "
                 f"history (seq {c.seq}), {theirs_claim or 'nothing'} in the worker's state",
                 c.seq)
    for item_id in sorted(set(live_claims) - set(acc.claims)):
        diff(f"item {item_id} is in the worker's state but no notice of the history keeps it")
    return found
