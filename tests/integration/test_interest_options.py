"""Interest on a reference rate through Kafka (issue 17, RULES.md section 9): rates on
the compacted `dunning.rates`, a procedure `interest_base_rate` + spread with act/360 and
a pay-by of 10 days, a run that cuts the period at a rate change and one item whose
period starts before the first rate is known (`rate_unknown`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import yaml

from domain.rates import parse_rates
from processors.convert import rate_record
from tests.integration import events as e
from tests.integration.conftest import new_story, publish_procedures
from tests.integration.harness import wait_for

PROCEDURES = """
procedures:
  - id: BASED
    min_days_between_dunnings: 14
    interest_base_rate: DE-BASIS
    interest_spread_percent: "5.0"
    day_count: act/360
    min_interest_amount: "0.00"
    auto_approve: true
    levels:
      - {level: 1, days_in_arrears: 1, min_item_amount: "0.00", min_total_amount: "0.00",
         charge: "2.00", interest: true, activities: [letter], pay_within_days: 10}
"""
RATES = """
rates:
  - {rate_id: DE-BASIS, valid_from: "2026-07-01", percent: "3.0"}
  - {rate_id: DE-BASIS, valid_from: "2026-11-01", percent: "4.0"}
"""
AS_OF = date(2026, 12, 1)


@pytest.fixture(scope="module")
def rated(broker, tmp_path_factory):
    s = new_story(broker, tmp_path_factory.mktemp("rates"))
    publish_procedures(s.settings, PROCEDURES)
    s.send("dunning.rates",
           [("InterestRateSet", rate_record(r)) for r in parse_rates(yaml.safe_load(RATES))])
    s.worker.start()
    try:
        yield s
    finally:
        s.worker.stop()


def test_the_rates_topic_is_keyed_by_rate_and_day(rated):
    got = rated.read("dunning.rates")
    assert sorted(r.key for r in got) == [b"DE-BASIS|2026-07-01", b"DE-BASIS|2026-11-01"]
    assert {r.record["percent"] for r in got} == {Decimal("3.0"), Decimal("4.0")}


def test_a_run_on_a_base_rate_cuts_at_the_change_and_reports_an_unknown_rate(rated):
    """B1: 1000.00 due 2026-10-02, dunned 2026-12-01: 30 days at 3 + 5 = 8 % and 30 days
    at 4 + 5 = 9 %, act/360: 100000*0.08*30/360 = 666.67 and 100000*0.09*30/360 = 750.00,
    1416.67 -> 14.17. B2: due 2026-06-20, before the first rate (2026-07-01): no interest,
    reason rate_unknown. Pay by 2026-12-11 (10 days)."""
    s = rated
    s.send("billing.accounts", [e.account("B1", procedure="BASED"),
                                e.account("B2", procedure="BASED")])
    s.send("billing.invoices", [
        e.invoice("B1", "B1-I", [("B1-x", "1000.00", date(2026, 10, 2))]),
        e.invoice("B2", "B2-I", [("B2-x", "1000.00", date(2026, 6, 20))], issued=date(2026, 6, 1)),
    ])
    wait_for(lambda: s.worker.account("B1") and s.worker.account("B2"), what="accounts")
    s.send("billing.payment-runs", [e.payment_run("PR-R", AS_OF)])

    def proposals():
        got = {p["account_id"]: p for p in s.records("dunning.proposals")}
        return got if {"B1", "B2"} <= set(got) else None

    props = wait_for(proposals, timeout=60, what="proposals of PR-R",
                     explain=lambda: s.records("dunning.runs"))
    b1, b2 = props["B1"], props["B2"]
    assert b1["interest"] == Decimal("14.17") and b1["pay_within_days"] == 10
    parts = b1["items"][0]["interest_parts"]
    assert [(p["from"], p["to"], p["rate_percent"], p["amount"]) for p in parts] == [
        (date(2026, 10, 2), date(2026, 11, 1), Decimal("8.0"), Decimal("6.67")),
        (date(2026, 11, 1), date(2026, 12, 1), Decimal("9.0"), Decimal("7.50")),
    ]
    assert {p["day_count"] for p in parts} == {"act/360"}
    assert b1["total_due"] == Decimal("1016.17")
    assert b2["interest"] == Decimal("0.00")
    assert b2["items"][0]["interest_reason"] == "rate_unknown"

    def letter():
        got = [r for r in s.records("dunning.letters") if r["account_id"] == "B1"]
        return got[0] if got else None

    sent = wait_for(letter, timeout=60, what="B1's letter (auto-approved)")
    assert sent["pay_by"] == date(2026, 12, 11)
    assert len(sent["items"][0]["interest_parts"]) == 2
    issued = wait_for(lambda: [h for h in s.records("dunning.history", "DunningNoticeIssued")
                               if h["account_id"] == "B2"], timeout=60, what="B2's notice")
    (change,) = issued[0]["items"]
    assert change["interest_reason"] == "rate_unknown"
    assert change["new_interest_until"] is None


def test_dunning_rates_apply_publishes_the_file_and_refuses_a_bad_one(rated, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tests.integration.harness import env_for

    def dunning(*args):
        return subprocess.run([sys.executable, "-m", "dunning", *args],
                              env=env_for(rated.settings), capture_output=True, text=True,
                              timeout=120)

    example = Path(__file__).parents[2] / "examples" / "rates.yaml"
    done = dunning("rates", "apply", str(example))
    assert done.returncode == 0 and "published 4 rates: DE-BASIS" in done.stdout, done.stderr
    keys = {r.key for r in rated.read("dunning.rates")}
    assert {b"DE-BASIS|2024-01-01", b"DE-BASIS|2025-07-01"} <= keys
    bad = tmp_path / "bad.yaml"
    bad.write_text('rates:\n  - {rate_id: X, valid_from: "2024-02-30", percent: "1"}\n')
    refused = dunning("rates", "apply", str(bad))
    assert refused.returncode != 0 and "valid_from must be a date" in refused.stderr
