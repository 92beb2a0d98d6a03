"""Two workers share a run; a worker killed in the middle of an activity run neither loses
nor re-makes a command (issue: runs, points 1 and 5)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import date

from aiokafka import AIOKafkaConsumer, TopicPartition

from dunning.sample import month
from tests.integration import events as e
from tests.integration.conftest import new_story
from tests.integration.harness import Worker, wait_for
from topics.broker import free_port

AS_OF = date(2026, 11, 20)
COMMAND_TOPICS = ("dunning.letters", "dunning.locks", "dunning.collections", "dunning.deposits",
                  "dunning.workflows", "dunning.postings")


def publish_month(story, n: int) -> None:
    sample = month(n, AS_OF, procedures=("STANDARD", "BUSINESS"))
    for topic, records in sample.by_topic():
        story.send(topic, records)
    story.send("billing.payments", sample.payments)


def completed(story, rtype: str, run_id: str) -> dict:
    return wait_for(lambda: [r for r in story.records("dunning.runs", rtype)
                             if r["run_id"] == run_id], timeout=120, what=rtype)[0]


def command_ids(story) -> list[str]:
    return [r["command_id"] for t in COMMAND_TOPICS for r in story.records(t)]


def test_two_workers_share_a_run_and_propose_what_one_worker_proposes(broker, tmp_path):
    one = new_story(broker, tmp_path / "one")
    two = new_story(broker, tmp_path / "two")
    second = Worker(replace(two.settings, state_dir=two.settings.state_dir / "second",
                            web_port=free_port()))
    try:
        one.worker.start()
        two.worker.start()
        second.start()
        for story in (one, two):
            publish_month(story, 120)
            story.send("billing.payment-runs", [e.payment_run("PR-S", AS_OF)])
        runs = [completed(s, "ProposalRunCompleted", "PR-S/1") for s in (one, two)]
        assert runs[0]["proposals"] == runs[1]["proposals"] > 0
        assert runs[0]["accounts_evaluated"] == runs[1]["accounts_evaluated"] == 120
        proposals = [sorted((p["proposal_id"], p["level"], str(p["total_due"]))
                            for p in s.records("dunning.proposals")) for s in (one, two)]
        assert proposals[0] == proposals[1]
        # both workers own partitions of the run: each answers for the accounts it holds
        owners = {w.get("/health/")["ready"] for w in (two.worker, second)}
        assert owners == {True}
    finally:
        second.stop()
        two.worker.stop()
        one.worker.stop()


async def _kill_at_first_letter(settings, worker: Worker, timeout: float = 60.0) -> None:
    """Kill -9 the worker as soon as the first letter of the activity run is on the broker."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), fetch_max_wait_ms=10)
    await consumer.start()
    try:
        name = settings.topic("dunning.letters")
        tps = [TopicPartition(name, p) for p in range(settings.partitions)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ends = await consumer.end_offsets(tps)
            if sum(ends.values()) > 0:
                worker.kill()
                return
            await asyncio.sleep(0.005)
        raise AssertionError("no letter appeared")
    finally:
        await consumer.stop()


def test_a_worker_killed_in_the_middle_of_an_activity_run_loses_and_remakes_nothing(
        broker, tmp_path):
    reference = new_story(broker, tmp_path / "reference")
    crashed = new_story(broker, tmp_path / "crashed", run_batch=25)
    try:
        for story in (reference, crashed):
            story.worker.start()
            publish_month(story, 400)
            story.send("billing.payment-runs", [e.payment_run("PR-K", AS_OF)])
            completed(story, "ProposalRunCompleted", "PR-K/1")
        reference.send("dunning.decisions", [e.decision("RunApproved", run_id="PR-K/1",
                                                        decided_by="t")])
        want = completed(reference, "ActivityRunCompleted", "PR-K/1")
        expected = command_ids(reference)
        assert want["notices"] > 50 and len(set(expected)) == len(expected)

        crashed.send("dunning.decisions", [e.decision("RunApproved", run_id="PR-K/1",
                                                      decided_by="t")])
        asyncio.run(_kill_at_first_letter(crashed.settings, crashed.worker))
        # killed in the middle: the run had not finished
        assert not [r for r in crashed.records("dunning.runs", "ActivityRunCompleted")]
        partial = command_ids(crashed)
        assert 0 < len(set(partial)) < len(expected)
        crashed.worker.start()
        completed(crashed, "ActivityRunCompleted", "PR-K/1")
        got = command_ids(crashed)
        # the same commands, each with the same id: none lost, none made anew
        assert set(got) == set(expected)
        history = [h["notice_id"] for h in crashed.records("dunning.history",
                                                            "DunningNoticeIssued")]
        assert set(history) == {h["notice_id"] for h in reference.records(
            "dunning.history", "DunningNoticeIssued")}
    finally:
        reference.worker.stop()
        crashed.worker.stop()
