"""A dunning letter as a PDF (fpdf2, DejaVu Sans embedded): deterministic, byte for byte.

The same command and letterhead always give the same bytes: the creation date is the
letter's as-of date, the producer is fixed, and the file id is a hash of the content.

Fonts. A letter is set in Dunning Sans (`fonts/DunningSans*.ttf`), DejaVu Sans cut down by
`fonts/make_subset.py` to Latin, Greek, Cyrillic, punctuation and currency symbols: the
same glyphs and widths, so text is laid out exactly as in DejaVu Sans. A letter with a
character outside it is drawn again in the full DejaVu Sans beside it, as before.

fpdf2 would parse each font file for every document, and writing a PDF changes the parsed
font (it is pruned to the glyphs used), so documents cannot share one. Here a file is
parsed once per process (`_FontFile`); each document gets a copy of fpdf2's font object
with its own changeable parts (`_add_font`) and, when the PDF is written (`_Writer`), a
fontTools font of its own, read from bytes: the in-memory cut of Dunning Sans to Latin
(`SMALL`) if that has every glyph the document uses, else the file. fpdf2 subsets either
to the same glyphs, so the bytes are the same; the smaller font is quicker to read. And
fontTools writes it without re-encoding its glyphs (`_DocumentFont`).
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from functools import cache
from importlib import resources
from itertools import chain
from pathlib import Path
from typing import Any

from fontTools import subset as ftsubset
from fontTools import ttLib
from fpdf import FPDF
from fpdf.enums import TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace, SubsetMap, TTFFont
from fpdf.output import OutputProducer

from letters.codes import BILL_HEIGHT, draw_qr, draw_qr_bill
from letters.config import Letterhead
from letters.model import Letter, one_line
from letters.payment import Creditor, epc_code, qr_bill
from letters.texts import Texts, letter_fields
from letters.wording import Wording, fill, wording

#: fontTools says what it prunes from every embedded font at INFO: noise in our logs.
logging.getLogger("fontTools").setLevel(logging.WARNING)

PRODUCER = "dunning-engine letters"
FONT = "Sans"  # the family the drawing code sets, whichever files it comes from
SUBSET_FILES = ("DunningSans.ttf", "DunningSans-Bold.ttf")
FULL_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
#: The characters of the in-memory cut of Dunning Sans: most letters use nothing else.
SMALL = frozenset(chain(
    range(0x20, 0x7F), range(0xA0, 0x180),  # Basic Latin, Latin-1, Latin Extended-A
    (0x2009, 0x2013, 0x2014, 0x2018, 0x2019, 0x201A, 0x201C, 0x201D, 0x201E, 0x2022,
     0x2026, 0x202F, 0x2030, 0x2039, 0x203A, 0x20AC, 0x2212),  # – — ‘ ’ “ ” • … € −
))
GREY = (100, 100, 100)
LIGHT = (235, 238, 242)
ACCENT = (30, 60, 110)
LEFT, RIGHT, TOP = 25.0, 20.0, 15.0
WIDTH = 210.0 - LEFT - RIGHT

#: `TTFFont`'s attributes in fpdf2 2.8 (`__slots__`). Another set means another fpdf2 whose
#: fonts we do not know how to copy: then every document parses its fonts, as fpdf2 does.
_TTF_SLOTS = frozenset({
    "i", "type", "name", "desc", "glyph_ids", "_hbfont", "sp", "ss", "up", "ut", "cw",
    "ttffile", "fontkey", "emphasis", "scale", "subset", "cmap", "ttfont", "missing_glyphs",
    "biggest_size_pt", "color_font", "unicode_range", "palette_index", "is_compressed",
    "is_cff", "is_cid_keyed", "is_symbol", "cff_ros", "collection_font_number",
})


@cache
def font_files(full: bool = False) -> tuple[Path, Path]:
    """The regular and bold TTF files shipped in the package: the subset, or the full ones."""
    folder = resources.files(__package__) / "fonts"
    regular, bold = FULL_FILES if full else SUBSET_FILES
    return Path(str(folder / regular)), Path(str(folder / bold))


class _DocumentFont(ttLib.TTFont):
    """A Dunning Sans font for one document, written without unpacking its glyphs.

    fpdf2 subsets it and writes it into the PDF. fontTools would recalculate every glyph's
    bounding box on writing, re-encoding all the glyphs (half the time of writing a
    letter); `make_subset.py` has already stored them as fontTools calculates them. So
    this font is read with `recalcBBoxes=False` and, when written, gets the one thing that
    matters of that recalculation: the font-wide box of its glyphs (in `head`), which PDF
    readers use to size their glyph caches. `maxp` and `hhea` keep Dunning Sans's maxima.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), recalcTimestamp=False, recalcBBoxes=False,
                         lazy=True)

    def save(self, file: Any, reorderTables: bool | None = True) -> None:
        boxes = [box for glyph in self["glyf"].glyphs.values()
                 if (box := _glyph_box(glyph)) is not None]
        head = self["head"]
        if boxes:
            head.xMin = min(box[0] for box in boxes)
            head.yMin = min(box[1] for box in boxes)
            head.xMax = max(box[2] for box in boxes)
            head.yMax = max(box[3] for box in boxes)
        else:
            head.xMin = head.yMin = head.xMax = head.yMax = 0
        super().save(file, reorderTables)


def _glyph_box(glyph: Any) -> tuple[int, int, int, int] | None:
    """A glyph's stored bounding box; None for a glyph without outline (as in `maxp`)."""
    data = getattr(glyph, "data", None)
    if data is None:  # unpacked
        if not glyph.numberOfContours:
            return None
        return glyph.xMin, glyph.yMin, glyph.xMax, glyph.yMax
    if not data:
        return None
    contours, *box = struct.unpack(">5h", data[:10])
    return tuple(box) if contours else None  # type: ignore[return-value]


@dataclass(frozen=True)
class _FontFile:
    """A TTF file as fpdf2 parsed it, once per process, and as bytes for each document."""

    font: TTFFont  # metrics, character map, descriptor: copied, never written out itself
    data: bytes  # the file
    small: bytes | None  # Dunning Sans: the file cut down to SMALL; None: DejaVu Sans
    small_glyphs: frozenset[str]  # the glyphs in `small`

    def fonttools_font(self, glyphs: set[str]) -> ttLib.TTFont:
        """A fontTools font for one document, read lazily when fpdf2 subsets it.

        Dunning Sans: `small` if it has all `glyphs`, else the file. DejaVu Sans: as fpdf2
        reads it.
        """
        if self.small is None:
            return ttLib.TTFont(io.BytesIO(self.data), recalcTimestamp=False, lazy=True)
        return _DocumentFont(self.small if glyphs <= self.small_glyphs else self.data)


@cache
def _font_file(path: Path, style: str) -> _FontFile | None:
    """The file parsed by fpdf2, with its cut to SMALL if it is Dunning Sans.

    None for an fpdf2 whose fonts we do not know how to copy. The cut is made with fpdf2's
    subsetting options, but keeping the glyph names (fpdf2 finds glyphs by name) and all
    the name records.
    """
    if frozenset(TTFFont.__slots__) != _TTF_SLOTS:
        return None
    scratch = FPDF()
    scratch.add_font(FONT, style, str(path))
    font = scratch.fonts[f"{FONT.lower()}{style}"]
    if not isinstance(font, TTFFont) or font.color_font is not None or font.is_compressed:
        return None
    font.ttfont.close()
    font.ttfont = None
    data = path.read_bytes()
    if path.name not in SUBSET_FILES:
        return _FontFile(font, data, None, frozenset())
    small = ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False, recalcBBoxes=False)
    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True, glyph_names=True,
                               name_IDs=["*"], name_languages=["*"])
    subsetter = ftsubset.Subsetter(options)
    subsetter.populate(unicodes=SMALL)
    subsetter.subset(small)
    out = io.BytesIO()
    small.save(out)
    return _FontFile(font, data, out.getvalue(), frozenset(small.getGlyphOrder()))


def _add_font(pdf: _LetterPDF, style: str, path: Path) -> None:
    """`pdf.add_font(FONT, style, path)`, from the file parsed once per process.

    What fpdf2 changes while it draws and writes a document is the document's own: the
    subset map, the missing glyphs, the widths (a defaultdict), the font descriptor (it
    gets the document's object id and font stream), and the fontTools font (`_Writer`
    gives each document its own; fpdf2 prunes it to the glyphs used). The rest is shared.
    """
    file = _font_file(path, style)
    if file is None:
        pdf.add_font(FONT, style, str(path))
        return
    proto = file.font
    font = TTFFont.__new__(TTFFont)
    for name in _TTF_SLOTS:
        if hasattr(proto, name):  # fpdf2 leaves some unset (unicode_range)
            setattr(font, name, getattr(proto, name))
    font.i = len(pdf.fonts) + 1
    font.cw = copy.copy(proto.cw)
    font.glyph_ids = dict(proto.glyph_ids)
    font.desc = copy.copy(proto.desc)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font._hbfont = None
    font.ttfont = None  # set by _Writer, when the glyphs the document uses are known
    font.subset = SubsetMap(font)
    pdf.fonts[font.fontkey] = font
    pdf.font_sources[font.fontkey] = file


class _OutsideSubset(Exception):
    """The letter has a character that Dunning Sans lacks: draw it in DejaVu Sans."""


class _Writer(OutputProducer):
    """fpdf2's PDF writer, after the last footer is drawn: each font gets its fontTools font.

    Stops with `_OutsideSubset` before writing anything if a character drawn is not in
    Dunning Sans.
    """

    def bufferize(self) -> bytearray:
        pdf = self.fpdf
        assert isinstance(pdf, _LetterPDF)
        lacking = any(isinstance(font, TTFFont) and font.missing_glyphs
                      for font in pdf.fonts.values())
        if lacking and not pdf.full_fonts:
            raise _OutsideSubset
        for key, file in pdf.font_sources.items():
            font = pdf.fonts[key]
            assert isinstance(font, TTFFont)
            font.ttfont = file.fonttools_font(set(font.subset.get_all_glyph_names()))
        return super().bufferize()


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
    def __init__(self, words: Wording, letterhead: Letterhead, full_fonts: bool = False,
                 fields: dict[str, Any] | None = None) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.words = words
        self.fields = fields or {}
        self.letterhead = letterhead
        self.full_fonts = full_fonts
        self.font_sources: dict[str, _FontFile] = {}
        self.bill_page = 0  # the page with the QR-bill's payment part: no footer there
        regular, bold = font_files(full_fonts)
        _add_font(self, "", regular)
        _add_font(self, "B", bold)
        self.set_margins(LEFT, TOP, RIGHT)
        self.set_auto_page_break(True, margin=30)
        self.set_producer(PRODUCER)
        self.set_creator(PRODUCER)

    def para(self, w: float, h: float, text: str, new_x: XPos = XPos.LMARGIN) -> None:
        """A left-aligned paragraph; the next line starts under it."""
        self.multi_cell(w, h, text, align="L", new_x=new_x, new_y=YPos.NEXT)

    def footer(self) -> None:
        if self.page_no() == self.bill_page:
            return
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
            self.para(WIDTH - 35, 3.4, self.say("bank_line"))
        self.set_xy(210 - RIGHT - 35, -22.5)
        page = self.words.label("page", page=self.page_no(), pages="{nb}")
        self.cell(35, 3.4, page, align="R")
        self.set_text_color(0, 0, 0)

    def say(self, key: str) -> str:
        """A text of the letter (`[text]` of its template), filled with its fields."""
        return self.words.text(key, **self.fields)


def render(letter: Letter, letterhead: Letterhead, creditor: Creditor | None = None,
           texts: Texts | None = None) -> Rendered:
    """The PDF of one letter, in its language (or English, noted as a fallback).

    With a `creditor`, a EUR letter carries an EPC QR code beside the total due and a CHF
    letter the Swiss QR-bill's payment part (`letters.payment`, `letters.codes`). The
    words are the business's `texts` (`letters.texts`) or, without, the bundled ones.
    """
    w = texts.for_letter(letter) if texts is not None else wording(letter.language)
    fields = letter_fields(letter, w, letterhead, pdf=True)
    title = fields["title"]
    try:
        pdf = _draw(letter, letterhead, w, fields, False, creditor)
        data = bytes(pdf.output(output_producer_class=_Writer))
    except _OutsideSubset:
        pdf = _draw(letter, letterhead, w, fields, True, creditor)
        data = bytes(pdf.output(output_producer_class=_Writer))
    name = w.text("filename", **{**fields, "account_id": letter.account_id})
    filename = _safe(name.removesuffix(".pdf")) + ".pdf"
    return Rendered(pdf=data, language=w.language, fallback=w.fallback, title=title,
                    filename=filename, pages=pdf.page_no())


def _draw(letter: Letter, letterhead: Letterhead, w: Wording, fields: dict[str, Any],
          full_fonts: bool, creditor: Creditor | None = None) -> _LetterPDF:
    """The letter on its pages, but for the last footer (`output` draws it)."""
    title = fields["title"]
    pdf = _LetterPDF(w, letterhead, full_fonts, fields)
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
    _body(pdf, letter, w, title, letterhead, creditor)
    return pdf


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


def _body(pdf: _LetterPDF, letter: Letter, w: Wording, title: str, lh: Letterhead,
          creditor: Creditor | None) -> None:
    _opening(pdf, letter, w, title)
    _items(pdf, letter, w)
    epc = epc_code(letter, creditor) if creditor else None
    top = _totals(pdf, letter, w, EPC_SIZE + 2 if epc else 0)
    if epc:
        _epc(pdf, letter, w, epc, top)
    _closing(pdf, letter, w, lh)
    bill = qr_bill(letter, creditor, lh.country) if creditor else None
    if bill:
        _bill(pdf, bill)


EPC_SIZE = 30.0  # mm: the EPC QR code beside the totals


def _epc(pdf: _LetterPDF, letter: Letter, w: Wording, code: Any, top: float) -> None:
    """The EPC QR code at the left of the totals, its caption beside it."""
    draw_qr(pdf, code, LEFT, top, EPC_SIZE)
    y = pdf.get_y()
    pdf.set_xy(LEFT + EPC_SIZE + 3, top)
    pdf.set_font(FONT, "", 7.5)
    pdf.set_text_color(*GREY)
    pdf.multi_cell(42, 3.6, pdf.say("payment_code"), align="L", new_x=XPos.LMARGIN,
                   new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.set_y(max(y, top + EPC_SIZE + 5, pdf.get_y() + 5))


def _bill(pdf: _LetterPDF, bill: Any) -> None:
    """The QR-bill at the bottom of the first page, or on a page of its own."""
    if pdf.page_no() > 1 or pdf.get_y() > pdf.h - BILL_HEIGHT - 6:
        pdf.add_page()
    pdf.bill_page = pdf.page_no()
    pdf.set_auto_page_break(False)
    draw_qr_bill(pdf, bill)


def _opening(pdf: _LetterPDF, letter: Letter, w: Wording, title: str) -> None:
    """The title, the salutation and the level's text."""
    pdf.set_xy(LEFT, 98)
    pdf.set_font(FONT, "B", 13)
    pdf.set_text_color(*ACCENT)
    pdf.cell(WIDTH, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.ln(4)
    pdf.set_font(FONT, "", 10)
    pdf.para(WIDTH, 5, pdf.say("salutation"))
    pdf.ln(2.5)
    pdf.para(WIDTH, 5, fill(w.level(letter.level).body, pdf.fields))
    pdf.ln(4)


def _items(pdf: _LetterPDF, letter: Letter, w: Wording) -> None:
    """The table of the dunned items."""
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
            if item.kind == "invoice":
                row.cell(one_line(item.invoice_id))
                row.cell(one_line(item.item_id))
            else:  # a charge or interest of an earlier notice, still open
                row.cell(w.label(item.kind))
                row.cell(w.label("earlier_notice"))
            row.cell(w.date_short(item.due_date))
            row.cell(w.number(item.days_in_arrears))
            row.cell(w.money(item.open_amount, letter.currency))
    pdf.ln(2)
    _interest_lines(pdf, letter, w)


def _interest_lines(pdf: _LetterPDF, letter: Letter, w: Wording) -> None:
    """A line per sub-period of each item's interest (RULES.md section 9), when the
    procedure uses an option that cuts the period (none with today's rule)."""
    pdf.set_font(FONT, "", 8)
    for item in letter.items:
        for x in item.interest_parts:
            text = (
                f"{w.label('interest')} {one_line(item.item_id)}: {w.date_short(x.start)} - "
                f"{w.date_short(x.end)}, {x.days} ({x.day_count}), {x.rate_percent.normalize():f} %"
                f", {w.money(x.base_amount, letter.currency)}: "
                f"{w.money(x.amount, letter.currency)}"
            )
            pdf.cell(WIDTH, 4.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _totals(pdf: _LetterPDF, letter: Letter, w: Wording, beside: float = 0) -> float:
    """Items total (when it adds up and there is a charge or interest), charge, interest,
    and the total due under a line. Keeps `beside` mm on the page for a payment code at
    their left; says where they start."""
    rows: list[tuple[str, Decimal, bool]] = []
    adds_up = letter.items_total + letter.charge + letter.interest == letter.total_due
    if adds_up and (letter.charge or letter.interest):
        rows.append((w.label("items_total"), letter.items_total, False))
    rows += [(w.label("charge"), letter.charge, False),
             (w.label("interest"), letter.interest, False),
             (w.label("total_due"), letter.total_due, True)]
    if pdf.will_page_break(max(6 * len(rows) + 2, beside)):
        pdf.add_page()
    top = pdf.get_y()
    for label, amount, strong in rows:
        if strong:
            pdf.set_draw_color(*ACCENT)
            pdf.set_line_width(0.3)
            pdf.line(LEFT + WIDTH - 80, pdf.get_y() + 0.5, LEFT + WIDTH, pdf.get_y() + 0.5)
            pdf.ln(1.2)
        pdf.set_font(FONT, "B" if strong else "", 10 if strong else 9)
        pdf.cell(WIDTH - 33, 5.5, label, align="R")
        pdf.cell(33, 5.5, w.money(amount, letter.currency), align="R",
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(5)
    return top


def _closing(pdf: _LetterPDF, letter: Letter, w: Wording, lh: Letterhead) -> None:
    """Pay-by, bank, "already paid?", closing and the sender's name."""
    pdf.set_font(FONT, "B", 10)
    pdf.para(WIDTH, 5, pdf.say("pay_by"))
    pdf.set_font(FONT, "", 10)
    if lh.bank:
        pdf.ln(1.5)
        pdf.set_font(FONT, "", 9)
        pdf.para(WIDTH, 4.8, pdf.say("bank_line"))
        pdf.set_font(FONT, "", 10)
    pdf.ln(2.5)
    pdf.para(WIDTH, 5, pdf.say("already_paid"))
    pdf.ln(5)
    if pdf.will_page_break(17):
        pdf.add_page()
    pdf.para(WIDTH, 5, pdf.say("closing"))
    pdf.ln(3)
    pdf.cell(WIDTH, 5, lh.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
