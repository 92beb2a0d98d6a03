"""History records in memory, chained the way `processors.outbox.Outbox.history` does,
encoded with the real codec, and fed to the replay without a broker."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import Any

from audit.rebuild import AccountHistory
from audit.replay import Replay, Summary
from config.settings import Settings
from domain import ids
from schemas.codec import Codec

CODEC = Codec("single-object")
TOPIC = "dunning.history"
D1 = date(2026, 11, 20)
D2 = date(2026, 12, 11)
D3 = date(2026, 12, 25)

Rec = tuple[int, int, bytes | None, bytes | None]  # partition, offset, key, value


class Chain:
    """Gives each record of an account the next seq and the hash of the previous body."""

    def __init__(self, codec: Codec = CODEC) -> None:
        self.codec = codec
        self.heads: dict[str, tuple[int, str]] = {}

    def __call__(self, rtype: str, payload: dict[str, Any]) -> bytes:
        account_id = payload["account_id"]
        seq, head = self.heads.get(account_id, (0, ""))
        value = self.codec.encode(rtype, {**payload, "seq": seq + 1, "prev_hash": head})
        body = value[len(self.codec.header(rtype)):]
        self.heads[account_id] = (seq + 1, hashlib.sha256(body).hexdigest())
        return value


def change(item_id: str, old: tuple[int, date | None, date | None],
           new: tuple[int, date | None, date | None], *, listed: bool = True,
           interest: str = "0.00") -> dict[str, Any]:
    return {"item_id": item_id, "listed": listed, "old_level": old[0], "new_level": new[0],
            "old_last_dunned": old[1], "new_last_dunned": new[1],
            "old_interest_until": old[2], "new_interest_until": new[2],
            "interest": Decimal(interest)}


def notice(account_id: str, run_id: str, as_of: date, level: int,
           items: list[dict[str, Any]], *, charge: str = "0.00", interest: str = "0.00",
           total_due: str = "100.00", group: str = "") -> tuple[str, dict[str, Any]]:
    proposal_id = ids.proposal_id(run_id, account_id, "STANDARD", "EUR", group)
    notice_id = ids.notice_id(proposal_id)
    return "DunningNoticeIssued", {
        "event_id": ids.history_event_id("DunningNoticeIssued", notice_id),
        "account_id": account_id, "recorded_for": as_of, "notice_id": notice_id,
        "proposal_id": proposal_id, "run_id": run_id, "procedure_id": "STANDARD",
        "dunning_group": group, "currency": "EUR", "level": level, "activities": ["letter"],
        "charge": Decimal(charge), "interest": Decimal(interest),
        "total_due": Decimal(total_due), "items": items,
        "command_ids": [ids.command_id(notice_id, "PrintDunningLetter")],
    }


def reversal(issued: dict[str, Any], items: list[dict[str, Any]], *, charge: str = "0.00",
             interest: str = "0.00", request: str = "req-1") -> tuple[str, dict[str, Any]]:
    reversal_id = ids.reversal_id(request, issued["notice_id"])
    return "DunningNoticeReversed", {
        "event_id": ids.history_event_id("DunningNoticeReversed", reversal_id),
        "account_id": issued["account_id"], "recorded_for": issued["recorded_for"],
        "reversal_id": reversal_id, "notice_id": issued["notice_id"],
        "run_id": issued["run_id"], "item_ids": [i["item_id"] for i in items],
        "charge": Decimal(charge), "interest": Decimal(interest), "items": items,
        "command_ids": [], "reason": "customer complaint", "requested_by": "auditor",
        "currency": "EUR",
    }


def rejection(account_id: str, run_id: str, as_of: date) -> tuple[str, dict[str, Any]]:
    proposal_id = ids.proposal_id(run_id, account_id, "STANDARD", "EUR", "")
    return "history.ProposalRejected", {
        "event_id": ids.history_event_id("ProposalRejected", proposal_id),
        "account_id": account_id, "recorded_for": as_of, "proposal_id": proposal_id,
        "run_id": run_id, "decided_by": "reviewer", "reason": "customer called",
    }


def story(account_id: str = "ACC-1") -> list[tuple[str, dict[str, Any]]]:
    """Level 1 on D1 (two items), level 2 with charge and interest on D2 for item x,
    a rejected proposal on D3, then the D2 notice reversed."""
    n1 = notice(account_id, "PR-1/1", D1, 1, [
        change("x", (0, None, None), (1, D1, None)),
        change("y", (0, None, None), (1, D1, None)),
    ], total_due="150.00")
    n2 = notice(account_id, "PR-2/1", D2, 2, [
        change("x", (1, D1, None), (2, D2, D2), interest="1.26"),
        change("y", (1, D1, None), (1, D2, D2)),
    ], charge="5.00", interest="1.26", total_due="156.26")
    rj = rejection(account_id, "PR-3/1", D3)
    rv = reversal(n2[1], [
        change("x", (2, D2, D2), (1, D1, None), interest="1.26"),
        change("y", (1, D2, D2), (1, D1, None)),
    ], charge="5.00", interest="1.26")
    return [n1, n2, rj, rv]


def log(values: list[tuple[str, bytes]], partition: int = 0) -> list[Rec]:
    """(key, value) pairs as one partition's records, offsets from 0."""
    return [(partition, offset, key.encode(), value)
            for offset, (key, value) in enumerate(values)]


def encoded(records: list[tuple[str, dict[str, Any]]], chain: Chain | None = None
            ) -> list[tuple[str, bytes]]:
    chain = chain or Chain()
    return [(payload["account_id"], chain(rtype, payload)) for rtype, payload in records]


def replay(*partitions: list[Rec], as_of: date | None = None, keep_records: bool = False,
           account: str | None = None) -> tuple[dict[str, AccountHistory], Summary]:
    r = Replay(Settings(), as_of=as_of, keep_records=keep_records, codec=CODEC,
               account=account)
    accounts: dict[str, AccountHistory] = {}
    for records in partitions:
        for acc in r.feed_partition(records):
            accounts[acc.account_id] = acc
    return accounts, r.summary


def flip(value: bytes, old: bytes, new: bytes) -> bytes:
    """`value` with the first occurrence of `old` replaced by `new` (same length)."""
    assert len(old) == len(new)
    at = value.index(old)
    return value[:at] + new + value[at + len(old):]
