"""Reversal: undoing a notice, whole or for single items, with compensating postings
(RULES.md "Reversal").

- :func:`reverse` undoes a notice in effect; :func:`reversal_refused` is the record for a
  notice that cannot be reversed (already reversed, or a later notice lists its items).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from domain import ids
from domain.activity_run import item_changes
from domain.commands import (
    Command,
    PostDunningChargeReversal,
    PostDunningInterestReversal,
)
from domain.errors import Rejected
from domain.history import (
    DunningNoticeReversed,
    NoticeReversalRefused,
    in_effect,
)
from domain.settlement import resettled
from domain.state import Account, ExecutedNotice, Item, NoticeLine, notice_ids


@dataclass(frozen=True, slots=True)
class Reversal:
    """The outcome of a reversal request for one notice.

    With nothing left to reverse, ``commands`` is empty and ``history`` is ``None``.
    """

    reversal_id: str
    notice_id: str
    account_id: str
    commands: tuple[Command, ...]
    history: DunningNoticeReversed | None


# -- review ------------------------------------------------------------------------------


def find_notice(account: Account, notice_id: str) -> int:
    """Position of the executed notice ``notice_id`` in ``account.notices``, or -1."""
    for index, n in enumerate(account.notices):
        if notice_ids(account.account_id, n)[1] == notice_id:
            return index
    return -1


def reverse(
    account: Account,
    notice_id: str,
    item_ids: tuple[str, ...] | None,
    reversal_id: str,
    requested_by: str,
    reason: str,
) -> tuple[Account, Reversal]:
    """Reverse an executed notice, whole (``item_ids=None``) or for single items.

    The items' level, last-dunned and interest-until days return to what they were
    before the notice; their interest shares are reversed by a
    ``PostDunningInterestReversal``; the charge is reversed (``PostDunningChargeReversal``)
    together with the last listed item still in effect. An item can only be reversed
    while no later notice that is still in effect for it exists
    (``Rejected("later_notice_in_effect")``: reverse the later one first). Items that are
    already reversed are skipped; with nothing left, no command and no history.
    """
    index = find_notice(account, notice_id)
    if index < 0:
        raise Rejected("unknown_notice", f"notice {notice_id!r} is not known on this account")
    notice = account.notices[index]
    targets = _targets(notice, notice_id, item_ids)
    if not targets:
        return account, Reversal(reversal_id, notice_id, account.account_id, (), None)
    target_ids = {line.item_id for line in targets}
    _check_no_later(account.notices[index + 1 :], target_ids)
    restored = _restored(account, notice, targets)

    after = set(notice.reversed_items) | target_ids
    charge = _charge_reversed(notice, after)
    interest = sum(line.interest for line in targets)
    commands = _reversal_postings(
        account.account_id, notice, notice_id, reversal_id, charge, interest
    )
    history = DunningNoticeReversed(
        event_id=ids.history_event_id("DunningNoticeReversed", reversal_id),
        account_id=account.account_id,
        reversal_id=reversal_id,
        notice_id=notice_id,
        run_id=notice.run_id,
        item_ids=tuple(line.item_id for line in targets),
        charge=charge,
        interest=interest,
        items=item_changes(notice, targets, undo=True),
        command_ids=tuple(c.command_id for c in commands),
        reason=reason,
        requested_by=requested_by,
        as_of_date=notice.as_of,
    )
    new_notice = replace(notice, reversed_items=tuple(sorted(after)))
    notices = (*account.notices[:index], new_notice, *account.notices[index + 1 :])
    new_account = _reversed_account(account, notice, restored, notices)
    return new_account, Reversal(reversal_id, notice_id, account.account_id, commands, history)


def _reversed_account(
    account: Account,
    notice: ExecutedNotice,
    restored: dict[str, Item],
    notices: tuple[ExecutedNotice, ...],
) -> Account:
    """``account`` with the restored items and the notices after the reversal. A notice
    that kept its charge and interest as items (RULES.md decision 12): they shrink or go,
    and what was paid on them is unallocated again and clears the other items."""
    changes: dict[str, Any] = {
        "items": tuple(restored.get(it.item_id, it) for it in account.items),
        "notices": notices,
    }
    if notice.clearing_order is not None:
        changes = resettled(account, **changes)
    return replace(account, **changes)


def _charge_reversed(notice: ExecutedNotice, after: set[str]) -> int:
    """The notice's charge when the reversal takes it out of effect, else 0."""
    if in_effect(notice.lines, notice.reversed_items) and not in_effect(notice.lines, after):
        return notice.charge
    return 0


def _targets(
    notice: ExecutedNotice, notice_id: str, item_ids: tuple[str, ...] | None
) -> list[NoticeLine]:
    """The lines to reverse: those asked for (all without ``item_ids``) not reversed yet."""
    done = set(notice.reversed_items)
    if item_ids is None:
        return [line for line in notice.lines if line.item_id not in done]
    on_notice = {line.item_id for line in notice.lines}
    for iid in item_ids:
        if iid not in on_notice:
            raise Rejected("item_not_in_notice", f"item {iid!r} is not on notice {notice_id}")
    wanted = set(item_ids)
    return [line for line in notice.lines if line.item_id in wanted and line.item_id not in done]


def _check_no_later(later: tuple[ExecutedNotice, ...], target_ids: set[str]) -> None:
    """``Rejected("later_notice_in_effect")`` when a later notice still holds a target."""
    for n in later:
        for line in n.lines:
            if line.item_id in target_ids and line.item_id not in n.reversed_items:
                raise Rejected(
                    "later_notice_in_effect",
                    f"item {line.item_id!r} is on a later notice still in effect; reverse it first",
                )


def _restored(
    account: Account, notice: ExecutedNotice, targets: list[NoticeLine]
) -> dict[str, Item]:
    """The target items with the values they had before ``notice``
    (``Rejected("state_mismatch")`` when one no longer has the values it gave them)."""
    by_id = {it.item_id: it for it in account.items}
    restored: dict[str, Item] = {}
    for line in targets:
        it = by_id[line.item_id]
        if (it.level, it.last_dunned_day, it.interest_until_day) != notice.new_values(line):
            raise Rejected(
                "state_mismatch", f"item {it.item_id!r} no longer has the values the notice gave it"
            )
        restored[it.item_id] = replace(
            it,
            level=line.old_level,
            last_dunned_day=line.old_last_dunned,
            interest_until_day=line.old_interest_until,
        )
    return restored


def _reversal_postings(
    account_id: str,
    notice: ExecutedNotice,
    notice_id: str,
    reversal_id: str,
    charge: int,
    interest: int,
) -> tuple[Command, ...]:
    """The compensating postings of a reversal: its charge, then its interest."""
    commands: list[Command] = []
    if charge:
        commands.append(
            PostDunningChargeReversal(
                command_id=ids.command_id(reversal_id, "PostDunningChargeReversal"),
                notice_id=notice_id,
                account_id=account_id,
                currency=notice.currency,
                amount=charge,
                reverses_command_id=ids.command_id(notice_id, "PostDunningCharge"),
            )
        )
    if interest:
        commands.append(
            PostDunningInterestReversal(
                command_id=ids.command_id(reversal_id, "PostDunningInterestReversal"),
                notice_id=notice_id,
                account_id=account_id,
                currency=notice.currency,
                amount=interest,
                reverses_command_id=ids.command_id(notice_id, "PostDunningInterest"),
            )
        )
    return tuple(commands)


def reversal_refused(
    account: Account, notice_id: str, reversal_id: str, requested_by: str, refused: Rejected
) -> NoticeReversalRefused:
    """The history record of a reversal that :func:`reverse` refused (``refused``)."""
    index = find_notice(account, notice_id)
    notice = account.notices[index] if index >= 0 else None
    return NoticeReversalRefused(
        event_id=ids.history_event_id("NoticeReversalRefused", reversal_id),
        account_id=account.account_id,
        notice_id=notice_id,
        run_id=notice.run_id if notice is not None else "",
        reversal_id=reversal_id,
        reason=refused.code,
        detail=refused.detail,
        requested_by=requested_by,
        as_of_date=notice.as_of if notice is not None else 0,
    )
