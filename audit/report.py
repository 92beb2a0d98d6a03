"""A rebuilt history as JSON (one object per account), as a table, and as an auditor's
export (CSV or JSON with every record).

Amounts are decimal strings in the minor unit of the notice's currency (`"5.00"`), never
rounded: a value with more decimals keeps them. Dates are ISO.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from audit.rebuild import (
    AccountHistory,
    ClaimItem,
    Delivery,
    ItemChange,
    Notice,
    RecordRef,
    Reversal,
)
from audit.runs import RunStarts, start_text
from domain.money import minor_units

_SHOWN: dict[tuple[Decimal, str | None], str] = {}


def amount(value: Decimal | None, currency: str | None) -> str | None:
    if value is None:
        return None
    text = _SHOWN.get((value, currency))
    if text is not None:
        return text
    try:
        places = minor_units(currency) if currency else 2
    except ValueError:
        places = 2
    shown = value.quantize(Decimal(1).scaleb(-places))
    if shown != value:
        shown = value.normalize()
    text = format(shown, "f")
    if shown == 0 and text.startswith("-"):
        text = text[1:]
    if len(_SHOWN) < 1 << 16:  # amounts repeat a lot (zero, charges)
        _SHOWN[(value, currency)] = text
    return text


def iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _changes(changes: Iterable[ItemChange], currency: str | None) -> list[dict[str, Any]]:
    return [{
        "item_id": ch.item_id, "listed": ch.listed,
        "old_level": ch.old_level, "new_level": ch.new_level,
        "old_last_dunned": iso(ch.old_last_dunned), "new_last_dunned": iso(ch.new_last_dunned),
        "old_interest_until": iso(ch.old_interest_until),
        "new_interest_until": iso(ch.new_interest_until),
        "interest": amount(ch.interest, currency),
        **({"interest_parts": list(ch.interest_parts)} if ch.interest_parts else {}),
        **({"interest_reason": ch.interest_reason} if ch.interest_reason else {}),
    } for ch in changes]


def notice_json(n: Notice) -> dict[str, Any]:
    c = n.currency
    return {
        "seq": n.seq, "notice_id": n.notice_id, "proposal_id": n.proposal_id,
        "run_id": n.run_id, "as_of": iso(n.as_of), "procedure_id": n.procedure_id,
        "dunning_group": n.dunning_group, "currency": c, "level": n.level,
        "activities": n.activities, "charge": amount(n.charge, c),
        "interest": amount(n.interest, c), "total_due": amount(n.total_due, c),
        "command_ids": n.command_ids, "items": _changes(n.items, c),
        "in_effect": n.in_effect, "reversed_items": n.reversed_items,
        "reversal_ids": n.reversal_ids,
    }


def reversal_json(r: Reversal) -> dict[str, Any]:
    c = r.currency
    return {
        "seq": r.seq, "reversal_id": r.reversal_id, "notice_id": r.notice_id,
        "run_id": r.run_id, "as_of": iso(r.as_of), "currency": c, "item_ids": r.item_ids,
        "charge": amount(r.charge, c), "interest": amount(r.interest, c),
        "command_ids": r.command_ids, "reason": r.reason, "requested_by": r.requested_by,
        "items": _changes(r.items, c),
    }


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {"seq": d.seq, "notice_id": d.notice_id, "command_id": d.command_id,
            "outcome": d.outcome, "detail": d.detail, "attempt": d.attempt,
            "permanent": d.permanent, "next_step": d.next_step, "fallback": d.fallback,
            "at": iso_time(d.at), "delivery_event_id": d.delivery_event_id}


def letters_reached(acc: AccountHistory) -> list[dict[str, Any]]:
    """Per notice that sends a letter (or has a letter outcome), whether the customer was
    reached (decision 14): `reached` true (an e-mail taken, or printed), false (only
    failures so far), or null (no outcome recorded); `how` says by what, when."""
    by_notice: dict[str, list[Delivery]] = {}
    for d in acc.deliveries:
        by_notice.setdefault(d.notice_id, []).append(d)
    ids = [n.notice_id for n in acc.notices.values() if "letter" in n.activities]
    ids += [n for n in by_notice if n not in ids]
    out = []
    for notice_id in ids:
        seen = by_notice.get(notice_id, [])
        reached = next((d for d in seen if d.reached), None)
        failures = [d for d in seen if d.outcome == "failed"]
        how = None
        if reached is not None:
            how = (f"e-mail to {reached.detail}" if reached.outcome == "sent" else
                   f"printed ({reached.detail})"
                   + (", after the e-mail failed" if reached.fallback else ""))
        elif failures:
            how = f"e-mail failed: {failures[-1].detail} (next: {failures[-1].next_step})"
        out.append({"notice_id": notice_id,
                    "reached": None if not seen else reached is not None,
                    "how": how, "at": iso_time(reached.at) if reached else None,
                    "failed_attempts": len(failures)})
    return out


def ref_json(ref: RecordRef) -> dict[str, Any]:
    return {"seq": ref.seq, "type": ref.record_type, "event_id": ref.event_id,
            "recorded_for": iso(ref.recorded_for), **ref.where.as_json(),
            "hash": ref.hash, "prev_hash": ref.prev_hash, "applied": ref.applied}


def _with_starts(notices: list[dict[str, Any]], runs: RunStarts | None) -> list[dict[str, Any]]:
    """Each notice with its run's start (`audit.runs`), when the runs topic was read."""
    if runs is not None:
        for n in notices:
            start = runs.get(n["run_id"]) or {}
            n["run_started_at"] = iso_time(start.get("started_at"))
            n["run_scheduled_at"] = iso_time(start.get("scheduled_at"))
            n["run_ticks_caught_up"] = start.get("ticks_caught_up", 0)
    return notices


def iso_time(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def claim_text(c: ClaimItem, currency: str | None) -> str:
    """A charge or interest item (RULES.md decision 12) as the report shows it."""
    state = (f"open {amount(c.listed_open, currency)} as listed on notice {c.listed_by}"
             if c.listed_by is not None else f"open up to {amount(c.claimed, currency)}")
    if c.amount and not c.claimed:
        state = "reversed"
    return (f"{c.kind} of notice {c.notice_id}: {amount(c.amount, currency)}, due "
            f"{_d(c.due_date)}"
            + (f", {amount(c.reversed, currency)} reversed" if c.reversed and c.claimed else "")
            + f", {state}")


def _claims_json(acc: AccountHistory) -> dict[str, Any]:
    c = acc.currency
    return {"claims": {
        item_id: {"kind": x.kind, "notice_id": x.notice_id, "seq": x.seq,
                  "amount": amount(x.amount, c), "reversed": amount(x.reversed, c),
                  "due_date": iso(x.due_date), "listed_open": amount(x.listed_open, c),
                  "listed_by": x.listed_by, "text": claim_text(x, c)}
        for item_id, x in sorted(acc.claims.items())}} if acc.claims else {}


def account_json(acc: AccountHistory, runs: RunStarts | None = None) -> dict[str, Any]:
    """What `dunning audit replay` writes for one account (one JSON line); with `runs`,
    each notice says when its run started and for which scheduled start."""
    return {
        "account_id": acc.account_id,
        "as_of": iso(acc.as_of),
        "seq": acc.seq,
        "head": acc.head,
        "chain": "intact" if acc.chain_intact else "broken",
        "records": len(acc.records),
        "duplicates": acc.duplicates,
        "after_as_of": acc.after_as_of,
        "items": {
            item_id: {"level": it.level, "last_dunned": iso(it.last_dunned),
                      "interest_until": iso(it.interest_until), "changed_by_seq": it.changed_by}
            for item_id, it in sorted(acc.items.items())
        },
        **_claims_json(acc),
        "notices": _with_starts([notice_json(n) for n in acc.notices.values()], runs),
        "reversals": [reversal_json(r) for r in acc.reversals],
        "rejected_proposals": [
            {"seq": r.seq, "proposal_id": r.proposal_id, "run_id": r.run_id,
             "as_of": iso(r.as_of), "decided_by": r.decided_by, "reason": r.reason}
            for r in acc.rejected
        ],
        "not_executed": [
            {"seq": o.seq, "proposal_id": o.subject, "run_id": o.run_id, "as_of": iso(o.as_of),
             "reason": o.reason, "detail": o.detail}
            for o in acc.outcomes if o.record_type == "ProposalNotExecuted"
        ],
        "reversals_refused": [
            {"seq": o.seq, "notice_id": o.subject, "run_id": o.run_id, "as_of": iso(o.as_of),
             "reason": o.reason, "detail": o.detail, "requested_by": o.by}
            for o in acc.outcomes if o.record_type == "NoticeReversalRefused"
        ],
        "level_changes": [
            {"seq": c.seq, "item_id": c.item_id, "as_of": iso(c.as_of),
             "old_level": c.old_level, "new_level": c.new_level, "reason": c.reason}
            for c in acc.level_changes
        ],
        "imported_levels": [
            {"seq": i.seq, "item_id": i.item_id, "import_event_id": i.import_event_id,
             "old_level": i.change.old_level, "level": i.change.new_level,
             "last_dunned": iso(i.change.new_last_dunned),
             "interest_until": iso(i.change.new_interest_until),
             "notice_date": iso(i.notice_date)}
            for i in acc.imported
        ],
        "deliveries": [delivery_json(d) for d in acc.deliveries],
        "letters": letters_reached(acc),
        "problems": [p.as_json() for p in acc.problems],
    }


# ---------------------------------------------------------------------- table
def _n(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _d(day: date | None) -> str:
    return day.isoformat() if day else "-"


def render_table(acc: AccountHistory, runs: RunStarts | None = None) -> str:
    """One account's rebuilt history, for a person."""
    chain = "chain intact" if acc.chain_intact else "CHAIN BROKEN"
    as_of = f", as of {acc.as_of.isoformat()}" if acc.as_of else ""
    lines = [f"account {acc.account_id}: {_n(len(acc.records), 'history record')} "
             f"(seq 1..{acc.seq}), {chain}, {_n(acc.duplicates, 'duplicate')}{as_of}"]
    if acc.after_as_of:
        lines.append(f"  {acc.after_as_of} record(s) recorded after the as-of date not applied")
    lines.append("")
    lines.append(f"  {'seq':>4}  {'date':<10}  {'record':<17} {'run':<24} {'level':>5} "
                 f"{'charge':>9} {'interest':>9} {'total due':>11}  id")
    rows: list[tuple[int, str]] = []
    c: str | None
    for n in acc.notices.values():
        c = n.currency
        flag = "" if n.in_effect else " (reversed)"
        rows.append((n.seq, f"  {n.seq:>4}  {_d(n.as_of):<10}  {'notice':<17} {n.run_id:<24} "
                            f"{n.level:>5} {amount(n.charge, c):>9} {amount(n.interest, c):>9} "
                            f"{amount(n.total_due, c):>11}  {n.notice_id}{flag}"))
    for r in acc.reversals:
        c = r.currency
        rows.append((r.seq, f"  {r.seq:>4}  {_d(r.as_of):<10}  {'reversal':<17} {r.run_id:<24} "
                            f"{'':>5} {amount(-r.charge, c):>9} {amount(-r.interest, c):>9} "
                            f"{'':>11}  {r.notice_id} ({r.reason}; "
                            f"{_n(len(r.item_ids), 'item')})"))
    for j in acc.rejected:
        rows.append((j.seq, f"  {j.seq:>4}  {_d(j.as_of):<10}  {'proposal rejected':<17} "
                            f"{j.run_id:<24} {'':>5} {'':>9} {'':>9} {'':>11}  "
                            f"{j.proposal_id} ({j.reason})"))
    for o in acc.outcomes:
        what = "not executed" if o.record_type == "ProposalNotExecuted" else "reversal refused"
        rows.append((o.seq, f"  {o.seq:>4}  {_d(o.as_of):<10}  {what:<17} "
                            f"{o.run_id:<24} {'':>5} {'':>9} {'':>9} {'':>11}  "
                            f"{o.subject} ({o.reason})"))
    for lc in acc.level_changes:
        rows.append((lc.seq, f"  {lc.seq:>4}  {_d(lc.as_of):<10}  {'level changed':<17} "
                             f"{'':<24} {lc.new_level:>5} {'':>9} {'':>9} {'':>11}  "
                             f"{lc.item_id} ({lc.old_level} -> {lc.new_level}, {lc.reason})"))
    for i in acc.imported:
        rows.append((i.seq, f"  {i.seq:>4}  {_d(i.as_of):<10}  {'level imported':<17} "
                            f"{'':<24} {i.change.new_level:>5} {'':>9} {'':>9} {'':>11}  "
                            f"{i.item_id} (imported, not earned; last notice "
                            f"{_d(i.notice_date or i.change.new_last_dunned)})"))
    for dl in acc.deliveries:
        what = {"sent": "letter sent", "failed": "letter failed",
                "printed": "letter printed"}.get(dl.outcome, dl.outcome)
        rows.append((dl.seq, f"  {dl.seq:>4}  {_d(dl.as_of):<10}  {what:<17} {'':<24} "
                             f"{'':>5} {'':>9} {'':>9} {'':>11}  {dl.notice_id} "
                             f"({dl.detail}{'; ' + dl.next_step if dl.next_step else ''})"))
    lines += [text for _, text in sorted(rows)]
    lines.append("")
    lines.append(f"  {'item':<28} {'level':>5}  {'last dunned':<11}  {'interest until':<14}  "
                 "changed by")
    for item_id, it in sorted(acc.items.items()):
        lines.append(f"  {item_id:<28} {it.level:>5}  {_d(it.last_dunned):<11}  "
                     f"{_d(it.interest_until):<14}  seq {it.changed_by}")
    for item_id, claim in sorted(acc.claims.items()):
        lines.append(f"  {item_id:<28} {claim_text(claim, acc.currency)}")
    for n in acc.notices.values():
        lines.append("")
        lines.append(f"  notice {n.notice_id} (seq {n.seq}, {n.procedure_id}, "
                     f"{','.join(n.activities)}, {_n(len(n.command_ids), 'command')})")
        if runs is not None and n.run_id in runs:
            lines.append(f"    run {n.run_id} {start_text(runs[n.run_id])}")
        for ch in n.items:
            lines.append(f"    {ch.item_id:<28} level {ch.old_level} -> {ch.new_level}  "
                         f"last dunned {_d(ch.old_last_dunned)} -> {_d(ch.new_last_dunned)}  "
                         f"interest {amount(ch.interest, n.currency)}"
                         f"{'' if ch.listed else '  (not listed)'}"
                         f"{f'  ({ch.interest_reason})' if ch.interest_reason else ''}")
            lines += [f"      interest {part}" for part in ch.interest_parts]
    reached = letters_reached(acc)
    if reached:
        lines.append("")
        lines.append("  letters: was the customer reached?")
        for lt in reached:
            answer = {True: "reached", False: "NOT reached", None: "no outcome yet"}[
                lt["reached"]]
            lines.append(f"    notice {lt['notice_id']}: {answer}"
                         + (f", {lt['how']}" if lt["how"] else "")
                         + (f" ({lt['at']})" if lt["at"] else ""))
    if acc.problems:
        lines.append("")
        lines += [f"  PROBLEM {p}" for p in acc.problems]
    return "\n".join(lines)


# ---------------------------------------------------------------------- export
CSV_COLUMNS = (
    "account_id", "seq", "record_type", "event_id", "recorded_for", "topic", "partition",
    "offset", "hash", "prev_hash", "applied", "notice_id", "proposal_id", "reversal_id", "run_id",
    "procedure_id", "dunning_group", "currency", "level", "charge", "interest", "total_due",
    "command_ids", "reason", "by", "item_id", "listed", "old_level", "new_level",
    "old_last_dunned", "new_last_dunned", "old_interest_until", "new_interest_until",
    "item_interest",
)


def _rows_of(acc: AccountHistory) -> Iterable[dict[str, Any]]:
    notices = {n.seq: n for n in acc.notices.values()}
    reversals = {r.seq: r for r in acc.reversals}
    rejected = {r.seq: r for r in acc.rejected}
    changes = {c.seq: c for c in acc.level_changes}
    outcomes = {o.seq: o for o in acc.outcomes}
    imported = {i.seq: i for i in acc.imported}
    deliveries = {d.seq: d for d in acc.deliveries}
    for ref in acc.records:
        base: dict[str, Any] = {
            "account_id": acc.account_id, "seq": ref.seq, "record_type": ref.record_type,
            "event_id": ref.event_id, "recorded_for": iso(ref.recorded_for),
            "topic": ref.where.topic, "partition": ref.where.partition,
            "offset": ref.where.offset, "hash": ref.hash, "prev_hash": ref.prev_hash,
            "applied": ref.applied,
        }
        items: list[ItemChange] = []
        currency: str | None = None
        if ref.seq in notices and notices[ref.seq].event_id == ref.event_id:
            n = notices[ref.seq]
            currency = n.currency
            base.update(notice_id=n.notice_id, proposal_id=n.proposal_id, run_id=n.run_id,
                        procedure_id=n.procedure_id, dunning_group=n.dunning_group,
                        currency=currency, level=n.level, charge=amount(n.charge, currency),
                        interest=amount(n.interest, currency),
                        total_due=amount(n.total_due, currency),
                        command_ids=" ".join(n.command_ids))
            items = n.items
        elif ref.seq in reversals:
            r = reversals[ref.seq]
            currency = r.currency
            base.update(notice_id=r.notice_id, reversal_id=r.reversal_id, run_id=r.run_id,
                        currency=currency, charge=amount(r.charge, currency),
                        interest=amount(r.interest, currency),
                        command_ids=" ".join(r.command_ids), reason=r.reason,
                        by=r.requested_by)
            items = r.items
        elif ref.seq in rejected:
            j = rejected[ref.seq]
            base.update(proposal_id=j.proposal_id, run_id=j.run_id, reason=j.reason,
                        by=j.decided_by)
        elif ref.seq in outcomes:
            o = outcomes[ref.seq]
            key = "proposal_id" if o.record_type == "ProposalNotExecuted" else "notice_id"
            base.update({key: o.subject, "run_id": o.run_id, "reason": o.reason, "by": o.by})
        elif ref.seq in changes:
            c = changes[ref.seq]
            base.update(item_id=c.item_id, old_level=c.old_level, new_level=c.new_level,
                        reason=c.reason)
        elif ref.seq in imported:
            base.update(reason="imported")
            items = [imported[ref.seq].change]
        elif ref.seq in deliveries:
            d = deliveries[ref.seq]
            base.update(notice_id=d.notice_id, command_ids=d.command_id,
                        reason=f"{d.outcome}: {d.detail}")
        if not items:
            yield base
        for ch in items:
            yield {**base, "item_id": ch.item_id, "listed": ch.listed,
                   "old_level": ch.old_level, "new_level": ch.new_level,
                   "old_last_dunned": iso(ch.old_last_dunned),
                   "new_last_dunned": iso(ch.new_last_dunned),
                   "old_interest_until": iso(ch.old_interest_until),
                   "new_interest_until": iso(ch.new_interest_until),
                   "item_interest": amount(ch.interest, currency)}


def export_csv(acc: AccountHistory) -> str:
    """One row per item of every record (one row for a record without items), in seq
    order, with each record's place on the broker and its hashes."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="raise",
                            lineterminator="\n")
    writer.writeheader()
    for row in _rows_of(acc):
        writer.writerow(row)
    return buf.getvalue()


def export_json(acc: AccountHistory, runs: RunStarts | None = None) -> dict[str, Any]:
    """The rebuilt history plus every record of the chain as it is on the topic."""
    from schemas.jsonio import json_type, to_json

    out = account_json(acc, runs)
    records = []
    raw = {ref.seq: (rtype, rec) for rtype, rec, ref in (acc.raw or [])}
    for ref in acc.records:
        entry = ref_json(ref)
        if ref.seq in raw:
            rtype, rec = raw[ref.seq]
            entry["record"] = {"type": json_type(rtype), **to_json(rtype, rec)}
        records.append(entry)
    out["chain_records"] = records
    return out
