"""Outbound documents: one record per letter command, in SQLite under the state folder.

`<state_dir>/letters/documents.db` holds the records, `<state_dir>/letters/<as-of date>/`
the PDFs. A command id is the primary key: a redelivered command finds its record and
renders, stores and sends nothing new. Every e-mail attempt is a row of `attempts`.

Delivery (`delivery`, `status`):

- `print`: collected for printing (a print-channel letter, or an e-mail letter whose
  account has no e-mail address); status `print`. Never e-mailed.
- `email`: status `pending` (not tried yet), `sending` (claimed by one sender: several
  processes may share the database, a claim is atomic), `sent`, `failed` (the last round
  failed; `next_attempt_at` says when `serve` tries again, empty when a server refused it
  for good and a person has to look), or `unknown` (a sender stopped in the middle of an
  SMTP conversation: it may have gone out; `resend` after checking), or `held` (an
  invoice document is missing and `DUNNING_INVOICE_DOCUMENTS_REQUIRED` is set: not sent
  until `dunning letters attach` finds them all, then `pending`).

The run id of a letter comes from the `DunningNoticeIssued` of its notice (the letter
command has none): the service records `notice_id -> run_id` from `dunning.history`.

Delivery feedback (RULES.md 10, decision 14): every outcome the service publishes on
`dunning.letter-deliveries` (`LetterSent`, `LetterDeliveryFailed`, `LetterPrinted`) is a
row of `outcomes`, written in the transaction that records what happened, and marked
published once the broker has it (`letters.feedback`): an outbox, so an outcome is
published at least once, byte for byte the same. An e-mail letter that falls back to print
gets a row of `print_fallbacks` and becomes a print letter (`delivery` and `status`
`print`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from letters.payment import looks_like_reference, notice_for

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    command_id TEXT PRIMARY KEY,
    notice_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    language TEXT NOT NULL,          -- as requested by the command
    template_language TEXT NOT NULL, -- the template used
    fallback INTEGER NOT NULL,       -- 1: no template for `language`, written in English
    channel TEXT NOT NULL,           -- the command's: email | print
    delivery TEXT NOT NULL,          -- what is done: email | print
    email TEXT,
    currency TEXT NOT NULL,
    total_due TEXT NOT NULL,
    as_of_date TEXT NOT NULL,
    title TEXT NOT NULL,
    filename TEXT NOT NULL,
    created_at TEXT NOT NULL,
    pdf_path TEXT NOT NULL,          -- relative to the letters folder
    sha256 TEXT NOT NULL,
    pages INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_attempt_at TEXT,
    next_attempt_at TEXT,
    claimed_at TEXT,
    sent_at TEXT,
    note TEXT,
    command_json TEXT NOT NULL,
    attachments TEXT,                -- JSON [{invoice_id, path, filename}]: invoices attached
    missing_attachments TEXT         -- JSON ["INV-1: why", …]: invoice documents not found
);
CREATE INDEX IF NOT EXISTS documents_status ON documents (delivery, status);
CREATE INDEX IF NOT EXISTS documents_account ON documents (account_id);
CREATE INDEX IF NOT EXISTS documents_notice ON documents (notice_id);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id TEXT NOT NULL REFERENCES documents (command_id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,              -- send | resend
    outcome TEXT NOT NULL,           -- sent | failed
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_command ON attempts (command_id);
CREATE TABLE IF NOT EXISTS notices (
    notice_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    account_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notices_run ON notices (run_id);
"""

#: Columns added since the first version of the table, added to an older database.
ADDED_COLUMNS = (("attachments", "TEXT"), ("missing_attachments", "TEXT"))

FEEDBACK_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    event_id TEXT PRIMARY KEY,       -- the record's: one outcome is recorded once
    command_id TEXT NOT NULL REFERENCES documents (command_id),
    record_type TEXT NOT NULL,       -- LetterSent | LetterDeliveryFailed | LetterPrinted
    record_json TEXT NOT NULL,       -- the record (schemas.jsonio), published as it is
    recorded_at TEXT NOT NULL,
    published_at TEXT                -- NULL: not published yet
);
CREATE INDEX IF NOT EXISTS outcomes_command ON outcomes (command_id);
CREATE INDEX IF NOT EXISTS outcomes_unpublished ON outcomes (published_at);
CREATE TABLE IF NOT EXISTS print_fallbacks (
    command_id TEXT PRIMARY KEY REFERENCES documents (command_id),
    at TEXT NOT NULL,
    reason TEXT NOT NULL             -- why its e-mail was given up
);
"""


@dataclass(frozen=True)
class Outcome:
    """A delivery outcome recorded for publishing (`outcomes`)."""

    event_id: str
    command_id: str
    record_type: str
    record_json: str
    recorded_at: str
    published_at: str | None


UNSENT = ("pending", "failed", "sending", "unknown", "held")
SENDABLE = ("pending", "failed")


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Attachment:
    """An invoice's PDF kept with a letter (`letters.documents`), attached to its e-mail."""

    invoice_id: str
    path: Path
    filename: str


@dataclass(frozen=True)
class Document:
    command_id: str
    notice_id: str
    account_id: str
    run_id: str | None
    level: int
    language: str
    template_language: str
    fallback: bool
    channel: str
    delivery: str
    email: str | None
    currency: str
    total_due: str
    as_of_date: str
    title: str
    filename: str
    created_at: str
    pdf_path: Path
    sha256: str
    pages: int
    status: str
    attempts: int
    last_error: str | None
    last_attempt_at: str | None
    next_attempt_at: str | None
    sent_at: str | None
    note: str | None
    attachments: tuple[Attachment, ...] = ()
    #: Invoice documents that could not be found, each "invoice id: why".
    missing_attachments: tuple[str, ...] = ()

    @property
    def unsent(self) -> bool:
        """An e-mail letter not (known to be) sent."""
        return self.delivery == "email" and self.status in UNSENT

    def summary(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["pdf_path"] = str(self.pdf_path)
        out["attachments"] = [{"invoice_id": a.invoice_id, "path": str(a.path),
                               "filename": a.filename} for a in self.attachments]
        out["missing_attachments"] = list(self.missing_attachments)
        return out


@dataclass(frozen=True)
class Attempt:
    at: str
    kind: str
    outcome: str
    error: str | None


class AmbiguousId(LookupError):
    pass


class Store:
    """The document records of one letters folder. Safe for several processes."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "documents.db"
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(SCHEMA)
        self._db.executescript(FEEDBACK_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns a database made by an older version lacks."""
        have = {r[1] for r in self._db.execute("PRAGMA table_info(documents)")}
        for name, kind in ADDED_COLUMNS:
            if name not in have:
                try:
                    self._db.execute(f"ALTER TABLE documents ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:  # another process added it
                    if "duplicate column" not in str(exc):
                        raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- reading -------------------------------------------------------------------------
    _SELECT = ("SELECT d.*, n.run_id AS run_id FROM documents d "
               "LEFT JOIN notices n ON n.notice_id = d.notice_id")

    def _doc(self, row: sqlite3.Row) -> Document:
        data = dict(row)
        return Document(
            command_id=data["command_id"], notice_id=data["notice_id"],
            account_id=data["account_id"], run_id=data["run_id"], level=data["level"],
            language=data["language"], template_language=data["template_language"],
            fallback=bool(data["fallback"]), channel=data["channel"],
            delivery=data["delivery"], email=data["email"], currency=data["currency"],
            total_due=data["total_due"], as_of_date=data["as_of_date"], title=data["title"],
            filename=data["filename"], created_at=data["created_at"],
            pdf_path=self.folder / data["pdf_path"], sha256=data["sha256"],
            pages=data["pages"], status=data["status"], attempts=data["attempts"],
            last_error=data["last_error"], last_attempt_at=data["last_attempt_at"],
            next_attempt_at=data["next_attempt_at"], sent_at=data["sent_at"], note=data["note"],
            attachments=tuple(
                Attachment(a["invoice_id"], self.folder / a["path"], a["filename"])
                for a in json.loads(data["attachments"] or "[]")),
            missing_attachments=tuple(json.loads(data["missing_attachments"] or "[]")),
        )

    def get(self, command_id: str) -> Document | None:
        row = self._db.execute(f"{self._SELECT} WHERE d.command_id = ?", (command_id,)).fetchone()
        return self._doc(row) if row else None

    def find(self, ident: str) -> Document:
        """A document by its command id or an unambiguous beginning of it, or the latest
        letter of the notice a payment reference (RF or QRR, `letters.payment`) names."""
        doc = self.get(ident)
        if doc is not None:
            return doc
        if looks_like_reference(ident):
            doc = self.by_reference(ident)
            if doc is not None:
                return doc
        pattern = ident.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._db.execute(
            f"{self._SELECT} WHERE d.command_id LIKE ? ESCAPE '\\' LIMIT 2", (pattern,)
        ).fetchall()
        if not rows or not ident:
            raise KeyError(f"no letter {ident!r}")
        if len(rows) > 1:
            raise AmbiguousId(f"{ident!r} is the beginning of several letters' ids")
        return self._doc(rows[0])

    def by_reference(self, ref: str) -> Document | None:
        """The latest letter of the notice whose payment reference `ref` is, or None.

        The reference is a digest of the notice id: each notice id known is tried.
        """
        ids = [r[0] for r in self._db.execute("SELECT DISTINCT notice_id FROM documents")]
        notice = notice_for(ref, ids)
        if notice is None:
            return None
        row = self._db.execute(
            f"{self._SELECT} WHERE d.notice_id = ? ORDER BY d.created_at DESC, d.rowid DESC "
            "LIMIT 1", (notice,)).fetchone()
        return self._doc(row) if row else None

    def command_json(self, command_id: str) -> str:
        row = self._db.execute(
            "SELECT command_json FROM documents WHERE command_id = ?", (command_id,)).fetchone()
        if row is None:
            raise KeyError(command_id)
        return str(row[0])

    def documents(
        self, *, unsent: bool = False, account: str | None = None, run: str | None = None,
        delivery: str | None = None,
    ) -> list[Document]:
        """Documents in the order they were made; `run` is a run id or a payment run id."""
        where: list[str] = []
        args: list[Any] = []
        if unsent:
            where.append(f"d.delivery = 'email' AND d.status IN ({','.join('?' * len(UNSENT))})")
            args += UNSENT
        if account:
            where.append("d.account_id = ?")
            args.append(account)
        if run:
            escaped = run.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("(n.run_id = ? OR n.run_id LIKE ? ESCAPE '\\')")
            args += [run, escaped + "/%"]
        if delivery:
            where.append("d.delivery = ?")
            args.append(delivery)
        sql = self._SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY d.created_at, d.account_id, d.command_id"
        return [self._doc(r) for r in self._db.execute(sql, args).fetchall()]

    def attempts(self, command_id: str) -> list[Attempt]:
        rows = self._db.execute(
            "SELECT at, kind, outcome, error FROM attempts WHERE command_id = ? ORDER BY id",
            (command_id,)).fetchall()
        return [Attempt(r["at"], r["kind"], r["outcome"], r["error"]) for r in rows]

    def due(self, at: datetime | None = None, *, include_waiting: bool = False) -> list[Document]:
        """E-mail letters to send now: pending ones, and failed ones whose time has come
        (every failed one with `include_waiting`, as `send --unsent` does)."""
        stamp = iso(at or now_utc())
        cond = "d.status = 'failed'" if include_waiting else (
            "d.status = 'failed' AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?")
        args = [] if include_waiting else [stamp]
        rows = self._db.execute(
            f"{self._SELECT} WHERE d.delivery = 'email' AND (d.status = 'pending' OR ({cond})) "
            "ORDER BY d.created_at, d.command_id", args).fetchall()
        return [self._doc(r) for r in rows]

    # -- writing -------------------------------------------------------------------------
    def add(self, values: dict[str, Any]) -> tuple[Document, bool]:
        """Insert a document unless its command id is known: (the record, whether new)."""
        cols = list(values)
        with self._tx() as db:
            cur = db.execute(
                f"INSERT OR IGNORE INTO documents ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' * len(cols))})", [values[c] for c in cols])
            created = cur.rowcount == 1
        doc = self.get(values["command_id"])
        assert doc is not None
        return doc, created

    def update_attachments(self, command_id: str, values: dict[str, str | None]) -> Document:
        """The invoice documents of a letter found again (`Collected.record()`); a `held`
        letter with none missing any more becomes `pending`."""
        with self._tx() as db:
            db.execute(
                "UPDATE documents SET attachments = ?, missing_attachments = ?, status = "
                "CASE WHEN status = 'held' AND ? IS NULL THEN 'pending' ELSE status END "
                "WHERE command_id = ?",
                (values["attachments"], values["missing_attachments"],
                 values["missing_attachments"], command_id))
        doc = self.get(command_id)
        assert doc is not None
        return doc

    def record_notice(self, notice_id: str, run_id: str, account_id: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO notices (notice_id, run_id, account_id) VALUES (?, ?, ?)",
            (notice_id, run_id, account_id))

    def claim(self, command_id: str, *, force: bool = False) -> bool:
        """Take an e-mail letter for sending; False if another sender has it or it needs
        none (`force`: any e-mail letter not being sent right now, as `resend` does)."""
        allowed = ("pending", "failed", "sent", "unknown") if force else SENDABLE
        cur = self._db.execute(
            f"UPDATE documents SET status = 'sending', claimed_at = ? "
            f"WHERE command_id = ? AND delivery = 'email' "
            f"AND status IN ({','.join('?' * len(allowed))})",
            (iso(now_utc()), command_id, *allowed))
        return cur.rowcount == 1

    def record_attempt(
        self, command_id: str, *, kind: str, ok: bool, error: str | None = None,
        final: bool = False, retry_after: float | None = None, at: datetime | None = None,
        outcome: tuple[str, str, str] | None = None, to_print: str | None = None,
    ) -> None:
        """One SMTP attempt. `final`: the last of its round, so the status is settled:
        `sent`, or `failed` (tried again by `serve` after `retry_after` seconds, or never
        automatically when None). `outcome`: (event id, record type, record JSON) of the
        delivery record to publish, kept in the same transaction; `to_print`: the e-mail
        is given up for that reason and the letter becomes a print letter."""
        when = at or now_utc()
        with self._tx() as db:
            if outcome is not None:
                self._add_outcome(db, command_id, outcome, when)
            if to_print is not None:
                self._to_print(db, command_id, to_print, when)
                final = True
            db.execute(
                "INSERT INTO attempts (command_id, at, kind, outcome, error) VALUES (?,?,?,?,?)",
                (command_id, iso(when), kind, "sent" if ok else "failed", error))
            db.execute(
                "UPDATE documents SET attempts = attempts + 1, last_attempt_at = ?, "
                "last_error = ? WHERE command_id = ?",
                (iso(when), None if ok else error, command_id))
            if ok:
                db.execute(
                    "UPDATE documents SET status = 'sent', sent_at = ?, next_attempt_at = NULL, "
                    "claimed_at = NULL WHERE command_id = ?", (iso(when), command_id))
            elif final:
                nxt = None if retry_after is None else iso(when + timedelta(seconds=retry_after))
                db.execute(
                    "UPDATE documents SET status = 'failed', next_attempt_at = ?, "
                    "claimed_at = NULL WHERE command_id = ? AND delivery = 'email'",
                    (nxt, command_id))

    def release_stale(self, older_than: float, at: datetime | None = None) -> list[str]:
        """Claims older than `older_than` seconds: their sender died mid-way. They become
        `unknown` (the message may have gone out), never sent again by themselves."""
        limit = iso((at or now_utc()) - timedelta(seconds=older_than))
        with self._tx() as db:
            rows = db.execute(
                "SELECT command_id FROM documents WHERE status = 'sending' AND claimed_at < ?",
                (limit,)).fetchall()
            ids = [r[0] for r in rows]
            for cid in ids:
                db.execute(
                    "UPDATE documents SET status = 'unknown', claimed_at = NULL, last_error = "
                    "'the sender stopped during delivery: it may have been sent; check, then "
                    "resend' WHERE command_id = ?", (cid,))
        return ids

    # -- delivery feedback (decision 14) ---------------------------------------------------
    def _add_outcome(self, db: sqlite3.Connection, command_id: str,
                     outcome: tuple[str, str, str], when: datetime) -> bool:
        event_id, record_type, record_json = outcome
        cur = db.execute(
            "INSERT OR IGNORE INTO outcomes (event_id, command_id, record_type, record_json, "
            "recorded_at) VALUES (?, ?, ?, ?, ?)",
            (event_id, command_id, record_type, record_json, iso(when)))
        return cur.rowcount == 1

    def _to_print(self, db: sqlite3.Connection, command_id: str, reason: str,
                  when: datetime) -> None:
        db.execute("INSERT OR IGNORE INTO print_fallbacks (command_id, at, reason) "
                   "VALUES (?, ?, ?)", (command_id, iso(when), reason))
        note = f"e-mail given up ({reason}): printed instead"
        db.execute(
            "UPDATE documents SET delivery = 'print', status = 'print', next_attempt_at = NULL, "
            "claimed_at = NULL, note = CASE WHEN note IS NULL THEN ? ELSE note || '; ' || ? END "
            "WHERE command_id = ?", (note, note, command_id))

    def record_outcome(self, command_id: str, outcome: tuple[str, str, str], *,
                       to_print: str | None = None, failed: str | None = None,
                       at: datetime | None = None) -> bool:
        """An outcome that is no SMTP attempt (printed, a bounce reported later), with what
        it changes: `to_print` as for `record_attempt`; `failed`: the reason a sent letter
        bounced; it waits for a person (status `failed`, no next attempt). False when it
        was recorded before (its event id): nothing changes."""
        when = at or now_utc()
        with self._tx() as db:
            if not self._add_outcome(db, command_id, outcome, when):
                return False
            if to_print is not None:
                self._to_print(db, command_id, to_print, when)
            elif failed is not None:
                db.execute("UPDATE documents SET status = 'failed', next_attempt_at = NULL, "
                           "last_error = ? WHERE command_id = ? AND delivery = 'email'",
                           (failed, command_id))
        return True

    def printed_instead(self, command_id: str) -> str | None:
        """Why the letter's e-mail was given up for print, or None (printed as asked)."""
        row = self._db.execute("SELECT reason FROM print_fallbacks WHERE command_id = ?",
                               (command_id,)).fetchone()
        return None if row is None else str(row[0])

    def _outcome(self, row: sqlite3.Row) -> Outcome:
        return Outcome(row["event_id"], row["command_id"], row["record_type"],
                       row["record_json"], row["recorded_at"], row["published_at"])

    def outcomes(self, command_id: str | None = None, *,
                 unpublished: bool = False, limit: int | None = None) -> list[Outcome]:
        """Recorded outcomes in the order they were recorded (of one letter, or those not
        published yet)."""
        where, args = [], []
        if command_id is not None:
            where.append("command_id = ?")
            args.append(command_id)
        if unpublished:
            where.append("published_at IS NULL")
        sql = "SELECT * FROM outcomes" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY rowid" + (f" LIMIT {int(limit)}" if limit else "")
        return [self._outcome(r) for r in self._db.execute(sql, args).fetchall()]

    def mark_published(self, event_ids: list[str], at: datetime | None = None) -> None:
        stamp = iso(at or now_utc())
        with self._tx() as db:
            db.executemany("UPDATE outcomes SET published_at = ? WHERE event_id = ? "
                           "AND published_at IS NULL", [(stamp, e) for e in event_ids])
