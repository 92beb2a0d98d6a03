"""Letter commands, an SMTP server on loopback, and text from PDFs, for the letters tests."""

from __future__ import annotations

import copy
import email
import email.policy
import threading
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from letters.config import Letterhead, LetterSettings
from topics.broker import free_port

D = Decimal
AS_OF = date(2025, 3, 31)
NOTICE = "5d2f9a77-1c3e-5b8a-8e4f-2a9b7c6d5e1f"
RUN = "PR-2025-03-31/1"

BASE: dict[str, Any] = {
    "command_id": "cmd-letter-0001",
    "notice_id": NOTICE,
    "account_id": "ACC-100042",
    "level": 2,
    "language": "de",
    "channel": "email",
    "recipient": {
        "name": "Müller & Söhne GmbH",
        "postal_address": {
            "lines": ["Hauptstraße 12", "3. OG"],
            "postal_code": "10115",
            "city": "Berlin",
            "country": "DE",
        },
        "email": "buchhaltung@mueller-soehne.example",
    },
    "currency": "EUR",
    "items": [
        {
            "item_id": "INV-2025-0117/1",
            "invoice_id": "INV-2025-0117",
            "due_date": date(2025, 2, 14),
            "days_in_arrears": 45,
            "open_amount": D("1234.560"),
            "level": 2,
        },
        {
            "item_id": "INV-2025-0203/1",
            "invoice_id": "INV-2025-0203",
            "due_date": date(2025, 3, 3),
            "days_in_arrears": 28,
            "open_amount": D("45.500"),
            "level": 1,
        },
    ],
    "charge": D("5.000"),
    "interest": D("1.630"),
    "total_due": D("1286.690"),
    "as_of_date": AS_OF,
    "procedure_id": "STANDARD",
    "pay_by": date(2025, 4, 14),
}

LETTERHEAD = Letterhead(
    name="Stadtwerke Musterstadt GmbH",
    address=("Energieweg 5", "12345 Musterstadt"),
    contact="Tel. 0800 123456 · forderungen@stadtwerke.example",
    bank="IBAN DE02 1203 0000 0000 2020 51 · BIC BYLADEM1001",
    country="DE",
)


def letter_record(**overrides: Any) -> dict[str, Any]:
    """A `PrintDunningLetter` as the codec decodes it; `email=None` drops the address."""
    rec = copy.deepcopy(BASE)
    if "email" in overrides:
        rec["recipient"]["email"] = overrides.pop("email")
    rec.update(overrides)
    return rec


def notice_issued(notice_id: str, run_id: str, account_id: str, command_ids: list[str]) -> dict:
    return {
        "event_id": f"h-{notice_id}", "account_id": account_id, "seq": 1, "prev_hash": "",
        "recorded_for": AS_OF, "notice_id": notice_id, "proposal_id": f"p-{notice_id}",
        "run_id": run_id, "procedure_id": "STANDARD", "dunning_group": "", "currency": "EUR",
        "level": 2, "activities": ["letter"], "charge": D("5.00"), "interest": D("1.63"),
        "total_due": D("1286.69"), "items": [], "command_ids": command_ids,
    }


def plain(text: str) -> str:
    """PDF text with no-break spaces as plain spaces, so formats compare as typed."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def smtp_settings(port: int, **kw: Any) -> LetterSettings:
    """Letter settings for an SMTP server on loopback, with short back-offs."""
    values: dict[str, Any] = {
        "letterhead": LETTERHEAD, "smtp_host": "127.0.0.1", "smtp_port": port,
        "smtp_tls": "none", "smtp_from": "forderungen@stadtwerke.example",
        "smtp_timeout": 5.0, "attempts": 3, "backoff": 0.05, "retry_after": 60.0,
    }
    values.update(kw)
    return LetterSettings(**values)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpHandler:
    """Keeps what it receives; refuses the next `refuse` messages with `refuse_reply`."""

    messages: list[Received] = field(default_factory=list)
    refuse: int = 0
    refuse_reply: str = "451 4.3.0 Try again later"
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            if self.refuse > 0:
                self.refuse -= 1
                return self.refuse_reply
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg))
            return f"250 2.0.0 Ok: queued as Q{len(self.messages)}"


class SmtpServer:
    def __init__(self) -> None:
        self.handler = SmtpHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def settings(self, **kw: Any) -> LetterSettings:
        return smtp_settings(self.port, **kw)

    def env(self) -> dict[str, str]:
        return {
            "DUNNING_SMTP_HOST": "127.0.0.1", "DUNNING_SMTP_PORT": str(self.port),
            "DUNNING_SMTP_TLS": "none", "DUNNING_SMTP_FROM": "forderungen@stadtwerke.example",
            "DUNNING_SMTP_BACKOFF": "0.05", "DUNNING_SMTP_TIMEOUT": "5",
            "DUNNING_LETTERHEAD_NAME": LETTERHEAD.name,
        }
