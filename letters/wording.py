"""Letter texts per language, and numbers, money and dates formatted for it (Babel).

The texts live in `templates/<language>.toml` (see `en.toml` for the placeholders). A
letter in a language without a template is written in English and says so on its
document record (`fallback`). A regional language with a template for its base language
(`de-CH`, `fr_BE`) uses that template and formats numbers and dates for the region.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

FALLBACK = "en"


@dataclass(frozen=True)
class LevelText:
    title: str
    body: str


@dataclass(frozen=True)
class _Template:
    language: str
    locale: str
    labels: Mapping[str, str]
    text: Mapping[str, str]
    levels: Mapping[int, LevelText]


@cache
def available() -> tuple[str, ...]:
    """The languages with a template."""
    folder = resources.files(__package__) / "templates"
    return tuple(sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    ))


@cache
def _load(language: str) -> _Template:
    raw = (resources.files(__package__) / "templates" / f"{language}.toml").read_text("utf-8")
    data = tomllib.loads(raw)
    levels = {
        int(k): LevelText(title=v["title"], body=v["body"]) for k, v in data["levels"].items()
    }
    return _Template(
        language=data["language"], locale=data["locale"], labels=dict(data["labels"]),
        text=dict(data["text"]), levels=levels,
    )


def _parse(tag: str) -> Locale | None:
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


@dataclass(frozen=True)
class Wording:
    """The words and formats of one letter: the template of its language, or English."""

    requested: str
    language: str
    fallback: bool
    locale: Locale
    template: _Template

    # -- words ---------------------------------------------------------------------------
    def label(self, key: str) -> str:
        return self.template.labels[key]

    def text(self, key: str, **values: object) -> str:
        return self.template.text[key].format(**values)

    def level(self, level: int) -> LevelText:
        """The title and text of a level; above the highest one written, the highest."""
        levels = self.template.levels
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


@cache
def wording(language: str) -> Wording:
    """The wording for a requested language (`de`, `de-CH`, `pt`…)."""
    parsed = _parse(language or "")
    langs = available()
    if parsed is not None and parsed.language in langs:
        template = _load(parsed.language)
        # A bare language formats like the template's own locale (`de` -> `de_DE`).
        loc = parsed if parsed.territory else Locale.parse(template.locale)
        return Wording(requested=language, language=template.language, fallback=False,
                       locale=loc, template=template)
    template = _load(FALLBACK)
    return Wording(requested=language, language=template.language, fallback=True,
                   locale=Locale.parse(template.locale), template=template)
