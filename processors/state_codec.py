"""Compact storage of :class:`domain.state.Account`: msgpack of positional arrays.

Layout (format 3): ``[3, account_id, master, invoices, items, payments, seen,
history_seq, history_head, locks, cancelled_invoices, reversed_payments, plans,
cancelled_plans, due_changes, notices, pending, horizon, imports]`` (empty trailing fields left
off; formats 1 and 2 end at ``pending``; their ``seen`` has no days), each
record an array of its fields in a fixed order, no field names. To stay small:

- an invoice item points at its invoice by index (invoice id and currency are stored
  once), stores its due day relative to the invoice's issue day and, when its id starts
  with the invoice id, only the rest of it (as msgpack ``bin``); an instalment points at
  its plan by ``-1 - index`` and carries its currency;
- an item stores what was paid (``amount - open``), mostly 0, instead of its open amount;
- trailing fields that have their default value (status OPEN, level 0, no dates, no
  procedure override, empty group) are left off;
- an invoice's or payment's currency equal to the account's currency is ``nil``; issue
  and receipt days count from 2000-01-01;
- a history head that is a lowercase hex sha256 is stored as its 32 bytes;
- ``seen`` with ``seen_days`` is ``[seen, day, count, day, count, ...]``, the first day
  counted from 2000-01-01 and every other from the one before (mostly 2 bytes a day);
  without days, ``seen`` alone;
- activities are indices into ``ACTIVITIES``;
- a notice's letter recipient and language equal to the account's current master data
  are stored as ``true`` (the master is stored in the same value, so this is exact).
- a notice of a procedure with ``clearing_order`` (RULES.md decision 12) ends with
  ``pay_within_days``, the order and the charge and interest items it listed
  (``[item_id, kind, notice_id, open, due_day]``); a proposal with either ends with the
  order and its listed items after ``pay_within_days``. Rows without them are unchanged.

Derived fields (status, open amount) are stored too, so reading needs no computation,
and objects are built without going through the frozen dataclasses' ``__init__`` (which
sets every field through ``object.__setattr__`` and is several times slower): each
field is set with its slot descriptor, which is all ``__init__`` does besides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgpack

from domain.commands import Recipient
from domain.events import Allocation, Installment, PostalAddress
from domain.interest import InterestPart
from domain.money import minor_units
from domain.procedures import ACTIVITIES
from domain.state import (
    Account,
    ClaimLine,
    ExecutedNotice,
    ImportedLevel,
    Invoice,
    Item,
    LeftOutItem,
    LevelChange,
    Lock,
    Master,
    NoticeLine,
    Payment,
    Plan,
    Proposal,
    ProposedItem,
)

__all__ = ["FORMAT_VERSION", "pack", "unpack"]

FORMAT_VERSION = 3
"""3: the days of the applied events (``seen_days``) and the retention horizon (rows of
format 1 and 2 have neither: their events have no day, so their ids are kept).
2: instalment amounts of a plan in thousandths of a unit (1: in minor units of the
currency the plan was converted with; read and upgraded, see :func:`_v1_plans`)."""

_EPOCH = 730120
"""Day number of 2000-01-01: issue and receipt days are stored relative to it (shorter)."""
_TOP_SIZE = 19
_TOP_MIN = 6
_TOP_TAIL: tuple[Any, ...] = (b"", 0, "", (), (), (), (), (), (), (), (), 0, ())
"""Defaults of the top-level fields from ``seen`` on, left off when trailing."""
_ACTIVITY_INDEX = {name: index for index, name in enumerate(ACTIVITIES)}
# Defaults of the optional tail of an item row:
# status, level, last_dunned_day, interest_until_day, procedure, group, currency.
_ITEM_TAIL = (0, 0, None, None, None, "", None)


def _maker(cls: type) -> Callable[..., Any]:
    """A constructor of ``cls`` (a slots dataclass) taking every field positionally."""
    names = [f.name for f in dataclasses.fields(cls)]
    setters = "".join(f"    _s{i}(o, {name})\n" for i, name in enumerate(names))
    source = f"def make({', '.join(names)}):\n    o = _new(_cls)\n{setters}    return o\n"
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for i, name in enumerate(names):
        namespace[f"_s{i}"] = getattr(cls, name).__set__
    exec(source, namespace)
    return namespace["make"]  # type: ignore[no-any-return]


_Account = _maker(Account)
_Master = _maker(Master)
_Address = _maker(PostalAddress)
_Lock = _maker(Lock)
_Imported = _maker(ImportedLevel)
_Invoice = _maker(Invoice)
_Item = _maker(Item)
_Payment = _maker(Payment)
_Allocation = _maker(Allocation)
_Plan = _maker(Plan)
_Installment = _maker(Installment)
_Notice = _maker(ExecutedNotice)
_Line = _maker(NoticeLine)
_Recipient = _maker(Recipient)
_Proposal = _maker(Proposal)
_ProposedItem = _maker(ProposedItem)
_LevelChange = _maker(LevelChange)
_LeftOut = _maker(LeftOutItem)
_ClaimLine = _maker(ClaimLine)


def _pack_parts(parts: tuple[InterestPart, ...] | None, reason: str | None) -> list[Any]:
    """The optional tail of a proposed item or notice line (RULES.md section 9): empty
    with today's rule, so older rows read unchanged and unchanged rows stay the same."""
    if parts is None and reason is None:
        return []
    parts = parts or ()
    return [
        [[x.start, x.end, x.days, str(x.rate_percent), x.base_amount, x.amount, x.day_count]
         for x in parts],
        reason,
    ]


def _unpack_tail(row: Any, width: int) -> tuple[tuple[InterestPart, ...] | None, str | None]:
    if len(row) <= width:
        return None, None
    parts = tuple(
        InterestPart(x[0], x[1], x[2], Decimal(x[3]), x[4], x[5], x[6]) for x in row[width]
    )
    return parts, row[width + 1]


_HEX = frozenset("0123456789abcdef")


def _pack_head(head: str) -> str | bytes:
    """A sha256 in lowercase hex (the usual history head) as its 32 bytes."""
    if len(head) == 64 and _HEX.issuperset(head):
        return bytes.fromhex(head)
    return head


def _address(a: PostalAddress) -> list[Any]:
    return [a.lines, a.postal_code, a.city, a.country]


def _pack_item(it: Item, invoices: tuple[Invoice, ...], ref: int) -> list[Any]:
    """An item row; ``ref`` is the invoice index, or ``-1 - plan index`` for an instalment."""
    item_id: str | bytes = it.item_id
    if ref >= 0:
        inv = invoices[ref]
        due = it.due_day - inv.issued_day
        prefix = inv.invoice_id
        if len(it.item_id) > len(prefix) and it.item_id.startswith(prefix):
            item_id = it.item_id[len(prefix) :].encode()
        if (
            it.procedure is None
            and not it.group
            and it.level == 0
            and it.last_dunned_day is None
            and it.interest_until_day is None
        ):
            if it.status == 0:
                return [item_id, ref, it.amount, due, it.amount - it.open_amount]
            return [item_id, ref, it.amount, due, it.amount - it.open_amount, it.status]
        currency = None
    else:
        due = it.due_day
        currency = it.currency
    row = [
        item_id,
        ref,
        it.amount,
        due,
        it.amount - it.open_amount,
        it.status,
        it.level,
        it.last_dunned_day,
        it.interest_until_day,
        it.procedure,
        it.group,
        currency,
    ]
    end = 12
    while end > 5 and row[end - 1] == _ITEM_TAIL[end - 6]:
        end -= 1
    return row[:end]


def _pack_notice(n: ExecutedNotice, master: Master | None) -> list[Any]:
    recipient: Any = None
    if n.recipient is not None:
        r = n.recipient
        if (
            master is not None
            and r.name == master.name
            and r.postal_address == master.postal_address
            and r.email == master.email
        ):
            recipient = True
        else:
            recipient = [r.name, _address(r.postal_address), r.email]
    language: Any = n.language
    if master is not None and language is not None and language == master.language:
        language = True
    return [
        n.run_id,
        n.procedure_id,
        n.group,
        n.currency,
        n.level,
        n.as_of,
        [_ACTIVITY_INDEX[a] for a in n.activities],
        n.charge,
        n.interest,
        [
            [
                ln.item_id,
                ln.listed,
                ln.old_level,
                ln.new_level,
                ln.old_last_dunned,
                ln.old_interest_until,
                ln.interest,
                ln.open_amount,
                ln.due_day,
                *_pack_parts(ln.interest_parts, ln.interest_reason),
            ]
            for ln in n.lines
        ],
        n.plan_ids,
        language,
        recipient,
        n.reversed_items,
        *_notice_tail(n),
    ]


def _notice_tail(n: ExecutedNotice) -> list[Any]:
    """pay_within_days (left off at 14), then, with claimable items (RULES.md decision
    12), the clearing order and the listed charge and interest items of earlier notices."""
    if n.clearing_order is None and not n.claims:
        return [n.pay_within_days] if n.pay_within_days != 14 else []
    return [n.pay_within_days, _pack_order(n.clearing_order), _pack_claims(n.claims)]


def _pack_order(order: tuple[str, ...] | None) -> list[str] | None:
    return None if order is None else list(order)


def _pack_claims(claims: tuple[ClaimLine, ...]) -> list[Any]:
    return [[c.item_id, c.kind, c.notice_id, c.open_amount, c.due_day] for c in claims]


def _unpack_claims(rows: Any) -> tuple[ClaimLine, ...]:
    return tuple([_ClaimLine(*c) for c in rows])


def _pack_proposal(p: Proposal) -> list[Any]:
    return [
        p.proposal_id,
        p.run_id,
        p.procedure_id,
        p.dunning_group,
        p.currency,
        p.as_of_date,
        p.level,
        [_ACTIVITY_INDEX[a] for a in p.activities],
        p.charge,
        p.interest,
        p.total_due,
        [
            [
                i.item_id,
                i.invoice_id,
                i.open_amount,
                i.due_date,
                i.days_in_arrears,
                i.previous_level,
                i.new_level,
                i.reason,
                i.interest,
                i.interest_from,
                i.last_dunned_date,
                i.interest_until_date,
                *_pack_parts(i.interest_parts, i.interest_reason),
            ]
            for i in p.items
        ],
        [[c.item_id, c.previous_level, c.new_level, c.reason] for c in p.level_changes],
        [[x.item_id, x.reason] for x in p.left_out],
        p.auto_approve,
        p.last_notice_date,
        *(
            [[_ACTIVITY_INDEX[a] for a in p.activities_below_minimum], p.pay_within_days]
            if p.activities_below_minimum or p.pay_within_days != 14 or p.claims
            or p.clearing_order is not None
            else []
        ),
        *(
            [_pack_order(p.clearing_order), _pack_claims(p.claims)]
            if p.claims or p.clearing_order is not None
            else []
        ),
    ]


def _pack_payment(p: Payment, home: str | None) -> list[Any]:
    row: list[Any] = [
        p.payment_id,
        p.amount,
        None if p.currency == home else p.currency,
        p.received_day - _EPOCH,
    ]
    if p.allocations:
        row.append([[x.item_id, x.amount] for x in p.allocations])
    return row


def _pack_imports(imports: tuple[ImportedLevel, ...]) -> list[Any]:
    return [[x.item_id, x.level, x.last_dunned_day, x.interest_until_day, x.notice_day]
            for x in imports]


def pack(account: Account) -> bytes:
    """``account`` as compact msgpack bytes."""
    m = account.master
    home = m.currency if m is not None else None
    invoices = account.invoices
    invoice_index = {inv.invoice_id: i for i, inv in enumerate(invoices)}
    plan_index = {p.plan_id: i for i, p in enumerate(account.plans)} if account.plans else {}
    payments = [_pack_payment(p, home) for p in account.payments]
    value: list[Any] = [
        FORMAT_VERSION,
        account.account_id,
        None
        if m is None
        else [
            m.name,
            m.language,
            m.currency,
            m.dunning_procedure,
            _address(m.postal_address),
            m.email,
        ],
        [
            [x.invoice_id, None if x.currency == home else x.currency, x.issued_day - _EPOCH]
            for x in invoices
        ],
        [
            _pack_item(
                it,
                invoices,
                invoice_index[it.invoice_id] if it.plan_id is None else -1 - plan_index[it.plan_id],
            )
            for it in account.items
        ],
        payments,
        [account.seen, *_pack_days(account.seen_days)] if account.seen_days else account.seen,
        account.history_seq,
        _pack_head(account.history_head),
        [[x.lock_id, x.reason, x.valid_from, x.valid_to, x.item_id] for x in account.locks]
        if account.locks
        else (),
        account.cancelled_invoices,
        account.reversed_payments,
        [
            [p.plan_id, p.item_ids, [[i.item_id, i.amount, i.due_date] for i in p.installments]]
            for p in account.plans
        ]
        if account.plans
        else (),
        account.cancelled_plans,
        account.due_changes,
        [_pack_notice(n, m) for n in account.notices] if account.notices else (),
        [_pack_proposal(p) for p in account.pending] if account.pending else (),
        account.horizon,
        _pack_imports(account.imports) if account.imports else (),
    ]
    end = len(value)
    while end > _TOP_MIN and not value[end - 1]:
        end -= 1
    return msgpack.packb(value[:end] if end < len(value) else value, use_bin_type=True)  # type: ignore[no-any-return]


def _unaddress(row: Any) -> PostalAddress:
    return _Address(row[0], row[1], row[2], row[3])  # type: ignore[no-any-return]


def _unpack_notice(r: Any, master: Master | None) -> ExecutedNotice:
    language = r[11]
    if language is True:
        assert master is not None
        language = master.language
    rrow = r[12]
    recipient: Recipient | None
    if rrow is None:
        recipient = None
    elif rrow is True:
        assert master is not None
        recipient = _Recipient(master.name, master.postal_address, master.email)
    else:
        recipient = _Recipient(rrow[0], _unaddress(rrow[1]), rrow[2])
    return _Notice(  # type: ignore[no-any-return]
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        tuple([ACTIVITIES[a] for a in r[6]]),
        r[7],
        r[8],
        tuple([_Line(*x[:9], *_unpack_tail(x, 9)) for x in r[9]]),
        r[10],
        language,
        recipient,
        r[13],
        r[14] if len(r) > 14 else 14,
        tuple(r[15]) if len(r) > 15 and r[15] is not None else None,
        _unpack_claims(r[16]) if len(r) > 16 else (),
    )


def _unpack_proposal(r: Any, account_id: str) -> Proposal:
    return _Proposal(  # type: ignore[no-any-return]
        r[0],
        r[1],
        account_id,
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        tuple([ACTIVITIES[a] for a in r[7]]),
        r[8],
        r[9],
        r[10],
        tuple([_ProposedItem(*i[:12], *_unpack_tail(i, 12)) for i in r[11]]),
        tuple([_LevelChange(*c) for c in r[12]]),
        tuple([_LeftOut(*x) for x in r[13]]),
        r[14],
        r[15],
        tuple([ACTIVITIES[a] for a in r[16]]) if len(r) > 16 else (),
        r[17] if len(r) > 17 else 14,
        _unpack_claims(r[19]) if len(r) > 19 else (),
        tuple(r[18]) if len(r) > 18 and r[18] is not None else None,
    )


def _v1_plans(plans: tuple[Plan, ...], items: list[Item], home: str | None) -> tuple[Plan, ...]:
    """Format 1 kept instalment amounts in minor units of the currency the plan was read
    with: its instalments' (once effective), else its first known source item's, else the
    account's. Format 2 keeps thousandths."""
    by_id = {it.item_id: it for it in items}
    out = []
    for plan in plans:
        known = [by_id[i] for i in (plan.installments[0].item_id, *plan.item_ids) if i in by_id]
        currency = known[0].currency if known else home
        if currency is None:
            out.append(plan)
            continue
        exponent = minor_units(currency)
        out.append(
            _Plan(
                plan.plan_id,
                plan.item_ids,
                tuple(
                    _Installment(
                        i.item_id,
                        i.amount * 10 ** (3 - exponent)
                        if exponent <= 3
                        else i.amount // 10 ** (exponent - 3),
                        i.due_date,
                    )
                    for i in plan.installments
                ),
            )
        )
    return tuple(out)


def _unpack_items(
    rows: tuple[Any, ...], invoices: tuple[Invoice, ...], plans: tuple[Plan, ...]
) -> list[Item]:
    """The item rows of :func:`_pack_item`: invoice items, then instalments by their plan."""
    items = []
    tail = _ITEM_TAIL
    for r in rows:
        n = len(r)
        if n < 12:
            r = r + tail[n - 5 :]
        ref = r[1]
        amount = r[2]
        if ref >= 0:
            inv = invoices[ref]
            invoice_id = inv.invoice_id
            item_id = r[0]
            if item_id.__class__ is bytes:
                item_id = invoice_id + item_id.decode()
            items.append(
                _Item(
                    item_id,
                    invoice_id,
                    inv.currency,
                    amount,
                    inv.issued_day + r[3],
                    r[9],
                    r[10],
                    None,
                    r[5],
                    amount - r[4],
                    r[6],
                    r[7],
                    r[8],
                )
            )
        else:
            plan_id = plans[-1 - ref].plan_id
            items.append(
                _Item(
                    r[0],
                    plan_id,
                    r[11],
                    amount,
                    r[3],
                    r[9],
                    r[10],
                    plan_id,
                    r[5],
                    amount - r[4],
                    r[6],
                    r[7],
                    r[8],
                )
            )
    return items


def unpack(data: bytes) -> Account:
    """The account packed by :func:`pack`."""
    v = msgpack.unpackb(data, raw=False, use_list=False)
    if v[0] not in (1, 2, FORMAT_VERSION):
        raise ValueError(f"unknown account state format {v[0]!r}")
    if len(v) < _TOP_SIZE:
        v = v + _TOP_TAIL[len(v) - _TOP_SIZE :]
    account_id = v[1]
    m = v[2]
    master = None if m is None else _Master(m[0], m[1], m[2], m[3], _unaddress(m[4]), m[5])
    home = master.currency if master is not None else None
    invoices = tuple([_Invoice(r[0], home if r[1] is None else r[1], r[2] + _EPOCH) for r in v[3]])
    plans = (
        tuple([_Plan(r[0], r[1], tuple([_Installment(*i) for i in r[2]])) for r in v[12]])
        if v[12]
        else ()
    )
    items = _unpack_items(v[4], invoices, plans)
    if v[0] == 1 and plans:
        plans = _v1_plans(plans, items, home)
    payments = [
        _Payment(
            r[0],
            r[1],
            home if r[2] is None else r[2],
            r[3] + _EPOCH,
            tuple([_Allocation(*x) for x in r[4]]) if len(r) > 4 else (),
        )
        for r in v[5]
    ]
    return _Account(  # type: ignore[no-any-return]
        account_id,
        master,
        tuple([_Lock(*r) for r in v[9]]) if v[9] else (),
        invoices,
        tuple(items),
        tuple(payments),
        v[10],
        v[11],
        plans,
        v[13],
        v[14],
        tuple([_unpack_notice(r, master) for r in v[15]]) if v[15] else (),
        tuple([_unpack_proposal(r, account_id) for r in v[16]]) if v[16] else (),
        v[6] if v[6].__class__ is bytes else v[6][0],
        v[7],
        v[8].hex() if v[8].__class__ is bytes else v[8],
        () if v[6].__class__ is bytes else _unpack_days(v[6][1:]),
        v[17],
        tuple([_Imported(*r) for r in v[18]]) if v[18] else (),
    )


def _pack_days(days: tuple[tuple[int, int], ...]) -> list[int]:
    flat: list[int] = []
    last = _EPOCH
    for day, n in days:
        flat += (day - last, n)
        last = day
    return flat


def _unpack_days(flat: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    days = []
    day = _EPOCH
    for i in range(0, len(flat), 2):
        day += flat[i]
        days.append((day, flat[i + 1]))
    return tuple(days)
