"""processors.control: a payment run starts a proposal run on every partition, the
partitions' reports complete it, run decisions are carried out or refused (a business
outcome on dunning.runs, never a dead letter), and a run row of the version before is
read."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from domain.run import RunStatus
from processors import messages as m
from processors.control import dump_run, load_run
from tests.integration import events as e
from tests.unit.processors.fakes import D, Event, Message, Rig

PARTITIONS = 2


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return Rig(tmp_path, partitions=PARTITIONS)


def control(rig: Rig, *records: tuple[str, tuple[str, dict[str, Any]]]) -> None:
    events = [Event(rig.message(topic, rec, offset)) for offset, (topic, rec) in
              enumerate(records)]
    asyncio.run(rig.control.on_control(events, enter=lambda event: None))


def report(rig: Rig, *messages: m.Message) -> None:
    topic = rig.settings.topic("dunning.internal.run-progress")
    events = [Event(Message(topic, b"k", m.encode(msg), i)) for i, msg in enumerate(messages)]
    asyncio.run(rig.control.on_control(events, enter=lambda event: None))


def runs(rig: Rig) -> list[tuple[str, dict[str, Any]]]:
    return rig.outbox.records("dunning.runs")


def work(rig: Rig) -> list[tuple[int | None, m.Message]]:
    return [(o[3], m.decode(o[2])) for o in rig.outbox.on("dunning.internal.partition-work")
            if o[2] is not None]


def started(rig: Rig) -> None:
    control(rig, ("billing.payment-runs", e.payment_run("PR-1", D)))


def decision(rtype: str, **fields: Any) -> tuple[str, tuple[str, dict[str, Any]]]:
    who = "requested_by" if rtype == "ProposalRunRequested" else "decided_by"
    return ("dunning.decisions", e.decision(rtype, **{who: "clerk"}, **fields))


def test_a_payment_run_starts_a_slice_on_every_partition(rig: Rig) -> None:
    started(rig)
    assert [t for t, _ in runs(rig)] == ["ProposalRunStarted"]
    slices = work(rig)
    assert [p for p, _ in slices] == list(range(PARTITIONS))
    for _, w in slices:
        assert isinstance(w, m.Slice)
        assert (w.run_id, w.full) == ("PR-1/1", False)
        assert w.targets == {rig.settings.topic(t): 0 for t in (
            "billing.accounts", "billing.invoices", "billing.payments", "billing.due-dates")}
    assert rig.control.get_run("PR-1").status is RunStatus.RUNNING  # type: ignore[union-attr]


def test_the_run_completes_once_every_partition_reported(rig: Rig) -> None:
    started(rig)
    report(rig, m.SliceDone("PR-1/1", 0, evaluated=3, proposals=1))
    assert [t for t, _ in runs(rig)] == ["ProposalRunStarted"]
    report(rig, m.SliceDone("PR-1/1", 1, evaluated=2, proposals=2),
           m.SliceDone("PR-1/1", 1, evaluated=2, proposals=2))  # handled again: once
    completed = [r for t, r in runs(rig) if t == "ProposalRunCompleted"]
    assert [(r["accounts_evaluated"], r["proposals"]) for r in completed] == [(5, 3)]
    assert rig.control.get_run("PR-1").status is RunStatus.PROPOSED  # type: ignore[union-attr]


def test_an_approved_run_cannot_be_deleted_and_the_refusal_is_recorded(rig: Rig) -> None:
    started(rig)
    control(rig, decision("RunApproved", run_id="PR-1/1"),
            decision("RunDeleted", run_id="PR-1/1"))
    assert [type(w) for _, w in work(rig)][-PARTITIONS:] == [m.ApproveRun] * PARTITIONS
    (refused,) = [r for t, r in runs(rig) if t == "RunDecisionRefused"]
    assert (refused["decision"], refused["reason"]) == ("RunDeleted", "run_executed")
    assert rig.outbox.records("dunning.dead-letters") == []
    assert rig.metrics.decisions_refused.labels("run_executed")._value.get() == 1  # noqa: SLF001


def test_a_rerun_only_after_a_deletion_and_then_of_every_account(rig: Rig) -> None:
    started(rig)
    control(rig, decision("ProposalRunRequested", payment_run_id="PR-1"))
    assert [r["reason"] for t, r in runs(rig) if t == "RunDecisionRefused"] == \
        ["run_not_deleted"]
    control(rig, decision("RunDeleted", run_id="PR-1/1"),
            decision("ProposalRunRequested", payment_run_id="PR-1"))
    slices = [(p, w) for p, w in work(rig) if isinstance(w, m.Slice) and w.run_id == "PR-1/2"]
    assert [(p, w.full) for p, w in slices] == [(0, True), (1, True)]
    # the first attempt's late decisions meet a deleted run
    control(rig, decision("RunApproved", run_id="PR-1/1"))
    assert [r["reason"] for t, r in runs(rig) if t == "RunDecisionRefused"][-1] == \
        "run_deleted"


def test_a_decision_about_no_run_is_dead_lettered(rig: Rig) -> None:
    control(rig, decision("RunApproved", run_id="NOPE/1"))
    ((_, letter),) = rig.outbox.records("dunning.dead-letters")
    assert (letter["reason"], letter["source_topic"]) == ("unknown_run", "dunning.decisions")
    assert rig.counted("dunning.decisions", "dead_lettered") == 1


def test_a_run_row_of_the_version_before_is_read(rig: Rig) -> None:
    old = {"payment_run_id": "PR-1", "run_id": "PR-1/1", "attempt": 1, "as_of": 20697,
           "trigger": "E-1", "status": "running", "approved_slices": {}, "executed": 1,
           "started_at": 1.5, "slices": {"0": {"kind": "slice_done", "run_id": "PR-1/1",
                                               "partition": 0, "evaluated": 4, "notices": 1}}}
    run, started_at = load_run(orjson.dumps(old))
    assert (run.status, run.executed, run.not_executed, started_at) == (
        RunStatus.RUNNING, 1, 0, 1.5)
    assert run.slices == {0: {"evaluated": 4, "notices": 1}}
    assert load_run(dump_run(run, started_at)) == (run, started_at)
    rig.tables["runs"][b"PR-1"] = orjson.dumps(old)
    report(rig, m.SliceDone("PR-1/1", 1, evaluated=1))
    completed = [r for t, r in runs(rig) if t == "ProposalRunCompleted"]
    assert [r["accounts_evaluated"] for r in completed] == [5]
    assert rig.control.get_run("PR-1").status is RunStatus.EXECUTED  # type: ignore[union-attr]
