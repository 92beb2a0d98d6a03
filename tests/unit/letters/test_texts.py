"""The business's own texts: a folder over the bundled templates, checked before use."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import textwrap
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader

from config.settings import Settings, SettingsError
from letters.cli import register
from letters.config import LetterSettings
from letters.mailer import build_message
from letters.model import Letter
from letters.render import render
from letters.service import LetterService
from letters.store import Document
from letters.texts import FIELDS, Texts, TextsError, letter_levels, read_procedures
from tests.unit.letters.helpers import LETTERHEAD, letter_record, plain, smtp_settings

PROCEDURES = textwrap.dedent("""\
    procedures:
      - id: STANDARD
        min_days_between_dunnings: 14
        interest_rate_percent: "9.0"
        min_interest_amount: "1.00"
        levels:
          - {level: 1, days_in_arrears: 7, min_item_amount: "5.00", min_total_amount: "10.00",
             charge: "0.00", interest: false, activities: [letter]}
          - {level: 2, days_in_arrears: 21, min_item_amount: "5.00",
             min_total_amount: "10.00", charge: "5.00", interest: true, activities: [letter],
             pay_within_days: 30}
          - {level: 3, days_in_arrears: 35, min_item_amount: "5.00",
             min_total_amount: "10.00", charge: "5.00", interest: true, activities: [letter]}
          - {level: 4, days_in_arrears: 60, min_item_amount: "5.00",
             min_total_amount: "10.00", charge: "5.00", interest: true,
             activities: [collection]}
""")


def text_of(pdf: bytes) -> str:
    return plain("\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(content), encoding="utf-8")
    return path


@pytest.fixture
def business(tmp_path: Path) -> Path:
    """The business's folder: German defaults, and STANDARD's own second level."""
    folder = tmp_path / "texts"
    write(folder, "de.toml", """\
        [text]
        closing = "Freundliche Grüße aus Musterstadt"
        [levels.1]
        body = "Für {{ invoices }} fehlt uns Ihre Zahlung von {{ total_due }}."
        """)
    write(folder, "STANDARD/de.toml", """\
        [levels.2]
        title = "Zweite Mahnung im Verfahren {{ procedure_id }}"
        body = "{% if level >= 2 %}Wir erinnern erneut{% endif %}: zahlbar bis {{ pay_by }}."
        """)
    return folder


def bare_document() -> Document:
    """A document record with nothing but its file name (`build_message` needs no more)."""
    values: dict = {f.name: None for f in dataclasses.fields(Document)
                    if f.default is dataclasses.MISSING}
    return Document(**{**values, "command_id": "c", "filename": "x.pdf"})


def letter(**kw: object) -> Letter:
    return Letter.from_record(letter_record(**kw))


def test_fields_are_documented_in_the_bundled_english_file() -> None:
    header = Path("letters/templates/en.toml").read_text(encoding="utf-8")
    for name in FIELDS:
        assert name in header, f"field {name} is not documented in en.toml"


@pytest.mark.parametrize("language", ["de", "en", "fr"])
def test_each_bundled_language_renders_with_the_business_texts_over_the_bundled(
        business: Path, language: str) -> None:
    texts = Texts(business)
    out = render(letter(language=language, level=3), LETTERHEAD, None, texts)
    bundled = render(letter(language=language, level=3), LETTERHEAD)
    assert (out.language, out.fallback) == (language, False)
    if language == "de":  # the business's closing, the bundled rest
        text = text_of(out.pdf)
        assert "Freundliche Grüße aus Musterstadt" in text and "Mit freundlichen" not in text
        assert "Letzte Mahnung" in text and "Gesamtbetrag" in text
    else:  # nothing written for it: exactly the bundled letter
        assert out.pdf == bundled.pdf


def test_a_procedure_s_own_text_wins_over_the_language_s(business: Path) -> None:
    texts = Texts(business)
    own = text_of(render(letter(level=2, procedure_id="STANDARD"), LETTERHEAD, None, texts).pdf)
    other = text_of(render(letter(level=2, procedure_id="BUSINESS"), LETTERHEAD, None,
                           texts).pdf)
    assert "Zweite Mahnung im Verfahren STANDARD" in own
    assert "Wir erinnern erneut: zahlbar bis 14. April 2025." in own
    assert "2. Mahnung" in other and "Zweite Mahnung" not in other
    # Both have the language's closing: the procedure's file leaves it out.
    assert "Freundliche Grüße aus Musterstadt" in own and "Freundliche Grüße" in other
    first = text_of(render(letter(level=1), LETTERHEAD, None, texts).pdf)
    assert "Für INV-2025-0117, INV-2025-0203 fehlt uns Ihre Zahlung von 1.286,69 €." in first


def test_the_e_mail_uses_the_business_texts(business: Path) -> None:
    write(business, "STANDARD/de.toml", """\
        [text]
        email_subject = "{{ title }} – {{ account_id }} – bis {{ pay_by }}"
        """)
    cfg = smtp_settings(25, texts_folder=business)
    doc = bare_document()
    msg = build_message(cfg, letter(), doc, b"%PDF-1.4")
    assert msg["Subject"] == "2. Mahnung – ACC-100042 – bis 14. April 2025"


def test_the_pay_by_day_is_the_notice_s_not_a_fixed_fortnight() -> None:
    """`pay_by` comes from the command (as-of + the level's pay_within_days)."""
    rec = letter(pay_by=date(2025, 5, 30))
    text = text_of(render(rec, LETTERHEAD).pdf)
    assert "30. Mai 2025" in text and "14. April 2025" not in text
    doc = bare_document()
    body = build_message(smtp_settings(25), rec, doc, b"%PDF-1.4").get_body(("plain",))
    assert "bis spätestens 30. Mai 2025" in body.get_content()


def test_a_level_in_the_default_language_only_writes_the_letter_in_it(tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    write(folder, "en.toml", """\
        [levels.4]
        title = "Handed to collection"
        body = "Your account goes to our collection agency."
        """)
    texts = Texts(folder)
    out = render(letter(level=4, language="de"), LETTERHEAD, None, texts)
    assert (out.language, out.fallback, out.title) == ("en", True, "Handed to collection")
    report = texts.check({"STANDARD": (1, 2, 3, 4)})
    assert report.ok
    assert "procedure STANDARD, level 4, language de: no text; written in en" in report.notes
    # Without the business's folder a level above the highest written uses the highest.
    assert render(letter(level=4), LETTERHEAD, None, Texts()).title == "Letzte Mahnung"


def test_only_the_languages_configured_are_written(tmp_path: Path) -> None:
    texts = Texts(None, languages=("de",), default="en")
    assert texts.languages == ("de", "en")
    out = render(letter(language="fr"), LETTERHEAD, None, texts)
    assert (out.language, out.fallback) == ("en", True)
    assert render(letter(language="de-CH"), LETTERHEAD, None, texts).language == "de"


def test_the_check_passes_for_the_bundled_texts_and_the_demo_procedures() -> None:
    procedures = letter_levels(read_procedures(Path("dunning/data/procedures.yaml")))
    assert procedures["BUSINESS"] == (1, 2, 3)  # level 4 writes no letter
    report = Texts().check(procedures)
    assert report.errors == [] and report.notes == []


def test_the_check_names_a_missing_level_text(tmp_path: Path) -> None:
    report = Texts(tmp_path).check({"STANDARD": (1, 2, 3, 5)})
    assert report.errors == [
        f"procedure STANDARD, level 5, language {lang}: no text (title and body)"
        f"{', nor in the default language en' if lang != 'en' else ''}; write [levels.5] in "
        f"{tmp_path}/STANDARD/{lang}.toml or {tmp_path}/{lang}.toml"
        for lang in ("de", "en", "fr")]
    with pytest.raises(TextsError, match="procedure STANDARD, level 5, language de"):
        Texts(tmp_path).ensure({"STANDARD": (5,)})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('[text]\nclosing = "Gruß, {{ sender }} und {{ clerk }}"\n',
         "[text] closing: unknown field(s) clerk (this text may use: "),
        ('[levels.2]\ntitle = "{{ title }}!"\n', "[levels.2] title: unknown field(s) title"),
        ('[labels]\npage = "{{ page }}/{{ pages }} {{ name }}"\n',
         "[labels] page: unknown field(s) name (this text may use: page, pages)"),
        ('[text]\nclosing = """Gruß\n{% if level > 2 %}streng\n"""\n',
         "[text] closing: syntax error on line 2: "),
        ('[text]\nclosing = "{{ sender | shout }}"\n', "[text] closing: syntax error"),
        ('[text]\nclosing = "Gruß, {sender}"\n',
         "[text] closing: {sender} is not a field: write {{ sender }}"),
        ('[text]\nclosin = "Gruß"\n', "[text] closin: no such key (known: "),
        ('[text]\nclosing = "{{ name.__class__.__mro__ }}"\n', "[text] closing: cannot be filled"),
        ('[text\nclosing = "x"\n', "not valid TOML"),
        ('[levels.zwei]\ntitle = "x"\n', "a level is a number from 1"),
    ],
)
def test_the_check_refuses_a_bad_text_naming_its_file(tmp_path: Path, content: str,
                                                      problem: str) -> None:
    path = tmp_path / "STANDARD" / "de.toml"
    path.parent.mkdir()
    path.write_text(content, encoding="utf-8")
    report = Texts(tmp_path).check({"STANDARD": (1, 2)})
    assert len(report.errors) == 1, report.errors
    [error] = report.errors
    assert error.startswith(str(path)) and problem in error, error
    if "TOML" not in problem and "number" not in problem:
        assert "(procedure STANDARD, language de" in error


def test_a_new_language_needs_every_label_and_text(tmp_path: Path) -> None:
    write(tmp_path, "it.toml", """\
        locale = "it_IT"
        [text]
        closing = "Cordiali saluti"
        """)
    report = Texts(tmp_path).check({"STANDARD": (1,)})
    assert "language it: no [labels] total_due; write it in " \
           f"{tmp_path}/it.toml" in report.errors
    assert "language it: no [text] salutation; write it in " \
           f"{tmp_path}/it.toml" in report.errors
    assert "procedure STANDARD, level 1, language it: no text; written in en" in report.notes


def test_the_service_does_not_start_on_bad_texts(tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    write(folder, "de.toml", '[text]\nclosing = "{{ sendr }}"\n')
    procedures = write(tmp_path, "procedures.yaml", PROCEDURES)
    cfg = LetterSettings(letterhead=LETTERHEAD, texts_folder=folder,
                         procedures_file=procedures)
    service = LetterService(Settings(state_dir=tmp_path / "state"), cfg)
    try:
        with pytest.raises(TextsError) as caught:
            asyncio.run(service.run(idle_seconds=0.1))
    finally:
        service.close()
    message = str(caught.value)
    assert f"{folder}/de.toml (language de) [text] closing: unknown field(s) sendr" in message
    assert "procedure STANDARD, level 1" not in message  # every level has a text


def test_settings_of_the_texts() -> None:
    cfg = LetterSettings.from_env({
        "DUNNING_LETTER_TEXTS": "/srv/texts", "DUNNING_LETTER_LANGUAGES": "de, EN,de",
        "DUNNING_LETTER_DEFAULT_LANGUAGE": "de", "DUNNING_LETTER_PROCEDURES": "/srv/p.yaml"})
    assert (cfg.texts_folder, cfg.languages, cfg.default_language, cfg.procedures_file) == (
        Path("/srv/texts"), ("de", "en"), "de", Path("/srv/p.yaml"))
    defaults = LetterSettings.from_env({})
    assert (defaults.texts_folder, defaults.languages, defaults.default_language) == (
        None, (), "en")
    for env in ({"DUNNING_LETTER_LANGUAGES": "de,klingon"},
                {"DUNNING_LETTER_DEFAULT_LANGUAGE": "de-CH"}):
        with pytest.raises(SettingsError, match="not a language code"):
            LetterSettings.from_env(env)


# ---------------------------------------------------------------- the commands
def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dunning")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["letters", *argv])
    return int(args.func(args) or 0)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("config.logs.configure", lambda *a, **k: None)
    monkeypatch.setenv("DUNNING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DUNNING_LETTER_TEXTS", raising=False)
    return tmp_path


def test_check_texts_command(env: Path, business: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    procedures = write(env, "procedures.yaml", PROCEDURES)
    assert cli("check-texts", "--texts", str(business), "--procedures", str(procedures)) == 0
    out = capsys.readouterr()
    assert "languages de, en, fr (default en); 1 procedures" in out.out
    assert "error" not in out.out and "texts ok" in out.err
    write(business, "STANDARD/fr.toml", '[levels.9]\ntitle = "{{ bad"\nbody = "x"\n')
    assert cli("check-texts", "--texts", str(business), "--procedures", str(procedures)) == 1
    out = capsys.readouterr().out
    assert f"error: {business}/STANDARD/fr.toml (procedure STANDARD, language fr, level 9) " \
           "[levels.9] title: syntax error on line 1" in out


def test_preview_writes_a_pdf_with_the_business_wording(
        env: Path, business: Path, capsys: pytest.CaptureFixture[str]) -> None:
    procedures = write(env, "procedures.yaml", PROCEDURES)
    out = env / "preview.pdf"
    assert cli("preview", "--procedure", "STANDARD", "--level", "2", "--language", "de",
               "--texts", str(business), "--procedures", str(procedures),
               "--out", str(out)) == 0
    printed = plain(capsys.readouterr().out)
    text = plain("\n".join(p.extract_text() for p in PdfReader(str(out)).pages))
    for wording in ("Zweite Mahnung im Verfahren STANDARD", "Wir erinnern erneut: zahlbar bis",
                    "Freundliche Grüße aus Musterstadt", "INV-SAMPLE-1"):
        assert wording in text and wording in printed
    pay_by = date.today().toordinal() + 30  # the level's pay_within_days, from the file
    assert f"zahlbar bis {date.fromordinal(pay_by).day}. " in text
    assert printed.splitlines()[0] == str(out)


def test_preview_refuses_bad_texts(env: Path, business: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    write(business, "en.toml", '[text]\nclosing = "{{ nonsense }}"\n')
    assert cli("preview", "--procedure", "STANDARD", "--level", "1", "--language", "en",
               "--texts", str(business), "--out", str(env / "p.pdf")) == 1
    assert "unknown field(s) nonsense" in capsys.readouterr().err
    assert not (env / "p.pdf").exists()
