"""An SMTP server on loopback (aiosmtpd) that refuses some recipients at RCPT: a bounce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from tests.unit.letters.helpers import SmtpHandler, SmtpServer

NO_MAILBOX = "550 5.1.1 <{address}>: no such mailbox here"


@dataclass
class RefusingHandler(SmtpHandler):
    """`SmtpHandler` that also refuses the addresses in `refused` at RCPT with a 550."""

    refused: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refused:
            return NO_MAILBOX.format(address=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"


class RefusingSmtpServer(SmtpServer):
    def __init__(self, *refused: str) -> None:
        super().__init__()
        self.handler = RefusingHandler(refused=set(refused))
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
