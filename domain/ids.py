"""Deterministic ids: the same inputs always give the same id, so a redelivery never
makes a new one.

Every id except the proposal run id is ``uuid5(NAMESPACE, "kind|part|part...")``.
A ``|`` or ``\\`` inside a part is escaped with a backslash, so different parts can never
give the same name.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = [
    "NAMESPACE",
    "command_id",
    "history_event_id",
    "notice_id",
    "proposal_id",
    "proposal_run_id",
    "reversal_id",
]

NAMESPACE = uuid.UUID("6577253f-889d-5bd5-9f40-5fd2431ce32f")
"""Fixed namespace of every id: ``uuid5(NAMESPACE_URL, "urn:dunning-engine:ids")``.
Never change it: stored ids would no longer match."""

_NS_BYTES = NAMESPACE.bytes
_sha1 = hashlib.sha1


def _escape(part: str) -> str:
    if "|" in part or "\\" in part:
        return part.replace("\\", "\\\\").replace("|", "\\|")
    return part


def uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))``, without building a ``UUID`` object."""
    digest = bytearray(_sha1(_NS_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _make(kind: str, *parts: object) -> str:
    texts = [kind, *(p if p.__class__ is str else str(p) for p in parts)]
    name = "|".join(texts)
    if name.count("|") != len(texts) - 1 or "\\" in name:
        name = "|".join([kind, *(_escape(t) for t in texts[1:])])
    return uuid5_text(name)


def proposal_run_id(payment_run_id: str, attempt: int) -> str:
    """The id of a proposal run: ``"{payment_run_id}/{attempt}"``, attempt from 1."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    return f"{payment_run_id}/{attempt}"


def proposal_id(run_id: str, account_id: str, procedure_id: str, currency: str, group: str) -> str:
    """The id of the proposal for one dunning group in one run."""
    return _make("proposal", run_id, account_id, procedure_id, currency, group)


def notice_id(proposal_id: str) -> str:
    """The id of the notice that executes a proposal (one notice per proposal)."""
    return _make("notice", proposal_id)


def command_id(notice_id: str, kind: str, n: int = 0) -> str:
    """The id of the ``n``-th command of ``kind`` of a notice (or of a reversal)."""
    return _make("command", notice_id, kind, n)


def reversal_id(request_event_id: str, notice_id: str) -> str:
    """The id of the reversal of one notice asked by one request event."""
    return _make("reversal", request_event_id, notice_id)


def history_event_id(kind: str, *parts: object) -> str:
    """The event id of a history record of ``kind`` about ``parts``."""
    return _make("history", kind, *parts)
