"""The business's own letter texts: a folder of template files over the bundled ones.

Layout of the folder (`DUNNING_LETTER_TEXTS`; README, "Letter texts"):

    <folder>/<language>.toml                  the business's texts of a language
    <folder>/<procedure_id>/<language>.toml   for the letters of one procedure only

Each file has the shape of `templates/en.toml` and may leave out anything: a text is
taken from the procedure's file, else the language's file, else the bundled template of
the language (`letters/templates/<language>.toml`). A language with no bundled template
needs every label and text in its files. `language` is a base language (`de`, not
`de-CH`); a regional letter uses its base language's texts and its region's formats.

A text is a Jinja2 template, rendered in a sandbox (`SandboxedEnvironment`, undefined
fields are errors). The fields it may use are `FIELDS` (the label `page` takes `page` and
`pages`; other labels take none; a level's title takes every field but `title`).

Which language a letter is written in: its account's language when that is one of the
letter languages (`DUNNING_LETTER_LANGUAGES`; by default every language with texts) and
has texts; else the default language (`DUNNING_LETTER_DEFAULT_LANGUAGE`, `en`), noted as
a fallback. A language without a text for the letter's level (for its procedure) writes
the letter in the default language when that has one; when neither has one, the highest
level written below it is used, as before.

`Texts.check(procedures)` is the start-up check (`dunning letters check-texts` too): every
file reads, every text compiles, names only known fields and can be filled; every letter
language has every label and text; every level with a `letter` activity of every
procedure has a title and a body in every letter language, or in the default language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog
import yaml
from jinja2 import TemplateError, TemplateSyntaxError, meta

from config.settings import Settings
from domain.procedures import Procedure, ProcedureError, parse_procedures
from letters.config import Letterhead, LetterSettings
from letters.model import Letter, one_line
from letters.payment import creditor_reference
from letters.wording import (
    ENV,
    FALLBACK,
    TextError,
    TextFile,
    Wording,
    available,
    bundled,
    compiled,
    fill,
    make_wording,
    merged_levels,
    parse_language,
    parse_text_file,
)
from schemas.codec import Codec
from topics.catalogue import PROCEDURES
from topics.clients import UnknownTopic, latest_by_key

log = structlog.get_logger("dunning.letters.texts")

#: The fields a text may use, and what each holds (formatted for the letter's language).
FIELDS: dict[str, str] = {
    "name": "the recipient's name",
    "account_id": "the customer account",
    "reference": "the payment reference of the notice (RF…, as in the payment code)",
    "procedure_id": "the dunning procedure",
    "level": "the dunning level (a number: {% if level >= 3 %}…{% endif %})",
    "title": "the level's title (not in the title itself)",
    "date": "the letter's date, long form (31 March 2025)",
    "date_iso": "the letter's date, YYYY-MM-DD (for the file name)",
    "pay_by": "the day to pay by: the notice's (as-of day + the level's pay_within_days)",
    "total_due": "the total due, with its currency",
    "items_total": "the open items' total",
    "charge": "the dunning charge",
    "interest": "the interest",
    "currency": "the currency's ISO code",
    "invoices": "the invoices listed, comma-separated",
    "sender": "the letterhead's name",
    "bank": "the letterhead's payment details",
}
#: The footer's page label only.
PAGE_FIELDS: dict[str, str] = {"page": "this page's number", "pages": "the number of pages"}
#: A single-brace placeholder (`{name}`), the old style: almost surely a mistake now.
_OLD_STYLE = re.compile(r"(?<!\{)\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}(?!\})")


class TextsError(Exception):
    """The texts cannot be used: one line per problem, each naming its file."""


def allowed_fields(section: str, key: str) -> set[str]:
    if section == "labels":
        return set(PAGE_FIELDS) if key == "page" else set()
    if section == "levels" and key == "title":
        return set(FIELDS) - {"title"}
    return set(FIELDS)


def letter_fields(letter: Letter, w: Wording, letterhead: Letterhead, *,
                  pdf: bool = False) -> dict[str, Any]:
    """The values of `FIELDS` for a letter. In the PDF (`pdf`) the account id is one line
    and the pay-by day does not break."""
    pay_by = w.date_long(letter.pay_by)
    values: dict[str, Any] = {
        "name": letter.recipient.name,
        "account_id": one_line(letter.account_id) if pdf else letter.account_id,
        "reference": creditor_reference(letter.notice_id),
        "procedure_id": letter.procedure_id,
        "level": letter.level,
        "date": w.date_long(letter.as_of_date),
        "date_iso": letter.as_of_date.isoformat(),
        "pay_by": pay_by.replace(" ", "\u00a0") if pdf else pay_by,
        "total_due": w.money(letter.total_due, letter.currency),
        "items_total": w.money(letter.items_total, letter.currency),
        "charge": w.money(letter.charge, letter.currency),
        "interest": w.money(letter.interest, letter.currency),
        "currency": letter.currency,
        "invoices": ", ".join(dict.fromkeys(one_line(i.invoice_id) for i in letter.items
                                            if i.kind == "invoice")),
        "sender": letterhead.name,
        "bank": letterhead.bank,
    }
    values["title"] = fill(w.level(letter.level).title, values)
    return values


def sample_letter(procedure_id: str = "STANDARD", level: int = 1, language: str = "en",
                  as_of: date | None = None, pay_within_days: int = 14,
                  charge: Decimal = Decimal("5.00")) -> Letter:
    """A letter with two sample items, for the preview and the check's trial fill."""
    as_of = as_of or date(2025, 3, 31)
    items = [("INV-SAMPLE-1", Decimal("1234.56"), 45), ("INV-SAMPLE-2", Decimal("45.50"), 28)]
    interest = Decimal("1.63")
    total = sum((a for _, a, _ in items), Decimal(0)) + charge + interest
    return Letter.from_record({
        "command_id": f"preview-{procedure_id}-{level}-{language}", "notice_id": "preview",
        "account_id": "ACC-SAMPLE", "level": level, "language": language, "channel": "print",
        "recipient": {"name": "Sample Customer Ltd", "email": None, "postal_address": {
            "lines": ["1 Sample Street"], "postal_code": "12345", "city": "Sample City",
            "country": ""}},
        "currency": "EUR",
        "items": [{"item_id": f"{inv}/1", "invoice_id": inv,
                   "due_date": as_of - timedelta(days=days), "days_in_arrears": days,
                   "open_amount": amount, "level": level} for inv, amount, days in items],
        "charge": charge, "interest": interest, "total_due": total, "as_of_date": as_of,
        "procedure_id": procedure_id, "pay_by": as_of + timedelta(days=pay_within_days),
    })


@dataclass
class Report:
    """What the check found: errors stop the service; notes say where a fallback is used."""

    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _language_of_file(path: Path) -> str | None:
    """The language a `<language>.toml` names, or None if its name is not a language."""
    name = path.name.removesuffix(".toml")
    parsed = parse_language(name)
    return name if parsed is not None and parsed.language == name else None


class Texts:
    """The letter texts in force: a business folder (or none) over the bundled templates."""

    def __init__(self, folder: Path | None = None, languages: Iterable[str] = (),
                 default: str = FALLBACK) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.default = default
        self.errors: list[str] = []  # files that cannot be read: the check reports them
        self.files: dict[tuple[str, str], TextFile] = {}  # (procedure or "", language)
        if self.folder is not None:
            self._load(self.folder)
        with_texts = set(available()) | {lang for p, lang in self.files if not p}
        listed = tuple(dict.fromkeys(languages)) or tuple(sorted(with_texts))
        self.languages = listed if default in listed else (*listed, default)
        self._wordings: dict[tuple[str, str, int | None], Wording] = {}

    @classmethod
    def from_settings(cls, cfg: LetterSettings) -> Texts:
        return cls(cfg.texts_folder, cfg.languages, cfg.default_language)

    # -- reading -------------------------------------------------------------------------
    def _read(self, path: Path, procedure: str) -> None:
        language = _language_of_file(path)
        if language is None:
            self.errors.append(f"{path}: the name is not a language code (de.toml, en.toml…)")
            return
        try:
            self.files[(procedure, language)] = parse_text_file(
                str(path), path.read_text(encoding="utf-8"), language)
        except (OSError, UnicodeDecodeError) as exc:
            self.errors.append(f"{path}: cannot read: {exc}")
        except TextError as exc:
            self.errors.append(str(exc))

    def _load(self, folder: Path) -> None:
        if not folder.is_dir():
            self.errors.append(f"{folder}: DUNNING_LETTER_TEXTS names no folder")
            return
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                for path in sorted(entry.glob("*.toml")):
                    self._read(path, entry.name)
            elif entry.suffix == ".toml":
                self._read(entry, "")

    def chain(self, procedure: str, language: str) -> tuple[TextFile, ...]:
        """The files a text of `procedure` in `language` is looked up in, in order."""
        keys = ([(procedure, language)] if procedure else []) + [("", language)]
        out = [self.files[k] for k in keys if k in self.files]
        if language in available():
            out.append(bundled(language))
        return tuple(out)

    def _default_chain(self, procedure: str) -> tuple[TextFile, ...]:
        return self.chain(procedure, self.default) or (bundled(FALLBACK),)

    # -- the words of one letter ---------------------------------------------------------
    def wording(self, language: str, procedure: str = "", level: int | None = None) -> Wording:
        """The wording of a letter in `language` of `procedure` at `level` (see the top)."""
        key = (language, procedure, level)
        found = self._wordings.get(key)
        if found is None:
            found = self._wordings[key] = self._wording(language, procedure, level)
        return found

    def _wording(self, language: str, procedure: str, level: int | None) -> Wording:
        parsed = parse_language(language or "")
        lang = parsed.language if parsed is not None else ""
        files = self.chain(procedure, lang) if lang in self.languages else ()
        if files:
            if level is None or lang == self.default or level in merged_levels(files):
                return make_wording(language, parsed, files, False)
            if level not in merged_levels(self._default_chain(procedure)):
                return make_wording(language, parsed, files, False)  # the highest below
        return make_wording(language, parsed, self._default_chain(procedure), True)

    def for_letter(self, letter: Letter) -> Wording:
        return self.wording(letter.language, letter.procedure_id, letter.level)

    # -- the check -----------------------------------------------------------------------
    def check(self, procedures: Mapping[str, Iterable[int]] | None = None) -> Report:
        """Every problem with the texts, for `procedures` (id -> the levels that write a
        letter); see the top."""
        report = Report(errors=list(self.errors))
        for (procedure, language), f in sorted(self.files.items()):
            report.errors += _file_problems(f, procedure, language)
        for language in self.languages:
            self._check_language(language, report)
        for procedure, levels in sorted((procedures or {}).items()):
            for level in sorted(set(levels)):
                for language in self.languages:
                    self._check_level(procedure, level, language, report)
        named = set(procedures or {})
        for procedure in sorted({p for p, _ in self.files if p and p not in named}):
            report.notes.append(f"{self.folder}/{procedure}: texts for procedure "
                                f"{procedure!r}, which no procedure in force has")
        return report

    def ensure(self, procedures: Mapping[str, Iterable[int]] | None = None) -> Report:
        """`check`, raising TextsError when there is an error."""
        report = self.check(procedures)
        if report.errors:
            raise TextsError("the letter texts cannot be used:\n" + "\n".join(
                f"  {e}" for e in report.errors))
        return report

    def _where(self, procedure: str, language: str) -> str:
        folder = str(self.folder) if self.folder else "$DUNNING_LETTER_TEXTS"
        own = f"{folder}/{procedure}/{language}.toml or " if procedure else ""
        return f"{own}{folder}/{language}.toml"

    def _check_language(self, language: str, report: Report) -> None:
        own = sorted(p for p, lang in self.files if p and lang == language)
        chains = [("", self.chain("", language))] + [(p, self.chain(p, language)) for p in own]
        if not chains[0][1] and len(chains) == 1:
            if language == self.default:
                report.errors.append(f"default language {language}: no texts; write "
                                     f"{self._where('', language)}")
            else:
                report.notes.append(f"language {language}: no texts; its letters are "
                                    f"written in {self.default}")
            return
        need = bundled(FALLBACK)
        for procedure, files in chains:
            for section, keys in (("labels", need.labels), ("text", need.text)):
                for key in keys:
                    if not any(key in (f.labels if section == "labels" else f.text)
                               for f in files):
                        what = f"procedure {procedure}, " if procedure else ""
                        report.errors.append(
                            f"{what}language {language}: no [{section}] {key}; write it "
                            f"in {self._where(procedure, language)}")

    def _check_level(self, procedure: str, level: int, language: str, report: Report) -> None:
        files = self.chain(procedure, language)
        if level in merged_levels(files):
            return
        if language != self.default and level in merged_levels(self._default_chain(procedure)):
            if files:
                report.notes.append(f"procedure {procedure}, level {level}, language "
                                    f"{language}: no text; written in {self.default}")
            return
        also = f", nor in the default language {self.default}" \
            if language != self.default else ""
        report.errors.append(
            f"procedure {procedure}, level {level}, language {language}: no text (title and "
            f"body){also}; write [levels.{level}] in {self._where(procedure, language)}")


def _entries(f: TextFile) -> Iterable[tuple[str, str, str, int | None]]:
    for key, source in f.labels.items():
        yield "labels", key, source, None
    for key, source in f.text.items():
        yield "text", key, source, None
    for n, parts in sorted(f.levels.items()):
        for key, source in parts.items():
            yield "levels", key, source, n


def _file_problems(f: TextFile, procedure: str, language: str) -> list[str]:
    """Unknown keys, syntax errors, unknown fields and texts that cannot be filled."""
    known = bundled(FALLBACK)
    problems = []
    what = f"procedure {procedure}, " if procedure else ""
    sample = letter_fields(sample_letter(procedure or "STANDARD", 1, language),
                           _wording_for_sample(language), Letterhead())
    for section, key, source, level in _entries(f):
        where = f"{f.path} ({what}language {language}" + (
            f", level {level}) [levels.{level}] {key}" if level else f") [{section}] {key}")
        if section in ("labels", "text") and key not in getattr(known, section):
            problems.append(f"{where}: no such key (known: "
                            f"{', '.join(getattr(known, section))})")
            continue
        problem = _template_problem(source, allowed_fields(section, key),
                                    {**sample, "page": 1, "pages": 2})
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def _wording_for_sample(language: str) -> Wording:
    files = (bundled(language),) if language in available() else (bundled(FALLBACK),)
    return make_wording(language, parse_language(language), files, False)


def _template_problem(source: str, allowed: set[str], sample: Mapping[str, Any]) -> str | None:
    try:
        names = meta.find_undeclared_variables(ENV.parse(source))
        compiled(source)
    except TemplateSyntaxError as exc:
        return f"syntax error on line {exc.lineno}: {exc.message}"
    except TemplateError as exc:
        return f"not a template: {exc}"
    unknown = sorted(names - allowed)
    if unknown:
        fields = ", ".join(sorted(allowed)) or "none"
        return f"unknown field(s) {', '.join(unknown)} (this text may use: {fields})"
    old = [m.group(1) for m in _OLD_STYLE.finditer(source)]
    if old:
        return (f"{{{old[0]}}} is not a field: write {{{{ {old[0]} }}}} "
                "(Jinja2: two braces)")
    try:
        fill(source, {k: v for k, v in sample.items() if k in allowed})
    except Exception as exc:  # the sandbox or a filter refused: say what
        return f"cannot be filled: {type(exc).__name__}: {exc}"
    return None


@lru_cache(maxsize=16)
def _texts(folder: Path | None, languages: tuple[str, ...], default: str) -> Texts:
    return Texts(folder, languages, default)


def texts_for(cfg: LetterSettings) -> Texts:
    """The texts of the settings, read once per process."""
    return _texts(cfg.texts_folder, cfg.languages, cfg.default_language)


# ---------------------------------------------------------------- the procedures checked
def letter_levels(procedures: Iterable[Procedure]) -> dict[str, tuple[int, ...]]:
    """Each procedure's levels that write a letter (a `letter` activity)."""
    return {p.id: tuple(lv.level for lv in p.levels if "letter" in lv.activities)
            for p in procedures}


def read_procedures(path: Path) -> tuple[Procedure, ...]:
    """A procedures file (`dunning procedures apply`'s); TextsError names what is wrong."""
    try:
        return parse_procedures(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ProcedureError) as exc:
        raise TextsError(f"{path}: {exc}") from exc


async def procedures_on_topic(settings: Settings) -> dict[str, tuple[int, ...]]:
    """The letter levels of the procedures on `dunning.procedures` as it stands (the last
    record per procedure id; none when the topic is not there yet)."""
    codec = Codec.from_settings(settings)
    out: dict[str, tuple[int, ...]] = {}
    try:
        async for _, rows in latest_by_key(settings, settings.topic(PROCEDURES)):
            for key, value in rows.items():
                if value is None:
                    out.pop(key.decode(errors="replace"), None)
                    continue
                try:
                    rtype, rec = codec.decode(value)
                except Exception as exc:  # the worker refuses it too: nothing to write for
                    log.warning("procedure record not readable", error=str(exc))
                    continue
                if rtype == "DunningProcedureDefined":
                    out[rec["procedure_id"]] = tuple(
                        lv["level"] for lv in rec["levels"] if "letter" in lv["activities"])
    except UnknownTopic:
        log.warning("no dunning.procedures topic: texts checked without procedures")
    return out


async def procedures_in_force(settings: Settings,
                              cfg: LetterSettings) -> dict[str, tuple[int, ...]]:
    """What the start-up check checks: `DUNNING_LETTER_PROCEDURES` when set, else the
    procedures on `dunning.procedures`."""
    if cfg.procedures_file is not None:
        return letter_levels(read_procedures(cfg.procedures_file))
    return await procedures_on_topic(settings)


async def check_at_start(settings: Settings, cfg: LetterSettings, texts: Texts) -> Report:
    """The start-up check: raises TextsError on an error; logs the fallbacks it notes."""
    report = texts.ensure(await procedures_in_force(settings, cfg))
    for note in report.notes:
        log.warning("letter texts: fallback", note=note)
    return report
