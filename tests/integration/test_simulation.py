"""What-if runs (issue 18): `dunning runs simulate` on the real broker reads a copy of the
workers' state, publishes nothing, and proposes what a real run with the same procedures
then proposes."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from dunning.sample import month
from schemas.jsonio import to_json
from tests.integration.conftest import PROCEDURES
from tests.integration.harness import wait_for
from tests.integration.test_cli import dunning
from topics.broker_quirks import true_end_offsets
from topics.catalogue import CATALOGUE
from topics.tables import TABLES

pytestmark = pytest.mark.broker

D = date(2026, 11, 20)
IDS = ("event_id", "proposal_id", "run_id")


def ends(settings: Any) -> dict[str, int]:
    """The end of every topic of the namespace, the tables' changelogs included."""
    names = [settings.topic(t.name) for t in CATALOGUE] + [
        f"{settings.app_id}-{t.name}-changelog" for t in TABLES]

    async def go() -> dict[str, int]:
        kwargs = settings.kafka_client_kwargs()
        consumer = AIOKafkaConsumer(**kwargs)
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(n, p) for n in names
                   for p in sorted(consumer.partitions_for_topic(n) or ())]
        finally:
            await consumer.stop()
        found = await true_end_offsets(kwargs, tps)
        return {f"{tp.topic}:{tp.partition}": off for tp, off in found.items()}
    return asyncio.run(go())


def changed_procedures(path: Any) -> None:
    """The bundled procedures with CONSUMER's level 1 minimum total up from 15.00 to
    60.00 (fewer notices), its level 2 charge up from 0.00 to 2.50 (different notices),
    and BUSINESS's level 1 minimums down from 25.00 and 100.00 to 1.00 (more notices)."""
    data = yaml.safe_load(PROCEDURES.read_text())
    by_id = {p["id"]: p for p in data["procedures"]}
    by_id["CONSUMER"]["levels"][0]["min_total_amount"] = "60.00"
    by_id["CONSUMER"]["levels"][1]["charge"] = "2.50"
    by_id["BUSINESS"]["levels"][0]["min_item_amount"] = "1.00"
    by_id["BUSINESS"]["levels"][0]["min_total_amount"] = "1.00"
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def without_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [{k: v for k, v in r.items() if k not in IDS} for r in records]
    return sorted(out, key=lambda r: (r["account_id"], r["procedure_id"], r["currency"],
                                      r["dunning_group"]))


def simulate(s: Any, *args: str) -> dict[str, Any]:
    proc = dunning(s, "runs", "simulate", "--as-of", D.isoformat(), "--json", *args)
    return json.loads(proc.stdout)


def test_a_simulation_with_changed_procedures_is_what_the_real_run_then_proposes(
        story, tmp_path):
    """80 sample accounts (CONSUMER and BUSINESS) as of 2026-11-20. A simulation with
    changed procedures publishes nothing (every topic and changelog ends where it did)
    and names the groups it adds, takes away and changes against the procedures in
    force, whose side equals a simulation without the file. Then the file is applied and
    the payment run comes: the run's proposals are the simulated ones, field by field."""
    s = story
    sample = month(80, D, seed=18, prefix="SIM")
    sent: dict[str, int] = {}
    for topic, recs in sample.by_topic():
        s.send(topic, recs)
        sent[topic] = len(recs)
    wait_for(lambda: all(s.worker.metric("dunning_applied_total", topic=t) >= n
                         for t, n in sent.items()), timeout=60, what="sample applied")
    changed = tmp_path / "changed.yaml"
    changed_procedures(changed)

    before = ends(s.settings)
    today = simulate(s)
    what_if = simulate(s, "--procedures", str(changed))
    assert ends(s.settings) == before  # published nothing, anywhere

    assert today["accounts"] == what_if["accounts"] == 80
    assert today["differences"] == {"new": [], "gone": [], "changed": []}
    assert what_if["summary"]["in_force"] == today["summary"]["simulated"]
    diff = what_if["differences"]
    assert diff["new"] and diff["gone"] and diff["changed"], diff
    assert {d["procedure_id"] for d in diff["new"]} == {"BUSINESS"}
    assert {d["procedure_id"] for d in diff["gone"]} == {"CONSUMER"}
    assert all(c["simulated"]["level"] == 2 for c in diff["changed"]
               if c["simulated"]["procedure_id"] == "CONSUMER")
    counted = sum(line["proposals"] for line in what_if["summary"]["simulated"])
    assert counted == len(what_if["proposals"])

    loaded = s.worker.log().count("procedure loaded")
    dunning(s, "procedures", "apply", str(changed))
    wait_for(lambda: s.worker.log().count("procedure loaded") >= loaded + 3, timeout=30,
             what="changed procedures loaded")
    s.send("billing.payment-runs", sample.payment_runs)
    run_id = f"PR-{D.isoformat()}/1"
    wait_for(lambda: [r for r in s.records("dunning.runs", "ProposalRunCompleted")
                      if r["run_id"] == run_id], timeout=60, what=f"run {run_id}")
    real = [to_json("DunningProposed", r) for r in s.records("dunning.proposals")
            if r["run_id"] == run_id]
    assert len(real) == len(what_if["proposals"]) > 0
    assert without_ids(real) == without_ids(what_if["proposals"])


def test_a_simulation_of_some_accounts_reads_only_their_partitions_and_names_the_missing(
        story):
    """Two sample accounts by id and one that does not exist: the text report counts
    two accounts, names the missing one and says it published nothing."""
    proc = dunning(story, "runs", "simulate", "--as-of", D.isoformat(), "--accounts",
                   "SIM-000001", "SIM-000002", "NO-SUCH", "--quiet")
    out = proc.stdout
    assert re.search(r"as of 2026-11-20: 2 accounts .* published nothing", out), out
    assert "1 accounts not found: NO-SUCH" in out
    body = simulate(story, "--accounts", "SIM-000001", "--quiet")
    assert body["accounts"] == 1 and body["missing"] == [] and len(body["partitions"]) == 1
    assert {p["account_id"] for p in body["proposals"]} <= {"SIM-000001"}
