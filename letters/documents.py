"""The PDFs of the invoices a letter lists, attached to its e-mail.

A source (`DUNNING_INVOICE_DOCUMENTS`) is either a file pattern or a URL template, with
the fields `{invoice_id}` (required) and `{account_id}`:

    folder:/srv/invoices/{invoice_id}.pdf
    url:https://docs.example/invoices/{invoice_id}.pdf

Documents are fetched once, when the letter is rendered, and kept beside its PDF, so an
e-mail sent again later carries the same files. A document that cannot be had (no file,
an HTTP error, a time-out, not a PDF, larger than `MAX_BYTES`) is *missing*: the letter
goes out with the others, and the missing ones are recorded on its document record with
the reason (`dunning letters show`), and logged as a warning. With
`DUNNING_INVOICE_DOCUMENTS_REQUIRED=true` an e-mail letter with a missing document is
`held` instead, unsent, until `dunning letters attach` finds them all.

An id is never a path: an invoice or account id that is empty, `.`, `..`, or holds `/`,
`\\` or a control character finds no document (missing, "not a safe name"); a file's path
must lie under the pattern's folder; in a URL the ids are percent-encoded, one path
segment each.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from letters.model import Letter

FIELDS = ("invoice_id", "account_id")
#: A larger document is not attached (mail servers refuse messages of 25-50 MB).
MAX_BYTES = 10 * 1024 * 1024
KINDS = ("folder", "url")


@dataclass(frozen=True)
class Source:
    kind: str  # folder | url
    pattern: str
    timeout: float = 10.0

    @property
    def base(self) -> Path:
        """A folder source's folder: the pattern's directory before its first field."""
        return Path(os.path.dirname(self.pattern.split("{", 1)[0]) or "/")


def _fields_of(pattern: str) -> set[str]:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:
        raise ValueError(f"{pattern!r}: {exc}") from exc
    unknown = names - set(FIELDS)
    if unknown:
        raise ValueError(f"{pattern!r}: unknown field(s) {', '.join(sorted(unknown))} "
                         f"(known: {{invoice_id}}, {{account_id}})")
    return names


def parse_source(spec: str, timeout: float = 10.0) -> Source | None:
    """`folder:PATTERN` or `url:TEMPLATE`; empty: None. A bad one raises ValueError."""
    spec = spec.strip()
    if not spec:
        return None
    kind, sep, pattern = spec.partition(":")
    if not sep or kind not in KINDS:
        raise ValueError(f"{spec!r}: say folder:/path/{{invoice_id}}.pdf or "
                         "url:https://host/{invoice_id}.pdf")
    if "invoice_id" not in _fields_of(pattern):
        raise ValueError(f"{spec!r}: the pattern needs {{invoice_id}}")
    if kind == "folder" and not os.path.isabs(pattern):
        raise ValueError(f"{spec!r}: the folder must be an absolute path")
    if kind == "url" and not re.match(r"https?://[^/{}]+", pattern):
        raise ValueError(f"{spec!r}: the URL must start with http:// or https:// and a host")
    return Source(kind=kind, pattern=pattern, timeout=timeout)


def safe_name(value: str) -> bool:
    """Whether an id can stand in a file name or a URL segment as it is."""
    return (value not in ("", ".", "..") and value.isprintable()
            and not any(c in value for c in "/\\"))


@dataclass(frozen=True)
class Fetched:
    invoice_id: str
    data: bytes | None
    problem: str | None  # why it is missing


def file_of(source: Source, invoice_id: str, account_id: str) -> Path | None:
    """The file of an invoice in a folder source, or None when the ids are not safe or the
    path would leave the source's folder."""
    if not (safe_name(invoice_id) and safe_name(account_id)):
        return None
    path = os.path.normpath(source.pattern.format(invoice_id=invoice_id,
                                                  account_id=account_id))
    base = os.path.normpath(str(source.base))
    if os.path.commonpath([base, path]) != base:
        return None
    return Path(path)


def url_of(source: Source, invoice_id: str, account_id: str) -> str | None:
    if not (safe_name(invoice_id) and safe_name(account_id)):
        return None
    return source.pattern.format(invoice_id=quote(invoice_id, safe=""),
                                 account_id=quote(account_id, safe=""))


def _checked(invoice_id: str, data: bytes) -> Fetched:
    if len(data) > MAX_BYTES:
        return Fetched(invoice_id, None, f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
    if not data.startswith(b"%PDF-"):
        return Fetched(invoice_id, None, "not a PDF")
    return Fetched(invoice_id, data, None)


def _read_file(path: Path, invoice_id: str) -> Fetched:
    try:
        if path.stat().st_size > MAX_BYTES:
            return Fetched(invoice_id, None, f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
        return _checked(invoice_id, path.read_bytes())
    except FileNotFoundError:
        return Fetched(invoice_id, None, f"no file {path}")
    except OSError as exc:
        return Fetched(invoice_id, None, f"cannot read {path}: {exc.strerror}")


async def _fetch_urls(source: Source, urls: list[tuple[str, str]]) -> list[Fetched]:
    import aiohttp  # only a URL source needs it
    from yarl import URL

    timeout = aiohttp.ClientTimeout(total=source.timeout)
    out = []
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for invoice_id, url in urls:
            try:
                async with session.get(URL(url, encoded=True), allow_redirects=True) as resp:
                    if resp.status != 200:
                        out.append(Fetched(invoice_id, None, f"HTTP {resp.status} from {url}"))
                        continue
                    data = await resp.content.read(MAX_BYTES + 1)
                    out.append(_checked(invoice_id, data))
            except TimeoutError:
                out.append(Fetched(invoice_id, None, f"no answer from {url} within "
                                                     f"{source.timeout:g} s"))
            except aiohttp.ClientError as exc:
                out.append(Fetched(invoice_id, None, f"{type(exc).__name__} for {url}: {exc}"))
    return out


async def fetch(source: Source, invoice_ids: Iterable[str], account_id: str) -> list[Fetched]:
    """The documents of the invoices (each once, in order), found or missing."""
    ids = list(dict.fromkeys(invoice_ids))
    unsafe = {i for i in ids if not safe_name(i) or not safe_name(account_id)}
    if source.kind == "folder":
        out = []
        for invoice_id in ids:
            path = file_of(source, invoice_id, account_id)
            out.append(Fetched(invoice_id, None, "not a safe name for a file")
                       if path is None else await asyncio.to_thread(_read_file, path, invoice_id))
        return out
    urls = [(i, u) for i in ids if (u := url_of(source, i, account_id)) is not None]
    found = {f.invoice_id: f for f in await _fetch_urls(source, urls)} if urls else {}
    return [found[i] if i not in unsafe else Fetched(i, None, "not a safe name for a URL")
            for i in ids]


def stored_name(invoice_id: str) -> str:
    """The file name of a kept document and its attachment: the id, cleaned, with a hash
    of the id when cleaning changed it."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", invoice_id).strip("._")[:80] or "invoice"
    if clean != invoice_id:
        clean += "-" + hashlib.sha256(invoice_id.encode()).hexdigest()[:8]
    return f"{clean}.pdf"


@dataclass(frozen=True)
class Collected:
    """The invoice documents of one letter: kept (paths relative to the letters folder)
    and missing ("invoice id: why")."""

    attachments: tuple[dict[str, str], ...] = ()
    missing: tuple[str, ...] = ()

    def status(self, emailed: bool, required: bool) -> str:
        """A new letter's status: `print`; `held` (an e-mail letter with a document
        missing while documents are required); else `pending`."""
        if not emailed:
            return "print"
        return "held" if required and self.missing else "pending"

    def record(self) -> dict[str, str | None]:
        """The document record's columns."""
        return {
            "attachments": json.dumps(list(self.attachments), ensure_ascii=False)
            if self.attachments else None,
            "missing_attachments": json.dumps(list(self.missing), ensure_ascii=False)
            if self.missing else None,
        }


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def collect(source: Source | None, letter: Letter, folder: Path,
                  pdf_path: Path) -> Collected:
    """Fetch the documents of a letter's invoices and keep them beside its PDF
    (`<letter>.invoices/<invoice>.pdf`, `pdf_path` relative to `folder`)."""
    if source is None:
        return Collected()
    fetched = await fetch(source, [i.invoice_id for i in letter.items if i.kind == "invoice"],
                          letter.account_id)
    kept: list[dict[str, str]] = []
    missing: list[str] = []
    where = pdf_path.with_name(pdf_path.stem + ".invoices")
    for f in fetched:
        if f.data is None:
            missing.append(f"{f.invoice_id}: {f.problem}")
            continue
        rel = where / stored_name(f.invoice_id)
        await asyncio.to_thread(_write, folder / rel, f.data)
        kept.append({"invoice_id": f.invoice_id, "path": rel.as_posix(),
                     "filename": stored_name(f.invoice_id)})
    return Collected(tuple(kept), tuple(missing))
