"""Payment codes read back from the rendered page: EPC QR on EUR letters, the Swiss QR-bill
on CHF letters, each decoded from the page image (pypdfium2 + zxing-cpp), field by field."""

from __future__ import annotations

import argparse
import dataclasses
import io
from decimal import Decimal
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader
from stdnum import iso11649
from stdnum.ch import esr
from stdnum.iso7064 import mod_97_10

from config.settings import Settings, SettingsError
from letters.cli import register
from letters.config import LetterSettings
from letters.model import Letter
from letters.payment import (
    Creditor,
    creditor_reference,
    notice_for,
    qr_reference,
    reference,
)
from letters.render import render
from letters.service import LetterService
from letters.wording import available, wording
from tests.unit.letters.helpers import LETTERHEAD, NOTICE, letter_record, plain

IBAN = "DE89370400440532013000"
BIC = "COBADEFFXXX"
EUR = Creditor(iban=IBAN, name="Stadtwerke Musterstadt GmbH", bic=BIC)
SWISS = {"name": "Stadtwerke Musterstadt AG", "street": "Energieweg", "house_number": "5",
         "postal_code": "3000", "city": "Bern", "country": "CH"}
CHF_IBAN = "CH9300762011623852957"  # a normal IBAN: SCOR reference
QR_IBAN = "CH4431999123000889012"  # IID 31999: a QR-IBAN, QRR reference
ENV = {"DUNNING_CREDITOR_IBAN": "DE89 3704 0044 0532 0130 00"}


def codes(pdf: bytes) -> list[tuple[int, str]]:
    """Every QR code on every page, as (page number, decoded text)."""
    found = []
    doc = pdfium.PdfDocument(pdf)
    try:
        for n in range(len(doc)):
            image = doc[n].render(scale=200 / 72).to_pil()
            for barcode in zxingcpp.read_barcodes(image):
                assert barcode.format == zxingcpp.BarcodeFormat.QRCode
                found.append((n + 1, barcode.text))
    finally:
        doc.close()
    return found


def page_texts(pdf: bytes) -> list[str]:
    return [plain(p.extract_text()) for p in PdfReader(io.BytesIO(pdf)).pages]


def epc_fields(text: str) -> list[str]:
    return text.split("\n")


# ------------------------------------------------------------------ EPC QR (EUR)
@pytest.mark.parametrize("language", available())
def test_epc_qr_code_in_every_bundled_language(language: str) -> None:
    letter = Letter.from_record(letter_record(language=language))
    out = render(letter, LETTERHEAD, EUR)
    [(page, text)] = codes(out.pdf)
    assert page == 1
    ref = creditor_reference(NOTICE)
    assert epc_fields(text) == [
        "BCD", "002", "1", "SCT", BIC, "Stadtwerke Musterstadt GmbH", IBAN, "EUR1286.69",
        "", ref]
    assert iso11649.is_valid(ref)
    assert notice_for(ref, ["another-notice", NOTICE]) == NOTICE
    # the caption, in the letter's language, names the reference a transfer quotes
    first = page_texts(out.pdf)[0].replace("\n", " ")
    opening = " ".join(wording(language).text("payment_code", total_due="", reference="")
                       .split()[:3])
    assert opening in first
    assert ref in first.replace(" ", "")


def test_epc_without_bic_and_with_amounts_to_the_cent() -> None:
    creditor = Creditor(iban=IBAN, name="Ünïcode Wärme & Co. KG")
    letter = Letter.from_record(letter_record(total_due=Decimal("0.015"), language="en"))
    [(_, text)] = codes(render(letter, LETTERHEAD, creditor).pdf)
    fields = epc_fields(text)
    assert fields[:5] == ["BCD", "002", "1", "SCT", ""]
    assert fields[5:8] == ["Ünïcode Wärme & Co. KG", IBAN, "EUR0.02"]


def test_no_code_without_an_iban_or_for_other_currencies() -> None:
    cfg = LetterSettings.from_env({})
    assert cfg.creditor is None
    letter = Letter.from_record(letter_record())
    plain_letter = render(letter, LETTERHEAD)
    assert render(letter, LETTERHEAD, cfg.creditor).pdf == plain_letter.pdf
    assert codes(plain_letter.pdf) == []
    for currency in ("USD", "GBP"):
        other = Letter.from_record(letter_record(currency=currency))
        assert codes(render(other, LETTERHEAD, EUR).pdf) == []
    nothing_due = Letter.from_record(letter_record(total_due=Decimal("0")))
    assert codes(render(nothing_due, LETTERHEAD, EUR).pdf) == []
    # a CHF letter needs a Swiss account for the QR-bill: none with a German IBAN
    chf = Letter.from_record(letter_record(currency="CHF", language="de-CH"))
    assert codes(render(chf, LETTERHEAD, EUR).pdf) == []


# ------------------------------------------------------------------ Swiss QR-bill (CHF)
def swiss_letter(**kw: object) -> Letter:
    rec = letter_record(currency="CHF", language="de-CH", **kw)
    rec["recipient"]["postal_address"] = {"lines": ["Bahnhofstrasse 7"], "postal_code": "8001",
                                          "city": "Zürich", "country": "CH"}
    return Letter.from_record(rec)


def qr_bill_fields(text: str) -> list[str]:
    return text.split("\r\n")


@pytest.mark.parametrize(("iban", "ref_type"), [(CHF_IBAN, "SCOR"), (QR_IBAN, "QRR")])
def test_qr_bill_payment_part(iban: str, ref_type: str) -> None:
    creditor = Creditor(iban=iban, **SWISS)
    letter = swiss_letter()
    out = render(letter, LETTERHEAD, creditor)
    [(page, text)] = codes(out.pdf)
    assert page == out.pages  # the first page is full: the payment part has its own
    ref = reference(NOTICE, creditor, "CHF")
    assert qr_bill_fields(text) == [
        "SPC", "0200", "1", iban,
        "S", "Stadtwerke Musterstadt AG", "Energieweg", "5", "3000", "Bern", "CH",
        "", "", "", "", "", "", "",  # ultimate creditor: reserved, empty
        "1286.69", "CHF",
        "S", "Müller & Söhne GmbH", "Bahnhofstrasse 7", "", "8001", "Zürich", "CH",
        ref_type, ref, "", "EPD"]
    if ref_type == "QRR":
        assert ref == qr_reference(NOTICE) and esr.is_valid(ref) and len(ref) == 27
    else:
        assert ref == creditor_reference(NOTICE)
    assert notice_for(ref, ["N-1", NOTICE, "N-2"]) == NOTICE
    bill_page = page_texts(out.pdf)[page - 1]
    for heading in ("Empfangsschein", "Zahlteil", "Konto / Zahlbar an", "Referenz",
                    "Zahlbar durch", "Währung", "Betrag", "Annahmestelle",
                    "CH93 0076 2011 6238 5295 7" if ref_type == "SCOR" else "CH44 3199",
                    "1 286.69", "CH-8001 Zürich"):
        assert heading in bill_page
    assert "Seite" not in bill_page  # no footer across the payment part


def test_qr_bill_in_french_and_without_a_debtor_address() -> None:
    creditor = Creditor(iban=CHF_IBAN, **SWISS)
    rec = letter_record(currency="CHF", language="fr")
    rec["recipient"]["postal_address"] = {"lines": [], "postal_code": "", "city": "",
                                          "country": ""}
    out = render(Letter.from_record(rec), LETTERHEAD, creditor)
    [(page, text)] = codes(out.pdf)
    fields = qr_bill_fields(text)
    assert fields[18:21] == ["1286.69", "CHF", ""]  # debtor left blank
    assert fields[-3:] == [creditor_reference(NOTICE), "", "EPD"]
    bill_page = page_texts(out.pdf)[page - 1]
    assert "Section paiement" in bill_page and "Payable par (nom/adresse)" in bill_page


def test_a_recipient_address_the_qr_bill_cannot_take_leaves_the_debtor_blank() -> None:
    letter = swiss_letter()
    bad = letter.recipient.address.__class__(lines=("Weg 1",), postal_code="1",
                                             city="Ort", country="QQ")
    letter = dataclasses.replace(letter, recipient=dataclasses.replace(
        letter.recipient, address=bad))
    [(_, text)] = codes(render(letter, LETTERHEAD, Creditor(iban=CHF_IBAN, **SWISS)).pdf)
    assert qr_bill_fields(text)[18:21] == ["1286.69", "CHF", ""]


# ------------------------------------------------------------------ references
@given(st.text(min_size=1, max_size=80))
def test_every_notice_id_gets_valid_references(notice_id: str) -> None:
    rf = creditor_reference(notice_id)
    assert iso11649.is_valid(rf) and len(rf) == 25 and rf.startswith("RF")
    assert mod_97_10.is_valid(rf[4:] + rf[:4])
    assert rf == creditor_reference(notice_id)  # deterministic
    qrr = qr_reference(notice_id)
    assert esr.is_valid(qrr) and len(qrr) == 27
    assert notice_for(rf, [notice_id + "x", notice_id]) == notice_id
    assert notice_for(iso11649.format(rf), [notice_id]) == notice_id  # as printed, grouped


def test_a_reference_finds_its_letter_in_the_store(tmp_path: Path) -> None:
    service = LetterService(Settings(state_dir=tmp_path),
                            LetterSettings(letterhead=LETTERHEAD, creditor=EUR))
    try:
        for n in range(3):
            service.accept(Letter.from_record(letter_record(
                command_id=f"cmd-{n}", notice_id=f"notice-{n}", account_id=f"ACC-{n}")))
        doc = service.store.find(creditor_reference("notice-1"))
        assert (doc.command_id, doc.notice_id) == ("cmd-1", "notice-1")
        assert service.store.by_reference(creditor_reference("unknown")) is None
        [(_, text)] = codes(doc.pdf_path.read_bytes())
        assert text.endswith(creditor_reference("notice-1"))
    finally:
        service.close()


# ------------------------------------------------------------------ settings
def test_creditor_from_the_environment() -> None:
    cfg = LetterSettings.from_env({**ENV, "DUNNING_CREDITOR_BIC": "cobadeffxxx",
                                   "DUNNING_LETTERHEAD_NAME": "Stadtwerke"})
    assert cfg.creditor == Creditor(iban=IBAN, name="Stadtwerke", bic=BIC, country="DE")
    swiss = LetterSettings.from_env({
        "DUNNING_CREDITOR_IBAN": "CH44 3199 9123 0008 8901 2", "DUNNING_CREDITOR_NAME": "AG",
        "DUNNING_CREDITOR_STREET": "Weg", "DUNNING_CREDITOR_HOUSE_NUMBER": "5",
        "DUNNING_CREDITOR_POSTAL_CODE": "3000", "DUNNING_CREDITOR_CITY": "Bern"}).creditor
    assert swiss is not None and swiss.qr_iban and swiss.qr_bill_ready
    assert swiss.country == "CH"  # the IBAN's, with no letterhead country


@pytest.mark.parametrize(("env", "message"), [
    ({"DUNNING_CREDITOR_IBAN": "DE89 3704 0044 0532 0130 01"}, "not a valid IBAN"),
    ({"DUNNING_CREDITOR_IBAN": "XX00 1234"}, "not a valid IBAN"),
    ({**ENV, "DUNNING_CREDITOR_BIC": "NOTABIC"}, "not a valid BIC"),
    ({"DUNNING_CREDITOR_IBAN": QR_IBAN}, "DUNNING_CREDITOR_POSTAL_CODE"),
    ({"DUNNING_CREDITOR_IBAN": QR_IBAN, "DUNNING_CREDITOR_POSTAL_CODE": "3000",
      "DUNNING_CREDITOR_CITY": "Bern", "DUNNING_CREDITOR_COUNTRY": "ZZ"}, "no QR-bill"),
])
def test_a_bad_creditor_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        LetterSettings.from_env(env)


def test_the_service_does_not_start_with_a_bad_iban(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DUNNING_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DUNNING_CREDITOR_IBAN", "DE00 0000 0000 0000 0000 00")
    parser = argparse.ArgumentParser(prog="dunning")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["letters", "serve"])
    with pytest.raises(SystemExit, match="DUNNING_CREDITOR_IBAN is not a valid IBAN"):
        args.func(args)
