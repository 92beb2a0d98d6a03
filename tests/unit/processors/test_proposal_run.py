"""processors.proposal_run: a slice waits for its barrier, proposes for the due accounts,
records and publishes the proposals, executes the auto-approved ones, and reports its
counts once (the same report again when done again)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from processors import convert
from processors import messages as m
from processors.state import proposal_key, run_key
from tests.integration import events as e
from tests.unit.processors.fakes import PARTITION, D, Rig

AS_OF = convert.day(D + timedelta(days=30))
RUN = "PR-S/1"


def ingested(rig: Rig) -> None:
    asyncio.run(rig.ingest.apply_unit(PARTITION, [
        rig.message("billing.accounts", e.account("A"), 0),
        rig.message("billing.accounts", e.account("B"), 1),
        rig.message("billing.invoices", e.invoice("A", "A1", [("A1-a", "100.00", D)]), 2),
    ]))
    rig.outbox.sent.clear()


def run_slice(rig: Rig, full: bool = False) -> m.SliceDone:
    targets = {rig.settings.topic("billing.invoices"): 3}
    rig.applied[(rig.settings.topic("billing.invoices"), PARTITION)] = 3
    asyncio.run(rig.proposal_run.slice(PARTITION, m.Slice(RUN, AS_OF, targets, full)))
    (report,) = [m.decode(o[2]) for o in rig.outbox.on("dunning.internal.run-progress")
                 if o[2] is not None][-1:]
    assert isinstance(report, m.SliceDone)
    return report


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return Rig(tmp_path)


def test_a_slice_proposes_for_the_due_accounts_and_reports_its_counts(rig: Rig) -> None:
    ingested(rig)
    report = run_slice(rig)
    assert (report.run_id, report.partition) == (RUN, PARTITION)
    assert (report.evaluated, report.proposals, report.notices, report.failed) == (2, 1, 0, 0)
    proposals = [r for _, r in rig.outbox.records("dunning.proposals")]
    assert [p["account_id"] for p in proposals] == ["A"]
    pending = rig.account("A").pending
    assert [p.run_id for p in pending] == [RUN]
    index = rig.tables["work_index"].parts[PARTITION]
    assert index[proposal_key(pending[0].proposal_id)] == b"A"
    assert run_key(RUN, "A") in index
    assert rig.outbox.records("dunning.history") == []


def test_a_slice_done_again_sends_the_same_report(rig: Rig) -> None:
    ingested(rig)
    first = run_slice(rig)
    rig.outbox.sent.clear()
    assert run_slice(rig) == first
    assert rig.outbox.records("dunning.proposals") == []


def test_auto_approval_executes_the_proposals_in_the_run(tmp_path: Any) -> None:
    rig = Rig(tmp_path, auto_approve=True)
    ingested(rig)
    report = run_slice(rig)
    assert (report.proposals, report.notices) == (1, 1)
    assert report.commands > 0
    history = rig.outbox.records("dunning.history")
    assert [(t, r["account_id"]) for t, r in history] == [("DunningNoticeIssued", "A")]
    assert rig.account("A").pending == ()


def test_the_barrier_waits_for_the_input_events_before_the_run(rig: Rig) -> None:
    ingested(rig)
    topic = rig.settings.topic("billing.invoices")

    async def story() -> bool:
        slice_ = asyncio.ensure_future(rig.proposal_run.slice(
            PARTITION, m.Slice(RUN, AS_OF, {topic: 5})))
        await asyncio.sleep(0.1)
        waited = not slice_.done()
        rig.applied[(topic, PARTITION)] = 5
        await asyncio.wait_for(slice_, 5)
        return waited

    assert asyncio.run(story())
    assert [r["account_id"] for _, r in rig.outbox.records("dunning.proposals")] == ["A"]
