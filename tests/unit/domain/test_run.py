"""domain.run: a run's lifecycle, the decisions refused out of turn, the outcomes counted
from the partitions' reports."""

from __future__ import annotations

from domain.run import (
    Refusal,
    RunStatus,
    auto_approves,
    new_attempt,
    pending_of_run,
    run_of_proposal,
    superseded_attempt,
)
from domain.state import new_account


def run(attempt: int = 1):  # type: ignore[no-untyped-def]
    return new_attempt("PR-1", f"PR-1/{attempt}", attempt, 20000, "E-1")


def test_a_run_is_proposed_once_every_partition_reported_and_totals_are_summed() -> None:
    r = run()
    assert r.status is RunStatus.RUNNING
    assert r.slice_done(0, {"evaluated": 3, "proposals": 1}, partitions=2) is None
    assert r.status is RunStatus.RUNNING
    totals = r.slice_done(1, {"evaluated": 2, "proposals": 2, "failed": 1}, partitions=2)
    assert totals == {"evaluated": 5, "proposals": 3, "unknown": 0, "notices": 0,
                      "commands": 0, "pending": 0, "failed": 1}
    assert (r.status, r.completed) == (RunStatus.PROPOSED, True)
    # a report handled again completes nothing twice
    assert r.slice_done(1, {"evaluated": 2}, partitions=2) is None


def test_a_run_whose_slices_executed_notices_is_executed() -> None:
    r = run()
    r.count(notices=2, not_executed=0)
    assert r.slice_done(0, {"notices": 2}, partitions=1) is not None
    assert r.status is RunStatus.EXECUTED


def test_an_approved_run_stays_approved_when_its_slices_finish() -> None:
    r = run()
    assert r.approve() is None
    r.slice_done(0, {}, partitions=1)
    assert r.status is RunStatus.APPROVED


def test_a_deleted_run_cannot_be_approved() -> None:
    r = run()
    assert r.delete() is None
    assert r.deleted_before()
    assert r.approve() == Refusal("run_deleted", "run PR-1/1 was deleted")
    assert r.status is RunStatus.DELETED


def test_a_run_with_approved_or_executed_proposals_cannot_be_deleted() -> None:
    for prepare in (lambda r: r.approve(), lambda r: r.count(1, 0), lambda r: r.count(0, 1)):
        r = run()
        prepare(r)
        refusal = r.delete()
        assert refusal is not None and refusal.reason == "run_executed"
        assert r.status is not RunStatus.DELETED


def test_a_run_is_rerun_only_once_deleted() -> None:
    r = run()
    refusal = r.rerun_refusal()
    assert refusal == Refusal("run_not_deleted", "run PR-1/1 is running: delete it first")
    r.delete()
    assert r.rerun_refusal() is None


def test_the_activity_run_completes_once_every_partition_reported() -> None:
    r = run()
    assert r.activity_slice_done(0, {"notices": 1, "commands": 2}, partitions=2) is None
    assert r.activity_slice_done(1, {"notices": 1, "not_executed": 1}, partitions=2) == \
        {"notices": 2, "commands": 2, "not_executed": 1}
    assert r.activity_slice_done(1, {"notices": 1}, partitions=2) is None


def test_an_earlier_attempt_is_superseded_and_deleted() -> None:
    current = run(attempt=3)
    earlier = superseded_attempt("PR-1/2", current)
    assert earlier is not None
    assert (earlier.superseded, earlier.status, earlier.attempt) == (True, RunStatus.DELETED, 2)
    assert superseded_attempt("PR-1/3", current) is None
    assert superseded_attempt("PR-1/4", current) is None
    assert superseded_attempt("PR-1/x", current) is None
    assert superseded_attempt("PR-1/1", None) is None


def test_auto_approval_by_the_deployment_or_the_procedure() -> None:
    assert [auto_approves(d, p) for d, p in ((False, False), (True, False), (False, True))] \
        == [False, True, True]


def test_the_run_of_a_proposal_not_on_the_account_is_none() -> None:
    account = new_account("A")
    assert run_of_proposal(account, "P-1") is None
    assert pending_of_run(account, "PR-1/1") == []
