"""Where a history record is, and what an auditor is told about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Location:
    """A record's place on the broker."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic} partition {self.partition} offset {self.offset}"

    def as_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


#: Problem kinds, in words, for the summary.
KINDS = {
    "undecodable": "record that cannot be decoded",
    "not_history": "record that is not a history record",
    "empty": "record without a value",
    "key_mismatch": "record whose key is not its account",
    "split": "account on two partitions",
    "start": "chain that does not start at seq 1",
    "gap": "gap in a chain",
    "prev_hash": "prev_hash that does not match",
    "fork": "fork (two different records with one seq)",
    "out_of_order": "record out of order",
    "after_break": "records after a break in the chain",
    "inconsistent": "record that contradicts the history before it",
    "live": "difference from the worker's live state",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding. `where` and `seq` name the record the finding is about."""

    kind: str
    account_id: str | None
    detail: str
    seq: int | None = None
    where: Location | None = None
    record_type: str | None = None
    event_id: str | None = None

    def __str__(self) -> str:
        head = f"account {self.account_id}" if self.account_id is not None else "no account"
        if self.seq is not None:
            head += f" seq {self.seq}"
        if self.record_type:
            head += f" {self.record_type}"
        if self.event_id:
            head += f" (event {self.event_id})"
        if self.where is not None:
            head += f" at {self.where}"
        return f"{self.kind}: {head}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "account_id": self.account_id,
            "seq": self.seq,
            "record_type": self.record_type,
            "event_id": self.event_id,
            "where": self.where.as_json() if self.where is not None else None,
            "detail": self.detail,
        }
