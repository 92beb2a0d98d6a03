"""Drawing the payment codes of `letters.payment` on a letter's page (fpdf2, vector only).

A QR code is drawn as filled rectangles, one per run of dark modules in a row: sharp at
any scale and the same bytes every time. The Swiss QR-bill's payment part (receipt,
payment part, the perforation lines, the QR code with the Swiss cross) is laid out after
SIX's style guide with fpdf2 rather than placed as qrbill's SVG: fpdf2 draws SVG text
with fonts of its own choosing, if at all; qrbill gives the checked data, the QR text
(`QRBill.qr_data`) and the headings in its four languages (`QRBill.label`). The part is
set in Helvetica, one of the fonts the style guide names (a PDF core font, not embedded).
"""

from __future__ import annotations

from typing import Any

import qrbill
import segno
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from qrbill.bill import format_amount, format_ref_number
from stdnum import iban as stdnum_iban

from letters.payment import swiss_qr_code

#: The QR-bill's size: A4 wide, 105 mm high, at the bottom of a page.
BILL_HEIGHT = 105.0
RECEIPT_WIDTH = 62.0
BILL_FONT = "helvetica"


def draw_qr(pdf: FPDF, code: segno.QRCode, x: float, y: float, size: float) -> None:
    """The code's modules, black, in a `size` mm square at (x, y); no quiet zone drawn."""
    modules = code.symbol_size(border=0)[0]
    unit = size / modules
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(code.matrix):
        c = 0
        while c < modules:
            if not row[c]:
                c += 1
                continue
            start = c
            while c < modules and row[c]:
                c += 1
            pdf.rect(x + start * unit, y + r * unit, (c - start) * unit, unit, style="F")


def _swiss_cross(pdf: FPDF, cx: float, cy: float) -> None:
    """The Swiss cross, 7 mm, in the middle of the QR code (white edge, black square)."""
    pdf.set_fill_color(255, 255, 255)
    pdf.rect(cx - 3.5, cy - 3.5, 7, 7, style="F")
    pdf.set_fill_color(0, 0, 0)
    pdf.rect(cx - 3.1, cy - 3.1, 6.2, 6.2, style="F")
    pdf.set_fill_color(255, 255, 255)
    arm, bar = 11 * 7 / 19, 3.3 * 7 / 19  # qrbill's cross: bars 11 × 3.3 of 19 units
    pdf.rect(cx - bar / 2, cy - arm / 2, bar, arm, style="F")
    pdf.rect(cx - arm / 2, cy - bar / 2, arm, bar, style="F")
    pdf.set_fill_color(0, 0, 0)


def _latin(text: str) -> str:
    """Text Helvetica (cp1252) can set; the QR-bill's character set is Latin anyway."""
    return text.encode("cp1252", "replace").decode("cp1252")


class _Part:
    """One column of the bill: headings and values, top down."""

    def __init__(self, pdf: FPDF, x: float, y: float, width: float, size: float) -> None:
        self.pdf, self.x, self.y, self.width, self.size = pdf, x, y, width, size

    def title(self, text: str) -> None:
        self.pdf.set_font(BILL_FONT, "B", 11)
        self.pdf.set_xy(self.x, self.y)
        self.pdf.cell(self.width, 5, _latin(text))
        self.y += 7

    def block(self, heading: str, lines: list[str]) -> None:
        pdf = self.pdf
        pdf.set_font(BILL_FONT, "B", self.size - 2)
        pdf.set_xy(self.x, self.y)
        pdf.cell(self.width, 3.2, _latin(heading), new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_font(BILL_FONT, "", self.size)
        for line in lines:
            pdf.cell(self.width, self.size * 0.38, _latin(line), new_x=XPos.LEFT,
                     new_y=YPos.NEXT)
        self.y = pdf.get_y() + 2.5

    def blank(self, heading: str, width: float, height: float) -> None:
        """A heading over an empty box with corner marks, to fill in by hand."""
        pdf = self.pdf
        pdf.set_font(BILL_FONT, "B", self.size - 2)
        pdf.set_xy(self.x, self.y)
        pdf.cell(self.width, 3.2, _latin(heading))
        _corners(pdf, self.x, self.y + 4, width, height)
        self.y += 4 + height + 2.5


def _corners(pdf: FPDF, x: float, y: float, w: float, h: float) -> None:
    pdf.set_line_width(0.26)
    pdf.set_draw_color(0, 0, 0)
    for cx, cy, dx, dy in ((x, y, 3, 2), (x + w, y, -3, 2), (x, y + h, 3, -2),
                           (x + w, y + h, -3, -2)):
        pdf.line(cx, cy, cx + dx, cy)
        pdf.line(cx, cy, cx, cy + dy)


def _data(bill: qrbill.QRBill, max_chars: int) -> dict[str, Any]:
    return {
        "account": [stdnum_iban.format(bill.account),
                    *bill.creditor.as_paragraph(max_chars)],
        "reference": format_ref_number(bill),
        "debtor": bill.debtor.as_paragraph(max_chars) if bill.debtor else None,
        "amount": format_amount(bill.amount) if bill.amount else "",
    }


def draw_qr_bill(pdf: FPDF, bill: qrbill.QRBill) -> None:
    """The payment part at the bottom of the current page (auto page break is off)."""
    top = pdf.h - BILL_HEIGHT
    pdf.set_text_color(0, 0, 0)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)
    with pdf.local_context():
        pdf.set_dash_pattern(dash=1.5, gap=1)
        pdf.line(0, top, pdf.w, top)
        pdf.line(RECEIPT_WIDTH, top, RECEIPT_WIDTH, pdf.h)
    pdf.set_font(BILL_FONT, "", 6)
    pdf.set_xy(0, top - 3.5)
    pdf.cell(pdf.w, 3, _latin(bill.label("Separate before paying in")), align="C")
    _receipt(pdf, bill, top)
    _payment(pdf, bill, top)


def _amount(pdf: FPDF, bill: qrbill.QRBill, x: float, y: float, size: float,
            amount: str) -> None:
    gap = 12 if size < 10 else 16
    for dx, heading, value in ((0, "Currency", bill.currency), (gap, "Amount", amount)):
        pdf.set_xy(x + dx, y)
        pdf.set_font(BILL_FONT, "B", size - 2)
        pdf.cell(20, 3.2, _latin(bill.label(heading)), new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_font(BILL_FONT, "", size)
        pdf.cell(30, size * 0.38, value)


def _receipt(pdf: FPDF, bill: qrbill.QRBill, top: float) -> None:
    data = _data(bill, 38)
    part = _Part(pdf, 5, top + 5, RECEIPT_WIDTH - 10, 8)
    part.title(bill.label("Receipt"))
    part.block(bill.label("Account / Payable to"), data["account"])
    if data["reference"]:
        part.block(bill.label("Reference"), [data["reference"]])
    if data["debtor"]:
        part.block(bill.label("Payable by"), data["debtor"])
    else:
        part.blank(bill.label("Payable by (name/address)"), 52, 20)
    _amount(pdf, bill, 5, top + 68, 8, data["amount"])
    pdf.set_font(BILL_FONT, "B", 6)
    pdf.set_xy(5, top + 82)
    pdf.cell(RECEIPT_WIDTH - 10, 3, _latin(bill.label("Acceptance point")), align="R")


def _payment(pdf: FPDF, bill: qrbill.QRBill, top: float) -> None:
    data = _data(bill, 72)
    x = RECEIPT_WIDTH + 5
    _Part(pdf, x, top + 5, 51, 10).title(bill.label("Payment part"))
    draw_qr(pdf, swiss_qr_code(bill), x, top + 17, 46)
    _swiss_cross(pdf, x + 23, top + 17 + 23)
    _amount(pdf, bill, x, top + 68, 10, data["amount"])
    part = _Part(pdf, x + 56, top + 5, 87, 10)
    part.block(bill.label("Account / Payable to"), data["account"])
    if data["reference"]:
        part.block(bill.label("Reference"), [data["reference"]])
    if bill.additional_information:
        part.block(bill.label("Additional information"), [bill.additional_information])
    if data["debtor"]:
        part.block(bill.label("Payable by"), data["debtor"])
    else:
        part.blank(bill.label("Payable by (name/address)"), 65, 25)
