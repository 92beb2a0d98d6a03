"""What one account's table row holds, and the keys of the per-partition indexes.

A row of the `accounts` table is `msgpack([index_day, packed_account, history_refs])`:
* `index_day`: the day under which the account stands in the due index (-1: none);
* `packed_account`: `processors.state_codec.pack(Account)`;
* `history_refs`: `{history_event_id: [seq, prev_hash]}` of the account's history
  records, so a re-emitted history record is identical byte for byte.

The `work_index` table (same partitions) lets one partition find its own accounts by run,
proposal or notice without a scan: see the `*_key` helpers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from domain.state import Account
from processors import state_codec

NO_DAY = -1


@dataclass
class StoredAccount:
    account: Account
    index_day: int = NO_DAY
    history_refs: dict[str, list] = field(default_factory=dict)
    #: how many proposals were pending when the row was read (the partition keeps a
    #: count of its undecided proposals, `PENDING_COUNT`, in step with the rows)
    pending_at_load: int = 0

    def dumps(self) -> bytes:
        return msgpack.packb(
            [self.index_day, state_codec.pack(self.account), self.history_refs],
            use_bin_type=True,
        )

    @classmethod
    def loads(cls, data: bytes) -> StoredAccount:
        index_day, packed, refs = msgpack.unpackb(data, raw=False, strict_map_key=False)
        account = state_codec.unpack(packed)
        return cls(account, index_day, refs, len(account.pending))


PENDING_COUNT = b"c|pending"
"""work_index key (per partition): undecided proposals on the partition's accounts."""


def account_key(account_id: str) -> bytes:
    return account_id.encode()


def due_key(day: int, account_id: str) -> bytes:
    return b"%08d|" % day + account_id.encode()


def due_key_account(key: bytes) -> tuple[int, str]:
    day, _, acc = key.partition(b"|")
    return int(day), acc.decode()


def run_key(run_id: str, account_id: str) -> bytes:
    """Accounts of one partition with a pending or executed proposal of a run."""
    return b"r|" + run_id.encode() + b"|" + account_id.encode()


def run_prefix(run_id: str) -> bytes:
    return b"r|" + run_id.encode() + b"|"


def proposal_key(proposal_id: str) -> bytes:
    return b"p|" + proposal_id.encode()


def notice_key(notice_id: str) -> bytes:
    return b"n|" + notice_id.encode()
