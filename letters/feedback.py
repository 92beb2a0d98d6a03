"""Delivery feedback (RULES.md 10, decision 14): what happened to each letter, published on
`dunning.letter-deliveries` for the engine, which records it on the account's history.

Three records, keyed by account id:

- `LetterSent`: the SMTP server took the e-mail (the address, the attempt, its Message-ID);
- `LetterDeliveryFailed`: an e-mail attempt failed or bounced (the SMTP reply code and text,
  or the bounce reason; `permanent`; `next_step` `retry`, `print` or `wait`);
- `LetterPrinted`: the letter went into a print batch (`fallback`: because its e-mail
  failed).

Each record's `event_id` is a digest of the command id, the outcome and the attempt, so the
same outcome published again (after a crash, before it was marked published) is a
duplicate the engine drops. Outcomes are written to the letter store first, in the
transaction that records what happened (`Store.outcomes`), then published, then marked
published (`Publisher.publish_pending`): an outbox, at least once, byte for byte the same.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from config.settings import Settings
from domain.ids import NAMESPACE
from letters.config import LetterSettings
from letters.store import Document, Store, now_utc
from schemas.codec import Codec
from schemas.jsonio import dumps, parse_line
from topics.catalogue import LETTER_DELIVERIES
from topics.clients import publish

log = structlog.get_logger("dunning.letters.feedback")

#: Outcomes published per batch.
BATCH = 500
#: Seconds `publish_pending` waits for the broker before it leaves the rest for later.
PUBLISH_TIMEOUT = 30.0

Outcome = tuple[str, str, str]
"""(event id, record type, record JSON) as `Store.record_attempt` keeps it."""


def event_id(command_id: str, outcome: str, attempt: int) -> str:
    """The deterministic id of a letter's outcome (`sent`, `failed`, `printed`)."""
    return str(uuid.uuid5(NAMESPACE, f"letter-delivery|{command_id}|{outcome}|{attempt}"))


def _outcome(record_type: str, record: dict[str, Any]) -> Outcome:
    return record["event_id"], record_type, dumps(record_type, record)


def _base(doc: Document, outcome: str, attempt: int) -> dict[str, Any]:
    return {"event_id": event_id(doc.command_id, outcome, attempt),
            "command_id": doc.command_id, "notice_id": doc.notice_id,
            "account_id": doc.account_id}


def sent(doc: Document, attempt: int, message_id: str | None, reply: str | None = None,
         at: datetime | None = None) -> Outcome:
    """`LetterSent` of the attempt that delivered the e-mail, with the server's reply to
    it (`250 …`)."""
    return _outcome("LetterSent", {
        **_base(doc, "sent", attempt), "channel": "email", "recipient": doc.email or "",
        "attempt": attempt, "sent_at": at or now_utc(), "smtp_reply": reply,
        "message_id": message_id})


def failed(doc: Document, attempt: int, reason: str, *, code: int | None, permanent: bool,
           next_step: str, at: datetime | None = None) -> Outcome:
    """`LetterDeliveryFailed` of one attempt (or of a bounce reported for `attempt`)."""
    return _outcome("LetterDeliveryFailed", {
        **_base(doc, "failed", attempt), "attempt": attempt, "reason": reason,
        "smtp_code": code, "permanent": permanent, "failed_at": at or now_utc(),
        "next_step": next_step})


def printed(doc: Document, batch: str, fallback: bool, at: datetime | None = None) -> Outcome:
    """`LetterPrinted`: once per letter (a batch printed again is the same outcome)."""
    return _outcome("LetterPrinted", {
        **_base(doc, "printed", 0), "printed_at": at or now_utc(), "batch": batch,
        "fallback": fallback})


def next_step(cfg: LetterSettings, attempt: int, *, permanent: bool) -> str:
    """What follows a failed e-mail attempt, the `attempt`-th of the letter (all rounds):

    - a permanent refusal (5xx, a bounce): `print` with `print_on_bounce`, else `wait` (a
      person looks, as before);
    - a temporary one: `print` once `print_after_failures` attempts have failed (when set),
      else `retry` (in the round, or by `serve` after `retry_after`).
    """
    if permanent:
        return "print" if cfg.print_on_bounce else "wait"
    if cfg.print_after_failures and attempt >= cfg.print_after_failures:
        return "print"
    return "retry"


def record_printed(store: Store, docs: Sequence[Document], output: Path) -> int:
    """`LetterPrinted` for every letter of a print batch just written to `output` (once per
    letter: one printed before keeps its first batch). Returns how many are new."""
    new = 0
    for doc in docs:
        fallback = store.printed_instead(doc.command_id) is not None
        if store.record_outcome(doc.command_id, printed(doc, output.name, fallback)):
            new += 1
    return new


def record_bounce(store: Store, cfg: LetterSettings, doc: Document, reason: str) -> str:
    """A bounce reported after the SMTP server took the e-mail (a delivery status
    notification): `LetterDeliveryFailed` (permanent) for the letter's last attempt, and
    the letter printed instead with `print_on_bounce`, else waiting for a person. Returns
    the next step; ValueError for a letter that was not e-mailed."""
    if doc.delivery != "email" or doc.status not in ("sent", "unknown") or not doc.attempts:
        raise ValueError(f"letter {doc.command_id} was not e-mailed (status {doc.status}): "
                         "nothing can bounce")
    step = next_step(cfg, doc.attempts, permanent=True)
    text = f"bounced: {reason}"
    outcome = failed(doc, doc.attempts, text, code=None, permanent=True, next_step=step)
    store.record_outcome(doc.command_id, outcome,
                         to_print=text if step == "print" else None,
                         failed=text if step != "print" else None)
    return step


class Publisher:
    """Publishes the outcomes of a letter store that are not published yet."""

    def __init__(self, settings: Settings, store: Store, codec: Codec | None = None) -> None:
        self.settings = settings
        self.store = store
        self.codec = codec or Codec.from_settings(settings)
        self.published = 0

    async def publish_pending(self, timeout: float = PUBLISH_TIMEOUT) -> int:
        """Publish every outcome not published yet, oldest first, and mark them; returns
        how many. A broker that does not answer leaves them for the next call."""
        total = 0
        while True:
            pending = self.store.outcomes(unpublished=True, limit=BATCH)
            if not pending:
                return total
            records = [parse_line(o.record_json, n) for n, o in enumerate(pending, 1)]
            await asyncio.wait_for(
                publish(self.settings, LETTER_DELIVERIES, records, self.codec), timeout)
            self.store.mark_published([o.event_id for o in pending])
            total += len(pending)
            self.published += len(pending)
            log.info("delivery outcomes published", count=len(pending))


async def publish_pending(settings: Settings, store: Store,
                          timeout: float = PUBLISH_TIMEOUT) -> int:
    """`Publisher(settings, store).publish_pending()`, for the command line."""
    return await Publisher(settings, store).publish_pending(timeout)
