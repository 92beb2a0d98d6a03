"""Payloads of the history topic written by the domain.

The processor adds ``seq`` and ``prev_hash`` (it keeps ``Account.history_seq`` and
``Account.history_head``); ``as_of_date`` is the record's ``recorded_for``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "DunningLevelImported",
    "DunningNoticeIssued",
    "DunningNoticeReversed",
    "LetterDeliveryRecorded",
    "NoticeItemChange",
    "NoticeReversalRefused",
    "ProposalNotExecuted",
    "ProposalRejectedHistory",
    "in_effect",
]


class NoticeLineLike(Protocol):
    """What the in-effect rule reads of a notice's line: a ``NoticeLine`` of the account,
    a ``NoticeItemChange`` of the history, or the audit's copy of one."""

    @property
    def item_id(self) -> str: ...

    @property
    def listed(self) -> bool: ...


def in_effect(lines: Iterable[NoticeLineLike], reversed_items: Collection[str]) -> bool:
    """The "in effect" rule (RULES.md "Reversal"): a notice is in effect while at least one
    of its listed items is not reversed. The one definition: the account's notices
    (``ExecutedNotice.in_effect``), the reversal's charge and the audit's rebuild use it."""
    return any(line.listed and line.item_id not in reversed_items for line in lines)


@dataclass(frozen=True, slots=True)
class NoticeItemChange:
    """What a notice (or its reversal) did to one item. ``interest`` is the item's share."""

    item_id: str
    listed: bool
    old_level: int
    new_level: int
    old_last_dunned: int | None
    new_last_dunned: int | None
    old_interest_until: int | None
    new_interest_until: int | None
    interest: int
    interest_parts: tuple[Any, ...] | None = None
    """``domain.interest.InterestPart`` of the item's interest (RULES.md section 9)."""
    interest_reason: str | None = None


@dataclass(frozen=True, slots=True)
class NoticeClaim:
    """A charge or interest item on a notice (RULES.md decision 12): one the notice keeps
    (``notice_id`` is the notice's own; ``open_amount`` is its ``amount``), or an open one
    of an earlier notice it lists (``open_amount`` as listed, counted in ``total_due``)."""

    item_id: str
    kind: str
    notice_id: str
    amount: int
    open_amount: int
    due_date: int


@dataclass(frozen=True, slots=True)
class DunningNoticeIssued:
    event_id: str
    account_id: str
    notice_id: str
    proposal_id: str
    run_id: str
    procedure_id: str
    dunning_group: str
    currency: str
    level: int
    activities: tuple[str, ...]
    charge: int
    interest: int
    total_due: int
    as_of_date: int
    items: tuple[NoticeItemChange, ...]
    command_ids: tuple[str, ...]
    claims: tuple[NoticeClaim, ...] | None = None
    """Set when the procedure keeps charges and interest as items: those the notice keeps,
    then those of earlier notices it lists; ``None``: postings only (as before)."""


@dataclass(frozen=True, slots=True)
class DunningNoticeReversed:
    event_id: str
    account_id: str
    reversal_id: str
    notice_id: str
    run_id: str
    item_ids: tuple[str, ...]
    charge: int
    """Charge reversed by this reversal (0 while a listed item stays in effect)."""
    interest: int
    """Interest reversed by this reversal: the shares of the reversed items."""
    items: tuple[NoticeItemChange, ...]
    command_ids: tuple[str, ...]
    reason: str
    requested_by: str
    as_of_date: int
    """The as-of date of the reversed notice."""


@dataclass(frozen=True, slots=True)
class ProposalRejectedHistory:
    event_id: str
    account_id: str
    proposal_id: str
    run_id: str
    decided_by: str
    reason: str
    as_of_date: int


@dataclass(frozen=True, slots=True)
class ProposalNotExecuted:
    """An approved proposal that was not executed: the account changed since the run.

    ``reason``: ``paid``, ``cancelled``, ``in_plan``, ``locked``, ``stale_proposal`` or
    ``no_master_data`` (see ``domain.activity_run.refusal``); ``detail`` says what changed.
    """

    event_id: str
    account_id: str
    proposal_id: str
    run_id: str
    reason: str
    detail: str
    as_of_date: int


@dataclass(frozen=True, slots=True)
class NoticeReversalRefused:
    """A notice that a reversal request could not reverse (the rest of a run's reversal
    goes ahead). ``reason``: ``later_notice_in_effect``, ``state_mismatch``,
    ``item_not_in_notice``."""

    event_id: str
    account_id: str
    notice_id: str
    run_id: str
    reversal_id: str
    reason: str
    detail: str
    requested_by: str
    as_of_date: int


@dataclass(frozen=True, slots=True)
class DunningLevelImported:
    """An item's level imported from another system (``DunningHistoryImported``), not
    earned by a notice of this engine (RULES.md 10, "Imported levels"). ``old_*`` are the
    item's values the history left before it: level 0 and no dates, or those of an
    earlier import of the item that this one replaces. ``as_of_date`` (the record's
    ``recorded_for``) is the imported last-dunned day."""

    event_id: str
    account_id: str
    import_event_id: str
    item_id: str
    old_level: int
    new_level: int
    old_last_dunned: int | None
    new_last_dunned: int | None
    old_interest_until: int | None
    new_interest_until: int | None
    notice_date: int | None
    as_of_date: int


@dataclass(frozen=True, slots=True)
class LetterDeliveryRecorded:
    """What happened to a letter of one of the account's notices (RULES.md 10, decision
    14): ``outcome`` ``sent`` (``detail`` the address), ``failed`` (the reason, with
    ``permanent`` and ``next_step``) or ``printed`` (the print batch; ``fallback``: because
    the e-mail failed). ``as_of_date`` (the record's ``recorded_for``) is the day it
    happened; ``at_ms`` the moment, in milliseconds since 1970 (UTC)."""

    event_id: str
    account_id: str
    delivery_event_id: str
    command_id: str
    notice_id: str
    outcome: str
    detail: str
    attempt: int
    permanent: bool
    next_step: str | None
    fallback: bool
    at_ms: int
    as_of_date: int
