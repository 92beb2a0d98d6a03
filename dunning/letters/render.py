"""A dunning letter as a PDF (fpdf2, DejaVu Sans embedded): deterministic, byte for byte.

The same command and letterhead always give the same bytes: the creation date is the
letter's as-of date, the producer is fixed, and the file id is a hash of the content.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace

from dunning.letters.config import Letterhead
from dunning.letters.model import Letter, one_line
from dunning.letters.wording import Wording, wording

#: fontTools says what it prunes from every embedded font at INFO: noise in our logs.
logging.getLogger("fontTools").setLevel(logging.WARNING)

PRODUCER = "dunning-engine letters"
FONT = "DejaVuSans"
GREY = (100, 100, 100)
LIGHT = (235, 238, 242)
ACCENT = (30, 60, 110)
LEFT, RIGHT, TOP = 25.0, 20.0, 15.0
WIDTH = 210.0 - LEFT - RIGHT


@cache
def font_files() -> tuple[Path, Path]:
    """The regular and bold TTF files shipped in the package."""
    folder = resources.files(__package__) / "fonts"
    regular, bold = folder / f"{FONT}.ttf", folder / f"{FONT}-Bold.ttf"
    return Path(str(regular)), Path(str(bold))


@dataclass(frozen=True)
class Rendered:
    pdf: bytes
    language: str  # the template's language
    fallback: bool  # no template for the requested language: English
    title: str
    filename: str  # for an e-mail attachment
    pages: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.pdf).hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "letter"


class _LetterPDF(FPDF):
    def __init__(self, words: Wording, letterhead: Letterhead) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.words = words
        self.letterhead = letterhead
        regular, bold = font_files()
        self.add_font(FONT, "", str(regular))
        self.add_font(FONT, "B", str(bold))
        self.set_margins(LEFT, TOP, RIGHT)
        self.set_auto_page_break(True, margin=30)
        self.set_producer(PRODUCER)
        self.set_creator(PRODUCER)

    def para(self, w: float, h: float, text: str, new_x: XPos = XPos.LMARGIN) -> None:
        """A left-aligned paragraph; the next line starts under it."""
        self.multi_cell(w, h, text, align="L", new_x=new_x, new_y=YPos.NEXT)

    def footer(self) -> None:
        lh = self.letterhead
        self.set_y(-24)
        self.set_draw_color(*GREY)
        self.set_line_width(0.2)
        self.line(LEFT, self.get_y(), 210 - RIGHT, self.get_y())
        self.ln(1.5)
        self.set_font(FONT, "", 7)
        self.set_text_color(*GREY)
        first = " · ".join([lh.name, *lh.address, *([lh.contact] if lh.contact else [])])
        self.para(WIDTH - 35, 3.4, first)
        if lh.bank:
            self.para(WIDTH - 35, 3.4, self.words.text("bank_line", bank=lh.bank))
        self.set_xy(210 - RIGHT - 35, -22.5)
        page = self.words.label("page").format(page=self.page_no(), pages="{nb}")
        self.cell(35, 3.4, page, align="R")
        self.set_text_color(0, 0, 0)


def render(letter: Letter, letterhead: Letterhead) -> Rendered:
    """The PDF of one letter, in its language (or English, noted as a fallback)."""
    w = wording(letter.language)
    title = w.level(letter.level).title
    pdf = _LetterPDF(w, letterhead)
    pdf.set_creation_date(datetime.combine(letter.as_of_date, time(0), tzinfo=UTC))
    pdf.set_title(f"{title} – {one_line(letter.account_id)}")
    pdf.set_author(letterhead.name)
    pdf.set_subject(title)
    pdf.set_lang(w.locale.language)
    pdf.alias_nb_pages()
    pdf.add_page()
    _letterhead(pdf, letterhead)
    _address(pdf, letter, letterhead, w)
    _info(pdf, letter, w)
    _body(pdf, letter, w, title, letterhead)
    data = bytes(pdf.output())
    filename = _safe(w.text("filename", account_id=letter.account_id,
                            date=letter.as_of_date.isoformat()).removesuffix(".pdf")) + ".pdf"
    return Rendered(pdf=data, language=w.language, fallback=w.fallback, title=title,
                    filename=filename, pages=pdf.page_no())


def _letterhead(pdf: _LetterPDF, lh: Letterhead) -> None:
    pdf.set_xy(LEFT, TOP)
    pdf.set_font(FONT, "B", 16)
    pdf.set_text_color(*ACCENT)
    pdf.cell(WIDTH, 8, lh.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 8.5)
    pdf.set_text_color(*GREY)
    pdf.cell(WIDTH, 4.5, " · ".join(lh.address), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if lh.contact:
        pdf.cell(WIDTH, 4.5, lh.contact, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_draw_color(*ACCENT)
    pdf.set_line_width(0.5)
    y = pdf.get_y() + 2
    pdf.line(LEFT, y, 210 - RIGHT, y)
    pdf.set_text_color(0, 0, 0)


def _address(pdf: _LetterPDF, letter: Letter, lh: Letterhead, w: Wording) -> None:
    # DIN 5008 window: return address line, then the recipient, from 45 mm down.
    pdf.set_xy(LEFT, 47)
    pdf.set_font(FONT, "", 6.5)
    pdf.set_text_color(*GREY)
    pdf.cell(85, 4, " · ".join([lh.name, *lh.address]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(FONT, "", 10.5)
    addr = letter.recipient.address
    lines = [letter.recipient.name, *addr.lines,
             " ".join(p for p in (addr.postal_code, addr.city) if p)]
    if addr.country and addr.country != lh.country:
        lines.append(w.country(addr.country).upper())
    pdf.set_y(53)
    for line in lines:
        if line:
            pdf.cell(85, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _info(pdf: _LetterPDF, letter: Letter, w: Wording) -> None:
    x, y = 132.0, 50.0
    for label, value, size in (
        (w.label("date"), w.date_long(letter.as_of_date), 9.5),
        (w.label("account"), one_line(letter.account_id), 9.5),
        (w.label("reference"), letter.notice_id, 7.5),
    ):
        pdf.set_xy(x, y)
        pdf.set_font(FONT, "", 7.5)
        pdf.set_text_color(*GREY)
        pdf.cell(58, 3.8, label, new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_font(FONT, "", size)
        pdf.set_text_color(0, 0, 0)
        pdf.para(58, size * 0.45, value, new_x=XPos.LEFT)
        y = pdf.get_y() + 2.2


def _body(pdf: _LetterPDF, letter: Letter, w: Wording, title: str, lh: Letterhead) -> None:
    money = lambda amount: w.money(amount, letter.currency)  # noqa: E731
    pdf.set_xy(LEFT, 98)
    pdf.set_font(FONT, "B", 13)
    pdf.set_text_color(*ACCENT)
    pdf.cell(WIDTH, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.ln(4)
    pdf.set_font(FONT, "", 10)
    pdf.para(WIDTH, 5, w.text("salutation", name=letter.recipient.name))
    pdf.ln(2.5)
    pdf.para(WIDTH, 5, w.level(letter.level).body)
    pdf.ln(4)

    # The items.
    pdf.set_font(FONT, "", 9)
    pdf.set_draw_color(*GREY)
    pdf.set_line_width(0.15)
    heading = FontFace(family=FONT, emphasis="BOLD", fill_color=LIGHT, size_pt=8.5)
    with pdf.table(
        col_widths=(33, 40, 28, 29, 35),
        align="LEFT",
        width=WIDTH,
        text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=heading,
        line_height=5.5,
        padding=(1, 1.2),
        first_row_as_headings=True,
        repeat_headings=1,
    ) as table:
        head = table.row()
        for key in ("invoice", "item", "due_date", "days_overdue", "open_amount"):
            head.cell(w.label(key))
        for item in letter.items:
            row = table.row()
            row.cell(one_line(item.invoice_id))
            row.cell(one_line(item.item_id))
            row.cell(w.date_short(item.due_date))
            row.cell(w.number(item.days_in_arrears))
            row.cell(money(item.open_amount))
    pdf.ln(2)

    # The totals.
    rows: list[tuple[str, Decimal, bool]] = []
    adds_up = letter.items_total + letter.charge + letter.interest == letter.total_due
    if adds_up and (letter.charge or letter.interest):
        rows.append((w.label("items_total"), letter.items_total, False))
    rows += [(w.label("charge"), letter.charge, False),
             (w.label("interest"), letter.interest, False),
             (w.label("total_due"), letter.total_due, True)]
    if pdf.will_page_break(6 * len(rows) + 2):
        pdf.add_page()
    for label, amount, strong in rows:
        if strong:
            pdf.set_draw_color(*ACCENT)
            pdf.set_line_width(0.3)
            pdf.line(LEFT + WIDTH - 80, pdf.get_y() + 0.5, LEFT + WIDTH, pdf.get_y() + 0.5)
            pdf.ln(1.2)
        pdf.set_font(FONT, "B" if strong else "", 10 if strong else 9)
        pdf.cell(WIDTH - 33, 5.5, label, align="R")
        pdf.cell(33, 5.5, money(amount), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(5)

    # Pay-by, bank, closing.
    pdf.set_font(FONT, "B", 10)
    pay = w.text("pay_by", total_due=money(letter.total_due),
                 pay_by=w.date_long(letter.pay_by).replace(" ", "\u00a0"),
                 account_id=one_line(letter.account_id))
    pdf.para(WIDTH, 5, pay)
    pdf.set_font(FONT, "", 10)
    if lh.bank:
        pdf.ln(1.5)
        pdf.set_font(FONT, "", 9)
        pdf.para(WIDTH, 4.8, w.text("bank_line", bank=lh.bank))
        pdf.set_font(FONT, "", 10)
    pdf.ln(2.5)
    pdf.para(WIDTH, 5, w.text("already_paid"))
    pdf.ln(5)
    if pdf.will_page_break(17):
        pdf.add_page()
    pdf.para(WIDTH, 5, w.text("closing"))
    pdf.ln(3)
    pdf.cell(WIDTH, 5, lh.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
