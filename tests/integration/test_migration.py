"""Migration (issue 18): `dunning import-levels` and `DunningHistoryImported` on the real
broker, with the CONSUMER procedure (level 2 after 24 days, level 3 after 38 days, at
least 14 days between notices, auto-approved)."""

from __future__ import annotations

import json
import time
from datetime import date

from tests.integration import events as e
from tests.integration.harness import dig, wait_for
from tests.integration.test_cli import dunning

DUE = date(2026, 10, 1)
RUN_DAY = date(2026, 11, 12)


def test_an_imported_backlog_escalates_from_the_imported_levels(story, tmp_path):
    """Two accounts, each one item of 200.00 due 2026-10-01, imported at level 2 (last
    dunned 2026-10-25). On 2026-11-12 the item is 42 days overdue: level 3 (38 days).

    - M1 has no notice date: its last notice counts as 2026-10-25, and 14 days later is
      2026-11-08, before the run: a level-3 proposal, its item from level 2 to 3. Its
      import is published before its invoice.
    - M2's last notice was on 2026-11-01: the next may come on 2026-11-15, after the run:
      no proposal.
    """
    s = story
    s.send("billing.accounts", [e.account(a, procedure="CONSUMER") for a in ("M1", "M2")])
    csv = tmp_path / "levels.csv"
    csv.write_text("account_id,item_id,level,last_dunned_date,interest_until_date,notice_date\n"
                   "M1,M1-x,2,2026-10-25,2026-10-25,\n"
                   "M2,M2-x,2,2026-10-25,2026-10-25,2026-11-01\n")
    dunning(s, "import-levels", str(csv))
    wait_for(lambda: s.worker.account("M1") and s.worker.account("M2"), what="accounts")
    s.send("billing.invoices", [e.invoice(a, f"{a}-I", [(f"{a}-x", "200.00", DUE)])
                                for a in ("M1", "M2")])
    wait_for(lambda: all(dig(s.worker.account(a), "items", f"{a}-x") for a in ("M1", "M2")),
             what="items")
    for a in ("M1", "M2"):
        item = dig(s.worker.account(a), "items", f"{a}-x")
        assert item["level"] == 2 and item["last_dunned"] == "2026-10-25", item
    dunning(s, "import-levels", str(csv))  # twice: once

    s.send("billing.payment-runs", [e.payment_run("MIG-1", RUN_DAY)])
    wait_for(lambda: [r for r in s.records("dunning.runs", "ProposalRunCompleted")
                      if r["run_id"] == "MIG-1/1"], timeout=60, what="run MIG-1/1")
    props = {p["account_id"]: p for p in s.records("dunning.proposals")
             if p["run_id"] == "MIG-1/1" and p["account_id"] in ("M1", "M2")}
    assert set(props) == {"M1"}
    assert props["M1"]["level"] == 3
    (line,) = props["M1"]["items"]
    assert (line["item_id"], line["previous_level"], line["new_level"]) == ("M1-x", 2, 3)

    # The history says each level was imported (once, though the file went twice), then
    # M1's notice (auto-approved) takes the item on from it; the audit replays it clean.
    def history(acc):
        return [(r.record["seq"], r.record_type) for r in s.read("dunning.history")
                if r.record and r.record["account_id"] == acc]
    wait_for(lambda: len(history("M1")) == 2, timeout=30, what="M1's notice",
             explain=lambda: history("M1"))
    assert history("M1") == [(1, "DunningLevelImported"), (2, "DunningNoticeIssued")]
    assert history("M2") == [(1, "DunningLevelImported")]
    for acc, level in (("M1", 3), ("M2", 2)):
        body = json.loads(dunning(s, "audit", "replay", "--account", acc).stdout)
        assert body["problems"] == [], body["problems"]
        assert body["items"][f"{acc}-x"]["level"] == level
        (imp,) = body["imported_levels"]
        assert (imp["item_id"], imp["old_level"], imp["level"], imp["last_dunned"]) == (
            f"{acc}-x", 0, 2, "2026-10-25")


def test_a_file_with_a_bad_row_publishes_nothing(story, tmp_path):
    s = story
    csv = tmp_path / "bad.csv"
    csv.write_text("account_id,item_id,level,last_dunned_date,notice_date\n"
                   "M3,M3-x,2,2026-10-25,\n"
                   "M3,M3-y,0,2026-10-25,\n"
                   "M3,M3-z,2,2026-10-25,2026-10-01\n")
    proc = dunning(s, "import-levels", str(csv), check=False)
    assert proc.returncode != 0
    assert "line 3" in proc.stderr and "line 4" in proc.stderr
    assert "nothing published" in proc.stderr
    time.sleep(1.0)
    assert [r for r in s.records("billing.accounts", "DunningHistoryImported")
            if r["account_id"] == "M3"] == []


def test_an_invalid_import_at_the_worker_is_a_dead_letter_with_its_reason(story):
    """Published around the CLI's checks (level 0): the worker dead-letters it, and a
    second import of an item this engine has not dunned still applies."""
    s = story
    s.send("billing.accounts", [e.account("M4", procedure="CONSUMER")])
    s.send("billing.accounts", [("DunningHistoryImported", {
        "event_id": "m4-bad", "account_id": "M4", "item_id": "M4-x", "level": 0,
        "last_dunned_date": date(2026, 10, 25), "interest_until_date": None,
        "notice_date": None, "occurred_at": None})])
    dead = wait_for(lambda: [r for r in s.records("dunning.dead-letters")
                             if "M4-x" in (r["detail"] or "")], timeout=30,
                    what="dead letter", explain=lambda: s.records("dunning.dead-letters"))
    assert dead[0]["reason"] == "invalid_import" and dead[0]["source_topic"] == "billing.accounts"
