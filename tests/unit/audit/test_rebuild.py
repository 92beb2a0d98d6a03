"""Rebuilding an account's dunning history from its history records: notices, reversals,
rejected proposals, item levels and dates, as of a date; and records that contradict the
history before them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from audit.live import compare
from domain.activity_run import execute
from domain.proposal_run import propose
from domain.reversal import reverse
from domain.review import record_proposals, reject
from domain.state import Account
from processors import convert
from tests.unit.audit.builders import (
    D1,
    D2,
    change,
    encoded,
    log,
    notice,
    replay,
    reversal,
    story,
)
from tests.unit.domain.builders import account, dunning_fields, invoice, item, standard, upsert


def fields(acc):
    return {i: (s.level, s.last_dunned, s.interest_until) for i, s in acc.items.items()}


def test_the_story_rebuilds_notices_reversals_rejections_and_item_levels():
    accounts, summary = replay(log(encoded(story("A"))))
    assert summary.ok, summary.lines()
    a = accounts["A"]
    n1, n2 = a.notices.values()
    assert (n1.level, n1.as_of, n1.in_effect, n1.reversed_items) == (1, D1, True, [])
    assert (n2.level, n2.charge, n2.interest, n2.total_due) == (
        2, Decimal("5.00"), Decimal("1.26"), Decimal("156.26"))
    assert not n2.in_effect and n2.reversed_items == ["x", "y"]
    assert n2.reversal_ids == [a.reversals[0].reversal_id]
    assert [c.item_id for c in n2.items] == ["x", "y"]
    assert n1.command_ids and n1.items[0].new_last_dunned == D1
    assert a.rejected[0].run_id == "PR-3/1" and a.rejected[0].reason == "customer called"
    assert a.reversals[0].charge == Decimal("5.00")
    assert fields(a) == {"x": (1, D1, None), "y": (1, D1, None)}
    assert a.items["x"].changed_by == 4
    assert [r.seq for r in a.records] == [1, 2, 3, 4]


def test_as_of_leaves_out_records_recorded_for_a_later_date():
    values = log(encoded(story("A")))
    a = replay(values, as_of=D1)[0]["A"]
    assert list(a.notices) == [next(iter(a.notices))] and a.after_as_of == 3
    assert fields(a) == {"x": (1, D1, None), "y": (1, D1, None)}
    # the reversal is recorded for the as-of date of the notice it reverses (D2)
    a = replay(values, as_of=D2)[0]["A"]
    assert len(a.notices) == 2 and len(a.reversals) == 1 and a.rejected == []
    a = replay(values, as_of=date(2026, 12, 24))[0]["A"]
    assert a.rejected == [] and a.after_as_of == 1
    # the chain is still read in full
    assert a.seq == 4 and len(a.records) == 4 and not a.records[2].applied


def test_a_partial_reversal_leaves_the_notice_in_effect():
    records = story("A")[:2]
    n2 = records[1][1]
    records.append(reversal(n2, [change("x", (2, D2, D2), (1, D1, None), interest="1.26")],
                            interest="1.26"))
    a = replay(log(encoded(records)))[0]["A"]
    n = a.notices[n2["notice_id"]]
    assert n.in_effect and n.reversed_items == ["x"]
    assert fields(a) == {"x": (1, D1, None), "y": (1, D2, D2)}


def test_records_that_contradict_the_history_before_them_are_reported():
    n1 = notice("A", "PR-1/1", D1, 1, [change("x", (0, None, None), (1, D1, None))])
    wrong_start = notice("A", "PR-2/1", D2, 2, [change("x", (3, D1, None), (4, D2, D2))])
    unknown = reversal({**n1[1], "notice_id": "no-such-notice"},
                       [change("x", (4, D2, D2), (0, None, None))])
    twice = reversal(n1[1], [change("x", (1, D1, None), (0, None, None))])
    _, summary = replay(log(encoded([n1, wrong_start, unknown, twice, twice])))
    details = [(p.kind, p.seq, p.detail) for p in summary.problems]
    assert details[0][:2] == ("inconsistent", 2)
    assert "starts from level 3" in details[0][2] and "left level 1" in details[0][2]
    assert any("does not hold" in d for _, s, d in details if s == 3)
    assert any("already recorded at seq 4" in d for _, s, d in details if s == 5)
    assert any("already reversed" in d for _, s, d in details if s == 5)


def test_item_level_changed_records_are_applied():
    changed = ("ItemLevelChanged", {
        "event_id": "lc-1", "account_id": "A", "recorded_for": D2, "item_id": "x",
        "old_level": 1, "new_level": 0, "reason": "decreased"})
    a = replay(log(encoded([story("A")[0], changed])))[0]["A"]
    assert a.items["x"].level == 0 and a.level_changes[0].reason == "decreased"


def test_only_the_asked_account_is_rebuilt():
    values = encoded(story("A")) + encoded(story("B"))
    accounts, summary = replay(log(values), account="B")
    assert list(accounts) == ["B"] and summary.records == 4


# ---------------------------------------------------------------- against the domain
JAN, FEB, MAR = (date(2026, 1, 10).toordinal(), date(2026, 2, 10).toordinal(),
                 date(2026, 3, 10).toordinal())


def domain_story() -> tuple[list[tuple[str, dict]], dict[str, Account]]:
    """A real account through the domain: level 1, a rejected proposal, level 2 with
    charge and interest, a partial reversal, then the rest of that notice reversed."""
    procs = {"P": standard()}
    acc = account(upsert(), invoice("I", item("A", 10000, JAN - 20), item("B", 5000, JAN - 5)),
                  invoice("J", item("C", 3000, FEB - 30)))
    out: list[tuple[str, dict]] = []
    states: dict[str, Account] = {}
    acc = record_proposals(acc, propose(acc, procs, FEB, "R1/1").proposals)
    acc, n1 = execute(acc, acc.pending[0].proposal_id)
    out.append(convert.notice_history(acc, n1))
    states["after_feb"] = acc
    acc = record_proposals(acc, propose(acc, procs, MAR, "R2/1").proposals)
    acc, rejected = reject(acc, acc.pending[0].proposal_id, "clerk", "not now")
    out.append(convert.rejection_history(acc, rejected))
    acc = record_proposals(acc, propose(acc, procs, MAR, "R2/2").proposals)
    acc, n2 = execute(acc, acc.pending[0].proposal_id)
    assert n2.history.interest > 0 and n2.history.charge > 0
    out.append(convert.notice_history(acc, n2))
    states["after_mar"] = acc
    acc, r1 = reverse(acc, n2.notice_id, ("A",), "rev-a", "clerk", "paid")
    out.append(convert.reversal_history(acc, r1))
    acc, r2 = reverse(acc, n2.notice_id, None, "rev-rest", "clerk", "sent in error")
    out.append(convert.reversal_history(acc, r2))
    states["end"] = acc
    return out, states


def as_dates(acc: Account):
    def d(n):
        return date.fromordinal(n) if n is not None else None
    return {i: (lv, d(last), d(until)) for i, (lv, last, until) in dunning_fields(acc).items()
            if (lv, last, until) != (0, None, None)}


def test_replay_of_domain_history_equals_the_domain_account_and_its_live_json():
    records, states = domain_story()
    values = log(encoded(records))
    accounts, summary = replay(values)
    assert summary.ok, summary.lines()
    rebuilt = accounts["ACC-1"]
    assert fields(rebuilt) == as_dates(states["end"]) | {
        i: (0, None, None) for i in fields(rebuilt) if i not in as_dates(states["end"])}
    end = states["end"]
    live = convert.account_json(end)
    # the processor chains the records (seq and head); this story ran the domain alone
    live["history_seq"], live["history_head"] = rebuilt.seq, rebuilt.head
    assert compare(rebuilt, live) == []
    # as of the first run: what the account was after it
    feb = replay(values, as_of=date.fromordinal(FEB))[0]["ACC-1"]
    assert {i: v for i, v in fields(feb).items() if v != (0, None, None)} == \
        as_dates(states["after_feb"])


def test_compare_names_every_difference_with_the_record_that_set_the_value():
    records, states = domain_story()
    rebuilt = replay(log(encoded(records)))[0]["ACC-1"]
    live = convert.account_json(states["after_mar"])  # as if the reversals never happened
    live["history_seq"] = 3
    found = compare(rebuilt, live)
    text = "\n".join(str(p) for p in found)
    assert "the history's chain ends at seq 5, the worker's history_seq is 3" in text
    assert "item A: level 1 in the history (set by seq 4), 2 in the worker's state" in text
    assert "reversed_items ['A', 'B', 'C'] in the history (seq 3), [] in the worker's" in text
    level_diff = next(p for p in found if "item A: level" in p.detail)
    assert level_diff.seq == 4 and level_diff.where is not None
    assert level_diff.where.offset == 3
    assert compare(rebuilt, None)[0].detail.endswith("does not know the account")


def test_a_served_history_head_anchors_the_last_record_of_a_chain():
    records, states = domain_story()
    values = encoded(records)
    rebuilt = replay(log(values))[0]["ACC-1"]
    live = convert.account_json(states["end"])
    live["history_seq"], live["history_head"] = rebuilt.seq, rebuilt.head
    assert compare(rebuilt, live) == []
    key, last = values[-1]
    values[-1] = (key, last.replace(b"sent in error", b"sent in erroR"))  # the last record
    altered = replay(log(values))[0]["ACC-1"]
    assert altered.chain_intact  # nothing after it to notice
    found = compare(altered, live)
    assert len(found) == 1 and "the last record was altered" in found[0].detail
    assert found[0].seq == 5 and found[0].where is not None


# ---------------------------------------------------------------- imported levels
def import_story() -> tuple[list[tuple[str, dict]], Account]:
    """Item A (100.00 due JAN-20) imported at level 1 (last dunned JAN), then imported
    again at level 2 (last dunned JAN+5, which stands), then a notice of this engine takes
    it to level 3 on MAR; item Z's import arrives before (and without) its invoice."""
    from domain.events import DunningHistoryImported
    from domain.ingest import import_history
    from tests.unit.domain.builders import apply, level, procedure

    procs = {"P": procedure(level(1, 7, "5.00", "10.00", "0.00", False),
                            level(2, 21, "20.00", "30.00", "5.00", True),
                            level(3, 35, "20.00", "30.00", "10.00", True), min_days=14)}
    acc = account(upsert(), invoice("I", item("A", 10000, JAN - 20)))
    out: list[tuple[str, dict]] = []
    for imp in (DunningHistoryImported("imp-1", acc.account_id, "A", 1, JAN, None, None),
                DunningHistoryImported("imp-2", acc.account_id, "A", 2, JAN + 5, JAN + 5,
                                       JAN + 6),
                DunningHistoryImported("imp-z", acc.account_id, "Z", 1, JAN, None, None)):
        after = apply(acc, imp)
        record = import_history(acc, after, imp)
        assert record is not None
        out.append(convert.import_history(record))
        acc = after
    acc = record_proposals(acc, propose(acc, procs, MAR, "R1/1").proposals)
    acc, n1 = execute(acc, acc.pending[0].proposal_id)
    assert [(c.item_id, c.old_level, c.new_level) for c in n1.history.items] == [("A", 2, 3)]
    out.append(convert.notice_history(acc, n1))
    return out, acc


def test_imported_levels_are_history_records_the_replay_applies_without_a_problem():
    records, end = import_story()
    assert [r[0] for r in records] == ["DunningLevelImported"] * 3 + ["DunningNoticeIssued"]
    first, second = records[0][1], records[1][1]
    assert (first["old_level"], first["new_level"], first["old_last_dunned"]) == (0, 1, None)
    assert (second["old_level"], second["new_level"]) == (1, 2)
    assert second["old_last_dunned"] == date.fromordinal(JAN)
    assert second["notice_date"] == date.fromordinal(JAN + 6)
    accounts, summary = replay(log(encoded(records)))
    assert summary.ok, summary.lines()
    rebuilt = accounts["ACC-1"]
    assert [(i.item_id, i.change.new_level, i.import_event_id) for i in rebuilt.imported] == [
        ("A", 1, "imp-1"), ("A", 2, "imp-2"), ("Z", 1, "imp-z")]
    assert rebuilt.items["A"].level == 3 and rebuilt.items["A"].changed_by == 4
    assert fields(rebuilt)["Z"] == (1, date.fromordinal(JAN), None)
    live = convert.account_json(end)
    live["history_seq"], live["history_head"] = rebuilt.seq, rebuilt.head
    assert "Z" not in live["items"] and live["imports"]["Z"]["level"] == 1
    assert compare(rebuilt, live) == []  # Z is compared with the account's imports
    shown = convert.render_account(live)
    assert "level 1 of item Z imported (last dunned 2026-01-10, last notice -)" in shown
    assert "level 2 of item A imported (last dunned 2026-01-15, last notice 2026-01-16)" in shown


def test_the_report_says_a_level_was_imported_not_earned():
    from audit.report import account_json, export_csv, render_table

    rebuilt = replay(log(encoded(import_story()[0])))[0]["ACC-1"]
    body = account_json(rebuilt)
    assert [(i["seq"], i["item_id"], i["old_level"], i["level"], i["notice_date"])
            for i in body["imported_levels"]] == [
        (1, "A", 0, 1, None), (2, "A", 1, 2, date.fromordinal(JAN + 6).isoformat()),
        (3, "Z", 0, 1, None)]
    table = render_table(rebuilt)
    assert table.count("level imported") == 3 and "imported, not earned" in table
    rows = [line.split(",") for line in export_csv(rebuilt).splitlines()]
    imported = [r for r in rows if r[2] == "DunningLevelImported"]
    assert len(imported) == 3 and all("imported" in r for r in imported)


# ---------------------------------------------------------------- charge and interest items
def test_the_replay_shows_the_charge_items_a_notice_keeps_lists_and_reverses():
    """RULES.md decision 12, charges first: the notice of 10.02.2026 (level 1, no charge
    under STANDARD) keeps nothing; the one of 10.03. (level 2) keeps its charge 5.00 and
    its interest as items; a payment of 5.00 after it clears the charge (not on the
    history); its reversal takes both back. The replay rebuilds them without a problem,
    the live account's charge item is the one the history names, and the report shows
    "charge of notice N: 5.00, due 24.03.2026, reversed"."""
    from dataclasses import replace

    from audit.report import account_json, render_table
    from domain.procedures import CHARGES_FIRST
    from domain.settlement import open_claims
    from tests.unit.domain.builders import apply, pay

    procs = {"P": replace(standard(), clearing_order=CHARGES_FIRST)}
    acc = account(upsert(), invoice("I", item("A", 10000, JAN - 20)))
    out: list[tuple[str, dict]] = []
    for as_of, run in ((FEB, "R1/1"), (MAR, "R2/1")):
        acc = record_proposals(acc, propose(acc, procs, as_of, run).proposals)
        acc, notice = execute(acc, acc.pending[0].proposal_id)
        out.append(convert.notice_history(acc, notice))
    assert notice.history.claims is not None and len(notice.history.claims) == 2
    acc = apply(acc, pay("PAY", 500, MAR + 1))
    charge_id = f"{notice.notice_id}/charge"
    assert {c.item_id: o for c, o in open_claims(acc)}[charge_id] == 0
    rebuilt = replay(log(encoded(out)))[0]["ACC-1"]
    assert rebuilt.problems == []
    assert sorted(rebuilt.claims) == [charge_id, f"{notice.notice_id}/interest"]
    charge = rebuilt.claims[charge_id]
    assert (charge.amount, charge.due_date) == (Decimal("5.00"), date(2026, 3, 24))
    assert f"charge of notice {notice.notice_id}: 5.00, due 2026-03-24" in render_table(rebuilt)
    acc, rev = reverse(acc, notice.notice_id, None, "rev-1", "clerk", "sent in error")
    out.append(convert.reversal_history(acc, rev))
    rebuilt = replay(log(encoded(out)))[0]["ACC-1"]
    assert rebuilt.problems == [] and rebuilt.claims[charge_id].claimed == 0
    assert account_json(rebuilt)["claims"][charge_id]["text"].endswith("reversed")
    live = convert.account_json(acc)
    live["history_seq"], live["history_head"] = rebuilt.seq, rebuilt.head
    assert compare(rebuilt, live) == []
    assert live["claims"][charge_id]["status"] == "reversed"
