"""The PDF a person reads: language, formats, items, totals, and the same bytes every time."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from babel.numbers import format_currency
from pypdf import PdfReader

from letters.model import BadLetter, Letter
from letters.render import render
from letters.wording import wording
from tests.unit.letters.helpers import LETTERHEAD, letter_record, plain

ROOT = Path(__file__).resolve().parents[3]


def text_of(pdf: bytes) -> str:
    return plain("\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("de", ["2. Mahnung", "Sehr geehrte Damen und Herren", "1.234,56 €", "45,50 €",
                "5,00 €", "1,63 €", "Gesamtbetrag", "1.286,69 €", "14. April 2025",
                "14.02.2025", "Müller & Söhne GmbH", "Hauptstraße 12"]),
        ("en", ["Second reminder", "Dear Müller & Söhne GmbH,", "€1,234.56", "€45.50",
                "€5.00", "€1.63", "Total due", "€1,286.69", "April 14, 2025",
                "Feb 14, 2025"]),
        ("fr", ["Deuxième rappel", "Madame, Monsieur", "1 234,56 €", "45,50 €",
                "Montant total dû", "1 286,69 €", "14 avril 2025", "Échéance"]),
    ],
)
def test_letter_in_its_language(language: str, expected: list[str]) -> None:
    out = render(Letter.from_record(letter_record(language=language)), LETTERHEAD)
    text = text_of(out.pdf)
    assert out.language == language and not out.fallback
    for snippet in expected:
        assert snippet in text, f"{snippet!r} not in the {language} letter:\n{text}"
    # every item: invoice, item, days overdue
    for invoice, item, days in (("INV-2025-0117", "INV-2025-0117/1", "45"),
                                ("INV-2025-0203", "INV-2025-0203/1", "28")):
        line = next(ln for ln in text.splitlines() if item in ln)
        assert invoice in line and f" {days} " in f" {line} "
    assert LETTERHEAD.name in text and "IBAN DE02 1203 0000 0000 2020 51" in text


@pytest.mark.parametrize(("language", "charge", "interest", "earlier"), [
    ("de", "Mahngebühr", "Verzugszinsen", "frühere Mahnung"),
    ("en", "Dunning charge", "Interest", "earlier reminder"),
    ("fr", "Frais de relance", "Intérêts de retard", "relance précédente"),
])
def test_an_earlier_notices_open_charge_and_interest_are_named_not_shown_by_id(
        language: str, charge: str, interest: str, earlier: str) -> None:
    """A charge and interest an earlier notice kept (RULES.md decision 12, claimable
    items) are rows of the table: named by kind and "earlier reminder", never by their
    internal ids (`<notice id>/charge`), with their due date and open amount. The totals
    are the record's: 1234.56 + 45.50 + 5.00 + 0.84 + 5.00 + 1.63 = 1292.53."""
    record = letter_record(language=language, total_due=Decimal("1292.53"))
    record["items"] += [
        {"item_id": "5d2f9a77-old/charge", "invoice_id": "5d2f9a77-old", "kind": "charge",
         "due_date": date(2025, 3, 14), "days_in_arrears": 17, "open_amount": Decimal("5.00"),
         "level": 0},
        {"item_id": "5d2f9a77-old/interest", "invoice_id": "5d2f9a77-old", "kind": "interest",
         "due_date": date(2025, 3, 14), "days_in_arrears": 17, "open_amount": Decimal("0.84"),
         "level": 0},
    ]
    text = text_of(render(Letter.from_record(record), LETTERHEAD).pdf)
    assert "5d2f9a77-old" not in text
    lines = [ln for ln in text.splitlines() if earlier in ln]
    assert len(lines) == 2, text
    assert lines[0].startswith(charge) and " 17 " in lines[0]
    assert lines[1].startswith(interest) and " 17 " in lines[1]
    def money(amount: str) -> str:
        return plain(wording(language).money(Decimal(amount), "EUR"))

    assert money("5.00") in lines[0] and money("0.84") in lines[1]


def test_an_item_of_an_unknown_kind_is_refused() -> None:
    record = letter_record()
    record["items"][0]["kind"] = "penalty"
    with pytest.raises(BadLetter, match="kind must be invoice, charge or interest"):
        Letter.from_record(record)


def test_other_language_falls_back_to_english() -> None:
    out = render(Letter.from_record(letter_record(language="pt")), LETTERHEAD)
    text = text_of(out.pdf)
    assert out.fallback and out.language == "en"
    assert "Second reminder" in text and "€1,234.56" in text and "€1,286.69" in text


def test_regional_language_uses_base_template_with_regional_formats() -> None:
    out = render(Letter.from_record(letter_record(language="de-CH", currency="CHF")),
                 LETTERHEAD)
    text = text_of(out.pdf)
    assert not out.fallback and out.language == "de"
    assert "2. Mahnung" in text

    # The amounts as Babel formats them for de_CH, not a character copied from one CLDR
    # release (the grouping mark was U+2019 and is an ASCII apostrophe since Babel 2.19).
    def chf(amount: str, locale: str = "de_CH") -> str:
        return plain(format_currency(Decimal(amount), "CHF", locale=locale))

    def line_of(label: str) -> str:
        return next(ln for ln in text.splitlines() if ln.startswith(label))

    assert chf("1286.69") != chf("1286.69", "de")  # the regional format is a different one
    assert line_of("INV-2025-0117 ").endswith(" " + chf("1234.56"))
    assert line_of("INV-2025-0203 ").endswith(" " + chf("45.50"))
    assert line_of("Summe offene Posten").endswith(" " + chf("1280.06"))
    assert line_of("Gesamtbetrag").endswith(" " + chf("1286.69"))
    assert f"Gesamtbetrag von {chf('1286.69')} bis" in text
    assert chf("1286.69", "de") not in text


def test_level_wording() -> None:
    titles = [wording("en").level(n).title for n in (1, 2, 3, 4, 7)]
    assert titles == ["Payment reminder", "Second reminder", "Final notice", "Final notice",
                      "Final notice"]
    text = text_of(render(Letter.from_record(letter_record(level=1)), LETTERHEAD).pdf)
    assert "Zahlungserinnerung" in text and "2. Mahnung" not in text


def test_same_command_same_bytes_in_another_process() -> None:
    rec = letter_record()
    first = render(Letter.from_record(rec), LETTERHEAD)
    assert render(Letter.from_record(letter_record()), LETTERHEAD).pdf == first.pdf
    code = (
        "import sys, hashlib\n"
        "from letters.model import Letter\n"
        "from letters.render import render\n"
        "from tests.unit.letters.helpers import LETTERHEAD, letter_record\n"
        "sys.stdout.write(render(Letter.from_record(letter_record()), LETTERHEAD).sha256)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout == first.sha256
    meta = PdfReader(io.BytesIO(first.pdf)).metadata
    assert meta.creation_date.date() == rec["as_of_date"]
    assert meta.producer == "dunning-engine letters"


def test_many_items_run_over_pages_and_all_are_listed() -> None:
    items = [
        {"item_id": f"INV-{n:04d}/1", "invoice_id": f"INV-{n:04d}",
         "due_date": date(2025, 1, 1) + timedelta(days=n), "days_in_arrears": 89 - n,
         "open_amount": Decimal("10.000"), "level": 1}
        for n in range(70)
    ]
    rec = letter_record(items=items, charge=Decimal(0), interest=Decimal(0),
                        total_due=Decimal("700.000"), language="en")
    out = render(Letter.from_record(rec), LETTERHEAD)
    text = text_of(out.pdf)
    assert out.pages >= 2
    assert f"Page 1 of {out.pages}" in text and f"Page {out.pages} of {out.pages}" in text
    assert all(f"INV-{n:04d}/1" in text for n in range(70))
    assert text.count("Open amount") >= 2  # the table's headings again on the next page
    assert "€700.00" in text


def test_names_in_any_script_and_zero_decimals() -> None:
    rec = letter_record(language="en", currency="JPY", total_due=Decimal("1286"),
                        recipient={"name": "Œuvre Ærø – Ελένη Ωμέγα", "email": None,
                                   "postal_address": {"lines": ["1-2-3 Ginza"],
                                                      "postal_code": "104-0061",
                                                      "city": "Tokyo", "country": "JP"}})
    text = text_of(render(Letter.from_record(rec), LETTERHEAD).pdf)
    assert "Œuvre Ærø – Ελένη Ωμέγα" in text
    assert "¥1,286" in text and "JAPAN" in text


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"channel": "fax"}, "channel"),
        ({"items": []}, "at least one item"),
        ({"currency": "EURO"}, "currency"),
        ({"level": 0}, "level"),
        ({"email": "not an address"}, "e-mail"),
        ({"command_id": ""}, "command_id"),
    ],
)
def test_bad_commands_say_why(change: dict, why: str) -> None:
    with pytest.raises(BadLetter, match=why):
        Letter.from_record(letter_record(**change))


def test_json_round_trip_renders_the_same() -> None:
    letter = Letter.from_record(letter_record())
    again = Letter.from_json(letter.to_json())
    assert again == letter
    assert render(again, LETTERHEAD).pdf == render(letter, LETTERHEAD).pdf


def test_a_line_per_interest_part() -> None:
    """Two parts of the first item (a rate change on 01.03.2025): one line each, with its
    dates, days, day count, rate, base and amount (RULES.md section 9)."""
    record = letter_record(language="de")
    record["items"][0]["interest_parts"] = [
        {"from": date(2025, 2, 14), "to": date(2025, 3, 1), "days": 15, "rate_percent":
         Decimal("9.0"), "base_amount": Decimal("1234.56"), "amount": Decimal("4.57"),
         "day_count": "act/365"},
        {"from": date(2025, 3, 1), "to": date(2025, 3, 31), "days": 30, "rate_percent":
         Decimal("10.0"), "base_amount": Decimal("1234.56"), "amount": Decimal("10.15"),
         "day_count": "act/365"},
    ]  # fmt: skip
    letter = Letter.from_record(record)
    text = text_of(render(letter, LETTERHEAD).pdf)
    assert "14.02.2025 - 01.03.2025, 15 (act/365), 9 %, 1.234,56 €: 4,57 €" in text
    assert "01.03.2025 - 31.03.2025, 30 (act/365), 1E+1 %" not in text
    assert "30 (act/365), 10 %, 1.234,56 €: 10,15 €" in text
    assert Letter.from_record(letter.to_json()) == letter
