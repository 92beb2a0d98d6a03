"""The messages on the worker's internal topics, typed, with one codec.

`dunning.internal.partition-work` (one partition per account partition) carries the work
the control agent hands to a partition: a run slice, and the decisions (`Approve`,
`Reject`, `ApproveRun`, `DeleteRun`, `Reverse`). `dunning.internal.run-progress` carries
the partitions' reports back (`Executed`, `SliceDone`, `ApproveDone`).

On the wire a message is the orjson of its fields and a `kind` tag, the format the worker
wrote before these types existed, so a message of the previous version still in a topic
at an upgrade is read as well (fields it has that a type does not are ignored; fields it
lacks take the type's default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson


@dataclass(frozen=True)
class Slice:
    kind: ClassVar[str] = "slice"
    run_id: str
    as_of: int
    #: input topic (physical name) -> the end offset the slice waits for
    targets: dict[str, int] = field(default_factory=dict)
    #: look at every account (a rerun, a procedure change), not only the due ones
    full: bool = False
    #: execute every proposal in the run (the schedule's activity run `together`), as a
    #: procedure's `auto_approve` does; left out of the message when false
    auto_approve: bool = field(default=False, metadata={"omit_default": True})


@dataclass(frozen=True)
class Approve:
    kind: ClassVar[str] = "approve"
    proposal_id: str


@dataclass(frozen=True)
class Reject:
    kind: ClassVar[str] = "reject"
    proposal_id: str
    decided_by: str = ""
    reason: str | None = None


@dataclass(frozen=True)
class ApproveRun:
    kind: ClassVar[str] = "approve_run"
    run_id: str


@dataclass(frozen=True)
class DeleteRun:
    kind: ClassVar[str] = "delete_run"
    run_id: str


@dataclass(frozen=True)
class Reverse:
    kind: ClassVar[str] = "reverse"
    event_id: str
    notice_id: str | None = None
    run_id: str | None = None
    item_ids: list[str] | None = None
    requested_by: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Executed:
    """One approved proposal's outcome (a notice, or not executed)."""

    kind: ClassVar[str] = "executed"
    run_id: str
    notices: int = 0
    not_executed: int = 0


@dataclass(frozen=True)
class SliceDone:
    kind: ClassVar[str] = "slice_done"
    #: a slice decides no approved proposal
    not_executed: ClassVar[int] = 0
    run_id: str
    partition: int
    evaluated: int = 0
    proposals: int = 0
    unknown: int = 0
    notices: int = 0
    commands: int = 0
    failed: int = 0
    pending: int = 0

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("run_id", "partition")}


@dataclass(frozen=True)
class ApproveDone:
    kind: ClassVar[str] = "approve_done"
    run_id: str
    partition: int
    notices: int = 0
    commands: int = 0
    not_executed: int = 0
    failed: int = 0

    def counts(self) -> dict[str, int]:
        return {"notices": self.notices, "commands": self.commands,
                "not_executed": self.not_executed}


@dataclass(frozen=True)
class Tick:
    """The schedule's timer: something is due at `now` (epoch seconds, the timer's
    clock); the control agent decides what (`domain.run_calendar.on_tick`)."""

    kind: ClassVar[str] = "tick"
    now: int
    #: the end offset of `billing.payment-runs` when the tick was sent: the control agent
    #: handles the tick once it has read that far
    payment_runs_end: int | None = None


PartitionWork = Slice | Approve | Reject | ApproveRun | DeleteRun | Reverse
Progress = Executed | SliceDone | ApproveDone
Message = PartitionWork | Progress | Tick

KINDS: dict[str, type[Any]] = {cls.kind: cls for cls in (
    Slice, Approve, Reject, ApproveRun, DeleteRun, Reverse, Executed, SliceDone, ApproveDone,
    Tick)}


class UnknownMessage(ValueError):
    """Bytes that are not a message of the internal topics."""


def encode(message: Message) -> bytes:
    body = dataclasses.asdict(message)
    for f in dataclasses.fields(message):
        if f.metadata.get("omit_default") and body[f.name] == f.default:
            del body[f.name]  # a field added later: the message stays as it was without it
    return orjson.dumps({"kind": message.kind, **body})


def decode(data: bytes) -> Message:
    try:
        body = orjson.loads(data)
        cls = KINDS[body["kind"]]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise UnknownMessage(f"not an internal message: {data[:80]!r}") from exc
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in body.items() if k in names})  # type: ignore[no-any-return]
    except TypeError as exc:
        raise UnknownMessage(f"a {cls.kind} message without its fields: {exc}") from exc
