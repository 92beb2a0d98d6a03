"""Errors of the domain core."""

from __future__ import annotations


class Rejected(Exception):
    """Input that makes no sense for the account it names.

    ``code`` is a short machine-readable reason (``"duplicate_event_id"``,
    ``"non_positive_amount"``, ...) that the processor puts on the dead-letter record;
    ``detail`` is a readable sentence. The account is left unchanged.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
