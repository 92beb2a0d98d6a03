"""Hypothesis strategies: procedures, per-topic event streams, accounts with a dunning past."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import strategies as st

from domain.activity_run import execute
from domain.events import (
    AccountUpserted,
    Allocation,
    DueDateChanged,
    DunningLockReleased,
    DunningLockSet,
    InputEvent,
    Installment,
    InstallmentPlanCancelled,
    InstallmentPlanCreated,
    InvoiceCancelled,
    InvoiceIssued,
    InvoiceItem,
    PaymentReceived,
    PaymentReversed,
)
from domain.procedures import ACTIVITIES, Level, Procedure
from domain.proposal_run import propose
from domain.reversal import reverse
from domain.review import record_proposals
from domain.state import Account, new_account
from tests.unit.domain.builders import ACCOUNT, ADDRESS, apply, day

BASE = day("2024-01-01")
CURRENCIES = ("EUR", "JPY", "BHD")

_small_amount = st.sampled_from(["0", "0.01", "1", "2.5", "5", "10", "20", "50", "100.005"])


@st.composite
def procedures(draw: st.DrawFn, pid: str = "P") -> Procedure:
    n = draw(st.integers(1, 4))
    days = sorted(draw(st.lists(st.integers(0, 45), min_size=n, max_size=n)))
    mins = sorted(draw(st.lists(_small_amount, min_size=n, max_size=n)), key=lambda x: Decimal(x))
    levels = tuple(
        Level(
            level=i + 1,
            days_in_arrears=days[i],
            min_item_amount=Decimal(mins[i]),
            min_total_amount=Decimal(draw(_small_amount)),
            charge=Decimal(draw(_small_amount)),
            interest=draw(st.booleans()),
            activities=tuple(
                draw(st.lists(st.sampled_from(ACTIVITIES), unique=True, min_size=1, max_size=3))
            ),
        )
        for i in range(n)
    )
    return Procedure(
        id=pid,
        min_days_between_dunnings=draw(st.integers(0, 20)),
        interest_rate_percent=Decimal(draw(st.sampled_from(["0", "5", "9.0", "12.34", "36.5"]))),
        min_interest_amount=Decimal(draw(st.sampled_from(["0", "0.01", "1.00", "5"]))),
        auto_approve=draw(st.booleans()),
        levels=levels,
    )


@dataclass(frozen=True)
class Streams:
    """Events per input topic; each topic keeps its order, topics interleave freely."""

    accounts: tuple[InputEvent, ...]
    invoices: tuple[InputEvent, ...]
    payments: tuple[InputEvent, ...]
    due_dates: tuple[InputEvent, ...]

    def in_topic_order(self) -> list[InputEvent]:
        return [*self.accounts, *self.invoices, *self.payments, *self.due_dates]

    def topics(self) -> list[tuple[InputEvent, ...]]:
        return [self.accounts, self.invoices, self.payments, self.due_dates]


_amount = st.one_of(
    st.integers(500, 50000),
    st.integers(500, 50000),
    st.integers(1, 200),
    st.just(1),
    st.integers(10**12, 10**15),
)


@st.composite
def streams(draw: st.DrawFn, procedure_ids: tuple[str, ...] = ("P",)) -> Streams:
    counter = iter(range(10**6))

    def eid() -> str:
        return f"e{next(counter)}"

    home = draw(st.sampled_from(CURRENCIES))
    accounts: list[InputEvent] = [
        AccountUpserted(eid(), ACCOUNT, "Anna", "de", home, procedure_ids[0], ADDRESS, None)
    ]
    for n in range(draw(st.integers(0, 2))):
        start = BASE + draw(st.integers(0, 150))
        accounts.append(
            DunningLockSet(
                eid(),
                ACCOUNT,
                f"L{n}",
                "dispute",
                start,
                start + draw(st.integers(0, 40)),
                draw(st.sampled_from([None, "I0-0", "I1-0"])),
            )
        )
        if draw(st.booleans()):
            accounts.append(DunningLockReleased(eid(), ACCOUNT, f"L{n}"))

    invoices: list[InputEvent] = []
    item_ids: list[str] = []
    invoice_items: dict[str, list[str]] = {}
    for i in range(draw(st.integers(1, 4))):
        currency = draw(st.sampled_from([home, home, "EUR"]))
        items = []
        for j in range(draw(st.integers(1, 3))):
            iid = f"I{i}-{j}"
            items.append(
                InvoiceItem(
                    iid,
                    draw(_amount),
                    BASE + draw(st.integers(0, 120)),
                    draw(st.sampled_from([None, None, None, *procedure_ids, "UNKNOWN"])),
                    draw(st.sampled_from([None, None, "", "g"])),
                )
            )
            item_ids.append(iid)
        invoice_items[f"INV{i}"] = [x.item_id for x in items]
        invoices.append(InvoiceIssued(eid(), ACCOUNT, f"INV{i}", currency, BASE - 10, tuple(items)))
    if draw(st.booleans()) and len(invoices) > 1:
        invoices.append(
            InvoiceCancelled(eid(), ACCOUNT, draw(st.sampled_from(sorted(invoice_items))))
        )

    payments: list[InputEvent] = []
    for k in range(draw(st.integers(0, 3))):
        amount = draw(_amount)
        allocations = []
        left = amount
        for target in draw(
            st.lists(st.sampled_from([*item_ids, "NOPE", "PL-0"]), unique=True, max_size=2)
        ):
            if left <= 0:
                break
            part = draw(st.integers(1, left))
            allocations.append(Allocation(target, part))
            left -= part
        payments.append(
            PaymentReceived(
                eid(),
                ACCOUNT,
                f"PAY{k}",
                amount,
                draw(st.sampled_from([home, "EUR"])),
                BASE + draw(st.integers(0, 150)),
                None,
                tuple(allocations) or None,
            )
        )
        if draw(st.integers(0, 3)) == 0:
            payments.append(PaymentReversed(eid(), ACCOUNT, f"PAY{k}", "returned"))

    due_dates: list[InputEvent] = []
    for _ in range(draw(st.integers(0, 2))):
        due_dates.append(
            DueDateChanged(
                eid(),
                ACCOUNT,
                draw(st.sampled_from([*item_ids, "PL-0", "NEVER"])),
                BASE + draw(st.integers(0, 150)),
                "agreed",
            )
        )
    if draw(st.booleans()):
        sources = invoice_items[draw(st.sampled_from(sorted(invoice_items)))]
        installments = tuple(
            Installment(
                f"PL-{n}",
                # thousandths: whole units, cents, or (not in JPY) a thousandth
                draw(_amount) * draw(st.sampled_from([1000, 10, 1])),
                BASE + draw(st.integers(20, 200)),
            )
            for n in range(draw(st.integers(1, 3)))
        )
        due_dates.append(InstallmentPlanCreated(eid(), ACCOUNT, "PL", tuple(sources), installments))
        if draw(st.booleans()):
            due_dates.append(InstallmentPlanCancelled(eid(), ACCOUNT, "PL"))
    return Streams(tuple(accounts), tuple(invoices), tuple(payments), tuple(due_dates))


@st.composite
def interleavings(draw: st.DrawFn, s: Streams) -> list[InputEvent]:
    """The events of ``s`` in a random order that keeps every topic's order."""
    topics = s.topics()
    labels = [t for t, events in enumerate(topics) for _ in events]
    order = draw(st.permutations(labels))
    positions = [0] * len(topics)
    result = []
    for t in order:
        result.append(topics[t][positions[t]])
        positions[t] += 1
    return result


@st.composite
def dunned_accounts(draw: st.DrawFn) -> tuple[Account, dict[str, Procedure]]:
    """An account from random events, after a few proposal runs on random days, of which
    some proposals were executed, some rejected (left pending) and some notices reversed."""
    procs = {"P": draw(procedures("P")), "Q": draw(procedures("Q"))}
    s = draw(streams(("P", "Q")))
    acc = apply(new_account(ACCOUNT), *s.in_topic_order())
    as_of = BASE + draw(st.integers(0, 60))
    for run in range(draw(st.integers(1, 6))):
        as_of += draw(st.integers(1, 60))
        run_id = f"R{run}/1"
        open_items = [it for it in acc.items if it.open_amount > 1]
        if open_items and draw(st.integers(0, 1)) == 0:  # a partial payment since the last run
            dunned = [it for it in open_items if it.level >= 1]
            target = draw(st.sampled_from(dunned or open_items))
            part = draw(st.integers(1, target.open_amount - 1) | st.just(target.open_amount - 1))
            acc = apply(
                acc,
                PaymentReceived(
                    f"late-{run}",
                    ACCOUNT,
                    f"LATE{run}",
                    part,
                    target.currency,
                    as_of,
                    None,
                    (Allocation(target.item_id, part),),
                ),
            )
        acc = record_proposals(acc, propose(acc, procs, as_of, run_id).proposals)
        for p in acc.pending:
            if p.run_id == run_id and draw(st.integers(0, 4)) > 0:
                acc, notice = execute(acc, p.proposal_id)
                if draw(st.integers(0, 5)) == 0:
                    items = None if draw(st.booleans()) else (notice.history.items[0].item_id,)
                    acc, _ = reverse(acc, notice.notice_id, items, f"rev-{run}", "clerk", "x")
    return acc, procs
