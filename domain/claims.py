"""Charges and interest as claimable items (RULES.md decision 12).

A notice executed under a procedure that sets ``clearing_order`` keeps its charge and its
interest as open items of the account: ``<notice id>/charge`` and ``<notice id>/interest``.
They are derived from the account's notices (nothing else is stored), so a reversal of the
notice reverses them by itself:

- the charge item's amount is the notice's charge while the notice is in effect, else 0;
- the interest item's amount is the notice's interest less the shares of its reversed
  items;
- an item of amount 0 (reversed) is kept as *cancelled*: money allocated to it joins the
  payment's unallocated rest, as with a cancelled invoice;
- its due day is the notice's pay-by day (as-of plus ``pay_within_days``); it *arose* on
  the notice's as-of day: only payments received after that day, and credit left over,
  clear it (a payment the notice already counted on the principal stays there).

They carry no dunning level, never earn interest and never make a notice by themselves;
a later notice of their group lists those still open (``Proposal.claims``).
:mod:`domain.settlement` clears them with unallocated money in the clearing order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from domain.charges import pay_by
from domain.procedures import PRINCIPAL_FIRST
from domain.state import ExecutedNotice, notice_ids

__all__ = ["CHARGE", "INTEREST", "Claim", "claims_of", "keeps_claims"]

CHARGE = "charge"
INTEREST = "interest"


@dataclass(frozen=True, slots=True)
class Claim:
    """One charge or interest item of a notice, before any money is applied to it."""

    item_id: str
    kind: str
    notice_id: str
    procedure_id: str
    group: str
    currency: str
    amount: int
    """What is claimed: 0 once reversed (the item is then cancelled)."""
    arose_day: int
    """The notice's as-of day: payments received after it clear the item."""
    due_day: int
    """The notice's pay-by day: the item's order within its kind."""
    principal_first: bool
    """The notice's clearing order: ``[principal, interest, charges]`` or the reverse."""


def keeps_claims(notices: Iterable[ExecutedNotice]) -> bool:
    """Whether one of ``notices`` keeps its charge and interest as items (cheap check)."""
    return any(n.clearing_order is not None for n in notices)


def claims_of(account_id: str, notices: Iterable[ExecutedNotice]) -> list[Claim]:
    """The claimable items of ``notices`` (in execution order; per notice the charge, then
    the interest). A notice without charge (or interest) has no charge (interest) item."""
    out: list[Claim] = []
    for n in notices:
        if n.clearing_order is None:
            continue
        notice_id = notice_ids(account_id, n)[1]
        reversed_items = set(n.reversed_items)
        amounts = (
            (CHARGE, n.charge, n.charge if n.in_effect() else 0),
            (
                INTEREST,
                n.interest,
                n.interest - sum(ln.interest for ln in n.lines if ln.item_id in reversed_items),
            ),
        )
        for kind, claimed, amount in amounts:
            if claimed > 0:
                out.append(
                    Claim(
                        item_id=f"{notice_id}/{kind}",
                        kind=kind,
                        notice_id=notice_id,
                        procedure_id=n.procedure_id,
                        group=n.group,
                        currency=n.currency,
                        amount=amount,
                        arose_day=n.as_of,
                        due_day=pay_by(n.as_of, n.pay_within_days),
                        principal_first=tuple(n.clearing_order) == PRINCIPAL_FIRST,
                    )
                )
    return out
