"""The dead letter itself: the exception that marks an input as unusable and the
`DeadLetter` record made of it (original bytes, where it came from, a readable reason).
The one policy that decides what becomes a dead letter is `processors.errors`; this
module is below it so that the decoders (`convert`, `limits`) can raise `Unusable`
without importing the policy's outbox."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import structlog

log = structlog.get_logger("dunning.dead-letters")


class Unusable(Exception):
    """An input the processor cannot use: `code` is a short reason, `detail` says more."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


def dead_letter_record(
    *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
    code: str, detail: str, now: datetime | None = None,
) -> dict[str, Any]:
    """The `DeadLetter` record; its id is derived from where the input came from, so a
    redelivered input makes the same dead letter."""
    event_id = hashlib.sha256(f"{topic}|{partition}|{offset}|{code}".encode()).hexdigest()[:32]
    return {
        "event_id": f"dl-{event_id}",
        "source_topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key,
        "value": value if value is not None else b"",
        "reason": code,
        "detail": detail[:2000],
        "failed_at": now or datetime.now(UTC),
    }


def log_unusable(code: str, detail: str, **where: Any) -> None:
    log.warning("input dead-lettered", reason=code, detail=detail[:300], **where)
