"""processors.activity_run: approvals, rejections, whole runs approved or deleted, and
reversals, each with its records and its rows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from processors import messages as m
from tests.unit.processors.fakes import PARTITION, Rig
from tests.unit.processors.test_proposal_run import RUN, ingested, run_slice


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    r = Rig(tmp_path)
    ingested(r)
    run_slice(r)
    r.outbox.sent.clear()
    return r


def proposal_id(rig: Rig) -> str:
    return str(rig.account("A").pending[0].proposal_id)


def progress(rig: Rig) -> list[m.Message]:
    return [m.decode(o[2]) for o in rig.outbox.on("dunning.internal.run-progress")
            if o[2] is not None]


def test_an_approved_proposal_is_executed_and_its_outcome_reported(rig: Rig) -> None:
    pid = proposal_id(rig)
    asyncio.run(rig.activities.approve(PARTITION, m.Approve(pid)))
    assert [t for t, _ in rig.outbox.records("dunning.history")] == ["DunningNoticeIssued"]
    assert rig.outbox.records("dunning.letters") != []
    assert progress(rig) == [m.Executed(RUN, notices=1, not_executed=0)]
    assert rig.account("A").pending == ()
    # approved again: the same records again (same ids), one outcome each time
    first = list(rig.outbox.sent)
    rig.outbox.sent.clear()
    asyncio.run(rig.activities.approve(PARTITION, m.Approve(pid)))
    assert [o for o in rig.outbox.sent if "changelog" not in o[0]] == \
        [o for o in first if "changelog" not in o[0]]


def test_a_rejected_proposal_is_recorded_and_an_approval_after_it_ignored(rig: Rig) -> None:
    pid = proposal_id(rig)
    asyncio.run(rig.activities.reject(PARTITION, m.Reject(pid, "clerk", "paid")))
    ((rtype, rejected),) = rig.outbox.records("dunning.history")
    assert (rtype, rejected["proposal_id"]) == ("history.ProposalRejected", pid)
    assert rig.account("A").pending == ()
    asyncio.run(rig.activities.approve(PARTITION, m.Approve(pid)))
    assert rig.metrics.decisions_ignored._value.get() == 1  # noqa: SLF001
    assert progress(rig) == []


def test_a_run_approved_as_a_whole_reports_its_partition_once(rig: Rig) -> None:
    asyncio.run(rig.activities.approve_run(PARTITION, m.ApproveRun(RUN)))
    assert progress(rig) == [m.ApproveDone(RUN, PARTITION, notices=1,
                                           commands=progress_commands(rig), not_executed=0)]


def progress_commands(rig: Rig) -> int:
    done = progress(rig)[0]
    assert isinstance(done, m.ApproveDone) and done.commands > 0
    return done.commands


def test_a_deleted_run_leaves_no_pending_proposal(rig: Rig) -> None:
    asyncio.run(rig.activities.delete_run(PARTITION, m.DeleteRun(RUN)))
    assert rig.account("A").pending == ()
    assert not any(k.startswith(b"r|") for k in rig.tables["work_index"].parts[PARTITION])


def test_an_executed_notice_is_reversed(rig: Rig) -> None:
    asyncio.run(rig.activities.approve(PARTITION, m.Approve(proposal_id(rig))))
    ((_, issued),) = rig.outbox.records("dunning.history")
    notice_id = issued["notice_id"]
    rig.outbox.sent.clear()
    asyncio.run(rig.activities.reverse(PARTITION, m.Reverse("E-rev", notice_id=notice_id,
                                                            requested_by="clerk")))
    assert [t for t, _ in rig.outbox.records("dunning.history")] == ["DunningNoticeReversed"]
    # reversed again: refused (nothing left), recorded, never a dead letter
    rig.outbox.sent.clear()
    asyncio.run(rig.activities.reverse(PARTITION, m.Reverse("E-rev2", notice_id=notice_id)))
    assert rig.outbox.records("dunning.dead-letters") == []
