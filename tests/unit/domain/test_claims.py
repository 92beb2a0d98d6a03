"""RULES.md decision 12: charges and interest as claimable items.

A procedure that sets ``clearing_order`` keeps each executed notice's charge and interest
as open items of the account (``<notice id>/charge``, ``<notice id>/interest``), listed on
later notices of the group and cleared by unallocated money in the clearing order.
Figures are worked out by hand in each docstring; amounts are cents of EUR.
"""

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.activity_run import execute
from domain.claims import claims_of
from domain.commands import PrintDunningLetter
from domain.procedures import CHARGES_FIRST, PRINCIPAL_FIRST, Procedure
from domain.proposal_run import propose
from domain.retention import compact
from domain.reversal import reverse
from domain.review import record_proposals
from domain.settlement import credit, held, open_claims, settle
from domain.state import Account, Proposal
from tests.unit.domain.builders import (
    account,
    apply,
    day,
    invoice,
    item,
    level,
    opens,
    pay,
    procedure,
    upsert,
)

# Level 1 from 7 days with a charge of 5.00, level 2 from 21 days with 9 % interest and a
# charge of 10.00; 14 days between notices.
BASE = procedure(
    level(1, 7, charge="5.00"),
    level(2, 21, charge="10.00", interest=True),
    rate="9",
)
DUE = day("2024-01-01")
FIRST = day("2024-01-15")  # 14 days in arrears: level 1
SECOND = day("2024-02-05")  # 35 days in arrears: level 2


def with_order(order: tuple[str, ...] | None) -> Procedure:
    return replace(BASE, clearing_order=order)


def only(acc: Account, as_of: int, proc: Procedure, run: str = "R/1") -> Proposal:
    (p,) = propose(acc, {"P": proc}, as_of, run).proposals
    return p


def dunned(acc: Account, as_of: int, proc: Procedure, run: str = "R/1") -> tuple[Account, str]:
    """``acc`` after the group's proposal on ``as_of`` was executed, and the notice id."""
    p = only(acc, as_of, proc, run)
    acc, notice = execute(record_proposals(acc, [p]), p.proposal_id)
    return acc, notice.notice_id


def one_invoice(*events: object) -> Account:
    return account(upsert(), invoice("I", item("I-1", 10000, DUE)), *events)  # type: ignore[arg-type]


def claims(acc: Account) -> dict[str, int]:
    return {c.item_id: amount for c, amount in open_claims(acc)}


def test_a_payment_that_first_clears_the_charge() -> None:
    """Invoice 100.00 due 01.01.2024; the notice of 15.01. (level 1) charges 5.00, pay by
    29.01. With ``[charges, interest, principal]`` an unallocated payment of 20.00 on
    20.01. clears the charge first: charge 5.00 - 5.00 = 0, principal 100.00 - 15.00 =
    85.00. The notice of 05.02. (level 2) lists the principal 85.00 and no charge (it is
    paid); interest 85.00 x 9 % x 35/365 = 0.7335 -> 0.73, charge 10.00: total due
    85.00 + 10.00 + 0.73 = 95.73.

    With ``[principal, interest, charges]`` the same 20.00 clears the principal (80.00) and
    leaves the charge open (5.00): the notice of 05.02. lists both, interest on 80.00 for
    35 days = 0.6904 -> 0.69, total 80.00 + 5.00 (charge item) + 10.00 + 0.69 = 95.69."""
    for order, principal, charge, total in (
        (CHARGES_FIRST, 8500, 0, 9573),
        (PRINCIPAL_FIRST, 8000, 500, 9569),
    ):
        proc = with_order(order)
        acc, notice_id = dunned(one_invoice(), FIRST, proc)
        charge_id = f"{notice_id}/charge"
        assert claims(acc) == {charge_id: 500}
        acc = apply(acc, pay("PAY-1", 2000, day("2024-01-20")))
        assert opens(acc) == {"I-1": principal}
        assert claims(acc) == {charge_id: charge}
        second = only(acc, SECOND, proc, "R/2")
        assert [i.open_amount for i in second.items] == [principal]
        assert [(c.item_id, c.kind, c.open_amount) for c in second.claims] == (
            [(charge_id, "charge", 500)] if charge else []
        )
        assert (second.charge, second.total_due) == (1000, total)


def test_without_clearing_order_nothing_is_kept() -> None:
    """The procedure says nothing: the charge is a posting only, today's rule. The 20.00
    clears the principal (80.00), no item is kept, the second notice has no claims and
    total due 80.00 + 10.00 + 0.69 = 90.69, as before."""
    acc, _ = dunned(one_invoice(), FIRST, BASE)
    assert acc.notices[0].clearing_order is None
    assert claims(acc) == {}
    acc = apply(acc, pay("PAY-1", 2000, day("2024-01-20")))
    assert opens(acc) == {"I-1": 8000}
    second = only(acc, SECOND, BASE, "R/2")
    assert (second.claims, second.total_due) == ((), 9069)


def test_the_notice_and_its_letter_list_the_open_charge_and_count_it() -> None:
    """Charges first; nothing paid. The second notice (05.02.) lists the principal 100.00
    and the first notice's charge item 5.00 (due 29.01., 7 days late, level 0); interest
    100.00 x 9 % x 35/365 = 0.863 -> 0.86; total 100.00 + 5.00 + 10.00 + 0.86 = 115.86.
    It keeps its own charge 10.00 and interest 0.86 as items (pay by 19.02.)."""
    proc = with_order(CHARGES_FIRST)
    acc, first_id = dunned(one_invoice(), FIRST, proc)
    p = only(acc, SECOND, proc, "R/2")
    acc, notice = execute(record_proposals(acc, [p]), p.proposal_id)
    (letter,) = [c for c in notice.commands if isinstance(c, PrintDunningLetter)]
    rows = [(i.item_id, i.kind, i.open_amount, i.level, i.days_in_arrears) for i in letter.items]
    assert rows == [("I-1", None, 10000, 2, 35), (f"{first_id}/charge", "charge", 500, 0, 7)]
    assert (letter.charge, letter.interest, letter.total_due) == (1000, 86, 11586)
    history = notice.history
    assert history.total_due == 11586
    assert history.claims is not None
    assert [(c.item_id, c.amount, c.open_amount, c.due_date) for c in history.claims] == [
        (f"{notice.notice_id}/charge", 1000, 1000, day("2024-02-19")),
        (f"{notice.notice_id}/interest", 86, 86, day("2024-02-19")),
        (f"{first_id}/charge", 500, 500, day("2024-01-29")),
    ]
    assert claims(acc) == {
        f"{first_id}/charge": 500,
        f"{notice.notice_id}/charge": 1000,
        f"{notice.notice_id}/interest": 86,
    }
    # executing again gives the same notice (rebuilt from state)
    assert execute(acc, p.proposal_id)[1] == notice


def test_each_order_takes_the_kinds_in_turn_and_each_kind_by_due_date() -> None:
    """Two notices: 15.01. (charge 5.00, pay by 29.01.) and 05.02. (charge 10.00, interest
    100.00 x 9 % x 35/365 = 0.86, both pay by 19.02.). Open: principal 100.00, charge 1
    5.00, charge 2 10.00, interest 0.86.

    ``[charges, interest, principal]``, 12.00 on 06.02.: the charges by due date, charge 1
    5.00 (7.00 left), then 7.00 of charge 2 (3.00 open); interest 0.86 and the principal
    100.00 untouched. ``[principal, interest, charges]``, 101.00 on 06.02.: the principal
    100.00 (1.00 left), the interest 0.86 (0.14 left), 0.14 of charge 1 (4.86 open);
    charge 2 untouched."""
    for order, amount, principal, expected in (
        (CHARGES_FIRST, 1200, 10000, {"c1": 0, "c2": 300, "int": 86}),
        (PRINCIPAL_FIRST, 10100, 0, {"c1": 486, "c2": 1000, "int": 0}),
    ):
        proc = with_order(order)
        acc, n1 = dunned(one_invoice(), FIRST, proc)
        acc, n2 = dunned(acc, SECOND, proc, "R/2")
        acc = apply(acc, pay("A", amount, day("2024-02-06")))
        assert opens(acc) == {"I-1": principal}
        assert claims(acc) == {
            f"{n1}/charge": expected["c1"],
            f"{n2}/charge": expected["c2"],
            f"{n2}/interest": expected["int"],
        }


def test_a_payment_before_or_on_the_notice_day_stays_on_the_principal() -> None:
    """Charges first. 30.00 received 10.01. and 20.00 received 15.01. (the notice's as-of
    day) were counted by the notice on the principal (100.00 - 50.00 = 50.00); they stay
    there when the charge 5.00 arises: charge open 5.00, principal 50.00. 10.00 received
    16.01. clears the charge first (5.00), then 5.00 of the principal: 45.00."""
    proc = with_order(CHARGES_FIRST)
    acc = one_invoice(pay("A", 3000, day("2024-01-10")), pay("B", 2000, FIRST))
    acc, notice_id = dunned(acc, FIRST, proc)
    assert (opens(acc), claims(acc)) == ({"I-1": 5000}, {f"{notice_id}/charge": 500})
    acc = apply(acc, pay("C", 1000, day("2024-01-16")))
    assert (opens(acc), claims(acc)) == ({"I-1": 4500}, {f"{notice_id}/charge": 0})


def test_an_allocation_to_the_charge_stays_on_it_and_credit_clears_it() -> None:
    """Principal first. 5.00 allocated to the charge item clears it, whatever the order.
    120.00 unallocated on 20.01. on the other account: principal 100.00, then the charge
    5.00, credit 15.00 left."""
    proc = with_order(PRINCIPAL_FIRST)
    acc, notice_id = dunned(one_invoice(), FIRST, proc)
    charge_id = f"{notice_id}/charge"
    paid = apply(acc, pay("A", 500, day("2024-01-20"), (charge_id, 500)))
    assert (opens(paid), claims(paid)) == ({"I-1": 10000}, {charge_id: 0})
    over = apply(acc, pay("B", 12000, day("2024-01-20")))
    assert (opens(over), claims(over), credit(over)) == ({"I-1": 0}, {charge_id: 0}, {"EUR": 1500})


def test_a_reversal_reverses_the_item_and_its_money_clears_the_principal() -> None:
    """Charges first. 20.00 on 20.01. clears the charge 5.00 and 15.00 of the principal
    (85.00). Reversing the notice takes the charge item out (amount 0, cancelled): the
    20.00 is unallocated again and clears the principal, 80.00. A payment allocated to the
    reversed charge joins the unallocated rest, as on a cancelled invoice (75.00)."""
    proc = with_order(CHARGES_FIRST)
    acc, notice_id = dunned(one_invoice(), FIRST, proc)
    acc = apply(acc, pay("A", 2000, day("2024-01-20")))
    assert opens(acc) == {"I-1": 8500}
    acc, rev = reverse(acc, notice_id, None, "REV-1", "clerk", "wrong")
    assert rev.history is not None and rev.history.charge == 500
    assert (opens(acc), claims(acc)) == ({"I-1": 8000}, {f"{notice_id}/charge": 0})
    acc = apply(acc, pay("B", 500, day("2024-01-21"), (f"{notice_id}/charge", 500)))
    assert opens(acc) == {"I-1": 7500}


def test_reversing_single_items_takes_back_their_interest_share_then_the_charge() -> None:
    """Items A 60.00 and B 40.00 due 01.01.2024; the notice of 05.02. (level 2) charges
    10.00 and interest: A 6000 x 9 x 35 / 36500 = 51.78, B 34.52, sum 86.30 -> 0.86,
    shares 0.51 + 0.34 = 0.85 and the missing cent to the larger remainder (A, .78):
    A 0.52, B 0.34. Reversing B: the interest item 0.86 - 0.34 = 0.52, the charge stays
    10.00 (A is still in effect). Reversing A too: both 0."""
    proc = with_order(CHARGES_FIRST)
    acc = account(upsert(), invoice("I", item("A", 6000, DUE), item("B", 4000, DUE)))
    acc, _ = dunned(acc, FIRST, proc)
    acc, n2 = dunned(acc, SECOND, proc, "R/2")
    assert {ln.item_id: ln.interest for ln in acc.notices[1].lines} == {"A": 52, "B": 34}
    acc, _ = reverse(acc, n2, ("B",), "REV-B", "clerk", "paid before")
    assert (claims(acc)[f"{n2}/interest"], claims(acc)[f"{n2}/charge"]) == (52, 1000)
    acc, _ = reverse(acc, n2, ("A",), "REV-A", "clerk", "paid before")
    assert (claims(acc)[f"{n2}/interest"], claims(acc)[f"{n2}/charge"]) == (0, 0)


def test_a_listed_charge_paid_after_the_run_makes_the_proposal_stale() -> None:
    """Charges first: the proposal of 05.02. lists the open charge 5.00 (total 115.86);
    5.00 received 06.02. clears the charge before the approval: the letter would be
    wrong, so the proposal is refused as stale (decision 1)."""
    from domain.activity_run import refusal

    proc = with_order(CHARGES_FIRST)
    acc, _ = dunned(one_invoice(), FIRST, proc)
    p = only(acc, SECOND, proc, "R/2")
    assert p.total_due == 11586 and [c.open_amount for c in p.claims] == [500]
    acc = apply(record_proposals(acc, [p]), pay("A", 500, day("2024-02-06")))
    assert opens(acc) == {"I-1": 10000}
    why = refusal(acc, p)
    assert why is not None and why[0] == "stale_proposal" and "/charge" in why[1]


def test_a_notice_that_kept_a_charge_is_kept_by_retention() -> None:
    """Retention may not forget a notice whose charge item took money. 5.00 on 20.01.
    clears the first notice's charge (charges first); the notice of 05.02. lists I-1 again,
    so under today's rules the first notice could be forgotten three years later (the
    second holds its item) -- and the 5.00 would then clear the principal. It is kept: the
    account settles the same (principal 100.00, charge 0). Without clearing_order the
    first notice is forgotten, as before."""
    for proc, kept in ((with_order(CHARGES_FIRST), 2), (BASE, 1)):
        acc, _ = dunned(one_invoice(), FIRST, proc)
        acc = apply(acc, pay("A", 500, day("2024-01-20")))
        acc, _ = dunned(acc, SECOND, proc, "R/2")
        before = (opens(acc), claims(acc), credit(acc))
        later = compact(acc, day("2027-06-01"), 730)
        assert len(later.notices) == kept
        assert (opens(later), claims(later), credit(later)) == before


# -- money is conserved ---------------------------------------------------------------------

_amounts = st.integers(min_value=1, max_value=20000)


@settings(max_examples=60, deadline=None)
@given(
    order=st.sampled_from([CHARGES_FIRST, PRINCIPAL_FIRST]),
    invoices=st.lists(
        st.tuples(st.integers(1000, 20000), st.integers(0, 20)), min_size=1, max_size=3
    ),
    payments=st.lists(
        st.tuples(_amounts, st.integers(-5, 60), st.sampled_from([None, "I0-1", "charge", "x"])),
        max_size=5,
    ),
    reversed_=st.booleans(),
    second=st.booleans(),
)
def test_total_money_is_conserved_by_clearing_in_any_order(
    order: tuple[str, ...],
    invoices: list[tuple[int, int]],
    payments: list[tuple[int, int, str | None]],
    reversed_: bool,
    second: bool,
) -> None:
    """Whatever the order, the payments, a second notice (with interest) and a reversal:
    every item and claim is between 0 and its amount, and what was paid is exactly what
    the items and claims took plus the credit plus the money held for unknown items
    (nothing made or lost)."""
    proc = with_order(order)
    events = [invoice(f"I{n}", item(f"I{n}-1", a, DUE + d)) for n, (a, d) in enumerate(invoices)]
    acc = account(upsert(), *events)
    acc, notice_id = dunned(acc, FIRST + 20, proc)
    last = notice_id
    if second:
        acc, last = dunned(acc, FIRST + 41, proc, "R/2")
        assert any(c.kind == "interest" for c in claims_of(acc.account_id, acc.notices))
    for n, (amount, offset, target) in enumerate(payments):
        allocations = () if target is None else (
            (f"{notice_id}/charge" if target == "charge" else target, min(amount, 700)),
        )
        acc = apply(acc, pay(f"P{n}", amount, FIRST + offset, *allocations))
    if reversed_:
        acc, _ = reverse(acc, last, None, "REV-1", "clerk", "test")
    _, open_, _, _ = settle(acc)
    took = sum(it.amount - it.open_amount for it in acc.items)
    kept = claims_of(acc.account_id, acc.notices)
    took += sum(c.amount - open_[c.item_id] for c in kept)
    assert all(0 <= it.open_amount <= it.amount for it in acc.items)
    assert all(0 <= open_[c.item_id] <= c.amount for c in kept)
    paid = sum(amount for amount, _, _ in payments)
    assert took + sum(credit(acc).values()) + sum(held(acc).values()) == paid


@settings(max_examples=40, deadline=None)
@given(
    invoices=st.lists(
        st.tuples(st.integers(1000, 20000), st.integers(0, 20)), min_size=1, max_size=3
    ),
    payments=st.lists(st.tuples(_amounts, st.integers(-5, 60)), max_size=5),
)
def test_principal_first_leaves_the_principal_as_todays_rule_does(
    invoices: list[tuple[int, int]], payments: list[tuple[int, int]]
) -> None:
    """``[principal, interest, charges]`` takes for the charge only what today's rule
    leaves as credit: without allocations to the charge, every invoice item has the open
    amount it has without ``clearing_order``, and the charge gets min(credit, 5.00)."""
    events = [invoice(f"I{n}", item(f"I{n}-1", a, DUE + d)) for n, (a, d) in enumerate(invoices)]
    paid = [pay(f"P{n}", amount, FIRST + offset) for n, (amount, offset) in enumerate(payments)]
    today, _ = dunned(account(upsert(), *events), FIRST + 20, BASE)
    kept, notice_id = dunned(account(upsert(), *events), FIRST + 20, with_order(PRINCIPAL_FIRST))
    today, kept = apply(today, *paid), apply(kept, *paid)
    assert opens(kept) == opens(today)
    spare = credit(today).get("EUR", 0)
    assert claims(kept) == {f"{notice_id}/charge": 500 - min(spare, 500)}


@settings(max_examples=40, deadline=None)
@given(
    order=st.sampled_from([CHARGES_FIRST, PRINCIPAL_FIRST]),
    payments=st.lists(
        st.tuples(_amounts, st.integers(-5, 60), st.sampled_from([None, "I-1", "charge"])),
        min_size=1,
        max_size=5,
    ),
    data=st.data(),
)
def test_the_items_depend_on_the_set_of_payments_not_their_arrival(
    order: tuple[str, ...], payments: list[tuple[int, int, str | None]], data: st.DataObject
) -> None:
    """RULES.md section 3 holds with charge and interest items too: the same payments
    applied in another order give the same open amounts, claims and credit."""
    proc = with_order(order)
    acc, notice_id = dunned(one_invoice(), FIRST, proc)
    acc, last = dunned(acc, SECOND, proc, "R/2")
    events = [
        pay(
            f"P{n}",
            amount,
            FIRST + offset,
            *(() if target is None else (
                (f"{notice_id}/charge" if target == "charge" else target, min(amount, 300)),
            )),
        )
        for n, (amount, offset, target) in enumerate(payments)
    ]
    shuffled = data.draw(st.permutations(events))
    one, other = apply(acc, *events), apply(acc, *shuffled)
    assert (opens(one), claims(one), credit(one)) == (opens(other), claims(other), credit(other))
