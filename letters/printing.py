"""Reading stored letters back: their text, and one PDF of many letters for a print shop."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from pypdf import PdfReader, PdfWriter

from letters.store import Document


def pdf_text(path: Path) -> str:
    """The text of a PDF, page by page."""
    reader = PdfReader(str(path))
    return "\n".join((page.extract_text() or "").rstrip() for page in reader.pages)


def check(doc: Document) -> None:
    """Raise ValueError when the stored PDF is missing or differs from its record."""
    try:
        data = doc.pdf_path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{doc.command_id}: cannot read {doc.pdf_path}: {exc.strerror}") from exc
    if hashlib.sha256(data).hexdigest() != doc.sha256:
        raise ValueError(f"{doc.command_id}: {doc.pdf_path} differs from its record (sha256)")


def print_batch(docs: Sequence[Document], output: Path, *, duplex: bool = False) -> int:
    """Every letter in one PDF, in the given order, each starting on a new sheet when
    `duplex` (a blank back page after a letter with an odd page count). Returns the pages."""
    writer = PdfWriter()
    for doc in docs:
        check(doc)
        reader = PdfReader(str(doc.pdf_path))
        for page in reader.pages:
            writer.add_page(page)
        if duplex and len(reader.pages) % 2:
            writer.add_blank_page()
    writer.add_metadata({"/Producer": "dunning-engine letters", "/Title": output.stem})
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as fh:
        writer.write(fh)
    return len(writer.pages)
