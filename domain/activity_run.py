"""The activity run, stage 2 of RULES.md: an approved proposal becomes one notice.

- :func:`execute` turns one pending proposal into exactly one notice: its commands, the
  new dunning fields of the group's items and the ``DunningNoticeIssued`` history
  payload. Executing again returns the same notice, rebuilt from state.
- :func:`execute_approved` executes it unless the account changed since the proposal run
  (:func:`refusal`); then :func:`not_executed` gives the ``ProposalNotExecuted`` record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from domain import ids
from domain.charges import pay_by
from domain.claims import CHARGE, INTEREST
from domain.commands import (
    Command,
    DeactivateInstallmentPlan,
    NoticeItem,
    NotifyAgent,
    PostDunningCharge,
    PostDunningInterest,
    PrintDunningLetter,
    Recipient,
    ReleaseToCollectionAgency,
    RequestSecurityDeposit,
    SetDunningLock,
)
from domain.errors import Rejected
from domain.history import (
    DunningNoticeIssued,
    NoticeClaim,
    NoticeItemChange,
    ProposalNotExecuted,
)
from domain.review import executed_index
from domain.settlement import open_claims, resettled
from domain.state import (
    CANCELLED,
    CLOSED,
    IN_PLAN,
    OPEN,
    Account,
    ExecutedNotice,
    Item,
    NoticeLine,
    Proposal,
    active_plan_ids,
    group_last_notice_day,
    is_locked,
    notice_ids,
)

PAY_WITHIN_DAYS = 14
"""A letter's ``pay_by`` is its as-of date plus this many days."""


@dataclass(frozen=True, slots=True)
class Notice:
    """The outcome of executing one proposal: the commands to send and the history record."""

    notice_id: str
    proposal_id: str
    run_id: str
    account_id: str
    commands: tuple[Command, ...]
    history: DunningNoticeIssued


def execute(account: Account, proposal_id: str) -> tuple[Account, Notice]:
    """Execute a pending proposal: exactly one notice.

    Already executed: the account unchanged and the same notice, rebuilt from state.
    Not pending: ``Rejected("unknown_proposal")``. Pending but the account changed in a
    way that makes it wrong (an item's level, dates, due date or open amount changed,
    or another notice of the group was executed or reversed):
    ``Rejected("stale_proposal")``; the run can be deleted and started again.
    """
    index = executed_index(account, proposal_id)
    if index >= 0:
        return account, _build_notice(account, account.notices[index])
    proposal = next((p for p in account.pending if p.proposal_id == proposal_id), None)
    if proposal is None:
        raise Rejected("unknown_proposal", f"proposal {proposal_id!r} is not pending")
    if account.master is None:
        raise Rejected("stale_proposal", "the account has no master data")
    by_id = {it.item_id: it for it in account.items}
    _check_fresh(account, proposal, by_id)
    lines, updated = _notice_lines(proposal, by_id)
    notice = _executed(account, proposal, lines)
    changes: dict[str, Any] = {
        "items": tuple(updated.get(it.item_id, it) for it in account.items),
        "pending": tuple(p for p in account.pending if p.proposal_id != proposal_id),
        "notices": (*account.notices, notice),
    }
    if notice.clearing_order is not None:
        changes = resettled(account, **changes)
    new_account = replace(account, **changes)
    return new_account, _build_notice(new_account, notice)


def _notice_lines(
    proposal: Proposal, by_id: dict[str, Item]
) -> tuple[tuple[NoticeLine, ...], dict[str, Item]]:
    """The notice's lines (listed items, then level changes) and the items it updates."""
    as_of = proposal.as_of_date
    posts_interest = proposal.interest > 0
    updated: dict[str, Item] = {}
    lines = []
    for p_item in proposal.items:
        it = by_id[p_item.item_id]
        line = _line(
            it, True, p_item.new_level, p_item.interest, p_item.open_amount, p_item.due_date
        )
        if p_item.interest_parts or p_item.interest_reason:
            line = replace(
                line, interest_parts=p_item.interest_parts, interest_reason=p_item.interest_reason
            )
        lines.append(line)
        charged = posts_interest and p_item.interest_reason is None
        updated[it.item_id] = replace(
            it,
            level=p_item.new_level,
            last_dunned_day=as_of,
            interest_until_day=as_of if charged else it.interest_until_day,
        )
    for change in proposal.level_changes:
        it = by_id[change.item_id]
        lines.append(_line(it, False, change.new_level, 0, it.open_amount, it.due_day))
        updated[it.item_id] = replace(it, level=change.new_level)
    return tuple(lines), updated


def _line(
    it: Item, listed: bool, new_level: int, interest: int, open_amount: int, due_day: int
) -> NoticeLine:
    """The line of ``it`` on a notice: its values before, what the notice gives it."""
    return NoticeLine(
        it.item_id,
        listed,
        it.level,
        new_level,
        it.last_dunned_day,
        it.interest_until_day,
        interest,
        open_amount,
        due_day,
    )


def _executed(
    account: Account, proposal: Proposal, lines: tuple[NoticeLine, ...]
) -> ExecutedNotice:
    """The notice as the account remembers it once ``proposal`` is executed."""
    master = account.master
    assert master is not None
    activities = proposal.activities
    letter = "letter" in activities
    return ExecutedNotice(
        run_id=proposal.run_id,
        procedure_id=proposal.procedure_id,
        group=proposal.dunning_group,
        currency=proposal.currency,
        level=proposal.level,
        as_of=proposal.as_of_date,
        activities=activities,
        charge=proposal.charge,
        interest=proposal.interest,
        lines=lines,
        plan_ids=active_plan_ids(account) if "deactivate_installment_plan" in activities else (),
        language=master.language if letter else None,
        recipient=Recipient(master.name, master.postal_address, master.email) if letter else None,
        pay_within_days=proposal.pay_within_days,
        clearing_order=proposal.clearing_order,
        claims=proposal.claims,
    )


def refusal(account: Account, proposal: Proposal) -> tuple[str, str] | None:
    """Why an approved ``proposal`` can no longer be executed as proposed, as ``(reason,
    detail)``, or ``None`` when it still holds.

    Reasons, the first that applies: ``no_master_data``; ``paid`` (every listed item is
    fully paid now); ``cancelled`` (a listed item's invoice or plan was cancelled);
    ``in_plan`` (a listed item is now in an active instalment plan); ``locked`` (a dunning
    lock valid on the proposal's as-of date covers the account or a listed item);
    ``stale_proposal`` (anything else the proposal was computed from changed: open
    amounts, due dates, levels, dates, the group's last notice).
    """
    if account.master is None:
        return "no_master_data", "the account has no master data"
    by_id = {it.item_id: it for it in account.items}
    listed = [by_id.get(p.item_id) for p in proposal.items]
    known = [it for it in listed if it is not None]
    if (
        known
        and len(known) == len(listed)
        and all(it.status == OPEN and it.open_amount == 0 for it in known)
    ):
        return "paid", "every listed item is paid"
    for it in known:
        if it.status in (CANCELLED, CLOSED):
            return "cancelled", f"item {it.item_id!r} was cancelled"
    for it in known:
        if it.status == IN_PLAN:
            return "in_plan", f"item {it.item_id!r} is in an active instalment plan"
    as_of = proposal.as_of_date
    if is_locked(account, as_of):
        return "locked", "the account is locked for dunning"
    for it in known:
        if is_locked(account, as_of, it.item_id):
            return "locked", f"item {it.item_id!r} is locked for dunning"
    try:
        _check_fresh(account, proposal, by_id)
    except Rejected as exc:
        return exc.code, exc.detail
    return None


def execute_approved(
    account: Account, proposal_id: str
) -> tuple[Account, Notice | ProposalNotExecuted]:
    """The outcome of an approval: the notice (:func:`execute`), or, when the account
    changed since the proposal run (:func:`refusal`), a ``ProposalNotExecuted`` record;
    the proposal is then no longer pending (the next proposal run looks at the group
    afresh). Not pending and never executed: ``Rejected("unknown_proposal")``."""
    if executed_index(account, proposal_id) >= 0:
        return execute(account, proposal_id)
    proposal = next((p for p in account.pending if p.proposal_id == proposal_id), None)
    if proposal is None:
        raise Rejected("unknown_proposal", f"proposal {proposal_id!r} is not pending")
    why = refusal(account, proposal)
    if why is None:
        return execute(account, proposal_id)
    return not_executed(account, proposal, *why)


def not_executed(
    account: Account, proposal: Proposal, reason: str, detail: str
) -> tuple[Account, ProposalNotExecuted]:
    """``proposal`` decided without a notice, for ``reason``: no longer pending."""
    outcome = ProposalNotExecuted(
        event_id=ids.history_event_id("ProposalNotExecuted", proposal.proposal_id),
        account_id=account.account_id,
        proposal_id=proposal.proposal_id,
        run_id=proposal.run_id,
        reason=reason,
        detail=detail,
        as_of_date=proposal.as_of_date,
    )
    pending = tuple(p for p in account.pending if p.proposal_id != proposal.proposal_id)
    return replace(account, pending=pending), outcome


def _check_fresh(account: Account, proposal: Proposal, by_id: dict[str, Item]) -> None:
    def stale(why: str) -> Rejected:
        return Rejected("stale_proposal", f"proposal {proposal.proposal_id}: {why}")

    for p_item in proposal.items:
        it = by_id.get(p_item.item_id)
        if it is None:
            raise stale(f"item {p_item.item_id!r} is unknown")
        if (
            it.status != OPEN
            or it.level != p_item.previous_level
            or it.last_dunned_day != p_item.last_dunned_date
            or it.interest_until_day != p_item.interest_until_date
            or it.open_amount != p_item.open_amount
            or it.due_day != p_item.due_date
        ):
            raise stale(f"item {it.item_id!r} changed since it was proposed")
    for change in proposal.level_changes:
        it = by_id.get(change.item_id)
        if it is None or it.level != change.previous_level:
            raise stale(f"item {change.item_id!r} changed since it was proposed")
    last = group_last_notice_day(
        account, proposal.procedure_id, proposal.currency, proposal.dunning_group
    )
    if last != proposal.last_notice_date:
        raise stale("another notice of the group was executed or reversed since")
    if proposal.claims:
        now = {cl.item_id: amount for cl, amount in open_claims(account)}
        for claim in proposal.claims:
            if now.get(claim.item_id) != claim.open_amount:
                raise stale(f"item {claim.item_id!r} changed since it was proposed")


def _notice_items(account: Account, notice: ExecutedNotice) -> tuple[NoticeItem, ...]:
    """The listed items, then the charge and interest items of earlier notices listed."""
    items = _principal_items(account, notice)
    if not notice.claims:
        return items
    claims = tuple(
        NoticeItem(
            c.item_id, c.notice_id, c.due_day, notice.as_of - c.due_day, c.open_amount, 0,
            kind=c.kind,
        )
        for c in notice.claims
    )
    return items + claims


def _notice_claims(notice: ExecutedNotice, notice_id: str) -> tuple[NoticeClaim, ...] | None:
    """The history's view of the notice's charge and interest items (decision 12)."""
    if notice.clearing_order is None:
        return None
    kept = [
        NoticeClaim(f"{notice_id}/{kind}", kind, notice_id, amount, amount, due)
        for kind, amount, due in (
            (CHARGE, notice.charge, pay_by(notice.as_of, notice.pay_within_days)),
            (INTEREST, notice.interest, pay_by(notice.as_of, notice.pay_within_days)),
        )
        if amount > 0
    ]
    listed = [
        NoticeClaim(c.item_id, c.kind, c.notice_id, c.open_amount, c.open_amount, c.due_day)
        for c in notice.claims
    ]
    return tuple(kept + listed)


def _principal_items(account: Account, notice: ExecutedNotice) -> tuple[NoticeItem, ...]:
    invoice_of = {it.item_id: it.invoice_id for it in account.items}
    return tuple(
        NoticeItem(
            item_id=line.item_id,
            invoice_id=invoice_of.get(line.item_id, ""),
            due_date=line.due_day,
            days_in_arrears=notice.as_of - line.due_day,
            open_amount=line.open_amount,
            level=line.new_level,
            interest_parts=line.interest_parts,
        )
        for line in notice.lines
        if line.listed
    )


def item_changes(
    notice: ExecutedNotice, lines: Iterable[NoticeLine], undo: bool
) -> tuple[NoticeItemChange, ...]:
    result = []
    for line in lines:
        level, last, until = notice.new_values(line)
        old = (line.old_level, line.old_last_dunned, line.old_interest_until)
        new = (level, last, until)
        if undo:
            old, new = new, old
        result.append(
            NoticeItemChange(
                item_id=line.item_id,
                listed=line.listed,
                old_level=old[0],
                new_level=new[0],
                old_last_dunned=old[1],
                new_last_dunned=new[1],
                old_interest_until=old[2],
                new_interest_until=new[2],
                interest=line.interest,
                interest_parts=line.interest_parts,
                interest_reason=line.interest_reason,
            )
        )
    return tuple(result)


class _Head(TypedDict):
    """The fields every command of a notice starts with."""

    command_id: str
    notice_id: str
    account_id: str


@dataclass(frozen=True, slots=True)
class _Draft:
    """What every command of one notice is built from."""

    notice: ExecutedNotice
    notice_id: str
    account_id: str
    items: tuple[NoticeItem, ...]
    listed_open: int
    total_due: int

    def head(self, kind: str, n: int = 0) -> _Head:
        """Id, notice and account of the ``n``-th command of ``kind``."""
        return _Head(
            command_id=ids.command_id(self.notice_id, kind, n),
            notice_id=self.notice_id,
            account_id=self.account_id,
        )


def _letter(d: _Draft) -> tuple[Command, ...]:
    n = d.notice
    assert n.recipient is not None and n.language is not None
    channel = "email" if n.recipient.email else "print"
    return (
        PrintDunningLetter(
            **d.head("PrintDunningLetter"),
            level=n.level,
            language=n.language,
            channel=channel,
            recipient=n.recipient,
            currency=n.currency,
            items=d.items,
            charge=n.charge,
            interest=n.interest,
            total_due=d.total_due,
            as_of_date=n.as_of,
            pay_by=pay_by(n.as_of, n.pay_within_days),
            procedure_id=n.procedure_id,
        ),
    )


def _lock(d: _Draft) -> tuple[Command, ...]:
    reason = f"dunning level {d.notice.level}"
    return (SetDunningLock(**d.head("SetDunningLock"), reason=reason),)


def _collection(d: _Draft) -> tuple[Command, ...]:
    head = d.head("ReleaseToCollectionAgency")
    currency = d.notice.currency
    return (
        ReleaseToCollectionAgency(**head, currency=currency, items=d.items, amount=d.listed_open),
    )


def _deposit(d: _Draft) -> tuple[Command, ...]:
    head = d.head("RequestSecurityDeposit")
    return (RequestSecurityDeposit(**head, currency=d.notice.currency, amount=d.total_due),)


def _workflow(d: _Draft) -> tuple[Command, ...]:
    level = d.notice.level
    task = f"follow up dunning level {level}"
    return (NotifyAgent(**d.head("NotifyAgent"), level=level, task=task),)


def _deactivate_plans(d: _Draft) -> tuple[Command, ...]:
    return tuple(
        DeactivateInstallmentPlan(**d.head("DeactivateInstallmentPlan", n), plan_id=plan_id)
        for n, plan_id in enumerate(d.notice.plan_ids)
    )


COMMAND_BUILDERS: dict[str, Callable[[_Draft], tuple[Command, ...]]] = {
    "letter": _letter,
    "lock": _lock,
    "collection": _collection,
    "deposit": _deposit,
    "workflow": _workflow,
    "deactivate_installment_plan": _deactivate_plans,
}
"""The commands of each activity (``procedures.ACTIVITIES``), in the notice's order."""


def _postings(d: _Draft) -> tuple[Command, ...]:
    """The charge and interest postings that follow the activities' commands."""
    n = d.notice
    out: list[Command] = []
    if n.charge:
        out.append(
            PostDunningCharge(**d.head("PostDunningCharge"), currency=n.currency, amount=n.charge)
        )
    if n.interest:
        head = d.head("PostDunningInterest")
        out.append(PostDunningInterest(**head, currency=n.currency, amount=n.interest))
    return tuple(out)


def _build_notice(account: Account, notice: ExecutedNotice) -> Notice:
    """The notice's commands and history record, from what the account remembers."""
    account_id = account.account_id
    proposal_id, notice_id = notice_ids(account_id, notice)
    items = _notice_items(account, notice)
    listed_open = sum(i.open_amount for i in items)
    total_due = listed_open + notice.charge + notice.interest
    draft = _Draft(notice, notice_id, account_id, items, listed_open, total_due)
    commands: list[Command] = []
    for activity in notice.activities:
        build = COMMAND_BUILDERS.get(activity)
        if build is not None:
            commands.extend(build(draft))
    commands.extend(_postings(draft))
    history = DunningNoticeIssued(
        event_id=ids.history_event_id("DunningNoticeIssued", notice_id),
        account_id=account_id,
        notice_id=notice_id,
        proposal_id=proposal_id,
        run_id=notice.run_id,
        procedure_id=notice.procedure_id,
        dunning_group=notice.group,
        currency=notice.currency,
        level=notice.level,
        activities=notice.activities,
        charge=notice.charge,
        interest=notice.interest,
        total_due=total_due,
        as_of_date=notice.as_of,
        items=item_changes(notice, notice.lines, undo=False),
        command_ids=tuple(c.command_id for c in commands),
        claims=_notice_claims(notice, notice_id),
    )
    return Notice(
        notice_id=notice_id,
        proposal_id=proposal_id,
        run_id=notice.run_id,
        account_id=account_id,
        commands=tuple(commands),
        history=history,
    )


# -- reversal ------------------------------------------------------------------------------
