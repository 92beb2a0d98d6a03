"""The review service's own store: SQLite, materialized from the topics (`review.feed`).

One row per run, proposal and account (master data for the worklist's name, language
and channel), the decisions seen on `dunning.decisions` (their event ids: a decision is
published once), and the position of every topic partition read, written in the same
transaction as what was read, so a restart goes on where it stopped and applies nothing
twice. A proposal's `decision` follows what is known: `undecided`, `approved` or
`rejected` as decided, then `executed`, `rejected` or `not_executed` as the history says;
`reversed` once its notice is reversed. What happened to the letters of an account's
notices (`LetterDeliveryRecorded`, decision 14) is a row of `deliveries` each.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from domain.money import from_minor, to_minor

SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (topic TEXT, part INTEGER, next INTEGER,
    PRIMARY KEY (topic, part));
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, payment_run_id TEXT, as_of TEXT,
    started_at TEXT, scheduled_at TEXT, completed INTEGER DEFAULT 0, evaluated INTEGER,
    proposals INTEGER, executed_at TEXT, notices INTEGER, not_executed INTEGER,
    approved_by TEXT, deleted_by TEXT, reversed_by TEXT, refused TEXT,
    auto_notices INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS proposals (proposal_id TEXT PRIMARY KEY, run_id TEXT,
    account_id TEXT, procedure_id TEXT, dunning_group TEXT, currency TEXT,
    old_level INTEGER, level INTEGER, items INTEGER, charge TEXT, interest TEXT,
    total_due TEXT, total_minor INTEGER, decision TEXT DEFAULT 'undecided',
    decided_by TEXT, reason TEXT, notice_id TEXT, name TEXT, language TEXT, channel TEXT,
    body BLOB);
CREATE INDEX IF NOT EXISTS proposals_run_level ON proposals (run_id, level, total_minor);
CREATE INDEX IF NOT EXISTS proposals_run_total ON proposals (run_id, total_minor);
CREATE INDEX IF NOT EXISTS proposals_run_currency ON proposals (run_id, currency, total_minor);
CREATE INDEX IF NOT EXISTS proposals_run_decision ON proposals (run_id, decision);
CREATE INDEX IF NOT EXISTS proposals_run_account ON proposals (run_id, account_id);
CREATE INDEX IF NOT EXISTS proposals_run_name ON proposals (run_id, name);
CREATE INDEX IF NOT EXISTS proposals_run_items ON proposals (run_id, items);
CREATE INDEX IF NOT EXISTS proposals_run_procedure ON proposals (run_id, procedure_id);
CREATE INDEX IF NOT EXISTS proposals_run_language ON proposals (run_id, language, channel);
CREATE INDEX IF NOT EXISTS proposals_run_summary ON proposals (run_id, level, procedure_id,
    currency, language, channel, decision, total_minor);
CREATE INDEX IF NOT EXISTS proposals_account ON proposals (account_id);
CREATE INDEX IF NOT EXISTS proposals_notice ON proposals (notice_id);
CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, name TEXT,
    language TEXT, channel TEXT);
CREATE TABLE IF NOT EXISTS decisions (event_id TEXT PRIMARY KEY, record_type TEXT,
    subject TEXT, decided_by TEXT);
CREATE TABLE IF NOT EXISTS deliveries (event_id TEXT PRIMARY KEY, account_id TEXT,
    notice_id TEXT, command_id TEXT, outcome TEXT, detail TEXT, attempt INTEGER,
    next_step TEXT, fallback INTEGER, at TEXT);
CREATE INDEX IF NOT EXISTS deliveries_account ON deliveries (account_id, at);
"""

#: The worklist's sort keys (query parameter -> SQL).
SORTS = {"account": "account_id", "name": "name", "level": "level",
         "total": "total_minor", "items": "items", "procedure": "procedure_id"}
#: The worklist's filters and their columns (the facets offered for each).
FACETS = {"level": "level", "procedure": "procedure_id", "currency": "currency",
          "language": "language", "channel": "channel", "decision": "decision"}
PAGE = 50


def _text(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def amount_text(value: Decimal | str, currency: str) -> str:
    """An amount of a record as its currency writes it (the wire's scale is 3)."""
    return str(from_minor(to_minor(Decimal(str(value)), currency), currency))


def _json(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, default=_text)


@dataclass
class Filter:
    """What the worklist shows of a run: filters, sort and page."""

    level: int | None = None
    procedure: str | None = None
    currency: str | None = None
    language: str | None = None
    channel: str | None = None
    decision: str | None = None
    min_total: Decimal | None = None
    max_total: Decimal | None = None
    sort: str = "account"
    descending: bool = False
    page: int = 1
    size: int = PAGE

    def where(self, run_id: str) -> tuple[str, list[Any]]:
        clauses: list[str] = ["run_id = ?"]
        args: list[Any] = [run_id]
        for column, value in (("level", self.level), ("procedure_id", self.procedure),
                              ("currency", self.currency), ("language", self.language),
                              ("channel", self.channel), ("decision", self.decision)):
            if value is not None and value != "":
                clauses.append(f"{column} = ?")
                args.append(value)
        # amounts compare in the currency's minor units; a range needs a currency to mean
        # anything across currencies, so without one it compares the decimal amounts
        for op, bound in ((">=", self.min_total), ("<=", self.max_total)):
            if bound is not None:
                if self.currency:
                    clauses.append(f"total_minor {op} ?")
                    args.append(to_minor(bound, self.currency))
                else:
                    clauses.append(f"CAST(total_due AS REAL) {op} ?")
                    args.append(float(bound))
        return " AND ".join(clauses), args


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    filter: Filter
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = max(1, -(-self.total // self.filter.size))


class ReviewStore:
    def __init__(self, path: Path | str) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._add_columns()
        #: bumped by every change: a run's summary is computed once per version
        self.version = 0
        self._summaries: dict[str, tuple[int, dict[str, Any]]] = {}

    def _add_columns(self) -> None:
        """Columns added since a store was made (it is kept across versions)."""
        have = {row["name"] for row in self.db.execute("PRAGMA table_info(runs)")}
        if "auto_notices" not in have:
            self.db.execute("ALTER TABLE runs ADD COLUMN auto_notices INTEGER DEFAULT 0")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        self.version += 1

    # ------------------------------------------------------------------ positions
    def positions(self) -> dict[tuple[str, int], int]:
        return {(r["topic"], r["part"]): r["next"]
                for r in self.db.execute("SELECT topic, part, next FROM positions")}

    def set_position(self, topic: str, partition: int, next_offset: int) -> None:
        self.db.execute("INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (topic, part) "
                        "DO UPDATE SET next = excluded.next", (topic, partition, next_offset))

    # ------------------------------------------------------------------ applying records
    def apply(self, record_type: str, r: dict[str, Any]) -> None:
        """One record of a topic read (inside a transaction)."""
        handler = _APPLY.get(record_type)
        if handler is not None:
            handler(self.db, r)

    def record_decision(self, event_id: str, record_type: str, subject: str,
                        decided_by: str) -> bool:
        """Remember a decision about to be published; False when it was already (the same
        form sent twice: same event id)."""
        try:
            self.db.execute("INSERT INTO decisions VALUES (?, ?, ?, ?)",
                            (event_id, record_type, subject, decided_by))
        except sqlite3.IntegrityError:
            return False
        self.version += 1
        return True

    # ------------------------------------------------------------------ reading
    def runs(self) -> list[dict[str, Any]]:
        rows = [dict(r) for r in self.db.execute(
            "SELECT * FROM runs ORDER BY as_of DESC, run_id DESC")]
        counts = self._decision_counts()
        for run in rows:
            run["decisions"] = counts.get(run["run_id"], {})
            run["status"] = run_status(run)
        return rows

    def run(self, run_id: str) -> dict[str, Any] | None:
        """A run with its decisions, totals per level and currency, and the values each
        filter offers; worked out once per change of the store."""
        cached = self._summaries.get(run_id)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        run = dict(row)
        totals: dict[tuple[int, str], dict[str, Any]] = {}
        decisions: dict[str, int] = {}
        facets: dict[str, set[Any]] = {name: set() for name in FACETS}
        columns = ", ".join(FACETS.values())
        for r in self.db.execute(
                f"SELECT {columns}, COUNT(*), SUM(total_minor) FROM proposals "  # noqa: S608
                f"WHERE run_id = ? GROUP BY {columns}", (run_id,)):
            for n, name in enumerate(FACETS):
                if r[n] is not None:
                    facets[name].add(r[n])
            count, minor = r[len(FACETS)], r[len(FACETS) + 1]
            t = totals.setdefault((r[0], r[2]), {"level": r[0], "currency": r[2],
                                                 "proposals": 0, "total_minor": 0,
                                                 "undecided": 0})
            t["proposals"] += count
            t["total_minor"] += minor or 0
            t["undecided"] += count if r[5] == "undecided" else 0
            decisions[r[5]] = decisions.get(r[5], 0) + count
        run["decisions"] = decisions
        run["status"] = run_status(run)
        run["totals"] = [totals[k] for k in sorted(totals)]
        run["facets"] = {name: sorted(values) for name, values in facets.items()}
        self._summaries[run_id] = (self.version, run)
        return run

    def _decision_counts(self, run_id: str | None = None) -> dict[str, dict[str, int]]:
        sql = "SELECT run_id, decision, COUNT(*) FROM proposals"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            args = (run_id,)
        out: dict[str, dict[str, int]] = {}
        for run, decision, n in self.db.execute(sql + " GROUP BY run_id, decision", args):
            out.setdefault(run, {})[decision] = n
        return out

    def worklist(self, run_id: str, f: Filter) -> Page:
        where, args = f.where(run_id)
        total = self.db.execute(f"SELECT COUNT(*) FROM proposals WHERE {where}",  # noqa: S608
                                args).fetchone()[0]
        order = SORTS.get(f.sort, SORTS["account"])
        direction = "DESC" if f.descending else "ASC"
        rows = self.db.execute(
            f"SELECT proposal_id, account_id, name, language, channel, procedure_id, "  # noqa: S608
            f"dunning_group, currency, old_level, level, items, charge, interest, total_due, "
            f"decision, decided_by, reason FROM proposals WHERE {where} "
            f"ORDER BY {order} {direction}, proposal_id {direction} LIMIT ? OFFSET ?",
            [*args, f.size, (max(1, f.page) - 1) * f.size])
        return Page([dict(r) for r in rows], total, f)

    def matching(self, run_id: str, f: Filter) -> list[str]:
        """Every undecided proposal of the run that matches the filter (a selection of
        "all that match")."""
        where, args = f.where(run_id)
        return [r[0] for r in self.db.execute(
            f"SELECT proposal_id FROM proposals WHERE {where} "  # noqa: S608
            "AND decision = 'undecided'", args)]

    def proposal(self, proposal_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM proposals WHERE proposal_id = ?",
                              (proposal_id,)).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["body"] = orjson.loads(out["body"])
        return out

    def deliveries(self, account_id: str) -> list[dict[str, Any]]:
        """What happened to the letters of the account's notices, oldest first, with
        `reached` per notice (an e-mail taken or a letter printed) on each row."""
        rows = [dict(r) for r in self.db.execute(
            "SELECT notice_id, command_id, outcome, detail, attempt, next_step, fallback, at "
            "FROM deliveries WHERE account_id = ? ORDER BY at, rowid", (account_id,))]
        reached = {r["notice_id"] for r in rows if r["outcome"] in ("sent", "printed")}
        for r in rows:
            r["reached"] = r["notice_id"] in reached
        return rows

    def undecided(self, proposal_ids: Iterable[str]) -> list[str]:
        ids = list(proposal_ids)
        found: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found += [r[0] for r in self.db.execute(
                f"SELECT proposal_id FROM proposals WHERE proposal_id IN ({marks}) "  # noqa: S608
                "AND decision = 'undecided'", chunk)]
        return found

    def mark(self, proposal_ids: Iterable[str], decision: str, decided_by: str,
             reason: str | None = None) -> None:
        """Decided here and published: shown so until the history says what came of it."""
        self.db.executemany(
            "UPDATE proposals SET decision = ?, decided_by = ?, reason = ? "
            "WHERE proposal_id = ? AND decision = 'undecided'",
            [(decision, decided_by, reason, p) for p in proposal_ids])
        self.version += 1


def run_status(run: dict[str, Any]) -> str:
    """proposed, partly approved, approved, executed, deleted or reversed (or running)."""
    d = run.get("decisions") or {}
    if run.get("reversed_by"):
        return "reversed"
    if run.get("deleted_by") and not d.get("executed"):
        return "deleted"
    if run.get("executed_at") is not None:
        return "executed"
    if not run.get("completed"):
        return "running"
    if run.get("approved_by"):
        return "approved"
    if d.get("undecided", 0) and sum(d.values()) > d["undecided"]:
        return "partly approved"
    if sum(d.values()) and not d.get("undecided"):
        return "approved"
    return "proposed"


# ---------------------------------------------------------------- records -> rows
def _run_started(db: sqlite3.Connection, r: dict[str, Any]) -> None:
    db.execute("INSERT INTO runs (run_id, payment_run_id, as_of, started_at, scheduled_at) "
               "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
               "started_at = excluded.started_at, scheduled_at = excluded.scheduled_at",
               (r["run_id"], r["payment_run_id"], _text(r["as_of_date"]),
                _text(r.get("started_at")), _text(r.get("scheduled_at"))))


def _run_completed(db: sqlite3.Connection, r: dict[str, Any]) -> None:
    db.execute("INSERT INTO runs (run_id, payment_run_id, as_of, completed, evaluated, "
               "proposals) VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
               "completed = 1, evaluated = excluded.evaluated, proposals = excluded.proposals",
               (r["run_id"], r["payment_run_id"], _text(r["as_of_date"]),
                r["accounts_evaluated"], r["proposals"]))


def _activity_completed(db: sqlite3.Connection, r: dict[str, Any]) -> None:
    """The approval's activity run executes the run; the auto-approved proposals' (sent
    with the proposal run) only counts its notices: the clerk has still to decide."""
    if r.get("auto_approved"):
        db.execute("UPDATE runs SET auto_notices = ? WHERE run_id = ?",
                   (r["notices"], r["run_id"]))
        return
    db.execute("UPDATE runs SET executed_at = ?, notices = ?, not_executed = ? "
               "WHERE run_id = ?", (_text(r["completed_at"]) or "", r["notices"],
                                    r.get("not_executed", 0), r["run_id"]))


def _run_refused(db: sqlite3.Connection, r: dict[str, Any]) -> None:
    """A run decision the engine refused: what it would have changed is undone here."""
    undo = {"RunDeleted": ("deleted_by", "deleted"),
            "RunApproved": ("approved_by", "approved")}.get(r["decision"])
    if undo is not None:
        db.execute(f"UPDATE runs SET {undo[0]} = NULL WHERE run_id = ?",  # noqa: S608
                   (r["run_id"],))
        db.execute("UPDATE proposals SET decision = 'undecided', decided_by = NULL "
                   "WHERE run_id = ? AND decision = ?", (r["run_id"], undo[1]))
    db.execute("UPDATE runs SET refused = ? WHERE run_id = ?",
               (f"{r['decision']}: {r['reason']} ({r['detail']})", r["run_id"]))


def _proposed(db: sqlite3.Connection, r: dict[str, Any]) -> None:
    items = r["items"]
    # the account's master data is copied onto the row (and kept in step by `_account`),
    # so the worklist filters and sorts without a join
    db.execute(
        "INSERT INTO proposals (proposal_id, run_id, account_id, procedure_id, "
        "dunning_group, currency, old_level, level, items, charge, interest, total_due, "
        "total_minor, body, name, language, channel) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?, a.name, a.language, a.channel FROM (SELECT 1) LEFT JOIN accounts a "
        "ON a.account_id = ?3 WHERE true ON CONFLICT (proposal_id) DO NOTHING",
        (r["proposal_id"], r["run_id"], r["account_id"], r["procedure_id"],
         r["dunning_group"], r["currency"],
         max((i["previous_level"] for i in items), default=0), r["level"], len(items),
         amount_text(r["charge"], r["currency"]), amount_text(r["interest"], r["currency"]),
         amount_text(r["total_due"], r["currency"]), to_minor(r["total_due"], r["currency"]),
         _json(r)))


def _account(db: sqlite3.Connection, r: dict[str, Any]) -> None:
    db.execute("INSERT INTO accounts VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE "
               "SET name = excluded.name, language = excluded.language, "
               "channel = excluded.channel",
               (r["account_id"], r["name"], r["language"],
                "email" if r.get("email") else "print"))
    db.execute("UPDATE proposals SET name = ?, language = ?, channel = ? WHERE account_id = ?",
               (r["name"], r["language"], "email" if r.get("email") else "print",
                r["account_id"]))


def _decided(decision: str) -> Any:
    def apply(db: sqlite3.Connection, r: dict[str, Any]) -> None:
        db.execute("INSERT INTO decisions VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                   (r["event_id"], decision, r.get("proposal_id") or r.get("run_id") or "",
                    r.get("decided_by") or r.get("requested_by") or ""))
        if decision in ("ProposalApproved", "ProposalRejected"):
            db.execute("UPDATE proposals SET decision = ?, decided_by = ?, reason = ? "
                       "WHERE proposal_id = ? AND decision = 'undecided'",
                       ("approved" if decision == "ProposalApproved" else "rejected",
                        r.get("decided_by"), r.get("reason"), r["proposal_id"]))
        elif decision in ("RunApproved", "RunDeleted"):
            column, state = (("approved_by", "approved") if decision == "RunApproved"
                             else ("deleted_by", "deleted"))
            db.execute(f"UPDATE runs SET {column} = ? WHERE run_id = ?",  # noqa: S608
                       (r.get("decided_by") or "?", r["run_id"]))
            db.execute("UPDATE proposals SET decision = ?, decided_by = ? "
                       "WHERE run_id = ? AND decision = 'undecided'",
                       (state, r.get("decided_by"), r["run_id"]))
        elif decision == "NoticeReversalRequested" and r.get("run_id"):
            db.execute("UPDATE runs SET reversed_by = ? WHERE run_id = ?",
                       (r.get("requested_by") or "?", r["run_id"]))
    return apply


def _outcome(decision: str) -> Any:
    def apply(db: sqlite3.Connection, r: dict[str, Any]) -> None:
        reason = r.get("reason")
        if decision == "not_executed":
            reason = f"{r['reason']}: {r.get('detail') or ''}".rstrip(": ")
        db.execute("UPDATE proposals SET decision = ?, reason = COALESCE(?, reason), "
                   "notice_id = COALESCE(?, notice_id), "
                   "decided_by = COALESCE(?, decided_by) WHERE proposal_id = ?",
                   (decision, reason, r.get("notice_id"), r.get("decided_by"),
                    r["proposal_id"]))
    return apply


def _reversed(db: sqlite3.Connection, r: dict[str, Any]) -> None:
    db.execute("UPDATE proposals SET decision = 'reversed', reason = ? WHERE notice_id = ?",
               (r.get("reason"), r["notice_id"]))


def _delivery(db: sqlite3.Connection, r: dict[str, Any]) -> None:
    db.execute("INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (event_id) DO NOTHING",
               (r["event_id"], r["account_id"], r["notice_id"], r["command_id"],
                r["outcome"], r["detail"], r.get("attempt", 0), r.get("next_step"),
                int(bool(r.get("fallback"))), _text(r["at"])))


_APPLY = {
    "ProposalRunStarted": _run_started,
    "ProposalRunCompleted": _run_completed,
    "ActivityRunCompleted": _activity_completed,
    "RunDecisionRefused": _run_refused,
    "DunningProposed": _proposed,
    "AccountUpserted": _account,
    "ProposalApproved": _decided("ProposalApproved"),
    "ProposalRejected": _decided("ProposalRejected"),
    "RunApproved": _decided("RunApproved"),
    "RunDeleted": _decided("RunDeleted"),
    "ProposalRunRequested": _decided("ProposalRunRequested"),
    "NoticeReversalRequested": _decided("NoticeReversalRequested"),
    "DunningNoticeIssued": _outcome("executed"),
    "history.ProposalRejected": _outcome("rejected"),
    "ProposalNotExecuted": _outcome("not_executed"),
    "DunningNoticeReversed": _reversed,
    "LetterDeliveryRecorded": _delivery,
}
TOPICS = ("billing.accounts", "dunning.runs", "dunning.proposals", "dunning.decisions",
          "dunning.history")
