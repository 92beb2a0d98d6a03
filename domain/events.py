"""Input records of CONTRACT.md as domain objects.

Field names are those of CONTRACT.md, plus ``event_id``. Amounts are ``int`` minor units
of the record's currency (for an allocation: of the payment's currency; for an
instalment: of its source items' currency); dates are ``int`` day numbers
(``date.toordinal()``). Optional fields default to ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AccountUpserted",
    "Allocation",
    "DueDateChanged",
    "DunningLockReleased",
    "DunningHistoryImported",
    "DunningLockSet",
    "InputEvent",
    "Installment",
    "InstallmentPlanCancelled",
    "InstallmentPlanCreated",
    "InvoiceCancelled",
    "InvoiceIssued",
    "InvoiceItem",
    "LetterDelivery",
    "PaymentReceived",
    "PaymentReversed",
    "PostalAddress",
]


@dataclass(frozen=True, slots=True)
class PostalAddress:
    lines: tuple[str, ...]
    postal_code: str
    city: str
    country: str


@dataclass(frozen=True, slots=True)
class AccountUpserted:
    event_id: str
    account_id: str
    name: str
    language: str
    currency: str
    dunning_procedure: str
    postal_address: PostalAddress
    email: str | None = None


@dataclass(frozen=True, slots=True)
class DunningLockSet:
    event_id: str
    account_id: str
    lock_id: str
    reason: str
    valid_from: int
    valid_to: int
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class DunningLockReleased:
    event_id: str
    account_id: str
    lock_id: str


@dataclass(frozen=True, slots=True)
class DunningHistoryImported:
    """An item's dunning level as another system left it (migration, RULES.md 10).

    ``last_dunned_date`` is the day of the item's last notice there; ``notice_date`` the
    day of the last notice to the item's group (for the frequency check; ``None``: the
    last-dunned day); ``interest_until_date`` the day up to which interest was charged.
    """

    event_id: str
    account_id: str
    item_id: str
    level: int
    last_dunned_date: int
    interest_until_date: int | None = None
    notice_date: int | None = None


@dataclass(frozen=True, slots=True)
class InvoiceItem:
    item_id: str
    amount: int
    due_date: int
    dunning_procedure: str | None = None
    dunning_group: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceIssued:
    event_id: str
    account_id: str
    invoice_id: str
    currency: str
    issued_on: int
    items: tuple[InvoiceItem, ...]


@dataclass(frozen=True, slots=True)
class InvoiceCancelled:
    event_id: str
    account_id: str
    invoice_id: str


@dataclass(frozen=True, slots=True)
class Allocation:
    item_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class PaymentReceived:
    event_id: str
    account_id: str
    payment_id: str
    amount: int
    currency: str
    received_on: int
    payment_run_id: str | None = None
    allocations: tuple[Allocation, ...] | None = None


@dataclass(frozen=True, slots=True)
class PaymentReversed:
    event_id: str
    account_id: str
    payment_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class DueDateChanged:
    event_id: str
    account_id: str
    item_id: str
    due_date: int
    reason: str


@dataclass(frozen=True, slots=True)
class Installment:
    item_id: str
    amount: int
    """In thousandths of a currency unit (``domain.money.to_milli``): a plan may arrive
    before the items whose currency its amounts are in; the account converts them to
    minor units of that currency when the plan takes effect."""
    due_date: int


@dataclass(frozen=True, slots=True)
class InstallmentPlanCreated:
    event_id: str
    account_id: str
    plan_id: str
    item_ids: tuple[str, ...]
    installments: tuple[Installment, ...]


@dataclass(frozen=True, slots=True)
class InstallmentPlanCancelled:
    event_id: str
    account_id: str
    plan_id: str


@dataclass(frozen=True, slots=True)
class LetterDelivery:
    """What happened to a letter, from the letter service (``LetterSent``,
    ``LetterDeliveryFailed``, ``LetterPrinted`` on ``dunning.letter-deliveries``; RULES.md
    10, decision 14). It changes nothing the runs compute; the account remembers its id
    and its history records it.

    ``outcome``: ``sent``, ``failed`` or ``printed``; ``detail`` the address (sent), the
    reason (failed) or the print batch (printed); ``at_ms`` when, in milliseconds since
    1970 (UTC)."""

    event_id: str
    account_id: str
    outcome: str
    command_id: str
    notice_id: str
    detail: str
    attempt: int
    at_ms: int
    permanent: bool = False
    next_step: str | None = None
    fallback: bool = False


InputEvent = (
    AccountUpserted
    | DunningLockSet
    | DunningLockReleased
    | InvoiceIssued
    | InvoiceCancelled
    | PaymentReceived
    | PaymentReversed
    | DueDateChanged
    | InstallmentPlanCreated
    | InstallmentPlanCancelled
    | DunningHistoryImported
    | LetterDelivery
)
