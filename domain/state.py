"""The state of one contract account: its facts, items, pending proposals and executed
notices, and the queries every stage asks of it (RULES.md "Account state (ingest)").

Every stage reads and returns these frozen values: :mod:`domain.ingest` folds input
events into them, :mod:`domain.settlement` derives each item's status and open amount,
:mod:`domain.proposal_run` proposes from them, :mod:`domain.review`,
:mod:`domain.activity_run` and :mod:`domain.reversal` record what the clerk and the
activity run decided. A proposal is part of the state (pending on the account until it
is executed, rejected or its run deleted), so its types live here too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from domain import ids
from domain.commands import Recipient
from domain.events import (
    Allocation,
    Installment,
    PostalAddress,
)
from domain.history import in_effect
from domain.interest import InterestPart

SEEN_ENTRY_SIZE = 12
"""Bytes per applied event in ``Account.seen``: an 8-byte key and a 4-byte digest."""

OPEN = 0
"""An item that can be paid and dunned (its open amount may be 0: paid)."""
CANCELLED = 1
"""An item of a cancelled invoice."""
IN_PLAN = 2
"""A source item of an active instalment plan."""
CLOSED = 3
"""An instalment of a cancelled instalment plan."""


@dataclass(frozen=True, slots=True)
class Master:
    name: str
    language: str
    currency: str
    dunning_procedure: str
    postal_address: PostalAddress
    email: str | None


@dataclass(frozen=True, slots=True)
class Lock:
    lock_id: str
    reason: str
    valid_from: int
    valid_to: int
    item_id: str | None


@dataclass(frozen=True, slots=True)
class Invoice:
    invoice_id: str
    currency: str
    issued_day: int


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    invoice_id: str
    """The invoice; for an instalment, the plan id."""
    currency: str
    amount: int
    due_day: int
    """The current due date (after every ``DueDateChanged``)."""
    procedure: str | None
    """Override of the account's dunning procedure, or ``None``."""
    group: str
    """Dunning group key, ``""`` by default."""
    plan_id: str | None
    """Set for an instalment: the plan it belongs to."""
    status: int
    """Derived: ``OPEN``, ``CANCELLED``, ``IN_PLAN`` or ``CLOSED``."""
    open_amount: int
    """Derived from the set of events seen."""
    level: int = 0
    last_dunned_day: int | None = None
    interest_until_day: int | None = None


@dataclass(frozen=True, slots=True)
class ImportedLevel:
    """A level imported from another system (``DunningHistoryImported``), kept whether or
    not its item is known yet; the item takes these values when both are there."""

    item_id: str
    level: int
    last_dunned_day: int
    interest_until_day: int | None
    notice_day: int | None

    def frequency_day(self) -> int:
        """The day the frequency check counts from: the notice day, else last dunned."""
        return self.last_dunned_day if self.notice_day is None else self.notice_day


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    amount: int
    currency: str
    received_day: int
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    plan_id: str
    item_ids: tuple[str, ...]
    installments: tuple[Installment, ...]


@dataclass(frozen=True, slots=True)
class NoticeLine:
    """What an executed notice did to one item (enough to rebuild and reverse it).

    A listed line's new last-dunned day is the notice's as-of day, and its new
    interest-until day too when the notice posted interest; a line that is not listed
    only changed the level.
    """

    item_id: str
    listed: bool
    old_level: int
    new_level: int
    old_last_dunned: int | None
    old_interest_until: int | None
    interest: int
    """The item's share of the notice's interest."""
    open_amount: int
    due_day: int
    interest_parts: tuple[InterestPart, ...] | None = None
    interest_reason: str | None = None
    """``rate_unknown``: the item got no interest and its interest-until day stays."""


@dataclass(frozen=True, slots=True)
class ClaimLine:
    """An open charge or interest item of an earlier notice of the group, listed on a
    proposal and its notice (RULES.md decision 12): no level, no interest of its own."""

    item_id: str
    """``<notice id>/charge`` or ``<notice id>/interest``."""
    kind: str
    """``charge`` or ``interest``."""
    notice_id: str
    """The notice whose charge or interest it is."""
    open_amount: int
    due_day: int
    """That notice's pay-by day."""


@dataclass(frozen=True, slots=True)
class ExecutedNotice:
    """An executed notice as the account remembers it.

    Its proposal id and notice id are derived (:func:`notice_ids`), and so are its
    command ids (``ids.command_id``), so they are not stored.
    """

    run_id: str
    procedure_id: str
    group: str
    currency: str
    level: int
    as_of: int
    activities: tuple[str, ...]
    charge: int
    interest: int
    lines: tuple[NoticeLine, ...]
    plan_ids: tuple[str, ...]
    """Plans asked to be deactivated (only with ``deactivate_installment_plan``)."""
    language: str | None
    recipient: Recipient | None
    """Snapshot of the letter's recipient (only with ``letter``)."""
    reversed_items: tuple[str, ...] = ()
    pay_within_days: int = 14
    """Of the notice level: the letter's pay-by is ``as_of`` plus this."""
    clearing_order: tuple[str, ...] | None = None
    """The procedure's ``clearing_order`` when it set one: the notice's charge and interest
    are then claimable items of the account (``domain.claims``); ``None``: postings only."""
    claims: tuple[ClaimLine, ...] = ()
    """Open charge and interest items of earlier notices of the group it listed."""

    def in_effect(self) -> bool:
        """True while at least one listed item is not reversed."""
        return in_effect(self.lines, self.reversed_items)

    def new_values(self, line: NoticeLine) -> tuple[int, int | None, int | None]:
        """(level, last dunned day, interest-until day) the notice gave ``line``'s item."""
        if not line.listed:
            return line.new_level, line.old_last_dunned, line.old_interest_until
        charged = self.interest > 0 and line.interest_reason is None
        until = self.as_of if charged else line.old_interest_until
        return line.new_level, self.as_of, until


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    master: Master | None = None
    locks: tuple[Lock, ...] = ()
    invoices: tuple[Invoice, ...] = ()
    items: tuple[Item, ...] = ()
    """Every item, invoice items and instalments, sorted by item id."""
    payments: tuple[Payment, ...] = ()
    """Sorted by (received day, payment id)."""
    cancelled_invoices: tuple[str, ...] = ()
    reversed_payments: tuple[str, ...] = ()
    """Ids of reversed payments (a reversal may arrive before its payment)."""
    plans: tuple[Plan, ...] = ()
    cancelled_plans: tuple[str, ...] = ()
    due_changes: tuple[tuple[str, int], ...] = ()
    """Due-date changes of items not known yet: (item id, due day)."""
    notices: tuple[ExecutedNotice, ...] = ()
    """Executed notices, in execution order."""
    pending: tuple[Proposal, ...] = ()
    """Proposals awaiting a decision."""
    seen: bytes = b""
    """Applied events: 12 bytes each, an 8-byte hash of the event id and a 4-byte hash of
    its digest (enough to tell a redelivery from another event reusing the id). Those
    with a day (``domain.retention.event_day``) come first, grouped by day in the order of
    ``seen_days``; then those without one (or applied before days were kept), which are
    never forgotten."""
    history_seq: int = 0
    history_head: str = ""
    seen_days: tuple[tuple[int, int], ...] = ()
    """(day, number of applied events of that day), by day: the groups at the start of
    ``seen``. A multiset: the same whatever order the events arrived in."""
    horizon: int = 0
    """The day up to which the account has forgotten (``domain.retention.compact``):
    input events of an earlier day are refused, since their ids may have been forgotten."""
    imports: tuple[ImportedLevel, ...] = ()
    """Imported levels (``DunningHistoryImported``), one per item id, sorted by item id."""


def new_account(account_id: str) -> Account:
    """An account that has seen nothing."""
    return Account(account_id=account_id)


_ACCOUNT_FIELDS = tuple(f.name for f in fields(Account))


def with_changes(account: Account, changes: dict[str, Any]) -> Account:
    """``dataclasses.replace(account, **changes)``, several times faster (hot on ingest)."""
    if not changes:
        return account
    return Account(*[changes[n] if n in changes else getattr(account, n) for n in _ACCOUNT_FIELDS])


# -- queries ---------------------------------------------------------------------------


def is_locked(account: Account, day: int, item_id: str | None = None) -> bool:
    """Whether dunning is locked on ``day`` (bounds inclusive).

    Without ``item_id``: an account-wide lock. With it: an account-wide lock or a lock
    on that item.
    """
    for lock in account.locks:
        if lock.valid_from <= day <= lock.valid_to and (
            lock.item_id is None or lock.item_id == item_id
        ):
            return True
    return False


def active_plan_ids(account: Account) -> tuple[str, ...]:
    """Plans that are effective (instalments known) and not cancelled, by id."""
    materialized = {it.plan_id for it in account.items if it.plan_id is not None}
    cancelled = account.cancelled_plans
    return tuple(
        p.plan_id for p in account.plans if p.plan_id in materialized and p.plan_id not in cancelled
    )


def notice_ids(account_id: str, notice: ExecutedNotice) -> tuple[str, str]:
    """(proposal id, notice id) of an executed notice."""
    pid = ids.proposal_id(
        notice.run_id, account_id, notice.procedure_id, notice.currency, notice.group
    )
    return pid, ids.notice_id(pid)


def group_last_notice_day(
    account: Account, procedure_id: str, currency: str, group: str
) -> int | None:
    """As-of day of the group's last notice still in effect, or ``None``. An imported
    level of one of the group's items counts as a notice on its frequency day (RULES.md
    10, "Imported levels")."""
    last: int | None = None
    if account.imports:
        last = _imported_notice_day(account, procedure_id, currency, group)
    for n in account.notices:
        if (
            n.procedure_id == procedure_id
            and n.currency == currency
            and n.group == group
            and (last is None or n.as_of > last)
            and n.in_effect()
        ):
            last = n.as_of
    return last


def _imported_notice_day(
    account: Account, procedure_id: str, currency: str, group: str
) -> int | None:
    """The latest frequency day of the imports of the group's items, or ``None``."""
    default = account.master.dunning_procedure if account.master is not None else None
    wanted = {imp.item_id: imp for imp in account.imports}
    last: int | None = None
    for it in account.items:
        imp = wanted.get(it.item_id)
        if (
            imp is not None
            and it.currency == currency
            and it.group == group
            and (it.procedure or default) == procedure_id
        ):
            day = imp.frequency_day()
            if last is None or day > last:
                last = day
    return last


# -- ingest ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposedItem:
    """An item listed on the proposal (``new_level >= 1``).

    ``reason`` is ``"advanced"``, ``"held"`` (stays at its level) or ``"decreased"``.
    ``interest`` is the item's share of the notice's interest (0 without interest);
    ``interest_from`` the day its interest runs from (``None`` when the notice level
    has no interest). ``last_dunned_date`` and ``interest_until_date`` are the item's
    values before the notice; execution checks they have not changed.
    """

    item_id: str
    invoice_id: str
    open_amount: int
    due_date: int
    days_in_arrears: int
    previous_level: int
    new_level: int
    reason: str
    interest: int
    interest_from: int | None
    last_dunned_date: int | None
    interest_until_date: int | None
    interest_parts: tuple[InterestPart, ...] | None = None
    """The sub-periods of its interest, with an option of RULES.md section 9 (empty with
    today's rule: one period, one rate, today's open amount)."""
    interest_reason: str | None = None
    """Why it gets no interest on this notice: ``rate_unknown``; else ``None``."""


@dataclass(frozen=True, slots=True)
class LevelChange:
    """An item of the group that is not listed but whose level changes (to 0)."""

    item_id: str
    previous_level: int
    new_level: int
    reason: str


@dataclass(frozen=True, slots=True)
class LeftOutItem:
    """An item of the group left off the notice, and why.

    Reasons: ``locked``, ``paid``, ``cancelled``, ``not_due``, ``installment_plan``,
    ``below_days_in_arrears``, ``below_min_item_amount``. (A whole group with an
    undecided proposal of an earlier run is left out as ``pending_proposal``:
    ``Evaluation.pending_groups``.)
    """

    item_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposed notice for one dunning group (the ``DunningProposed`` record).

    Amounts are minor units of ``currency``; dates are day numbers.
    ``last_notice_date`` is the as-of day of the group's last notice in effect when it
    was proposed (execution checks it has not changed).
    """

    proposal_id: str
    run_id: str
    account_id: str
    procedure_id: str
    dunning_group: str
    currency: str
    as_of_date: int
    level: int
    activities: tuple[str, ...]
    charge: int
    interest: int
    total_due: int
    items: tuple[ProposedItem, ...]
    level_changes: tuple[LevelChange, ...]
    left_out: tuple[LeftOutItem, ...]
    auto_approve: bool
    last_notice_date: int | None
    activities_below_minimum: tuple[str, ...] = ()
    """Activities of the level not carried out: ``total_due`` is below their
    ``activity_min_amounts`` (RULES.md section 9); ``activities`` leaves them out."""
    pay_within_days: int = 14
    """The notice level's ``pay_within_days``: the letter's pay-by is as-of plus this."""
    claims: tuple[ClaimLine, ...] = ()
    """Open charge and interest items of the group's earlier notices (RULES.md decision
    12), listed after the items and counted in ``total_due``."""
    clearing_order: tuple[str, ...] | None = None
    """The procedure's ``clearing_order``, when set: the notice keeps its charge and
    interest as claimable items."""
