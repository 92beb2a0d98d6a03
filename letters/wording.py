"""Letter texts per language, and numbers, money and dates formatted for it (Babel).

The texts live in `templates/<language>.toml` (see `en.toml` for the fields a text may
use), and a business may override any of them in its own folder (`letters.texts`). A text
is a Jinja2 template (`{{ total_due }}`), rendered in a sandbox with undefined fields as
errors. A letter in a language without a template is written in English and says so on
its document record (`fallback`). A regional language with a template for its base
language (`de-CH`, `fr_BE`) uses that template and formats numbers and dates for the
region.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

FALLBACK = "en"
#: The two parts of a level's text.
LEVEL_PARTS = ("title", "body")

#: Business-edited text is untrusted: a sandbox (no attribute tricks, no imports), every
#: field it names must exist, and plain text comes out (letters are PDF and plain e-mail).
ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                           keep_trailing_newline=True)


class TextError(ValueError):
    """A text file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class LevelText:
    title: str
    body: str


@dataclass(frozen=True)
class TextFile:
    """The texts of one TOML file. A bundled file has every key; a business file any."""

    path: str  # for messages
    language: str
    locale: str | None
    labels: Mapping[str, str]
    text: Mapping[str, str]
    levels: Mapping[int, Mapping[str, str]]  # level -> {"title": …, "body": …}, either


def _strings(path: str, section: str, raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise TextError(f"{path}: [{section}] is not a table")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise TextError(f"{path}: [{section}] {key} is not a string")
    return dict(raw)


def parse_text_file(path: str, raw: str, language: str) -> TextFile:
    """A text file's content; a TOML error or a key of the wrong kind raises TextError."""
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise TextError(f"{path}: not valid TOML: {exc}") from exc
    extra = set(data) - {"language", "locale", "labels", "text", "levels"}
    if extra:
        raise TextError(f"{path}: unknown section(s) {', '.join(sorted(extra))} "
                        "(known: language, locale, labels, text, levels)")
    if data.get("language", language) != language:
        raise TextError(f"{path}: says language {data['language']!r}, its name {language!r}")
    locale = data.get("locale")
    if locale is not None and not isinstance(locale, str):
        raise TextError(f"{path}: locale is not a string")
    levels: dict[int, dict[str, str]] = {}
    for key, value in _strings_or_tables(path, data.get("levels", {})).items():
        if not key.isdigit() or int(key) < 1:
            raise TextError(f"{path}: [levels.{key}]: a level is a number from 1")
        parts = _strings(path, f"levels.{key}", value)
        unknown = set(parts) - set(LEVEL_PARTS)
        if unknown:
            raise TextError(f"{path}: [levels.{key}]: unknown key(s) "
                            f"{', '.join(sorted(unknown))} (known: title, body)")
        levels[int(key)] = parts
    return TextFile(path=path, language=language, locale=locale,
                    labels=_strings(path, "labels", data.get("labels", {})),
                    text=_strings(path, "text", data.get("text", {})), levels=levels)


def _strings_or_tables(path: str, raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise TextError(f"{path}: [levels] is not a table")
    return raw


@cache
def available() -> tuple[str, ...]:
    """The languages with a bundled template."""
    folder = resources.files(__package__) / "templates"
    return tuple(sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    ))


@cache
def bundled(language: str) -> TextFile:
    """The bundled template of a language (`templates/<language>.toml`)."""
    raw = (resources.files(__package__) / "templates" / f"{language}.toml").read_text("utf-8")
    return parse_text_file(f"letters/templates/{language}.toml", raw, language)


@lru_cache(maxsize=4096)
def compiled(source: str) -> Template:
    """A text as a sandboxed Jinja2 template (compiled once per process)."""
    return ENV.from_string(source)


def fill(source: str, values: Mapping[str, object]) -> str:
    return compiled(source).render(values)


def parse_language(tag: str) -> Locale | None:
    tag = tag.strip().replace("-", "_")
    if not tag:
        return None
    try:
        return Locale.parse(tag)
    except (UnknownLocaleError, ValueError, TypeError):
        try:  # an unknown region of a known language: keep the language
            return Locale.parse(tag.split("_", 1)[0].lower())
        except (UnknownLocaleError, ValueError, TypeError):
            return None


def merged_levels(files: tuple[TextFile, ...]) -> dict[int, LevelText]:
    """Each level with a title and a body, each part from the first file that has it."""
    numbers = sorted({n for f in files for n in f.levels})
    out = {}
    for n in numbers:
        title = next((f.levels[n]["title"] for f in files if "title" in f.levels.get(n, {})),
                     None)
        body = next((f.levels[n]["body"] for f in files if "body" in f.levels.get(n, {})),
                    None)
        if title is not None and body is not None:
            out[n] = LevelText(title=title, body=body)
    return out


@dataclass(frozen=True)
class Wording:
    """The words and formats of one letter: its texts (the most specific file first, the
    bundled template of the language last), or English's."""

    requested: str
    language: str
    fallback: bool
    locale: Locale
    files: tuple[TextFile, ...]

    # -- words ---------------------------------------------------------------------------
    def source(self, section: str, key: str) -> str:
        """The template of a label or text: from the first file that has it."""
        for f in self.files:
            found = (f.labels if section == "labels" else f.text).get(key)
            if found is not None:
                return found
        raise KeyError(f"no {section}.{key} in {', '.join(f.path for f in self.files)}")

    def label(self, key: str, **values: object) -> str:
        return fill(self.source("labels", key), values)

    def text(self, key: str, **values: object) -> str:
        return fill(self.source("text", key), values)

    @property
    def levels(self) -> Mapping[int, LevelText]:
        return merged_levels(self.files)

    def has_level(self, level: int) -> bool:
        """Whether a title and a body are written for exactly this level."""
        return level in self.levels

    def level(self, level: int) -> LevelText:
        """The title and text of a level (templates); above the highest one written, the
        highest."""
        levels = self.levels
        if level in levels:
            return levels[level]
        lower = [k for k in levels if k <= level]
        return levels[max(lower) if lower else min(levels)]

    # -- formats -------------------------------------------------------------------------
    def money(self, amount: Decimal, currency: str) -> str:
        return format_currency(amount, currency, locale=self.locale)

    def number(self, value: int | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def date_short(self, day: date) -> str:
        return format_date(day, "medium", locale=self.locale)

    def date_long(self, day: date) -> str:
        return format_date(day, "long", locale=self.locale)

    def country(self, code: str) -> str:
        return self.locale.territories.get(code.upper(), code) if code else ""


def make_wording(requested: str, parsed: Locale | None, files: tuple[TextFile, ...],
                 fallback: bool) -> Wording:
    """A wording from its files; a bare language formats like the files' locale (`de` ->
    `de_DE`), a regional one (`de-CH`) like its region."""
    locale = next((f.locale for f in files if f.locale), None) or files[-1].language
    loc = parsed if (parsed is not None and parsed.territory and not fallback) \
        else Locale.parse(locale)
    return Wording(requested=requested, language=files[-1].language, fallback=fallback,
                   locale=loc, files=files)


@cache
def wording(language: str) -> Wording:
    """The wording for a requested language (`de`, `de-CH`, `pt`…), bundled texts only."""
    parsed = parse_language(language or "")
    if parsed is not None and parsed.language in available():
        return make_wording(language, parsed, (bundled(parsed.language),), False)
    return make_wording(language, parsed, (bundled(FALLBACK),), True)
