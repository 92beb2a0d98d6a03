"""`dunning import-levels FILE.csv`: dunning levels from another system, published as
`DunningHistoryImported` on `billing.accounts` (RULES.md 10, "Imported levels").

The whole file is validated first; every bad row is reported with its line number and
then nothing is published.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
from datetime import date
from pathlib import Path
from typing import Any

from domain.errors import Rejected
from domain.events import DunningHistoryImported
from domain.ingest import check_import
from dunning.commands.common import settings
from processors.limits import MAX_ID_CHARS
from topics.broker import ensure_broker
from topics.catalogue import ACCOUNTS
from topics.clients import publish

REQUIRED = ("account_id", "item_id", "level", "last_dunned_date")
COLUMNS = ("event_id", *REQUIRED, "interest_until_date", "notice_date")


class BadFile(Exception):
    """The file's bad rows: ``(line number, what is wrong)`` each."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(errors)} bad row(s)")
        self.errors = errors


def _day(row: dict[str, str], name: str, required: bool) -> date | None:
    text = (row.get(name) or "").strip()
    if not text:
        if required:
            raise ValueError(f"{name} is missing")
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a date (YYYY-MM-DD)") from None


def _record(row: dict[str, str]) -> dict[str, Any]:
    """One row as a `DunningHistoryImported` record; ValueError says what is wrong."""
    ids = {}
    for name in ("account_id", "item_id"):
        value = (row.get(name) or "").strip()
        if not value or len(value) > MAX_ID_CHARS:
            raise ValueError(f"{name} must be 1..{MAX_ID_CHARS} characters")
        ids[name] = value
    text = (row.get("level") or "").strip()
    if not text.isdigit():
        raise ValueError(f"level {text!r} is not a whole number")
    last = _day(row, "last_dunned_date", True)
    until = _day(row, "interest_until_date", False)
    notice = _day(row, "notice_date", False)
    assert last is not None
    event_id = (row.get("event_id") or "").strip() or _derived_id(row)
    if len(event_id) > MAX_ID_CHARS:
        raise ValueError(f"event_id must be at most {MAX_ID_CHARS} characters")
    ordinal = None if notice is None else notice.toordinal()
    check_import(DunningHistoryImported(
        event_id, ids["account_id"], ids["item_id"], int(text), last.toordinal(),
        None if until is None else until.toordinal(), ordinal))
    return {"event_id": event_id, **ids, "level": int(text), "last_dunned_date": last,
            "interest_until_date": until, "notice_date": notice, "occurred_at": None}


def _derived_id(row: dict[str, str]) -> str:
    """An event id from the row's content: importing the same file again is a no-op."""
    text = "|".join((row.get(c) or "").strip() for c in COLUMNS[1:])
    return "import-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def read_levels(path: str) -> list[dict[str, Any]]:
    """Every row of the file as a record, or `BadFile` with every bad row."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = tuple(reader.fieldnames or ())
        missing = [c for c in REQUIRED if c not in header]
        unknown = [c for c in header if c not in COLUMNS]
        if missing or unknown:
            raise BadFile([(1, f"header: missing {missing}, unknown {unknown}; "
                               f"columns are {', '.join(COLUMNS)}")])
        records, errors = [], []
        seen_events: dict[str, int] = {}
        seen_items: dict[tuple[str, str], int] = {}
        for row in reader:
            line = reader.line_num
            try:
                record = _record(row)
            except (ValueError, Rejected) as exc:
                errors.append((line, getattr(exc, "detail", None) or str(exc)))
                continue
            item = (record["account_id"], record["item_id"])
            if record["event_id"] in seen_events:
                errors.append((line, f"same event_id as line {seen_events[record['event_id']]}"))
            if item in seen_items:
                errors.append((line, f"same account and item as line {seen_items[item]}"))
            seen_events.setdefault(record["event_id"], line)
            seen_items.setdefault(item, line)
            records.append(record)
    if errors:
        raise BadFile(errors)
    return records


def cmd_import_levels(args: argparse.Namespace) -> int:
    s = settings()
    try:
        records = read_levels(args.file)
    except OSError as exc:
        raise SystemExit(f"dunning: {args.file}: {exc}") from exc
    except BadFile as exc:
        lines = "\n".join(f"{Path(args.file).name}: line {n}: {why}" for n, why in exc.errors)
        raise SystemExit(f"{lines}\ndunning: {args.file}: {len(exc.errors)} bad row(s); "
                         "nothing published") from exc
    ensure_broker(s)
    n = asyncio.run(publish(s, ACCOUNTS, [("DunningHistoryImported", r) for r in records]))
    print(f"published {n} imported levels to {ACCOUNTS}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("import-levels", help="import dunning levels from another "
                              "system (CSV: " + ", ".join(COLUMNS) + ")")
    p.add_argument("file")
    p.set_defaults(func=cmd_import_levels)
