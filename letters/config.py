"""The letter service's own settings: letterhead, SMTP, delivery retries.

Read once at start from the environment, like `config.settings.Settings` (which keeps the
broker, the state folder and the topic prefix; documents go to
`settings.state_dir / "letters"`). Secrets never show in `repr`.

| variable | meaning | default |
| --- | --- | --- |
| `DUNNING_LETTERHEAD_NAME` | sender name at the top of every letter | `Example Billing GmbH` |
| `DUNNING_LETTERHEAD_ADDRESS` | sender address lines, separated by `|` or newlines | an example |
| `DUNNING_LETTERHEAD_CONTACT` | one contact line (phone, e-mail, web) | empty |
| `DUNNING_LETTERHEAD_BANK` | payment details line (IBAN, BIC, bank) | empty |
| `DUNNING_LETTERHEAD_COUNTRY` | the sender's country (ISO 3166): no country line at home | empty |
| `DUNNING_CREDITOR_IBAN` | the account paid into: payment codes on EUR/CHF letters | no codes |
| `DUNNING_CREDITOR_BIC` | its BIC (optional in SEPA) | empty |
| `DUNNING_CREDITOR_NAME` | the account holder, as the bank knows it | the letterhead's name |
| `DUNNING_CREDITOR_STREET`, `_HOUSE_NUMBER` | the holder's street (for the QR-bill) | empty |
| `DUNNING_CREDITOR_POSTAL_CODE`, `_CITY` | needed with a Swiss IBAN (QR-bill) | empty |
| `DUNNING_CREDITOR_COUNTRY` | the holder's country (ISO 3166) | the letterhead's, else the IBAN's |
| `DUNNING_SMTP_HOST` | SMTP server; empty: e-mail letters wait, unsent | empty |
| `DUNNING_SMTP_PORT` | port | 25 (`none`), 587 (`starttls`), 465 (`tls`) |
| `DUNNING_SMTP_TLS` | `none`, `starttls` or `tls` (implicit TLS) | `starttls` |
| `DUNNING_SMTP_USERNAME` | log in with this user (no login when empty) | empty |
| `DUNNING_SMTP_PASSWORD` (or `_FILE`: a file holding it) | the password | empty |
| `DUNNING_SMTP_FROM` | the `From:` address | `dunning@localhost` |
| `DUNNING_SMTP_TIMEOUT` | seconds per SMTP conversation | 30 |
| `DUNNING_SMTP_ATTEMPTS` | attempts per delivery round (1 = no retry) | 3 |
| `DUNNING_SMTP_BACKOFF` | seconds before the first retry; doubles each retry | 2 |
| `DUNNING_SMTP_RETRY_AFTER` | seconds before `serve` tries a failed letter again; doubles | 900 |
| `DUNNING_LETTER_TEXTS` | a folder of the business's texts (`letters.texts`) | the bundled texts |
| `DUNNING_LETTER_LANGUAGES` | the letter languages, comma-separated | all with texts |
| `DUNNING_LETTER_DEFAULT_LANGUAGE` | the language of a letter in any other language | `en` |
| `DUNNING_LETTER_PROCEDURES` | a procedures file the start-up check reads | `dunning.procedures` |
| `DUNNING_INVOICE_DOCUMENTS` | `folder:/srv/{invoice_id}.pdf` or `url:https://…` | – |
| `DUNNING_INVOICE_DOCUMENTS_TIMEOUT` | seconds per invoice document fetched | 10 |
| `DUNNING_INVOICE_DOCUMENTS_REQUIRED` | hold an e-mail letter while one is missing | false |
| `DUNNING_LETTER_PRINT_AFTER_FAILURES` | failed e-mails (all rounds), then print; 0 never | 0 |
| `DUNNING_LETTER_PRINT_ON_BOUNCE` | `true`: a 5xx refusal or bounce prints at once | `false` |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from config.settings import SettingsError
from letters.documents import Source, parse_source
from letters.model import one_line
from letters.payment import Creditor, check_qr_bill
from letters.wording import FALLBACK, parse_language

TLS_MODES = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
#: The letters service's consumer group (put after the topic prefix, so tests stay apart).
GROUP_ID = "dunning-letters"


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum:g}, not {raw}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _lines(raw: str) -> tuple[str, ...]:
    parts = raw.replace("\r", "").replace("|", "\n").split("\n")
    return tuple(p.strip() for p in parts if p.strip())


@dataclass(frozen=True)
class Letterhead:
    """Who sends the letters."""

    name: str = "Example Billing GmbH"
    address: tuple[str, ...] = ("Musterstraße 1", "10115 Berlin")
    contact: str = ""
    bank: str = ""
    #: ISO 3166-1 alpha-2; letters to this country carry no country line.
    country: str = ""


@dataclass(frozen=True)
class LetterSettings:
    letterhead: Letterhead = field(default_factory=Letterhead)
    #: The account of the payment codes; None: letters carry no code.
    creditor: Creditor | None = None
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_tls: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = "dunning@localhost"
    smtp_timeout: float = 30.0
    #: Attempts per delivery round; failures in between wait `backoff`, 2×, 4× … seconds.
    attempts: int = 3
    backoff: float = 2.0
    #: `serve` tries a failed letter again after this many seconds (doubling, at most a day).
    retry_after: float = 900.0
    #: The business's texts (`letters.texts`); None: the bundled ones.
    texts_folder: Path | None = None
    #: The languages letters are written in; empty: every language with texts.
    languages: tuple[str, ...] = ()
    default_language: str = FALLBACK
    #: The procedures the start-up check reads; None: those on `dunning.procedures`.
    procedures_file: Path | None = None
    #: Where the PDFs of invoices come from (`letters.documents`); None: not attached.
    invoice_documents: Source | None = None
    #: An e-mail letter with a missing invoice document is held, not sent without it.
    invoice_documents_required: bool = False
    #: Failed e-mail attempts of a letter, counted across rounds, after which it becomes a
    #: print letter (RULES.md 10, decision 14); 0: never, it waits as before.
    print_after_failures: int = 0
    #: A permanent refusal (a 5xx reply, a bounce) makes it a print letter at once.
    print_on_bounce: bool = False

    def __post_init__(self) -> None:
        if self.smtp_tls not in TLS_MODES:
            raise SettingsError(f"SMTP TLS mode must be one of {TLS_MODES}, not {self.smtp_tls!r}")
        if self.attempts < 1:
            raise SettingsError("at least one delivery attempt is needed")

    def __repr__(self) -> str:
        password = "'***'" if self.smtp_password else "''"
        return (
            f"LetterSettings(letterhead={self.letterhead!r}, creditor={self.creditor!r}, "
            f"smtp_host={self.smtp_host!r}, "
            f"smtp_port={self.smtp_port}, smtp_tls={self.smtp_tls!r}, "
            f"smtp_username={self.smtp_username!r}, smtp_password={password}, "
            f"smtp_from={self.smtp_from!r}, smtp_timeout={self.smtp_timeout}, "
            f"attempts={self.attempts}, backoff={self.backoff}, retry_after={self.retry_after}, "
            f"texts_folder={self.texts_folder!r}, languages={self.languages!r}, "
            f"default_language={self.default_language!r}, "
            f"procedures_file={self.procedures_file!r}, "
            f"invoice_documents={self.invoice_documents!r}, "
            f"invoice_documents_required={self.invoice_documents_required})"
            f"print_after_failures={self.print_after_failures}, "
            f"print_on_bounce={self.print_on_bounce})"
        )

    @property
    def email_enabled(self) -> bool:
        """Whether an SMTP server is configured; without one e-mail letters wait, unsent."""
        return bool(self.smtp_host)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LetterSettings:
        env = os.environ if env is None else env
        default = Letterhead()
        address_raw = env.get("DUNNING_LETTERHEAD_ADDRESS")
        letterhead = Letterhead(
            name=(env.get("DUNNING_LETTERHEAD_NAME") or "").strip() or default.name,
            address=_lines(address_raw) if address_raw else default.address,
            contact=(env.get("DUNNING_LETTERHEAD_CONTACT") or "").strip(),
            bank=(env.get("DUNNING_LETTERHEAD_BANK") or "").strip(),
            country=(env.get("DUNNING_LETTERHEAD_COUNTRY") or "").strip().upper(),
        )
        tls = (env.get("DUNNING_SMTP_TLS") or "starttls").strip().lower()
        if tls not in TLS_MODES:
            raise SettingsError(f"DUNNING_SMTP_TLS must be none, starttls or tls, not {tls!r}")
        password = env.get("DUNNING_SMTP_PASSWORD") or ""
        password_file = env.get("DUNNING_SMTP_PASSWORD_FILE") or ""
        if password and password_file:
            raise SettingsError(
                "set DUNNING_SMTP_PASSWORD or DUNNING_SMTP_PASSWORD_FILE, not both")
        if password_file:
            try:
                password = Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise SettingsError(
                    f"DUNNING_SMTP_PASSWORD_FILE: cannot read {password_file}: "
                    f"{exc.strerror}") from exc
        return cls(
            letterhead=letterhead,
            creditor=creditor_from_env(env, letterhead),
            smtp_host=(env.get("DUNNING_SMTP_HOST") or "").strip(),
            smtp_port=_int(env, "DUNNING_SMTP_PORT", DEFAULT_PORTS[tls], 1),
            smtp_tls=tls,
            smtp_username=(env.get("DUNNING_SMTP_USERNAME") or "").strip(),
            smtp_password=password,
            smtp_from=(env.get("DUNNING_SMTP_FROM") or "").strip() or "dunning@localhost",
            smtp_timeout=_float(env, "DUNNING_SMTP_TIMEOUT", 30.0, 0.1),
            attempts=_int(env, "DUNNING_SMTP_ATTEMPTS", 3, 1),
            backoff=_float(env, "DUNNING_SMTP_BACKOFF", 2.0),
            retry_after=_float(env, "DUNNING_SMTP_RETRY_AFTER", 900.0),
            **texts_from_env(env),
            print_after_failures=_int(env, "DUNNING_LETTER_PRINT_AFTER_FAILURES", 0),
            print_on_bounce=_bool(env, "DUNNING_LETTER_PRINT_ON_BOUNCE", False),
        )


def _language(name: str, raw: str) -> str:
    tag = raw.strip().lower()
    parsed = parse_language(tag)
    if parsed is None or parsed.language != tag:
        raise SettingsError(f"{name}: {raw.strip()!r} is not a language code (de, en, fr…)")
    return tag


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = (env.get(name) or "").strip()
    return Path(raw).expanduser() if raw else None


def texts_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The `DUNNING_LETTER_*` and `DUNNING_INVOICE_DOCUMENTS*` settings."""
    languages = tuple(dict.fromkeys(
        _language("DUNNING_LETTER_LANGUAGES", x)
        for x in (env.get("DUNNING_LETTER_LANGUAGES") or "").split(",") if x.strip()))
    default = env.get("DUNNING_LETTER_DEFAULT_LANGUAGE") or ""
    try:
        documents = parse_source(env.get("DUNNING_INVOICE_DOCUMENTS") or "",
                                 _float(env, "DUNNING_INVOICE_DOCUMENTS_TIMEOUT", 10.0, 0.1))
    except ValueError as exc:
        raise SettingsError(f"DUNNING_INVOICE_DOCUMENTS: {exc}") from exc
    return {
        "texts_folder": _path(env, "DUNNING_LETTER_TEXTS"),
        "languages": languages,
        "default_language": _language("DUNNING_LETTER_DEFAULT_LANGUAGE", default)
        if default.strip() else FALLBACK,
        "procedures_file": _path(env, "DUNNING_LETTER_PROCEDURES"),
        "invoice_documents": documents,
        "invoice_documents_required": _bool(env, "DUNNING_INVOICE_DOCUMENTS_REQUIRED", False),
    }


def creditor_from_env(env: Mapping[str, str], letterhead: Letterhead) -> Creditor | None:
    """The `DUNNING_CREDITOR_*` settings; None without an IBAN. A bad IBAN or BIC stops."""
    def get(name: str) -> str:
        return one_line(env.get(f"DUNNING_CREDITOR_{name}") or "").strip()

    raw = get("IBAN")
    if not raw:
        return None
    try:
        iban = IBAN(raw)
    except SchwiftyException as exc:
        raise SettingsError(
            f"DUNNING_CREDITOR_IBAN is not a valid IBAN ({exc}): {raw!r}") from exc
    bic = get("BIC")
    if bic:
        try:
            bic = str(BIC(bic))
        except SchwiftyException as exc:
            raise SettingsError(
                f"DUNNING_CREDITOR_BIC is not a valid BIC ({exc}): {bic!r}") from exc
    creditor = Creditor(
        iban=iban.compact, name=get("NAME") or letterhead.name, bic=bic,
        street=get("STREET"), house_number=get("HOUSE_NUMBER"),
        postal_code=get("POSTAL_CODE"), city=get("CITY"),
        country=(get("COUNTRY") or letterhead.country or iban.country_code).upper(),
    )
    if creditor.iban[:2] in ("CH", "LI") and not creditor.qr_bill_ready:
        raise SettingsError(
            "a Swiss IBAN is set: the QR-bill of CHF letters needs DUNNING_CREDITOR_POSTAL_CODE "
            "and DUNNING_CREDITOR_CITY")
    if creditor.qr_bill_ready:
        try:
            check_qr_bill(creditor)
        except ValueError as exc:
            raise SettingsError(f"DUNNING_CREDITOR_*: no QR-bill can be made: {exc}") from exc
    return creditor


def letters_dir(settings: object) -> Path:
    """Where documents and their database live: `<state_dir>/letters`."""
    return Path(settings.state_dir) / "letters"  # type: ignore[attr-defined]


def group_id(settings: object) -> str:
    return f"{getattr(settings, 'topic_prefix', '')}{GROUP_ID}"
