"""The per-account hash chain of `dunning.history`, checked record by record.

The processor (`processors.outbox.Outbox.history`) writes, on every history record,
`seq` (1, 2, 3, ... per account) and `prev_hash`: "" for seq 1, else the hex SHA-256 of
the previous record's Avro body (the value without its wire header). A redelivered record
is byte for byte the one written before, so after a worker crash the topic may hold the
same record twice: that is a harmless duplicate. Anything else is a finding:

- `start`: an account's first record is not seq 1;
- `gap`: a seq is missing (a record was deleted, or the log was cut);
- `prev_hash`: a record does not point at the hash of its predecessor (one of the two
  was altered);
- `fork`: a different record with a seq already seen;
- `out_of_order`: a seq lower than one already read (records swapped);
- `split`: one account's records on two partitions (their order is then undefined).

Once an account's chain is broken, its later records are still checked (so every further
finding is reported) but no longer trusted: `ChainChecker.check` returns `ACCEPT` only for
a record that extends an intact chain, and the caller applies only those.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from audit.problems import Location, Problem


class Verdict(enum.Enum):
    ACCEPT = "accept"  # extends an intact chain: apply it
    DUPLICATE = "duplicate"  # byte-identical repeat of a record already read
    REJECT = "reject"  # a finding, or a record after a break: do not apply


@dataclass(slots=True)
class ChainState:
    """What the checker remembers of one account."""

    last_seq: int = 0
    head: str = ""  # hash of the record at last_seq
    last_where: Location | None = None
    partition: int | None = None
    broken_at: int | None = None  # seq of the first finding
    after_break: int = 0
    after_break_first: Location | None = None
    duplicates: int = 0
    split: bool = False
    #: seq -> (sha256 of the whole value, where it was first read)
    seen: dict[int, tuple[bytes, Location]] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def _short(digest: str) -> str:
    return f"{digest[:16]}…" if digest else '""'


class ChainChecker:
    """Feed it the history records in topic order (per partition); it collects findings."""

    def __init__(self) -> None:
        self.accounts: dict[str, ChainState] = {}
        self.problems: list[Problem] = []
        self.duplicates = 0
        self.records = 0

    def state(self, account_id: str) -> ChainState:
        st = self.accounts.get(account_id)
        if st is None:
            st = self.accounts[account_id] = ChainState()
        return st

    def _problem(self, st: ChainState, kind: str, account_id: str, detail: str, seq: int | None,
                 where: Location | None, record_type: str | None, event_id: str | None) -> None:
        self.problems.append(Problem(kind, account_id, detail, seq, where, record_type, event_id))
        if st.broken_at is None:
            st.broken_at = seq if seq is not None else st.last_seq + 1

    def broken(self, account_id: str, kind: str, detail: str, where: Location,
               record_type: str | None = None) -> None:
        """A record of the account that cannot take part in the chain (undecodable...)."""
        self.records += 1
        st = self.state(account_id)
        self._problem(st, kind, account_id, detail, None, where, record_type, None)

    def check(self, account_id: str, seq: int, prev_hash: str, value_digest: bytes,
              body_hash: str, where: Location, record_type: str | None = None,
              event_id: str | None = None) -> Verdict:
        """One decoded history record. `value_digest`: SHA-256 of the whole value (to tell
        a duplicate from a fork); `body_hash`: hex SHA-256 of its body (the chain's hash)."""
        self.records += 1
        st = self.state(account_id)

        def problem(kind: str, detail: str) -> None:
            self._problem(st, kind, account_id, detail, seq, where, record_type, event_id)

        if st.partition is None:
            st.partition = where.partition
        elif where.partition != st.partition and not st.split:
            st.split = True
            problem("split", f"the account's earlier records are on partition {st.partition}; "
                             "records of one account must stay on one partition")
        first = st.seen.get(seq)
        if first is not None:
            if first[0] == value_digest:
                st.duplicates += 1
                self.duplicates += 1
                return Verdict.DUPLICATE
            problem("fork", f"a different record with seq {seq} was read at {first[1]}")
            return Verdict.REJECT
        st.seen[seq] = (value_digest, where)
        expected = st.last_seq + 1
        if seq < expected:
            problem("out_of_order", f"seq {seq} comes after seq {st.last_seq} "
                                    f"({st.last_where}): records out of order")
            return Verdict.REJECT
        intact_before = st.intact
        if seq > expected:
            missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected}..{seq - 1}"
            if st.last_seq == 0:
                problem("start", f"the account's first record has seq {seq}, not 1 "
                                 f"({missing} missing)")
            else:
                problem("gap", f"{missing} missing: the previous record is seq {st.last_seq} "
                               f"at {st.last_where}")
        elif prev_hash != st.head:
            if seq == 1:
                problem("prev_hash", f"seq 1 must have an empty prev_hash, has {_short(prev_hash)}")
            else:
                problem("prev_hash",
                        f"prev_hash {_short(prev_hash)} is not the hash {_short(st.head)} of "
                        f"seq {st.last_seq} at {st.last_where}: that record or this one was "
                        "altered")
        # Resynchronise on this record, so later findings are reported against it.
        st.last_seq, st.head, st.last_where = seq, body_hash, where
        if st.intact:
            return Verdict.ACCEPT
        if not intact_before:
            st.after_break += 1
            if st.after_break_first is None:
                st.after_break_first = where
        return Verdict.REJECT

    def finish(self, account_ids: list[str] | None = None) -> None:
        """Report, once per broken account, the records after the break (not applied).
        `account_ids`: the accounts to close (default: every one); their `seen` is freed."""
        for account_id in account_ids if account_ids is not None else list(self.accounts):
            st = self.accounts[account_id]
            if st.after_break:
                self.problems.append(Problem(
                    "after_break", account_id,
                    f"{st.after_break} later record(s) (the first at {st.after_break_first}, "
                    f"up to seq {st.last_seq}) follow the break at seq {st.broken_at} and are "
                    "not trusted", st.broken_at))
                st.after_break = 0
            st.seen.clear()
