"""E-mail delivery: the stored PDF, attached to a short message in the letter's language.

SMTP with the standard library (`smtplib`, in a worker thread), TLS as configured. Each
attempt is recorded; temporary failures (4xx replies, lost connections, time-outs) are
tried again after `backoff`, 2×, 4× … seconds within one round, and after the round by
`serve` (`retry_after`, doubling). A permanent refusal (5xx) ends the round and waits for
a person (`dunning letters send --unsent` or `resend`). A letter is claimed before it is
sent, so two senders never send the same letter; only `resend` sends a sent one again.

Every attempt's outcome (`LetterSent`, `LetterDeliveryFailed`) is recorded with it, for
`letters.feedback` to publish. With `print_after_failures`, a letter whose e-mail has
failed that many times (all rounds) becomes a print letter; with `print_on_bounce`, a
permanent refusal (a 5xx reply at RCPT or DATA: a bounce) does at once (decision 14).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

import structlog

from letters import feedback
from letters.config import LetterSettings
from letters.model import Letter, one_line
from letters.store import Document, Store, now_utc
from letters.texts import letter_fields, texts_for

log = structlog.get_logger("dunning.letters.mail")

#: A claim older than this is from a sender that stopped mid-way (see `Store.release_stale`).
STALE_CLAIM_SECONDS = 3600.0
MAX_RETRY_AFTER = 86400.0


class NotEmailable(ValueError):
    """A print letter, or one without an e-mail address: never e-mailed."""


@dataclass(frozen=True)
class Failure:
    text: str
    transient: bool


def classify(exc: BaseException) -> Failure:
    """What went wrong, and whether trying again later can help."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(f"{code} {_text(msg)}" for code, msg in exc.recipients.values())
        return Failure(f"recipient refused: {detail}", all(400 <= c < 500 for c in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        return Failure(f"{type(exc).__name__}: {code} {_text(exc.smtp_error)}",
                       not (500 <= code < 600))
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Failure(f"SMTP server does not support it: {exc}", False)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Failure(f"TLS certificate not trusted: {exc.verify_message}", False)
    if isinstance(exc, smtplib.SMTPServerDisconnected | OSError | TimeoutError):
        return Failure(f"{type(exc).__name__}: {exc}", True)
    if isinstance(exc, smtplib.SMTPException):
        return Failure(f"{type(exc).__name__}: {exc}", True)
    return Failure(f"{type(exc).__name__}: {exc}", False)


def smtp_code(exc: BaseException) -> int | None:
    """The SMTP reply code of a failure, when the server gave one (the first refused
    recipient's for a refusal at RCPT)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return next((int(code) for code, _ in exc.recipients.values()), None)
    if isinstance(exc, smtplib.SMTPResponseException):
        return int(exc.smtp_code)
    return None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def build_message(cfg: LetterSettings, letter: Letter, doc: Document, pdf: bytes) -> EmailMessage:
    if not letter.email:
        raise NotEmailable(f"letter {doc.command_id} has no e-mail address")
    w = texts_for(cfg).for_letter(letter)
    values = letter_fields(letter, w, cfg.letterhead)
    msg = EmailMessage()
    msg["From"] = formataddr((one_line(cfg.letterhead.name), cfg.smtp_from))
    msg["To"] = formataddr((one_line(letter.recipient.name), letter.email))
    msg["Subject"] = one_line(w.text("email_subject", **values))
    msg["Date"] = format_datetime(now_utc())
    domain = cfg.smtp_from.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Content-Language"] = w.locale.language
    msg["X-Dunning-Command-Id"] = letter.command_id
    msg.set_content(w.text("email_body", **values))
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=doc.filename)
    for invoice in doc.attachments:  # the invoices' PDFs kept with the letter
        msg.add_attachment(invoice.path.read_bytes(), maintype="application", subtype="pdf",
                           filename=invoice.filename)
    return msg


def smtp_send(cfg: LetterSettings, msg: EmailMessage) -> str | None:
    """One SMTP conversation (blocking): connect, TLS, log in, send, quit. Returns the
    server's reply to the message (`250 …`, often with its queue id), for `LetterSent`."""
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if cfg.smtp_tls == "tls":
        client = smtplib.SMTP_SSL(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout,
                                  context=context)
    else:
        client = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout)
    with client:
        client.ehlo()
        if cfg.smtp_tls == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if cfg.smtp_username:
            client.login(cfg.smtp_username, cfg.smtp_password)
        # smtplib's sendmail drops the reply to DATA: keep it on the way through
        replies: list[str] = []
        data = client.data

        def keep_reply(message: Any) -> tuple[int, bytes]:
            code, text = data(message)
            replies.append(f"{code} {_text(text)}")
            return code, text

        client.data = keep_reply  # type: ignore[method-assign,assignment]
        client.send_message(msg)
        return replies[-1] if replies else None


SendFn = Callable[[LetterSettings, EmailMessage], str | None]
SleepFn = Callable[[float], Awaitable[None]]


class Mailer:
    """Sends stored e-mail letters and records every attempt in the store."""

    def __init__(self, cfg: LetterSettings, store: Store, *, send: SendFn = smtp_send,
                 sleep: SleepFn = asyncio.sleep) -> None:
        self.cfg = cfg
        self.store = store
        self._send = send
        self._sleep = sleep

    def _retry_after(self, doc: Document) -> float:
        rounds = doc.attempts // self.cfg.attempts
        return float(min(self.cfg.retry_after * 2 ** max(rounds - 1, 0), MAX_RETRY_AFTER))

    async def deliver(self, doc: Document, *, resend: bool = False) -> Document:
        """Send one letter (a round of attempts); returns its record afterwards. A letter
        that is not pending or failed is left alone unless `resend`."""
        if doc.delivery != "email" or not doc.email:
            raise NotEmailable(f"letter {doc.command_id} is a print letter: never e-mailed")
        if not self.cfg.email_enabled:
            raise RuntimeError("no SMTP server configured (DUNNING_SMTP_HOST)")
        if not self.store.claim(doc.command_id, force=resend):
            current = self.store.get(doc.command_id)
            assert current is not None
            return current
        kind = "resend" if resend else "send"
        try:
            pdf = doc.pdf_path.read_bytes()
            if hashlib.sha256(pdf).hexdigest() != doc.sha256:
                raise ValueError(f"{doc.pdf_path} differs from the recorded document (sha256)")
            letter = Letter.from_json(json.loads(self.store.command_json(doc.command_id)))
            msg = build_message(self.cfg, letter, doc, pdf)
        except Exception as exc:  # the document itself is broken: a person has to look
            error = f"{type(exc).__name__}: {exc}"
            outcome = feedback.failed(doc, self._get(doc).attempts + 1, error, code=None,
                                      permanent=True, next_step="wait")
            self.store.record_attempt(doc.command_id, kind=kind, ok=False,
                                      error=error, final=True, outcome=outcome)
            log.error("letter not sendable", command_id=doc.command_id, error=str(exc))
            return self._get(doc)
        for n in range(self.cfg.attempts):
            try:
                reply = await asyncio.to_thread(self._send, self.cfg, msg)
            except Exception as exc:
                if self._failed(doc, kind, n, exc):
                    break
                await self._sleep(self.cfg.backoff * 2**n)
            else:
                attempt = self._get(doc).attempts + 1
                self.store.record_attempt(
                    doc.command_id, kind=kind, ok=True,
                    outcome=feedback.sent(doc, attempt, msg["Message-ID"], reply))
                log.info("letter e-mailed", command_id=doc.command_id,
                         account_id=doc.account_id, attempt=n + 1)
                break
        return self._get(doc)

    def _failed(self, doc: Document, kind: str, n: int, exc: BaseException) -> bool:
        """Record the failed `n`-th attempt of this round, with its outcome and next step;
        True when the round ends (a permanent refusal, the last attempt, or print)."""
        failure = classify(exc)
        current = self._get(doc)
        attempt = current.attempts + 1
        step = feedback.next_step(self.cfg, attempt, permanent=not failure.transient)
        final = step != "retry" or n == self.cfg.attempts - 1
        retry = self._retry_after(current) if failure.transient else None
        outcome = feedback.failed(doc, attempt, failure.text, code=smtp_code(exc),
                                  permanent=not failure.transient, next_step=step)
        self.store.record_attempt(doc.command_id, kind=kind, ok=False, error=failure.text,
                                  final=final, retry_after=retry, outcome=outcome,
                                  to_print=failure.text if step == "print" else None)
        log.warning("e-mail attempt failed", command_id=doc.command_id,
                    account_id=doc.account_id, attempt=n + 1, error=failure.text,
                    transient=failure.transient, final=final, next_step=step)
        return final

    def _get(self, doc: Document) -> Document:
        current = self.store.get(doc.command_id)
        assert current is not None
        return current

    async def send_due(self, *, include_waiting: bool = False) -> list[Document]:
        """Send every pending letter and the failed ones whose time has come (all failed
        ones with `include_waiting`); returns their records afterwards."""
        self.store.release_stale(STALE_CLAIM_SECONDS)
        out = []
        for doc in self.store.due(include_waiting=include_waiting):
            out.append(await self.deliver(doc))
        return out
