"""Commands to downstream systems (CONTRACT.md "Output topics") and the recipient of a
letter. Amounts are ``int`` minor units of ``currency``; dates are day numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import PostalAddress
from domain.interest import InterestPart

__all__ = [
    "Command",
    "DeactivateInstallmentPlan",
    "NoticeItem",
    "NotifyAgent",
    "PostDunningCharge",
    "PostDunningChargeReversal",
    "PostDunningInterest",
    "PostDunningInterestReversal",
    "PrintDunningLetter",
    "Recipient",
    "ReleaseToCollectionAgency",
    "RequestSecurityDeposit",
    "SetDunningLock",
]


@dataclass(frozen=True, slots=True)
class Recipient:
    name: str
    postal_address: PostalAddress
    email: str | None


@dataclass(frozen=True, slots=True)
class NoticeItem:
    """One item as a letter or a collection release shows it."""

    item_id: str
    invoice_id: str
    due_date: int
    days_in_arrears: int
    open_amount: int
    level: int
    interest_parts: tuple[InterestPart, ...] | None = None
    """Its sub-periods (RULES.md section 9); empty with today's rule."""
    kind: str | None = None
    """``charge`` or ``interest``: an earlier notice's charge or interest item (RULES.md
    decision 12; ``invoice_id`` is that notice, ``level`` 0); ``None``: an invoice item or
    an instalment."""


@dataclass(frozen=True, slots=True)
class PrintDunningLetter:
    command_id: str
    notice_id: str
    account_id: str
    level: int
    language: str
    channel: str
    """``"email"`` when the account has an e-mail address, else ``"print"``."""
    recipient: Recipient
    currency: str
    items: tuple[NoticeItem, ...]
    charge: int
    interest: int
    total_due: int
    as_of_date: int
    pay_by: int
    """``as_of_date`` plus the level's ``pay_within_days`` (14 unless the procedure says)."""
    procedure_id: str


@dataclass(frozen=True, slots=True)
class SetDunningLock:
    command_id: str
    notice_id: str
    account_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReleaseToCollectionAgency:
    command_id: str
    notice_id: str
    account_id: str
    currency: str
    items: tuple[NoticeItem, ...]
    amount: int
    """The sum of the listed items' open amounts (charge and interest are not released)."""


@dataclass(frozen=True, slots=True)
class RequestSecurityDeposit:
    command_id: str
    notice_id: str
    account_id: str
    currency: str
    amount: int
    """The notice's ``total_due``."""


@dataclass(frozen=True, slots=True)
class NotifyAgent:
    command_id: str
    notice_id: str
    account_id: str
    level: int
    task: str


@dataclass(frozen=True, slots=True)
class DeactivateInstallmentPlan:
    command_id: str
    notice_id: str
    account_id: str
    plan_id: str


@dataclass(frozen=True, slots=True)
class PostDunningCharge:
    command_id: str
    notice_id: str
    account_id: str
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class PostDunningInterest:
    command_id: str
    notice_id: str
    account_id: str
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class PostDunningChargeReversal:
    command_id: str
    notice_id: str
    account_id: str
    currency: str
    amount: int
    reverses_command_id: str


@dataclass(frozen=True, slots=True)
class PostDunningInterestReversal:
    command_id: str
    notice_id: str
    account_id: str
    currency: str
    amount: int
    reverses_command_id: str


Command = (
    PrintDunningLetter
    | SetDunningLock
    | ReleaseToCollectionAgency
    | RequestSecurityDeposit
    | NotifyAgent
    | DeactivateInstallmentPlan
    | PostDunningCharge
    | PostDunningInterest
    | PostDunningChargeReversal
    | PostDunningInterestReversal
)
