"""The command line, as a person uses it (README "By hand"): topics, procedures, produce,
account show, proposals, runs, consume — against a worker on the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import env_for, wait_for

EXAMPLES = Path(__file__).parents[2] / "examples"


def dunning(story, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "dunning", *args], env=env_for(story.settings),
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def test_the_by_hand_story_of_the_readme(story, tmp_path):
    assert "ok" in dunning(story, "topics", "apply").stdout  # idempotent: all there already
    for name in ("accounts", "invoices", "payments"):
        topic = "billing." + name
        dunning(story, "produce", topic, "--file", str(EXAMPLES / f"{name}.jsonl"))

    def shown():
        out = dunning(story, "account", "show", "ACC-1", "--json", "--port",
                      str(story.settings.web_port), check=False)
        return out.returncode == 0 and json.loads(out.stdout)

    state = wait_for(lambda: (s := shown()) and "INV-1-2" in s["items"] and
                     s["payments"] and s, what="ACC-1 state")
    # 100.00 unallocated clears the oldest due item first
    assert state["items"]["INV-1-1"]["open_amount"] == "19.00"
    assert state["items"]["INV-1-2"]["open_amount"] == "59.50"
    readable = dunning(story, "account", "show", "ACC-1", "--port",
                       str(story.settings.web_port)).stdout
    assert "INV-1-1" in readable and "19.00" in readable

    # the schema-valid line that makes no sense (a negative amount) is dead-lettered
    def dead():
        out = dunning(story, "consume", "dunning.dead-letters", "--from-beginning",
                      "--idle-timeout", "0.5").stdout
        return [json.loads(line) for line in out.splitlines() if "invalid_amount" in line]
    assert wait_for(dead, what="dead letter")[0]["source_topic"] == "billing.payments"

    # a malformed line is refused before anything is published, naming the line
    bad = tmp_path / "bad.jsonl"
    good = (EXAMPLES / "invoices.jsonl").read_text().splitlines()[0]
    bad.write_text(good + "\n" + '{"type": "InvoiceIssued", "account_id": 5}\n')
    proc = dunning(story, "produce", "billing.invoices", "--file", str(bad), check=False)
    assert proc.returncode != 0 and "line 2" in proc.stderr

    dunning(story, "produce", "billing.payment-runs", "--file",
            str(EXAMPLES / "payment-run.jsonl"))
    listed = wait_for(lambda: [line for line in dunning(story, "proposals", "list").stdout
                               .splitlines() if "ACC-1" in line], what="proposal of ACC-1")
    assert "run PR-2026-11-20/1" in listed[0]
    dunning(story, "runs", "approve", "PR-2026-11-20/1")
    letters = wait_for(lambda: [json.loads(line) for line in dunning(
        story, "consume", "dunning.letters", "--from-beginning", "--idle-timeout", "0.5")
        .stdout.splitlines() if '"ACC-1"' in line], what="letter for ACC-1")
    assert letters[0]["language"] == "de" and letters[0]["channel"] == "email"
    runs = dunning(story, "runs", "list").stdout
    assert "ActivityRunCompleted" in runs
