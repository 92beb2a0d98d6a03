"""The one error policy of the worker.

An input or control record the worker cannot use goes to `dunning.dead-letters`, with the
original bytes, where it came from and a readable reason (`dead_letter`), and the worker
goes on: nothing escapes an agent loop (`guarded`). What is *not* a dead letter: a
decision that cannot be carried out (a business outcome, recorded on dunning.runs or
dunning.history by the agent), and a failure of one account in a run (the account is
left out, logged and counted: `processors.store.commit_each`).

Reasons: the `Unusable`/`Rejected` code of the failure; `refused_by_broker` when a record
it made was not taken; `processing_error` for anything else (a bug: logged with its
stack, the evidence kept).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from domain.errors import Rejected
from processors import limits
from processors.deadletter import Unusable, dead_letter_record, log_unusable
from processors.metrics import Metrics
from processors.outbox import Outbox, Refused
from processors.writes import Out
from schemas.codec import Codec, CodecError
from topics import catalogue as cat
from topics.catalogue import REPLAY_HEADER

__all__ = ["REPLAY_HEADER", "ErrorPolicy", "Unusable", "check_key", "replayed_dead_letter"]

log = structlog.get_logger("dunning.worker")


def replayed_dead_letter(message: Any) -> str | None:
    """The id of the dead letter this record is a replay of (`dunning dead-letters replay`
    sets the header), or None."""
    headers = message.headers or ()
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == REPLAY_HEADER and value:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def check_key(key: bytes | None, account_id: str) -> None:
    """The key of an account-scoped record is the UTF-8 of its account id, byte for byte
    (CONTRACT.md): the partition the producer chose is then the account's. No key, a key
    that is not UTF-8 or that names another account: `key_mismatch`."""
    if key == account_id.encode():
        return
    if key is None:
        why = "a record without a key"
    else:
        try:
            why = f"key {key.decode()[:80]!r}"
        except UnicodeDecodeError:
            why = f"key {key[:80]!r} (not UTF-8)"
    raise Unusable("key_mismatch", f"{why} is not the account_id {account_id[:80]!r}")


def known_failure(exc: Exception) -> tuple[str, str] | None:
    """The reason of a failure that says itself what was wrong with the input."""
    if isinstance(exc, Unusable | Rejected):
        return exc.code, exc.detail
    return None


class ErrorPolicy:
    def __init__(self, settings: Any, codec: Codec, metrics: Metrics, outbox: Outbox) -> None:
        self.settings = settings
        self.codec = codec
        self.metrics = metrics
        self.outbox = outbox
        self._logical = {settings.topic(t.name): t.name for t in cat.CATALOGUE}

    def logical(self, physical: str) -> str:
        return self._logical.get(physical, physical)

    def decode(self, message: Any, allowed: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        """The door of every input and control record: its size, its framing and body, its
        type, then every limit of `processors.limits` (on the raw values, before anything
        is built from them). The record comes out as `Codec.decode` gives it."""
        if message.value is None:
            raise Unusable("empty", "a record without a value (a tombstone)")
        limits.check_size(message.value)
        try:
            rtype, raw = self.codec.decode_raw(message.value)
        except CodecError as exc:
            raise Unusable("undecodable", str(exc)) from exc
        if rtype not in allowed:
            raise Unusable(
                "unknown_record_type",
                f"{rtype} is not a record of {self.logical(message.topic)}",
            )
        return rtype, limits.check(rtype, raw)

    def reason(self, message: Any, exc: Exception) -> tuple[str, str]:
        """The reason for an input that failed with `exc`."""
        known = known_failure(exc)
        if known is not None:
            return known
        if isinstance(exc, Refused):
            return "refused_by_broker", f"a record it made was not sent: {exc}"
        # a bug, not bad input: keep the evidence, go on
        log.exception("event failed", topic=message.topic, partition=message.partition,
                      offset=message.offset)
        return "processing_error", f"{type(exc).__name__}: {exc}"

    def dead_letter(self, message: Any, code: str, detail: str) -> Out:
        self.metrics.dead_letters.labels(code).inc()
        log_unusable(code, detail, topic=message.topic, partition=message.partition,
                     offset=message.offset)
        record = dead_letter_record(
            topic=self.logical(message.topic), partition=message.partition,
            offset=message.offset, key=message.key, value=message.value, code=code,
            detail=detail,
        )
        replay_of = replayed_dead_letter(message)
        if replay_of:  # a replayed dead letter that failed again keeps its id
            record["event_id"] = replay_of
        return self.outbox.record(cat.DEAD_LETTERS, "DeadLetter", record,
                                  self.logical(message.topic))

    def cut_dead_letter(self, out: Out, why: str) -> Out:
        """A dead letter too large to be sent (`why`), with the first
        `limits.DEAD_LETTER_KEEP` bytes of the input's key and value; its detail gives the
        size and SHA-256 of the whole value."""
        topic, key, value, partition = out
        assert value is not None
        _, record = self.codec.decode(value)
        keep = limits.DEAD_LETTER_KEEP
        original = record["value"]
        record["value"] = original[:keep]
        if record["key"] is not None:
            record["key"] = record["key"][:keep]
        record["detail"] = (
            f"value cut to its first {keep} of {len(original)} bytes (sha256 "
            f"{hashlib.sha256(original).hexdigest()}): the whole dead letter was not sent "
            f"({why}); {record['detail']}")[:2000]
        return (topic, key, self.codec.encode("DeadLetter", record), partition)

    def is_dead_letter(self, out: Out) -> bool:
        return out[0] == self.settings.topic(cat.DEAD_LETTERS)

    async def send_dead_letters(self, outs: list[Out]) -> None:
        """Dead letters, together; one the broker refuses goes again cut
        (`cut_dead_letter`)."""
        try:
            await self.outbox.send(outs)
        except Refused as exc:
            await self.outbox.send([self.cut_dead_letter(out, why) for out, why in exc.refused])

    async def guarded(self, message: Any, work: Callable[[Any], Awaitable[None]],
                      dead: list[Out] | None = None) -> None:
        """Nothing escapes an agent loop. Every record is counted once, by topic, as
        applied or dead-lettered. With `dead`, the dead letter is added to it for the
        caller to send with its batch; else it is sent at once."""
        topic = self.logical(message.topic)
        try:
            await work(message)
        except Exception as exc:
            out = self.dead_letter(message, *self.reason(message, exc))
            if dead is None:
                await self.send_dead_letters([out])
            else:
                dead.append(out)
            self.metrics.records.labels(topic, "dead_lettered").inc()
            return
        self.metrics.records.labels(topic, "applied").inc()
