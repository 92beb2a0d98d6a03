"""E-mail delivery to a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import asyncio

import pytest

from letters.mailer import NotEmailable
from letters.model import Letter
from letters.service import LetterService
from tests.unit.letters.helpers import SmtpServer, letter_record, smtp_settings
from topics.broker import free_port


def add(service: LetterService, **kw) -> str:  # noqa: ANN003
    doc, _ = service.accept(Letter.from_record(letter_record(**kw)))
    return doc.command_id


def send_due(service: LetterService, **kw) -> list:  # noqa: ANN003
    return asyncio.run(service.mailer.send_due(**kw))


def test_the_letter_goes_to_its_recipient_with_the_pdf(smtp: SmtpServer, make_service) -> None:
    service = make_service(smtp.settings())
    cid = add(service)
    [doc] = send_due(service)
    assert (doc.status, doc.attempts, doc.last_error) == ("sent", 1, None)
    assert doc.sent_at is not None
    [got] = smtp.messages
    assert got.rcpt_tos == ["buchhaltung@mueller-soehne.example"]
    assert got.mail_from == "forderungen@stadtwerke.example"
    msg = got.message
    assert msg["To"] == "Müller & Söhne GmbH <buchhaltung@mueller-soehne.example>"
    assert msg["Subject"] == "2. Mahnung zu Ihrem Kundenkonto ACC-100042"
    assert msg["X-Dunning-Command-Id"] == cid
    body = msg.get_body(("plain",)).get_content()
    assert "Sehr geehrte Damen und Herren" in body and "1.286,69\u00a0€" in body
    assert "14. April 2025" in body
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "Mahnung-ACC-100042-2025-03-31.pdf"
    assert attachment.get_content() == doc.pdf_path.read_bytes()
    assert [(a.kind, a.outcome) for a in service.store.attempts(cid)] == [("send", "sent")]

    # Sent is sent: nothing goes out twice.
    assert send_due(service) == []
    assert send_due(service, include_waiting=True) == []
    assert len(smtp.messages) == 1


def test_english_body_for_a_fallback_language(smtp: SmtpServer, make_service) -> None:
    service = make_service(smtp.settings())
    add(service, language="pt")
    send_due(service)
    msg = smtp.messages[0].message
    assert msg["Subject"] == "Second reminder: customer account ACC-100042"
    assert "€1,286.69" in msg.get_body(("plain",)).get_content()


def test_refused_once_then_delivered_on_the_retry(smtp: SmtpServer, make_service) -> None:
    smtp.handler.refuse = 1
    service = make_service(smtp.settings())
    cid = add(service)
    [doc] = send_due(service)
    assert (doc.status, doc.attempts) == ("sent", 2)
    attempts = service.store.attempts(cid)
    assert [a.outcome for a in attempts] == ["failed", "sent"]
    assert "451" in attempts[0].error
    assert len(smtp.messages) == 1


def test_temporary_failures_are_kept_for_later(smtp: SmtpServer, make_service) -> None:
    smtp.handler.refuse = 10
    service = make_service(smtp.settings(attempts=2, retry_after=60))
    cid = add(service)
    [doc] = send_due(service)
    assert (doc.status, doc.attempts) == ("failed", 2)
    assert "451" in doc.last_error and doc.next_attempt_at is not None
    assert send_due(service) == []  # serve waits for next_attempt_at
    smtp.handler.refuse = 0
    [doc] = send_due(service, include_waiting=True)  # what `send --unsent` does
    assert (doc.status, doc.attempts) == ("sent", 3)
    assert len(service.store.attempts(cid)) == 3


def test_a_permanent_refusal_is_not_retried(smtp: SmtpServer, make_service) -> None:
    smtp.handler.refuse, smtp.handler.refuse_reply = 1, "550 5.1.1 No such mailbox"
    service = make_service(smtp.settings())
    add(service)
    [doc] = send_due(service)
    assert (doc.status, doc.attempts, doc.next_attempt_at) == ("failed", 1, None)
    assert "550" in doc.last_error
    assert smtp.messages == []


def test_no_server_listening(make_service) -> None:
    service = make_service(smtp_settings(free_port(), attempts=2))  # nothing listens there
    cid = add(service)
    [doc] = send_due(service)
    assert (doc.status, doc.attempts) == ("failed", 2)
    assert "ConnectionRefusedError" in doc.last_error
    assert [a.outcome for a in service.store.attempts(cid)] == ["failed", "failed"]


def test_resend_sends_again(smtp: SmtpServer, make_service) -> None:
    service = make_service(smtp.settings())
    cid = add(service)
    send_due(service)
    doc = asyncio.run(service.mailer.deliver(service.store.get(cid)))  # not asked: nothing
    assert doc.status == "sent" and len(smtp.messages) == 1
    doc = asyncio.run(service.mailer.deliver(doc, resend=True))
    assert (doc.status, doc.attempts) == ("sent", 2)
    assert len(smtp.messages) == 2
    assert [a.kind for a in service.store.attempts(cid)] == ["send", "resend"]


def test_never_e_mailed_without_an_address_or_on_paper(smtp: SmtpServer, make_service) -> None:
    service = make_service(smtp.settings())
    no_address = add(service, command_id="c-none", email=None)
    on_paper = add(service, command_id="c-paper", channel="print")
    assert send_due(service, include_waiting=True) == []
    for cid in (no_address, on_paper):
        with pytest.raises(NotEmailable):
            asyncio.run(service.mailer.deliver(service.store.get(cid), resend=True))
        assert not service.store.claim(cid, force=True)
    assert smtp.messages == []


def test_a_redelivered_command_sends_nothing_new(smtp: SmtpServer, make_service) -> None:
    from schemas.codec import Codec

    service = make_service(smtp.settings())
    data = Codec().encode("PrintDunningLetter", letter_record())

    async def deliver_twice() -> None:
        await service.handle("dunning.letters", data, {})
        await service.mailer.send_due()
        await service.handle("dunning.letters", data, {})
        await service.mailer.send_due()

    asyncio.run(deliver_twice())
    assert len(smtp.messages) == 1
    assert len(service.store.documents()) == 1


def test_a_claimed_letter_is_not_sent_by_another_sender(smtp: SmtpServer, make_service) -> None:
    service = make_service(smtp.settings())
    cid = add(service)
    assert service.store.claim(cid)  # another process is sending it
    assert send_due(service) == []
    assert smtp.messages == []
    # That sender died: after a while the letter is 'unknown', and sent only on request.
    assert service.store.release_stale(older_than=-1) == [cid]
    assert service.store.get(cid).status == "unknown"
    assert send_due(service, include_waiting=True) == []
    assert [d.command_id for d in service.store.documents(unsent=True)] == [cid]


def test_line_breaks_in_names_do_not_reach_the_headers(smtp: SmtpServer, make_service) -> None:
    service = make_service(smtp.settings())
    rec_name = "Evil\r\nBcc: someone@elsewhere.example"
    add(service, recipient={"name": rec_name, "email": "ok@x.example",
                            "postal_address": {"lines": [], "postal_code": "1", "city": "X",
                                               "country": "DE"}},
        account_id="ACC\n-1")
    [doc] = send_due(service)
    assert doc.status == "sent"
    [got] = smtp.messages
    assert got.rcpt_tos == ["ok@x.example"]
    assert got.message["Bcc"] is None
    assert got.message["To"] == '"Evil Bcc: someone@elsewhere.example" <ok@x.example>'
