"""Charges as claimable items through Kafka (issue 17, RULES.md decision 12): a procedure
with `clearing_order: [charges, interest, principal]` keeps the executed charge as an open
item of the account; an unallocated payment clears it first; the next notice lists the
principal and not the paid charge, and an unpaid charge is listed and counted; the same
story under a procedure without `clearing_order` puts the payment on the principal. The
auditor's replay of the account is clean and shows the charge item."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from tests.integration import events as e
from tests.integration.conftest import running_story
from tests.integration.harness import audit_cli, wait_for

pytestmark = pytest.mark.broker

LEVELS = """
    min_days_between_dunnings: 14
    interest_rate_percent: "0.0"
    min_interest_amount: "0.00"
    auto_approve: true
    levels:
      - {level: 1, days_in_arrears: 1, min_item_amount: "0.00", min_total_amount: "0.00",
         charge: "5.00", interest: false, activities: [letter]}
      - {level: 2, days_in_arrears: 40, min_item_amount: "0.00", min_total_amount: "0.00",
         charge: "7.00", interest: false, activities: [letter]}
"""
PROCEDURES = f"""
procedures:
  - id: CHARGES_FIRST
    clearing_order: [charges, interest, principal]
{LEVELS}
  - id: PLAIN
{LEVELS}
"""
DUE = date(2026, 10, 1)
RUN1, RUN2 = date(2026, 11, 1), date(2026, 11, 20)
PAID = date(2026, 11, 5)


@pytest.fixture(scope="module")
def charged(broker, tmp_path_factory):
    with running_story(broker, tmp_path_factory.mktemp("charges"), PROCEDURES) as s:
        yield s


def notices_of(s: Any, run: str) -> dict[str, dict[str, Any]]:
    return {h["account_id"]: h for h in s.records("dunning.history", "DunningNoticeIssued")
            if h["run_id"].startswith(run)}


def test_a_payment_first_clears_the_charge_and_the_next_notice_lists_the_principal(
        charged, monkeypatch, capsys):
    """K1 (charges first) and P1 (no clearing_order): 100.00 due 01.10.2026, a notice on
    01.11. (level 1, charge 5.00), then 5.00 unallocated on 05.11. K1: the charge item
    takes it (open 0.00), the principal stays 100.00; the notice of 20.11. (level 2,
    charge 7.00) lists 100.00 and not the charge: total due 107.00. P1: the 5.00 lands on
    the principal (95.00), no item is kept: total due 95.00 + 7.00 = 102.00. K2 (charges
    first, pays nothing): the second notice lists 100.00 and the open charge 5.00 of the
    first: total due 100.00 + 5.00 + 7.00 = 112.00, on the letter too."""
    s = charged
    accounts = {"K1": "CHARGES_FIRST", "P1": "PLAIN", "K2": "CHARGES_FIRST"}
    s.send("billing.accounts", [e.account(a, procedure=p) for a, p in accounts.items()])
    s.send("billing.invoices", [e.invoice(a, f"{a}-I", [(f"{a}-1", "100.00", DUE)])
                                for a in accounts])
    wait_for(lambda: all(s.worker.account(a) for a in accounts), what="accounts")
    s.send("billing.payment-runs", [e.payment_run("PR-C1", RUN1)])
    first = wait_for(lambda: (lambda got: got if set(accounts) <= set(got) else None)(
        notices_of(s, "PR-C1")), timeout=60, what="the first notices")
    k1_notice = first["K1"]["notice_id"]
    charge_id = f"{k1_notice}/charge"
    assert [(c["item_id"], c["kind"], c["amount"], c["due_date"]) for c in first["K1"]["claims"]] \
        == [(charge_id, "charge", Decimal("5.00"), date(2026, 11, 15))]
    assert first["P1"]["claims"] is None

    s.send("billing.payments", [e.payment(a, f"{a}-PAY", "5.00", PAID) for a in ("K1", "P1")])

    def settled():
        k1, p1 = s.worker.account("K1"), s.worker.account("P1")
        paid = (k1 and k1.get("claims", {}).get(charge_id, {}).get("open_amount") == "0.00"
                and p1 and p1["items"]["P1-1"]["open_amount"] == "95.00")
        return (k1, p1) if paid else None

    k1, p1 = wait_for(settled, timeout=30, what="the payments applied")
    assert k1["items"]["K1-1"]["open_amount"] == "100.00"
    assert "claims" not in p1

    s.send("billing.payment-runs", [e.payment_run("PR-C2", RUN2)])
    proposals = wait_for(lambda: (lambda got: got if set(accounts) <= set(got) else None)(
        {p["account_id"]: p for p in s.records("dunning.proposals")
         if p["run_id"].startswith("PR-C2")}), timeout=60, what="the second proposals")
    rows = {a: [(i["item_id"], i["kind"], i["open_amount"]) for i in p["items"]]
            for a, p in proposals.items()}
    assert rows["K1"] == [("K1-1", None, Decimal("100.00"))]
    assert proposals["K1"]["total_due"] == Decimal("107.00")
    assert rows["P1"] == [("P1-1", None, Decimal("95.00"))]
    assert proposals["P1"]["total_due"] == Decimal("102.00")
    k2_charge = f"{first['K2']['notice_id']}/charge"
    assert rows["K2"] == [("K2-1", None, Decimal("100.00")),
                          (k2_charge, "charge", Decimal("5.00"))]
    assert proposals["K2"]["total_due"] == Decimal("112.00")

    def letter_of_k2():
        got = [r for r in s.records("dunning.letters")
               if r["account_id"] == "K2" and r["as_of_date"] == RUN2]
        return got[0] if got else None

    letter = wait_for(letter_of_k2, timeout=60, what="K2's second letter")
    assert [(i["item_id"], i["kind"]) for i in letter["items"]] == [
        ("K2-1", None), (k2_charge, "charge")]
    assert letter["total_due"] == Decimal("112.00")
    wait_for(lambda: set(accounts) <= set(notices_of(s, "PR-C2")), timeout=60,
             what="the second notices")

    # the auditor's replay of K1: clean, and it shows the charge item
    code, out, err = audit_cli(monkeypatch, capsys, s.settings, "replay", "--account", "K1")
    assert code == 0, err
    body = json.loads(out)
    assert body["problems"] == []
    assert body["claims"][charge_id]["amount"] == "5.00"
    assert f"charge of notice {k1_notice}: 5.00, due 2026-11-15" in err
    worker_url = f"http://127.0.0.1:{s.settings.web_port}"
    code, out, err = audit_cli(monkeypatch, capsys, s.settings, "verify", "--worker", worker_url)
    assert code == 0, out + err
    assert out.rstrip().endswith("OK")
