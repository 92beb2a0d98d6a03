"""Invoice PDFs attached to the letter's e-mail: from a folder or a URL, the missing ones
recorded, and no id that walks out of the folder."""

from __future__ import annotations

import argparse
import asyncio
import io
import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import web
from fpdf import FPDF
from pypdf import PdfReader

from config.settings import Settings, SettingsError
from letters.cli import register
from letters.config import LetterSettings
from letters.documents import Source, fetch, file_of, parse_source, url_of
from letters.model import Letter
from letters.service import LetterService
from letters.store import SCHEMA, Store
from tests.unit.letters.helpers import SmtpServer, letter_record
from topics.broker import free_port

TRAVERSAL = "../../etc/passwd"


def invoice_pdf(invoice_id: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(100, 10, f"Invoice {invoice_id}")
    return bytes(pdf.output())


def pdf_text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
def invoices(tmp_path: Path) -> Path:
    """A folder with the first invoice of the sample letter (INV-2025-0117), not the other."""
    folder = tmp_path / "invoices"
    folder.mkdir()
    (folder / "INV-2025-0117.pdf").write_bytes(invoice_pdf("INV-2025-0117"))
    return folder


def test_the_e_mail_carries_the_letter_and_the_invoices_found(
        smtp: SmtpServer, make_service, invoices: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = parse_source(f"folder:{invoices}/{{invoice_id}}.pdf")
    service = make_service(smtp.settings(invoice_documents=source))
    doc, _ = service.accept(Letter.from_record(letter_record()))
    assert [a.invoice_id for a in doc.attachments] == ["INV-2025-0117"]
    assert doc.missing_attachments == (
        f"INV-2025-0203: no file {invoices}/INV-2025-0203.pdf",)
    kept = doc.attachments[0].path
    assert kept.is_relative_to(service.folder) and kept.read_bytes() == (
        invoices / "INV-2025-0117.pdf").read_bytes()

    [sent] = asyncio.run(service.mailer.send_due())
    assert sent.status == "sent"  # a missing invoice does not hold the letter
    [got] = smtp.messages
    parts = list(got.message.iter_attachments())
    assert [p.get_filename() for p in parts] == [
        "Mahnung-ACC-100042-2025-03-31.pdf", "INV-2025-0117.pdf"]
    assert all(p.get_content_type() == "application/pdf" for p in parts)
    assert parts[0].get_content() == doc.pdf_path.read_bytes()
    assert "Invoice INV-2025-0117" in pdf_text(parts[1].get_content())

    # Invoices are kept with the letter: a resend carries the same, even once gone.
    (invoices / "INV-2025-0117.pdf").unlink()
    asyncio.run(service.mailer.deliver(service.store.get(doc.command_id), resend=True))
    again = list(smtp.messages[1].message.iter_attachments())
    assert again[1].get_content() == parts[1].get_content()


def test_an_earlier_notices_charge_is_not_looked_up_as_an_invoice(
        smtp: SmtpServer, make_service, invoices: Path) -> None:
    """A charge an earlier notice kept (RULES.md decision 12) is listed on the letter, but
    it has no invoice document: it is neither attached nor reported missing."""
    source = parse_source(f"folder:{invoices}/{{invoice_id}}.pdf")
    service = make_service(smtp.settings(invoice_documents=source))
    record = letter_record()
    record["items"] = record["items"][:1] + [
        {"item_id": "n-old/charge", "invoice_id": "n-old", "kind": "charge",
         "due_date": date(2025, 3, 14), "days_in_arrears": 17, "open_amount": Decimal("5.00"),
         "level": 0}]
    doc, _ = service.accept(Letter.from_record(record))
    assert [a.invoice_id for a in doc.attachments] == ["INV-2025-0117"]
    assert doc.missing_attachments == ()


def test_a_url_source_fetches_from_a_real_server(
        smtp: SmtpServer, make_service) -> None:
    asked: list[str] = []

    async def invoice(request: web.Request) -> web.Response:
        asked.append(request.raw_path)
        name = request.match_info["name"]
        if name == "INV-2025-0117.pdf":
            return web.Response(body=invoice_pdf("INV-2025-0117"),
                                content_type="application/pdf")
        if name == "INV-HTML.pdf":
            return web.Response(text="<html>login</html>", content_type="text/html")
        if name == "INV-SLOW.pdf":
            await asyncio.sleep(2)
        raise web.HTTPNotFound()

    port = free_port()
    source = parse_source(f"url:http://127.0.0.1:{port}/invoices/{{invoice_id}}.pdf", 0.5)
    service = make_service(smtp.settings(invoice_documents=source))
    items = letter_record()["items"]
    more = [dict(items[1], item_id=f"{i}/1", invoice_id=i)
            for i in ("INV-HTML", "INV-SLOW", "INV#7", TRAVERSAL)]

    async def go() -> object:
        app = web.Application()
        app.router.add_get("/invoices/{name}", invoice)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            doc, _ = await service.accept_async(Letter.from_record(
                letter_record(items=[*items, *more])))
            return doc
        finally:
            await runner.cleanup()

    doc = asyncio.run(go())
    assert [a.invoice_id for a in doc.attachments] == ["INV-2025-0117"]
    base = f"http://127.0.0.1:{port}/invoices"
    assert doc.missing_attachments == (
        f"INV-2025-0203: HTTP 404 from {base}/INV-2025-0203.pdf",
        "INV-HTML: not a PDF",
        f"INV-SLOW: no answer from {base}/INV-SLOW.pdf within 0.5 s",
        f"INV#7: HTTP 404 from {base}/INV%237.pdf",
        f"{TRAVERSAL}: not a safe name for a URL",
    )
    # Each id one path segment, percent-encoded; the traversal never asked for.
    assert asked == ["/invoices/INV-2025-0117.pdf", "/invoices/INV-2025-0203.pdf",
                     "/invoices/INV-HTML.pdf", "/invoices/INV-SLOW.pdf",
                     "/invoices/INV%237.pdf"]
    [sent] = asyncio.run(service.mailer.send_due())
    names = [p.get_filename() for p in smtp.messages[0].message.iter_attachments()]
    assert sent.status == "sent" and names[1:] == ["INV-2025-0117.pdf"]


def test_an_invoice_id_never_leaves_the_folder(tmp_path: Path, invoices: Path) -> None:
    secret = tmp_path / "outside" / "secret.pdf"
    secret.parent.mkdir()
    secret.write_bytes(invoice_pdf("SECRET"))
    source = parse_source(f"folder:{invoices}/{{invoice_id}}.pdf")
    assert source is not None
    evil = ["../outside/secret", TRAVERSAL, "..", ".", "", "a/../../outside/secret",
            "..\\outside\\secret", "INV\x00.pdf"]
    for invoice_id in evil:
        assert file_of(source, invoice_id, "ACC-1") is None, invoice_id
        assert url_of(Source("url", "https://x.example/{invoice_id}"), invoice_id, "A") is None
    found = asyncio.run(fetch(source, ["INV-2025-0117", *evil], "ACC-1"))
    assert [f.invoice_id for f in found if f.data is not None] == ["INV-2025-0117"]
    assert all(f.problem == "not a safe name for a file" for f in found[1:])
    # A pattern with the account in the path: the account id cannot walk out either.
    by_account = parse_source(f"folder:{invoices}/{{account_id}}/{{invoice_id}}.pdf")
    assert by_account is not None
    assert file_of(by_account, "secret", "../outside") is None
    assert file_of(by_account, "INV-1", "ACC-1") == invoices / "ACC-1" / "INV-1.pdf"


def test_show_lists_attached_and_missing_invoices(
        tmp_path: Path, invoices: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    monkeypatch.setattr("config.logs.configure", lambda *a, **k: None)
    monkeypatch.setenv("DUNNING_STATE_DIR", str(state))
    source = parse_source(f"folder:{invoices}/{{invoice_id}}.pdf")
    service = LetterService(Settings(state_dir=state), LetterSettings(invoice_documents=source))
    try:
        service.accept(Letter.from_record(letter_record()))
    finally:
        service.close()
    parser = argparse.ArgumentParser(prog="dunning")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["letters", "show", "cmd-letter-0001"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "attached:   INV-2025-0117.pdf (invoice INV-2025-0117)" in out
    assert f"missing:    invoice INV-2025-0203: no file {invoices}/INV-2025-0203.pdf" in out


def test_required_documents_hold_the_letter_until_they_are_there(
        tmp_path: Path, smtp: SmtpServer, invoices: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    monkeypatch.setattr("config.logs.configure", lambda *a, **k: None)
    monkeypatch.setenv("DUNNING_STATE_DIR", str(state))
    for name, value in smtp.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DUNNING_INVOICE_DOCUMENTS", f"folder:{invoices}/{{invoice_id}}.pdf")
    monkeypatch.setenv("DUNNING_INVOICE_DOCUMENTS_REQUIRED", "true")
    service = LetterService(Settings(state_dir=state), LetterSettings.from_env())
    try:
        doc, _ = service.accept(Letter.from_record(letter_record()))
        printed, _ = service.accept(Letter.from_record(letter_record(
            command_id="on-paper", channel="print")))
        assert (doc.status, printed.status) == ("held", "print")  # paper is never held
        assert asyncio.run(service.mailer.send_due(include_waiting=True)) == []
        assert smtp.messages == []
        assert [d.command_id for d in service.store.documents(unsent=True)] == [doc.command_id]
    finally:
        service.close()

    parser = argparse.ArgumentParser(prog="dunning")
    register(parser.add_subparsers(dest="command", required=True))

    def cli(*argv: str) -> int:
        args = parser.parse_args(["letters", *argv])
        return int(args.func(args) or 0)

    assert cli("attach", "--held") == 1  # still missing: still held
    assert "held     cmd-letter-0" in capsys.readouterr().out
    (invoices / "INV-2025-0203.pdf").write_bytes(invoice_pdf("INV-2025-0203"))
    assert cli("attach", "--held") == 0
    assert "pending  cmd-letter-0" in capsys.readouterr().out
    assert cli("send", "--unsent") == 0
    [got] = smtp.messages
    assert [p.get_filename() for p in got.message.iter_attachments()][1:] == [
        "INV-2025-0117.pdf", "INV-2025-0203.pdf"]
    assert cli("attach", "cmd-letter-0001") == 1  # sent: nothing to attach any more
    assert "sent, not held" in capsys.readouterr().out


def test_an_older_database_gets_the_new_columns(tmp_path: Path) -> None:
    old = "\n".join(line for line in SCHEMA.splitlines()
                    if "attachments" not in line).replace("command_json TEXT NOT NULL,",
                                                          "command_json TEXT NOT NULL")
    with sqlite3.connect(tmp_path / "documents.db") as db:
        db.executescript(old)
        assert "attachments" not in {r[1] for r in db.execute("PRAGMA table_info(documents)")}
    with Store(tmp_path) as store:
        doc, _ = store.add({
            "command_id": "c", "notice_id": "n", "account_id": "a", "level": 1,
            "language": "de", "template_language": "de", "fallback": 0, "channel": "print",
            "delivery": "print", "email": None, "currency": "EUR", "total_due": "1.00",
            "as_of_date": "2025-03-31", "title": "t", "filename": "f.pdf", "created_at": "x",
            "pdf_path": "p.pdf", "sha256": "0", "pages": 1, "status": "print",
            "command_json": "{}"})
        assert (doc.attachments, doc.missing_attachments) == ((), ())
    with sqlite3.connect(tmp_path / "documents.db") as db:
        cols = {r[1] for r in db.execute("PRAGMA table_info(documents)")}
    assert {"attachments", "missing_attachments"} <= cols


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("ftp:/x/{invoice_id}", "say folder:"),
        ("folder:/srv/invoices/all.pdf", "needs {invoice_id}"),
        ("folder:relative/{invoice_id}.pdf", "absolute path"),
        ("folder:/srv/{invoice_id}/{customer}.pdf", "unknown field(s) customer"),
        ("url:docs.example/{invoice_id}", "http:// or https://"),
        ("url:https://docs.example/{invoice_id", "docs.example"),
    ],
)
def test_a_bad_source_is_refused_at_start(spec: str, why: str) -> None:
    with pytest.raises(SettingsError, match="DUNNING_INVOICE_DOCUMENTS") as caught:
        LetterSettings.from_env({"DUNNING_INVOICE_DOCUMENTS": spec})
    assert why in str(caught.value)


def test_source_settings() -> None:
    cfg = LetterSettings.from_env({
        "DUNNING_INVOICE_DOCUMENTS": "url:https://docs.example/inv/{invoice_id}.pdf",
        "DUNNING_INVOICE_DOCUMENTS_TIMEOUT": "3"})
    assert cfg.invoice_documents == Source("url", "https://docs.example/inv/{invoice_id}.pdf",
                                           3.0)
    assert LetterSettings.from_env({}).invoice_documents is None
    assert not LetterSettings.from_env({}).invoice_documents_required
    with pytest.raises(SettingsError, match="true or false"):
        LetterSettings.from_env({"DUNNING_INVOICE_DOCUMENTS_REQUIRED": "maybe"})
