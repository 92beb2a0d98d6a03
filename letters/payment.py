"""Payment codes on a letter: the EPC QR code (EUR) and the Swiss QR-bill (CHF).

Both carry the amount due, the creditor's account and a structured reference that
identifies the notice, so that a payment can be matched back to it.

The reference (`reference`). A notice id is a string of any length (a UUID in practice),
longer than a reference may be, so the reference is a digest of it, not the id itself:

- ISO 11649 creditor reference (`RF` + 2 check digits + 21 characters): the first 104
  bits of SHA-256 of the notice id, in base 36, padded to 21 characters. Check digits by
  python-stdnum (`mod_97_10`). Used in the EPC QR code (structured remittance) and in the
  QR-bill with a normal IBAN (reference type SCOR).
- QR reference (QRR, 26 digits + 1 check digit, the Swiss ESR scheme): the same digest
  modulo 10**26, check digit by python-stdnum (`ch.esr`). Only with a QR-IBAN, as the
  standard wants.

Matching a payment back: the reference is not reversible, it is look-up-able. The letter
service keeps the notice id of every letter (`documents.notice_id`); `notice_for` finds
the notice among given ids whose reference a payment quotes (`letters show` accepts a
reference). A digest of 104 bits (86 for QRR) makes two notices with one reference
practically impossible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from stdnum.ch import esr
from stdnum.iso7064 import mod_97_10

from letters.model import Letter, one_line

if TYPE_CHECKING:  # segno and qrbill are imported where a code is made (`letters list`…)
    import qrbill
    import segno

_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
RF_BODY = 21  # characters after RF and the check digits: ISO 11649's maximum
QRR_BODY = 26  # digits before the check digit
#: The QR-IBAN's institution ids (IID 30000-31999), as SIX defines them.
QR_IID = range(30000, 32000)
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999.99")  # both standards


@dataclass(frozen=True)
class Creditor:
    """Who is paid: the account and, for the QR-bill, the postal address."""

    iban: str  # electronic format: no spaces, upper case
    name: str
    bic: str = ""
    street: str = ""
    house_number: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = ""  # ISO 3166-1 alpha-2

    @property
    def qr_iban(self) -> bool:
        """A Swiss QR-IBAN (CH/LI, IID 30000-31999): the QR-bill needs a QRR reference."""
        return self.iban[:2] in ("CH", "LI") and int(self.iban[4:9]) in QR_IID

    @property
    def qr_bill_ready(self) -> bool:
        """Whether CHF letters can carry a QR-bill: a CH/LI IBAN and a postal address."""
        return self.iban[:2] in ("CH", "LI") and bool(
            self.postal_code and self.city and self.country)


def _digest(notice_id: str) -> int:
    return int.from_bytes(hashlib.sha256(notice_id.encode("utf-8")).digest()[:13], "big")


def _base36(value: int, width: int) -> str:
    out = ""
    while value:
        value, digit = divmod(value, 36)
        out = _BASE36[digit] + out
    return out.rjust(width, "0")


def creditor_reference(notice_id: str) -> str:
    """The ISO 11649 reference of a notice: `RF`, check digits, 21 characters."""
    body = _base36(_digest(notice_id), RF_BODY)
    return "RF" + mod_97_10.calc_check_digits(body + "RF") + body


def qr_reference(notice_id: str) -> str:
    """The 27-digit QR reference (QRR) of a notice, for a QR-IBAN."""
    body = str(_digest(notice_id) % 10**QRR_BODY).rjust(QRR_BODY, "0")
    return body + esr.calc_check_digit(body)


def reference(notice_id: str, creditor: Creditor, currency: str) -> str:
    """The reference on a letter: QRR for a CHF letter to a QR-IBAN, else RF."""
    if currency == "CHF" and creditor.qr_iban:
        return qr_reference(notice_id)
    return creditor_reference(notice_id)


def notice_for(ref: str, notice_ids: Iterable[str]) -> str | None:
    """The notice among `notice_ids` whose reference `ref` is (RF or QRR, spaces allowed)."""
    wanted = "".join(ref.split()).upper()
    for notice_id in notice_ids:
        if wanted in (creditor_reference(notice_id), qr_reference(notice_id)):
            return notice_id
    return None


def looks_like_reference(text: str) -> bool:
    compact = "".join(text.split()).upper()
    return (compact.startswith("RF") and len(compact) == 4 + RF_BODY) or (
        compact.isdigit() and len(compact) == QRR_BODY + 1)


def amount_due(letter: Letter) -> Decimal | None:
    """The amount to put in a code (to the cent), or None when there is nothing to pay."""
    amount = letter.total_due.quantize(CENT, rounding=ROUND_HALF_UP)
    if amount < CENT or amount > MAX_AMOUNT:
        return None
    return amount


def epc_code(letter: Letter, creditor: Creditor) -> segno.QRCode | None:
    """The EPC QR code (version 002, UTF-8, SCT, error level M) of a EUR letter, else None."""
    import segno.helpers

    amount = amount_due(letter)
    if letter.currency != "EUR" or amount is None:
        return None
    return segno.helpers.make_epc_qr(
        name=one_line(creditor.name)[:70], iban=creditor.iban, amount=amount,
        reference=creditor_reference(letter.notice_id), bic=creditor.bic or None,
        encoding="utf-8")


#: The QR-bill's languages (its headings, Annex D); other letters get English headings.
QR_BILL_LANGUAGES = ("de", "fr", "it", "en")


def qr_bill(letter: Letter, creditor: Creditor, home_country: str = "") -> qrbill.QRBill | None:
    """The Swiss QR-bill of a CHF letter (qrbill checks every field), else None.

    The debtor is the recipient, when the address has a postal code and a city (a letter
    without a country line goes to `home_country`); else the debtor box stays blank.
    """
    import qrbill

    amount = amount_due(letter)
    if letter.currency != "CHF" or amount is None or not creditor.qr_bill_ready:
        return None
    language = letter.language.replace("_", "-").split("-")[0].lower()
    values = {
        "account": creditor.iban, "creditor": _creditor_address(creditor),
        "amount": str(amount), "currency": "CHF",
        "reference_number": reference(letter.notice_id, creditor, "CHF"),
        "language": language if language in QR_BILL_LANGUAGES else "en",
    }
    try:
        return qrbill.QRBill(debtor=_debtor(letter, home_country), **values)
    except ValueError:  # a recipient address the QR-bill cannot take: the box stays blank
        return qrbill.QRBill(debtor=None, **values)


def _creditor_address(creditor: Creditor) -> dict[str, str]:
    return {
        "name": one_line(creditor.name)[:70], "street": creditor.street,
        "house_num": creditor.house_number, "pcode": creditor.postal_code,
        "city": creditor.city, "country": creditor.country,
    }


def check_qr_bill(creditor: Creditor) -> None:
    """Raises ValueError (qrbill's reason) if the creditor's data cannot make a QR-bill."""
    import qrbill

    qrbill.QRBill(account=creditor.iban, creditor=_creditor_address(creditor),
                  currency="CHF", reference_number=reference("check", creditor, "CHF"))


def _debtor(letter: Letter, home_country: str) -> dict[str, str] | None:
    addr = letter.recipient.address
    country = addr.country or home_country
    if not (addr.postal_code and addr.city and country):
        return None
    return {
        "name": letter.recipient.name[:70], "street": (addr.lines[0] if addr.lines else "")[:70],
        "pcode": addr.postal_code[:16], "city": addr.city[:35], "country": country,
    }


def swiss_qr_code(bill: qrbill.QRBill) -> segno.QRCode:
    """The QR code of a QR-bill: its text in UTF-8, byte mode, error level M, as SIX wants."""
    import segno

    return segno.make_qr(bill.qr_data(), error="m", boost_error=False, mode="byte",
                         encoding="utf-8")
