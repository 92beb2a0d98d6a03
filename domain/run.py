"""A proposal run and its activity run: the lifecycle, the decisions refused out of turn,
and the per-proposal outcomes counted from the partitions' reports.

Statuses (`RunStatus`) and their moves:

* `running` from the start of an attempt until every partition's slice is done;
* then `proposed`, or `executed` when auto-approval executed notices;
* `approved` by a `RunApproved` (from any status but `deleted`);
* `deleted` by a `RunDeleted` (refused once a proposal of the run was approved or
  executed, or the run approved); an earlier attempt of a payment run that was run again
  is `deleted` and `superseded`;
* under a run schedule (`domain.run_calendar`), a payment run is `waiting` for the next
  scheduled start, and `skipped` when a later payment run started at that start instead
  (it covers it); neither has started a proposal run.

Pure: the caller stores the run, sends its records and keeps the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from domain.review import executed_run
from domain.state import Account

#: The counts of a partition's slice, summed into the `ProposalRunCompleted`.
SLICE_COUNTS = ("evaluated", "proposals", "unknown", "notices", "commands", "pending", "failed")
#: The counts of a partition's activity run, summed into the `ActivityRunCompleted`.
ACTIVITY_COUNTS = ("notices", "commands", "not_executed")


class RunStatus(StrEnum):
    RUNNING = "running"
    PROPOSED = "proposed"
    EXECUTED = "executed"
    APPROVED = "approved"
    DELETED = "deleted"
    WAITING = "waiting"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Refusal:
    """A run decision that cannot be carried out (recorded as `RunDecisionRefused`)."""

    reason: str
    detail: str


@dataclass
class Run:
    payment_run_id: str
    run_id: str
    attempt: int
    as_of: int
    trigger: str
    status: RunStatus = RunStatus.RUNNING
    #: partition -> the counts of its slice / of its activity run
    slices: dict[int, dict[str, int]] = field(default_factory=dict)
    approved_slices: dict[int, dict[str, int]] = field(default_factory=dict)
    #: outcomes of the run's proposals: notices executed, approved ones not executed
    executed: int = 0
    not_executed: int = 0
    completed: bool = False
    activity_done: bool = False
    superseded: bool = False
    #: the scheduled start the run was started for (epoch seconds), and the starts due
    #: before it that it caught up (a downtime)
    scheduled_at: int | None = None
    ticks_caught_up: int = 0

    @property
    def started(self) -> bool:
        """A proposal run has started (not waiting for the schedule, nor covered)."""
        return self.status not in (RunStatus.WAITING, RunStatus.SKIPPED)

    # ------------------------------------------------------------------ decisions
    def approve(self) -> Refusal | None:
        if self.status is RunStatus.DELETED:
            return Refusal("run_deleted", f"run {self.run_id} was deleted")
        self.status = RunStatus.APPROVED
        return None

    def deleted_before(self) -> bool:
        return self.status is RunStatus.DELETED

    def delete(self) -> Refusal | None:
        """Delete the run (call only when not `deleted_before`)."""
        if (self.executed > 0 or self.not_executed > 0
                or self.status in (RunStatus.APPROVED, RunStatus.EXECUTED)):
            return Refusal("run_executed",
                           f"run {self.run_id} has approved or executed proposals: reverse "
                           "its notices, or decide its other proposals one by one")
        self.status = RunStatus.DELETED
        return None

    def rerun_refusal(self) -> Refusal | None:
        """Why a new attempt cannot start now (None: it can; a payment run waiting for
        the schedule, or covered by a later one, starts at once on request)."""
        if self.status not in (RunStatus.DELETED, RunStatus.WAITING, RunStatus.SKIPPED):
            return Refusal("run_not_deleted",
                           f"run {self.run_id} is {self.status.value}: delete it first")
        return None

    # ------------------------------------------------------------------ outcomes
    def count(self, notices: int, not_executed: int) -> None:
        self.executed += notices
        self.not_executed += not_executed

    def slice_done(self, partition: int, counts: dict[str, int],
                   partitions: int) -> dict[str, int] | None:
        """One partition's slice is done; the run's totals once every partition's is (the
        first time only)."""
        self.slices[partition] = counts
        if len(self.slices) < partitions or self.completed:
            return None
        self.completed = True
        if self.status is RunStatus.RUNNING:
            self.status = RunStatus.EXECUTED if self.executed else RunStatus.PROPOSED
        return _totals(self.slices, SLICE_COUNTS)

    def activity_slice_done(self, partition: int, counts: dict[str, int],
                            partitions: int) -> dict[str, int] | None:
        """One partition's activity run is done; the totals once every partition's is."""
        self.approved_slices[partition] = counts
        if len(self.approved_slices) < partitions or self.activity_done:
            return None
        self.activity_done = True
        return _totals(self.approved_slices, ACTIVITY_COUNTS)


def _totals(slices: dict[int, dict[str, int]], keys: tuple[str, ...]) -> dict[str, int]:
    return {k: sum(s.get(k, 0) for s in slices.values()) for k in keys}


def new_attempt(payment_run_id: str, run_id: str, attempt: int, as_of: int,
                trigger: str, scheduled_at: int | None = None, ticks_caught_up: int = 0) -> Run:
    return Run(payment_run_id, run_id, attempt, as_of, trigger,
               scheduled_at=scheduled_at, ticks_caught_up=ticks_caught_up)


def waiting_run(payment_run_id: str, run_id: str, as_of: int, trigger: str) -> Run:
    """A completed payment run waiting for the schedule's next start."""
    return Run(payment_run_id, run_id, 1, as_of, trigger, RunStatus.WAITING)


def superseded_attempt(run_id: str, current: Run | None) -> Run | None:
    """The run `run_id` when it is an earlier attempt of `current`'s payment run (deleted,
    since it was run again): its progress and decisions can still arrive."""
    payment_run_id, _, attempt = run_id.rpartition("/")
    if current is None or current.run_id == run_id or not attempt.isdigit() \
            or not 0 < int(attempt) < current.attempt:
        return None
    return Run(payment_run_id, run_id, int(attempt), current.as_of, "",
               RunStatus.DELETED, superseded=True)


def auto_approves(deployment: bool, procedure: bool) -> bool:
    """A proposal is executed by its own run when the deployment or its procedure says so
    (`DUNNING_AUTO_APPROVE`, a procedure's `auto_approve`)."""
    return deployment or procedure


def run_of_proposal(account: Account, proposal_id: str) -> str | None:
    """The run of `proposal_id` on `account`: of the pending proposal, else of the notice
    that executed it; None when it was decided otherwise (rejected, not executed, its run
    deleted)."""
    for p in account.pending:
        if p.proposal_id == proposal_id:
            return p.run_id
    return executed_run(account, proposal_id)


def pending_of_run(account: Account, run_id: str) -> list[str]:
    """The account's undecided proposals of `run_id`."""
    return [p.proposal_id for p in account.pending if p.run_id == run_id]
