"""A crashed agent (a bug: bad input never gets that far) stops the worker with a non-zero
exit status and a log line saying why, never a live worker with a dead agent; its batch,
never acknowledged, is read again by the next start, so nothing is lost."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import date

from tests.integration import events as e
from tests.integration.conftest import new_story
from tests.integration.harness import env_for, wait_for
from topics.clients import publish_raw

D = date(2026, 10, 1)
POISON = b"crash the ingest agent"

#: The worker with a bug planted in its ingest: a batch holding POISON raises.
BUGGY_WORKER = f"""
import sys
from processors import core
real = core.Worker.on_inputs

async def on_inputs(self, messages):
    if any(m.value == {POISON!r} for m in messages):
        raise RuntimeError("a planted bug")
    await real(self, messages)

core.Worker.on_inputs = on_inputs
from dunning.cli import main
sys.exit(main(["worker"]))
"""


def test_a_crashed_agent_stops_the_worker_non_zero_and_its_batch_is_read_again(
        broker, tmp_path):
    story = new_story(broker, tmp_path)
    s = story.settings
    story.worker.start()
    story.send("billing.accounts", [e.account("AC-1")])
    wait_for(lambda: story.worker.account("AC-1"), what="the account")
    assert story.worker.stop() == 0

    log_path = tmp_path / "buggy.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", BUGGY_WORKER], env=env_for(s),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: b'"event": "procedures ready"' in log_path.read_bytes()
                     or proc.poll() is not None, timeout=90, what="the buggy worker up")
            story.send("billing.invoices", [e.invoice("AC-1", "I1", [("I1-a", "10.00", D)])])
            asyncio.run(publish_raw(s, "billing.invoices", POISON, b"AC-1"))
            proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode != 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines()
             if line.startswith("{")]
    crash = [x for x in lines if x.get("event", "").startswith("agent crashed")]
    assert crash and crash[0]["agent"] == "ingest" and "a planted bug" in crash[0]["error"]
    assert crash[0]["level"] == "critical"

    # the next start reads the batch again: the invoice is applied, the poison record is
    # an ordinary undecodable dead letter
    story.worker.start()
    try:
        wait_for(lambda: (st := story.worker.account("AC-1")) and "I1-a" in st["items"],
                 what="the invoice of the crashed batch")
        wait_for(lambda: [r for r in story.records("dunning.dead-letters")
                          if r["value"] == POISON], what="the poison record dead-lettered")
    finally:
        story.worker.stop()
