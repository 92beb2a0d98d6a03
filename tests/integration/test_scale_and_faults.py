"""Two workers share a run; a worker killed in the middle of an activity run neither loses
nor re-makes a command (issue: runs, points 1 and 5); input events are all applied while
workers come and go (issue 15: ingest with its own consumer)."""

from __future__ import annotations

import asyncio
import time
import urllib.error
from dataclasses import replace
from datetime import date

from aiokafka import AIOKafkaConsumer, TopicPartition

from dunning.sample import month
from tests.integration import events as e
from tests.integration.conftest import new_story
from tests.integration.harness import Worker, wait_for
from topics.broker import free_port
from topics.broker_quirks import true_end_offsets
from topics.catalogue import ACCOUNT_INPUTS

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


async def _ingest_positions(settings) -> tuple[dict, dict]:
    """The ingest reader's committed positions (group `<app id>-ingest`) and the end offsets
    of every input partition."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(),
                                group_id=settings.ingest_group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic(t), p) for t in ACCOUNT_INPUTS
               for p in range(settings.partitions)]
        consumer.assign(tps)
        committed = {tp: await consumer.committed(tp) or 0 for tp in tps}
        ends = await true_end_offsets(settings.kafka_client_kwargs(), tps)
        return committed, ends
    finally:
        await consumer.stop()


def test_input_events_published_while_workers_come_and_go_are_all_applied(broker, tmp_path):
    """Ingest reads the input partitions of the account partitions a worker owns (its own
    consumer, `processors.reader`), handed over in each rebalance: events published before,
    during and after a second worker joins, and after it leaves again, all end up in the
    account state, and the committed ingest positions reach the end of every input
    partition (nothing left unread, nothing to read again)."""
    story = new_story(broker, tmp_path)
    second = Worker(replace(story.settings, state_dir=story.settings.state_dir / "second",
                            web_port=free_port()))
    accounts = [f"AC-{i}" for i in range(60)]
    due = date(2026, 10, 1)

    def invoices(n: int) -> list:
        return [e.invoice(a, f"{a}-I{n}", [(f"{a}-I{n}-a", "10.00", due)]) for a in accounts]

    def items(worker: Worker, account_id: str) -> dict:
        try:
            return (worker.account(account_id) or {}).get("items") or {}
        except urllib.error.HTTPError as exc:
            if exc.code == 503:  # its partition is moving (a rebalance): not yet
                return {}
            raise

    def applied(worker: Worker, n: int) -> list[str]:
        """The accounts whose invoice `n` the worker does not show yet."""
        return [a for a in accounts if f"{a}-I{n}-a" not in items(worker, a)]

    try:
        story.worker.start()
        story.send("billing.accounts", [e.account(a) for a in accounts])
        story.send("billing.invoices", invoices(1))
        second.start()  # a rebalance: about half of the partitions move
        story.send("billing.invoices", invoices(2))
        for worker in (story.worker, second):
            wait_for(lambda w=worker: not applied(w, 1) and not applied(w, 2), timeout=90,
                     what="invoices 1 and 2 on every account",
                     explain=lambda w=worker: f"missing: {applied(w, 2)}\n{w.log()}")
        assert second.stop() == 0  # the partitions move back
        story.send("billing.invoices", invoices(3))
        wait_for(lambda: not applied(story.worker, 3), timeout=90,
                 what="invoice 3 on every account",
                 explain=lambda: f"missing: {applied(story.worker, 3)}\n{story.worker.log()}")
        for a in accounts:
            assert sorted(items(story.worker, a)) == [f"{a}-I{n}-a" for n in (1, 2, 3)]
        committed, ends = wait_for(
            lambda: (pos := asyncio.run(_ingest_positions(story.settings)))[0] == pos[1]
            and pos, timeout=30, what="the ingest positions at the end of every partition")
        assert sum(ends.values()) == len(accounts) * 4
        assert story.worker.metric("dunning_consumer_lag", topic="billing.invoices",
                                   partition="0") == 0
    finally:
        second.stop()
        story.worker.stop()
