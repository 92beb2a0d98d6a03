"""A `PrintDunningLetter` command as the letter service sees it.

`Letter.from_record` takes the record the codec decodes (`Decimal` amounts, `date`s) and
checks what a letter needs; `to_json`/`from_json` keep the command in the document store
(amounts as strings, dates ISO), so a letter can be rendered again, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

CHANNELS = ("email", "print")


class BadLetter(ValueError):
    """A command the service cannot turn into a letter; says why."""


def _date(value: Any, name: str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise BadLetter(f"{name} is not a date: {value!r}")


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, Decimal):
        result = value
    else:
        try:
            result = Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise BadLetter(f"{name} is not an amount: {value!r}") from None
    if not result.is_finite():
        raise BadLetter(f"{name} is not an amount: {value!r}")
    return result


def _str(record: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = record.get(name)
    if value is None or (required and str(value).strip() == ""):
        if required:
            raise BadLetter(f"{name} is missing")
        return ""
    if not isinstance(value, str):
        raise BadLetter(f"{name} is not a string: {value!r}")
    return value


def one_line(text: str) -> str:
    """Text for one printed line: control characters (line breaks…) become spaces."""
    if text.isprintable():
        return text
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _int(record: Mapping[str, Any], name: str) -> int:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadLetter(f"{name} is not a whole number: {value!r}")
    return value


@dataclass(frozen=True)
class Address:
    lines: tuple[str, ...]
    postal_code: str
    city: str
    country: str


@dataclass(frozen=True)
class Recipient:
    name: str
    address: Address
    email: str | None


@dataclass(frozen=True)
class InterestLine:
    """One sub-period of an item's interest (RULES.md section 9), one line on the letter."""

    start: date
    end: date
    days: int
    rate_percent: Decimal
    base_amount: Decimal
    amount: Decimal
    day_count: str


@dataclass(frozen=True)
class Item:
    item_id: str
    invoice_id: str
    due_date: date
    days_in_arrears: int
    open_amount: Decimal
    level: int
    interest_parts: tuple[InterestLine, ...] = ()
    #: `invoice`, or `charge` / `interest`: what an earlier notice charged, still open
    #: (RULES.md decision 12, claimable items)
    kind: str = "invoice"


def _kind(raw: Any, where: str) -> str:
    if raw is None:
        return "invoice"
    if raw not in ("invoice", "charge", "interest"):
        raise BadLetter(f"{where} must be invoice, charge or interest, not {raw!r}")
    return str(raw)


def _parts(raw: Any, where: str) -> tuple[InterestLine, ...]:
    if not raw:
        return ()
    return tuple(
        InterestLine(
            start=_date(x.get("from"), f"{where}.from"), end=_date(x.get("to"), f"{where}.to"),
            days=_int(x, "days"), rate_percent=_decimal(x.get("rate_percent"), f"{where}.rate"),
            base_amount=_decimal(x.get("base_amount"), f"{where}.base_amount"),
            amount=_decimal(x.get("amount"), f"{where}.amount"), day_count=_str(x, "day_count"),
        )
        for x in raw
    )


@dataclass(frozen=True)
class Letter:
    command_id: str
    notice_id: str
    account_id: str
    level: int
    language: str
    channel: str
    recipient: Recipient
    currency: str
    items: tuple[Item, ...]
    charge: Decimal
    interest: Decimal
    total_due: Decimal
    as_of_date: date
    procedure_id: str
    pay_by: date

    @property
    def email(self) -> str | None:
        """The address to e-mail this letter to, or None: an e-mail channel and an address."""
        if self.channel == "email" and self.recipient.email:
            return self.recipient.email
        return None

    @property
    def items_total(self) -> Decimal:
        return sum((i.open_amount for i in self.items), Decimal(0))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Letter:
        if not isinstance(record, Mapping):
            raise BadLetter("not a record")
        rec = record.get("recipient")
        if not isinstance(rec, Mapping):
            raise BadLetter("recipient is missing")
        addr = rec.get("postal_address")
        if not isinstance(addr, Mapping):
            raise BadLetter("recipient.postal_address is missing")
        lines = addr.get("lines") or []
        if not isinstance(lines, list | tuple) or not all(isinstance(x, str) for x in lines):
            raise BadLetter("recipient.postal_address.lines is not a list of strings")
        email = rec.get("email")
        if email is not None and not isinstance(email, str):
            raise BadLetter(f"recipient.email is not a string: {email!r}")
        email = email.strip() if email else None
        if email and ("@" not in email or any(c in email for c in " \r\n<>,;")):
            raise BadLetter("recipient.email is not an e-mail address")
        channel = _str(record, "channel")
        if channel not in CHANNELS:
            raise BadLetter(f"channel must be email or print, not {channel!r}")
        currency = _str(record, "currency")
        if len(currency) != 3 or not currency.isalpha():
            raise BadLetter(f"currency is not an ISO 4217 code: {currency!r}")
        items_raw = record.get("items")
        if not isinstance(items_raw, list | tuple) or not items_raw:
            raise BadLetter("a letter needs at least one item")
        items = []
        for n, it in enumerate(items_raw):
            if not isinstance(it, Mapping):
                raise BadLetter(f"items[{n}] is not a record")
            items.append(Item(
                item_id=_str(it, "item_id"),
                invoice_id=_str(it, "invoice_id"),
                due_date=_date(it.get("due_date"), f"items[{n}].due_date"),
                days_in_arrears=_int(it, "days_in_arrears"),
                open_amount=_decimal(it.get("open_amount"), f"items[{n}].open_amount"),
                level=_int(it, "level"),
                interest_parts=_parts(it.get("interest_parts"), f"items[{n}].interest_parts"),
                kind=_kind(it.get("kind"), f"items[{n}].kind"),
            ))
        level = _int(record, "level")
        if level < 1:
            raise BadLetter(f"level must be at least 1, not {level}")
        return cls(
            command_id=_str(record, "command_id"),
            notice_id=_str(record, "notice_id"),
            account_id=_str(record, "account_id"),
            level=level,
            language=_str(record, "language", required=False).strip() or "en",
            channel=channel,
            recipient=Recipient(
                name=one_line(_str(rec, "name")),
                address=Address(
                    lines=tuple(one_line(x) for x in lines),
                    postal_code=one_line(_str(addr, "postal_code", required=False)),
                    city=one_line(_str(addr, "city", required=False)),
                    country=_str(addr, "country", required=False).upper(),
                ),
                email=email or None,
            ),
            currency=currency.upper(),
            items=tuple(items),
            charge=_decimal(record.get("charge"), "charge"),
            interest=_decimal(record.get("interest"), "interest"),
            total_due=_decimal(record.get("total_due"), "total_due"),
            as_of_date=_date(record.get("as_of_date"), "as_of_date"),
            procedure_id=_str(record, "procedure_id", required=False),
            pay_by=_date(record.get("pay_by"), "pay_by"),
        )

    def to_json(self) -> dict[str, Any]:
        """The command as JSON (amounts as strings, dates ISO); `from_json` reads it back."""
        return {
            "command_id": self.command_id,
            "notice_id": self.notice_id,
            "account_id": self.account_id,
            "level": self.level,
            "language": self.language,
            "channel": self.channel,
            "recipient": {
                "name": self.recipient.name,
                "postal_address": {
                    "lines": list(self.recipient.address.lines),
                    "postal_code": self.recipient.address.postal_code,
                    "city": self.recipient.address.city,
                    "country": self.recipient.address.country,
                },
                "email": self.recipient.email,
            },
            "currency": self.currency,
            "items": [
                {
                    "item_id": i.item_id,
                    "invoice_id": i.invoice_id,
                    "due_date": i.due_date.isoformat(),
                    "days_in_arrears": i.days_in_arrears,
                    "open_amount": str(i.open_amount),
                    "level": i.level,
                    **({"interest_parts": [
                        {"from": x.start.isoformat(), "to": x.end.isoformat(), "days": x.days,
                         "rate_percent": str(x.rate_percent),
                         "base_amount": str(x.base_amount), "amount": str(x.amount),
                         "day_count": x.day_count} for x in i.interest_parts]}
                       if i.interest_parts else {}),
                }
                for i in self.items
            ],
            "charge": str(self.charge),
            "interest": str(self.interest),
            "total_due": str(self.total_due),
            "as_of_date": self.as_of_date.isoformat(),
            "procedure_id": self.procedure_id,
            "pay_by": self.pay_by.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Letter:
        return cls.from_record(data)
