"""Review: a run's proposals pending on the account, and what the clerk decides of them
(RULES.md "Review").

- :func:`record_proposals` keeps a run's proposals pending on the account;
  :func:`drop_run` deletes them (only while none of the run was executed here).
- :func:`reject` drops a pending proposal; nothing else changes.
- :func:`executed_run`, :func:`run_executed`, :func:`notices_of_run`: what of a run was
  executed on this account.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from domain import ids
from domain.errors import Rejected
from domain.history import (
    ProposalRejectedHistory,
)
from domain.state import Account, Proposal, notice_ids


def run_executed(account: Account, run_id: str) -> bool:
    """Whether any proposal of run ``run_id`` was executed on this account."""
    return any(n.run_id == run_id for n in account.notices)


def notices_of_run(account: Account, run_id: str) -> tuple[str, ...]:
    """Notice ids of the run's executed notices on this account (to reverse a run)."""
    return tuple(
        notice_ids(account.account_id, n)[1] for n in account.notices if n.run_id == run_id
    )


def executed_run(account: Account, proposal_id: str) -> str | None:
    """The run id of the notice that executed ``proposal_id`` here, or ``None``."""
    index = executed_index(account, proposal_id)
    return account.notices[index].run_id if index >= 0 else None


def executed_index(account: Account, proposal_id: str) -> int:
    for index, n in enumerate(account.notices):
        if notice_ids(account.account_id, n)[0] == proposal_id:
            return index
    return -1


def record_proposals(account: Account, proposals: Iterable[Proposal]) -> Account:
    """``account`` with ``proposals`` pending (a proposal already pending or already
    executed is not added again)."""
    pending = list(account.pending)
    known = {p.proposal_id for p in pending}
    added = False
    for p in proposals:
        if p.account_id != account.account_id:
            raise Rejected(
                "wrong_account", f"proposal for {p.account_id!r} given to {account.account_id!r}"
            )
        if p.proposal_id in known or executed_index(account, p.proposal_id) >= 0:
            continue
        pending.append(p)
        known.add(p.proposal_id)
        added = True
    if not added:
        return account
    return replace(account, pending=tuple(pending))


def drop_run(account: Account, run_id: str) -> Account:
    """``account`` without the run's pending proposals (deleting a proposal run).

    Raises ``Rejected("run_executed")`` when a proposal of the run was executed here.
    """
    if run_executed(account, run_id):
        raise Rejected("run_executed", f"run {run_id!r} has executed notices and cannot be deleted")
    pending = tuple(p for p in account.pending if p.run_id != run_id)
    if len(pending) == len(account.pending):
        return account
    return replace(account, pending=pending)


def reject(
    account: Account, proposal_id: str, decided_by: str, reason: str
) -> tuple[Account, ProposalRejectedHistory | None]:
    """Drop a pending proposal. Nothing else changes.

    An unknown or already rejected proposal gives ``(account, None)``; an executed one
    raises ``Rejected("proposal_executed")``.
    """
    for p in account.pending:
        if p.proposal_id == proposal_id:
            history = ProposalRejectedHistory(
                event_id=ids.history_event_id("ProposalRejected", proposal_id),
                account_id=account.account_id,
                proposal_id=proposal_id,
                run_id=p.run_id,
                decided_by=decided_by,
                reason=reason,
                as_of_date=p.as_of_date,
            )
            pending = tuple(x for x in account.pending if x.proposal_id != proposal_id)
            return replace(account, pending=pending), history
    if executed_index(account, proposal_id) >= 0:
        raise Rejected("proposal_executed", f"proposal {proposal_id!r} was already executed")
    return account, None


# -- activity run --------------------------------------------------------------------------


