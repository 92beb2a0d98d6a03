"""A run whose procedures auto-approve ends twice (RULES.md section 10, decision 2): the
auto-approved proposals' `ActivityRunCompleted` (`auto_approved: true`) comes with the
proposal run, the approval's (`auto_approved: false`) after `RunApproved`. Waiting for
the first as "the run is carried out" moved the demo on while the approved proposals
were still being executed, so its next run left their groups out as pending."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.integration import events as e
from tests.integration.conftest import running_story
from tests.integration.harness import wait_for

PROCEDURES = """
procedures:
  - id: AUTO
    min_days_between_dunnings: 14
    interest_rate_percent: "0"
    min_interest_amount: "0.00"
    auto_approve: true
    levels:
      - {level: 1, days_in_arrears: 7, min_item_amount: "0.00", min_total_amount: "0.00",
         charge: "0.00", interest: false, activities: [letter]}
  - id: MANUAL
    min_days_between_dunnings: 14
    interest_rate_percent: "0"
    min_interest_amount: "0.00"
    levels:
      - {level: 1, days_in_arrears: 7, min_item_amount: "0.00", min_total_amount: "0.00",
         charge: "0.00", interest: false, activities: [letter]}
"""
AS_OF = date(2026, 11, 20)


@pytest.fixture(scope="module")
def mixed(broker, tmp_path_factory):
    with running_story(broker, tmp_path_factory.mktemp("two-activity-runs"), PROCEDURES) as s:
        yield s


def activity_runs(s, run_id):
    return [r for r in s.records("dunning.runs", "ActivityRunCompleted")
            if r["run_id"] == run_id]


def test_the_auto_approved_and_the_approved_activity_runs_say_which_they_are(mixed):
    s = mixed
    due = AS_OF - timedelta(days=10)
    s.send("billing.accounts", [e.account("T1", procedure="AUTO"),
                                e.account("T2", procedure="AUTO"),
                                e.account("M1", procedure="MANUAL")])
    s.send("billing.invoices", [e.invoice(a, f"{a}-I", [(f"{a}-x", "50.00", due)])
                                for a in ("T1", "T2", "M1")])
    wait_for(lambda: all(s.worker.account(a) for a in ("T1", "T2", "M1")), what="accounts")
    s.send("billing.payment-runs", [e.payment_run("PR-MIX", AS_OF)])
    (auto,) = wait_for(lambda: activity_runs(s, "PR-MIX/1"), timeout=60,
                       what="the auto-approved proposals' ActivityRunCompleted",
                       explain=lambda: s.records("dunning.runs"))
    assert (auto["auto_approved"], auto["notices"], auto["not_executed"]) == (True, 2, 0)
    s.send("dunning.decisions", [e.decision("RunApproved", run_id="PR-MIX/1", decided_by="t")])
    both = wait_for(lambda: (got := activity_runs(s, "PR-MIX/1")) and len(got) == 2 and got,
                    timeout=60, what="the approval's ActivityRunCompleted",
                    explain=lambda: s.records("dunning.runs"))
    approved = both[1]
    assert (approved["auto_approved"], approved["notices"], approved["not_executed"]) == (
        False, 1, 0)
    issued = {h["account_id"] for h in s.records("dunning.history", "DunningNoticeIssued")}
    assert issued == {"T1", "T2", "M1"}
