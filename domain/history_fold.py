"""The fold of an account's dunning history: its history records, in chain order, give
each dunned item's level, last-dunned and interest-until day (the ``new_*`` values of the
last record that changed it) and, per notice, which of its items are reversed and
whether it is still in effect (:func:`domain.history.in_effect`, the rule the account
itself uses).

Pure, and generic in the day type ``D``: the domain's day numbers, or the audit's
``datetime.date`` (``audit.rebuild`` folds decoded records with these functions, so the
audit and the processor share one model of the history). Every step also says whether
the record agrees with the history before it (the values it starts from, the notice and
items it reverses), for the audit's ``inconsistent`` findings; the step is applied either
way, so the rebuilt state follows what the log says.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from domain.history import (
    DunningNoticeIssued,
    DunningNoticeReversed,
    NoticeItemChange,
    NoticeLineLike,
    in_effect,
)

__all__ = [
    "AccountDunning",
    "ItemDunning",
    "NoticeDunning",
    "apply_change",
    "rebuild",
    "reversal_findings",
    "reversed_after",
    "set_level",
]

D = TypeVar("D")
D_co = TypeVar("D_co", covariant=True)


class ItemChangeLike(NoticeLineLike, Protocol[D_co]):
    """What a notice or a reversal did to one item (``NoticeItemChange`` or a copy)."""

    @property
    def old_level(self) -> int: ...
    @property
    def new_level(self) -> int: ...
    @property
    def old_last_dunned(self) -> D_co | None: ...
    @property
    def new_last_dunned(self) -> D_co | None: ...
    @property
    def old_interest_until(self) -> D_co | None: ...
    @property
    def new_interest_until(self) -> D_co | None: ...


@dataclass(slots=True)
class ItemDunning(Generic[D]):
    """An item's dunning values as the history left them (level 0: never dunned)."""

    level: int = 0
    last_dunned: D | None = None
    interest_until: D | None = None
    #: seq of the record that last changed the item
    changed_by: int | None = None

    def values(self) -> tuple[int, D | None, D | None]:
        return self.level, self.last_dunned, self.interest_until


def apply_change(
    items: dict[str, ItemDunning[D]], change: ItemChangeLike[D], seq: int
) -> ItemDunning[D] | None:
    """Apply one item change of record ``seq``. Returns ``None`` when the change starts
    from the values the history left, else a copy of the item as it was before."""
    item = items.get(change.item_id)
    if item is None:
        item = items[change.item_id] = ItemDunning()
    before: ItemDunning[D] | None = None
    if (
        item.level != change.old_level
        or item.last_dunned != change.old_last_dunned
        or item.interest_until != change.old_interest_until
    ):
        before = ItemDunning(item.level, item.last_dunned, item.interest_until, item.changed_by)
    item.level = change.new_level
    item.last_dunned = change.new_last_dunned
    item.interest_until = change.new_interest_until
    item.changed_by = seq
    return before


def set_level(
    items: dict[str, ItemDunning[D]], item_id: str, old_level: int, new_level: int, seq: int
) -> ItemDunning[D] | None:
    """Apply a level change alone (``ItemLevelChanged``); like :func:`apply_change`."""
    item = items.get(item_id)
    if item is None:
        item = items[item_id] = ItemDunning()
    before: ItemDunning[D] | None = None
    if item.level != old_level:
        before = ItemDunning(item.level, item.last_dunned, item.interest_until, item.changed_by)
    item.level, item.changed_by = new_level, seq
    return before


def reversal_findings(
    lines: Iterable[NoticeLineLike], reversed_items: Sequence[str], item_ids: Iterable[str]
) -> list[tuple[str, str]]:
    """What a reversal of ``item_ids`` gets wrong about its notice: ``(item id,
    "not_on_notice" | "already_reversed")`` in the order of ``item_ids``."""
    on_notice = {line.item_id for line in lines}
    found = []
    for item_id in item_ids:
        if item_id not in on_notice:
            found.append((item_id, "not_on_notice"))
        elif item_id in reversed_items:
            found.append((item_id, "already_reversed"))
    return found


def reversed_after(reversed_items: Iterable[str], item_ids: Iterable[str]) -> list[str]:
    """A notice's reversed items once ``item_ids`` are reversed too (sorted)."""
    return sorted(set(reversed_items) | set(item_ids))


@dataclass(slots=True)
class NoticeDunning:
    """One notice of the history: what it did to its items, and which are reversed."""

    notice_id: str
    as_of: int
    items: tuple[NoticeItemChange, ...]
    reversed_items: list[str] = field(default_factory=list)

    @property
    def in_effect(self) -> bool:
        return in_effect(self.items, self.reversed_items)


@dataclass(slots=True)
class AccountDunning:
    """The dunning history of one account, rebuilt from the domain's history payloads."""

    notices: dict[str, NoticeDunning] = field(default_factory=dict)
    items: dict[str, ItemDunning[int]] = field(default_factory=dict)
    #: (seq, what is wrong) for every record that disagrees with the history before it
    findings: list[tuple[int, str]] = field(default_factory=list)

    def apply(self, record: object, seq: int) -> None:
        """Apply one history payload (other record types change no item)."""
        if isinstance(record, DunningNoticeIssued):
            self.notices[record.notice_id] = NoticeDunning(
                record.notice_id, record.as_of_date, record.items
            )
            self._changes(record.items, seq)
        elif isinstance(record, DunningNoticeReversed):
            notice = self.notices.get(record.notice_id)
            if notice is None:
                self.findings.append((seq, f"unknown notice {record.notice_id}"))
            else:
                for item_id, what in reversal_findings(
                    notice.items, notice.reversed_items, record.item_ids
                ):
                    self.findings.append((seq, f"item {item_id}: {what}"))
                notice.reversed_items = reversed_after(notice.reversed_items, record.item_ids)
            self._changes(record.items, seq)

    def _changes(self, changes: Iterable[NoticeItemChange], seq: int) -> None:
        for change in changes:
            if apply_change(self.items, change, seq) is not None:
                self.findings.append((seq, f"item {change.item_id}: unexpected old values"))


def rebuild(records: Iterable[object]) -> AccountDunning:
    """The dunning history of one account from its history payloads, in chain order
    (``seq`` 1, 2, ...)."""
    history = AccountDunning()
    for seq, record in enumerate(records, start=1):
        history.apply(record, seq)
    return history
