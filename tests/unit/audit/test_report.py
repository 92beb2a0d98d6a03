"""What an auditor gets: one JSON object per account, a table, CSV and JSON exports."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import date
from decimal import Decimal

import pytest

from audit.cli import register
from audit.report import account_json, amount, export_csv, export_json, render_table
from tests.unit.audit.builders import D1, change, encoded, log, notice, replay, story


@pytest.fixture(scope="module")
def rebuilt():
    return replay(log(encoded(story("ACC-7"))), keep_records=True)[0]["ACC-7"]


def test_amounts_show_the_currency_minor_unit_and_never_round():
    assert amount(Decimal("5.000"), "EUR") == "5.00"
    assert amount(Decimal("500.000"), "JPY") == "500"
    assert amount(Decimal("1.250"), "KWD") == "1.250"
    assert amount(Decimal("0.125"), "EUR") == "0.125"
    assert amount(Decimal("-0.000"), "EUR") == "0.00"


def test_the_json_line_of_an_account(rebuilt):
    body = json.loads(json.dumps(account_json(rebuilt)))
    assert body["account_id"] == "ACC-7" and body["seq"] == 4 and body["chain"] == "intact"
    assert body["items"]["x"] == {"level": 1, "last_dunned": "2026-11-20",
                                  "interest_until": None, "changed_by_seq": 4}
    n2 = body["notices"][1]
    assert (n2["charge"], n2["interest"], n2["total_due"]) == ("5.00", "1.26", "156.26")
    assert n2["in_effect"] is False and n2["reversed_items"] == ["x", "y"]
    assert n2["items"][0]["new_interest_until"] == "2026-12-11"
    assert body["reversals"][0]["reason"] == "customer complaint"
    assert body["rejected_proposals"][0]["decided_by"] == "reviewer"
    assert len(body["head"]) == 64 and body["problems"] == []


def test_the_table_lists_records_in_seq_order_and_the_items(rebuilt):
    text = render_table(rebuilt)
    assert text.startswith("account ACC-7: 4 history records (seq 1..4), chain intact")
    rows = [line.split()[0] for line in text.splitlines()
            if line.strip()[:1].isdigit() and "-" in line.split()[1]]
    assert rows == ["1", "2", "3", "4"]
    assert "proposal rejected" in text and "(reversed)" in text
    assert "  x                                1  2026-11-20" in text


def test_csv_export_has_a_row_per_item_of_every_record_with_its_place(rebuilt):
    rows = list(csv.DictReader(io.StringIO(export_csv(rebuilt))))
    assert [r["seq"] for r in rows] == ["1", "1", "2", "2", "3", "4", "4"]
    first = rows[0]
    assert (first["partition"], first["offset"], first["prev_hash"]) == ("0", "0", "")
    assert first["item_id"] == "x" and first["new_level"] == "1"
    assert rows[2]["charge"] == "5.00" and rows[2]["item_interest"] == "1.26"
    assert rows[4]["record_type"] == "history.ProposalRejected" and rows[4]["item_id"] == ""
    assert rows[5]["reversal_id"] and rows[5]["by"] == "auditor"
    assert rows[2]["prev_hash"] == first["hash"] == rows[1]["hash"]


def test_json_export_holds_every_record_as_on_the_topic(rebuilt):
    body = json.loads(json.dumps(export_json(rebuilt)))
    chain = body["chain_records"]
    assert [c["seq"] for c in chain] == [1, 2, 3, 4]
    assert chain[1]["prev_hash"] == chain[0]["hash"]
    assert chain[0]["record"]["type"] == "DunningNoticeIssued"
    assert chain[0]["record"]["recorded_for"] == D1.isoformat()
    assert chain[2]["record"]["type"] == "ProposalRejected"


def test_the_cli_parses_its_three_subcommands():
    parser = argparse.ArgumentParser(prog="dunning")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["audit", "replay", "--account", "A", "--as-of", "2026-11-20"])
    assert (args.account, args.as_of, args.out) == ("A", D1, None)
    args = parser.parse_args(["audit", "verify", "--worker", "http://127.0.0.1:1"])
    assert args.worker == "http://127.0.0.1:1" and not args.chain_only
    args = parser.parse_args(["audit", "export", "--account", "A", "--format", "csv"])
    assert args.format == "csv"
    with pytest.raises(SystemExit):
        parser.parse_args(["audit", "replay", "--as-of", "20.11.2026"])
    with pytest.raises(SystemExit):
        parser.parse_args(["audit", "export", "--account", "A", "--format", "xml"])


def test_progress_lines_on_a_pipe_and_on_a_terminal():
    from audit.replay import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    pipe = io.StringIO()
    p = Progress(pipe, every_s=0)
    p.start(2000)
    p.advance(1000)
    p.finish()
    lines = pipe.getvalue().splitlines()
    assert lines[0] == "replay: 2,000 records to read"
    assert lines[1].startswith("replay: 1,000 / 2,000 records (50 %), ")
    assert lines[-1].startswith("replay: 1,000 records in ") and lines[-1].endswith(
        " records/s")
    term = Tty()
    p = Progress(term, every_s=0)
    p.start(10)
    p.advance(10)
    p.finish()
    assert term.getvalue().count("\n") == 1 and "\r\x1b[K" in term.getvalue()


def test_an_unreachable_worker_is_an_error_not_a_difference():
    import asyncio

    from audit.live import WorkerError, fetch_accounts
    from topics.broker import free_port

    with pytest.raises(WorkerError, match="no answer from the worker"):
        asyncio.run(fetch_accounts(f"http://127.0.0.1:{free_port()}", ["A"]))


def test_each_notice_says_when_its_run_started_and_for_which_scheduled_start(rebuilt):
    """PR-1/1 started as its payment run completed; PR-2/1 at 06:00:04 for the start
    scheduled at 06:00, catching up two missed starts (`dunning.runs`)."""
    from datetime import UTC, datetime

    runs = {
        "PR-1/1": {"started_at": datetime(2026, 11, 20, 20, 0, tzinfo=UTC),
                   "scheduled_at": None, "ticks_caught_up": 0},
        "PR-2/1": {"started_at": datetime(2026, 12, 11, 5, 0, 4, tzinfo=UTC),
                   "scheduled_at": datetime(2026, 12, 11, 5, 0, tzinfo=UTC),
                   "ticks_caught_up": 2},
    }
    n1, n2 = account_json(rebuilt, runs)["notices"]
    assert (n1["run_scheduled_at"], n1["run_started_at"]) == (None, "2026-11-20T20:00:00+00:00")
    assert (n2["run_scheduled_at"], n2["run_ticks_caught_up"]) == (
        "2026-12-11T05:00:00+00:00", 2)
    table = render_table(rebuilt, runs)
    assert "run PR-1/1 started 2026-11-20T20:00:00+00:00 as its payment run completed" in table
    assert ("run PR-2/1 started 2026-12-11T05:00:04+00:00, scheduled for "
            "2026-12-11T05:00:00+00:00 (catching up 2 missed starts)") in table
    assert "run_scheduled_at" not in account_json(rebuilt)["notices"][0]  # runs not read


def test_the_replay_shows_each_part_of_an_items_interest_and_an_unknown_rate():
    """A notice with two items: one with two interest parts (a rate change on 01.11.), one
    without interest for want of a rate (RULES.md section 9)."""
    as_of, due = date(2026, 12, 1), date(2026, 10, 2)
    cut = date(2026, 11, 1)
    parts = [
        {"from": due, "to": cut, "days": 30, "rate_percent": Decimal("8"),
         "base_amount": Decimal("1000.00"), "amount": Decimal("6.67"), "day_count": "act/360"},
        {"from": cut, "to": as_of, "days": 30, "rate_percent": Decimal("9"),
         "base_amount": Decimal("1000.00"), "amount": Decimal("7.50"), "day_count": "act/360"},
    ]  # fmt: skip
    charged = {**change("I-1", (0, None, None), (1, as_of, as_of), interest="14.17"),
               "interest_parts": parts, "interest_reason": None}
    unknown = {**change("I-2", (0, None, None), (1, as_of, None)),
               "interest_parts": [], "interest_reason": "rate_unknown"}
    record = notice("ACC-9", "R/1", as_of, 1, [charged, unknown], interest="14.17")
    accounts, _ = replay(log(encoded([record])))
    acc = accounts["ACC-9"]
    text = render_table(acc)
    assert "interest 2026-10-02..2026-11-01 30 days act/360 8 % on 1000.000: 6.670" in text
    assert "interest 2026-11-01..2026-12-01 30 days act/360 9 % on 1000.000: 7.500" in text
    assert "(rate_unknown)" in text
    (n,) = account_json(acc)["notices"]
    assert [len(i.get("interest_parts", [])) for i in n["items"]] == [2, 0]
    assert n["items"][1]["interest_reason"] == "rate_unknown"
