"""`dunning dead-letters replay` on the broker, against a running worker: a dead letter
replayed after its cause is fixed is applied exactly once, and a replayed record that
fails again stays one dead letter (with one attempt more)."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from dunning import deadletters as dls
from tests.integration import events as e
from tests.integration.harness import dig, env_for, wait_for
from topics.clients import publish_raw

D = date(2026, 10, 1)


def plan(acc: str, plan_id: str, sources: list[str],
         installments: list[tuple[str, str, date]]) -> e.Rec:
    return ("InstallmentPlanCreated", {
        "event_id": uuid.uuid4().hex, "account_id": acc, "plan_id": plan_id,
        "item_ids": sources, "occurred_at": None,
        "installments": [{"item_id": i, "amount": Decimal(a), "due_date": d}
                         for i, a, d in installments]})


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dunning")
    dls.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dead-letters", *argv])
    return int(args.func(args) or 0)


@pytest.fixture
def env(story, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line pointed at the story's namespace, as an operator would set it."""
    for name, value in env_for(story.settings).items():
        if name.startswith("DUNNING_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr("config.logs.configure", lambda *a, **k: None)


def listed(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, Any]]:
    capsys.readouterr()
    assert cli("list", "--json", *argv) == 0
    return {d["event_id"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}


def test_a_dead_letter_replayed_after_its_cause_is_fixed_is_applied_exactly_once(
        story, env, capsys):
    acc = "DLR-1"
    s = story.settings
    story.send("billing.accounts", [e.account(acc)])
    story.send("billing.invoices", [e.invoice(acc, "R1", [("R1-a", "120.00", D)])])
    story.send("billing.due-dates", [plan(acc, "P0", ["R1-a"], [
        ("R1-h1", "120.00", date(2026, 11, 1))])])
    wait_for(lambda: dig(story.worker.account(acc), "items", "R1-a", "status") == "in_plan",
             what="account, invoice and the first plan applied")
    # A second plan for an item that is in an active plan is dead-lettered
    # (item_in_active_plan): billing must cancel the first one before.
    story.send("billing.due-dates", [plan(acc, "P1", ["R1-a"], [
        ("R1-i1", "60.00", date(2026, 11, 1)), ("R1-i2", "60.00", date(2026, 12, 1))])])
    # Bytes nobody can read, on the same topic and partition (same key): replaying them
    # fails again.
    asyncio.run(publish_raw(s, "billing.due-dates", b"\x00\x01not avro", acc.encode()))

    def both() -> dict[str, dict[str, Any]] | None:
        found = {d["reason"]: d for d in listed(capsys).values()
                 if d["source_topic"] == "billing.due-dates"}
        return found if {"item_in_active_plan", "undecodable"} <= set(found) else None

    found = wait_for(both, what="two dead letters")
    rejected = found["item_in_active_plan"]
    plan_id, garbage_id = rejected["event_id"], found["undecodable"]["event_id"]
    assert rejected["key"] == acc and rejected["attempts"] == 1
    assert [p["plan_id"] for p in story.worker.account(acc)["plans"]] == ["P0"]

    # The cause is fixed: billing cancels the first plan.
    story.send("billing.due-dates", [("InstallmentPlanCancelled", {
        "event_id": uuid.uuid4().hex, "account_id": acc, "plan_id": "P0",
        "occurred_at": None})])
    wait_for(lambda: dig(story.worker.account(acc), "items", "R1-a", "status") == "open",
             what="first plan cancelled")

    assert cli("replay", plan_id[:12]) == 0
    assert capsys.readouterr().out.startswith(
        f"replayed {plan_id} (item_in_active_plan, 1 attempts) to billing.due-dates[")
    state = wait_for(lambda: (st := story.worker.account(acc)) and len(st["plans"]) == 2
                     and st, what="the replayed plan applied")
    assert [p["plan_id"] for p in state["plans"]] == ["P0", "P1"]
    instalments = {i: it for i, it in state["items"].items() if it["plan_id"] == "P1"}
    assert sorted(instalments) == ["R1-i1", "R1-i2"]
    assert [it["amount"] for it in instalments.values()] == ["60.00", "60.00"]
    assert state["items"]["R1-a"]["status"] == "in_plan"

    # Replayed again (same event id: already applied), then the unreadable bytes, in one
    # call: same partition, so once the bytes fail again the plan has been seen too.
    capsys.readouterr()
    assert cli("replay", plan_id, garbage_id) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    wait_for(lambda: listed(capsys)[garbage_id]["attempts"] == 2, what="second failure")

    assert story.worker.account(acc) == state  # nothing changed: applied exactly once
    letters = listed(capsys)
    assert letters[plan_id]["attempts"] == 1  # its replays did not fail
    garbage = letters[garbage_id]
    assert garbage["reason"] == "undecodable" and garbage["source_topic"] == "billing.due-dates"
    assert garbage["offset"] > found["undecodable"]["offset"]  # the replayed record's
    assert garbage["first_failed_at"] < garbage["failed_at"]
    # On the topic itself: one record per failure, the repeated one under the same id.
    ids = [r["event_id"] for r in story.records("dunning.dead-letters")
           if r["source_topic"] == "billing.due-dates"]
    assert sorted(ids) == sorted([plan_id, garbage_id, garbage_id])
    assert listed(capsys, "--reason", "undecodable").keys() == {garbage_id}
