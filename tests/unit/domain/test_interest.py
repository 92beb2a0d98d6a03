"""RULES.md section 9 ("Options"): day counts, rate timeline, daily balance.

Figures are worked out by hand in each docstring; amounts are cents of EUR.
"""

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from domain.activity_run import execute
from domain.interest import (
    DAY_COUNTS,
    RATE_UNKNOWN,
    day_count_days,
    distribute,
    item_interest,
    rate_steps,
    year_fraction,
)
from domain.procedures import Procedure
from domain.proposal_run import _interest, _interest_with_options, propose
from domain.review import record_proposals
from domain.state import Account, Proposal
from tests.unit.domain.builders import account, day, invoice, item, level, pay, procedure, upsert

FIXED_9 = [(0, Decimal(9))]


def with_options(p: Procedure, **options: object) -> Procedure:
    return replace(p, **options)  # type: ignore[arg-type]


def only(acc: Account, as_of: int, proc: Procedure, rates: dict | None = None) -> Proposal:
    (p,) = propose(acc, {"P": proc}, as_of, "R/1", rates).proposals
    return p


def one_item(amount: int, due: int, *events: object) -> Account:
    return account(upsert(), invoice("I", item("I-1", amount, due)), *events)  # type: ignore[arg-type]


INTEREST_LEVEL = procedure(level(1, 1, interest=True), rate="9")


# -- day counts ----------------------------------------------------------------------------


def test_30e_360_counts_the_31st_as_the_30th() -> None:
    """30.01.2024 to 31.03.2024: 30E/360 counts 360*0 + 30*(3-1) + (30-30) = 60 days, the
    calendar 61. At 12 % on 1000.00: 30E/360 100000*0.12*60/360 = 2000 (20.00) exactly;
    act/365 100000*0.12*61/365 = 2005.48 -> 2005."""
    a, b = day("2024-01-30"), day("2024-03-31")
    assert day_count_days("30E/360", a, b) == 60
    assert day_count_days("act/365", a, b) == 61
    acc = one_item(100000, a)
    proc = procedure(level(1, 1, interest=True), rate="12")
    thirty = only(acc, b, with_options(proc, day_count="30E/360"))
    assert thirty.interest == 2000
    (part,) = thirty.items[0].interest_parts or ()
    assert (part.days, part.rate_percent, part.base_amount, part.amount) == (60, 12, 100000, 2000)
    assert part.day_count == "30E/360"
    assert only(acc, b, proc).interest == 2005


def test_act_360_and_act_act_isda() -> None:
    """100000 at 9 % from 2023-12-02 to 2024-01-31 (60 days, 30 in 2023, 30 in 2024).
    act/360: 9000*60/360 = 1500. act/act: 9000*(30/365 + 30/366) = 739.73 + 737.70
    = 1477.43 -> 1477. act/365: 9000*60/365 = 1479.45 -> 1479."""
    a, b = day("2023-12-02"), day("2024-01-31")
    acc = one_item(100000, a)
    assert only(acc, b, with_options(INTEREST_LEVEL, day_count="act/360")).interest == 1500
    act_act = only(acc, b, with_options(INTEREST_LEVEL, day_count="act/act"))
    assert act_act.interest == 1477
    assert year_fraction("act/act", a, b) == Fraction(30, 365) + Fraction(30, 366)
    assert only(acc, b, INTEREST_LEVEL).interest == 1479


def test_act_act_a_whole_year_is_one() -> None:
    for year in (2023, 2024):
        assert year_fraction("act/act", day(f"{year}-01-01"), day(f"{year + 1}-01-01")) == 1


# -- rate timeline -------------------------------------------------------------------------

RATES = {"BASE": ((day("2023-07-01"), Decimal("4")), (day("2024-02-01"), Decimal("5")))}


def test_a_rate_change_inside_the_period_cuts_it() -> None:
    """1000.00 due 2024-01-01, dunned 2024-03-01, base rate BASE + 5: 4 % from 2023-07-01
    and 5 % from 2024-02-01. Part 1: 01.01.-01.02., 31 days at 9 %: 100000*0.09*31/365
    = 764.38; part 2: 01.02.-01.03., 29 days at 10 %: 100000*0.10*29/365 = 794.52.
    Sum unrounded 569000/365 = 1558.90 -> 1559 (15.59), shown as 764 and 795."""
    acc = one_item(100000, day("2024-01-01"))
    proc = with_options(
        INTEREST_LEVEL, interest_base_rate="BASE", interest_spread_percent=Decimal(5)
    )
    p = only(acc, day("2024-03-01"), proc, RATES)
    assert p.interest == 1559
    parts = p.items[0].interest_parts or ()
    assert [(x.end - x.start, x.rate_percent, x.amount) for x in parts] == [
        (31, 9, 764),
        (29, 10, 795),
    ]


def test_a_period_with_a_day_before_the_first_rate_gets_no_interest() -> None:
    """BASE is known from 2023-07-01; an item due 2023-06-20 has 11 days without a rate:
    it gets no interest (reason ``rate_unknown``) and, once executed, its interest-until
    day stays where it was; the other item of the notice is charged."""
    acc = account(
        upsert(),
        invoice(
            "I", item("I-1", 100000, day("2023-06-20")), item("I-2", 100000, day("2024-01-01"))
        ),
    )
    proc = with_options(INTEREST_LEVEL, interest_base_rate="BASE")
    p = only(acc, day("2024-01-31"), proc, RATES)
    early, late = p.items
    assert (early.interest, early.interest_reason, early.interest_parts) == (0, RATE_UNKNOWN, ())
    assert late.interest == p.interest == 100000 * 4 * 30 // 36500 + 1  # 328.77 -> 329
    done, _ = execute(record_proposals(acc, [p]), p.proposal_id)
    until = {it.item_id: it.interest_until_day for it in done.items}
    assert until == {"I-1": None, "I-2": day("2024-01-31")}


def test_rate_steps_take_the_latest_valid_from() -> None:
    timeline = RATES["BASE"]
    assert rate_steps(timeline, Decimal(0), day("2023-06-30"), day("2023-07-05")) is None
    assert rate_steps(timeline, Decimal(1), day("2024-01-01"), day("2024-03-01")) == [
        (day("2024-01-01"), Decimal(5)),
        (day("2024-02-01"), Decimal(6)),
    ]


# -- daily balance -------------------------------------------------------------------------


def test_a_partial_payment_on_day_10_of_40_lowers_the_interest_from_day_10() -> None:
    """1000.00 due on day D, 400.00 paid on D+10, dunned on D+40 at 36.5 % act/365 (a
    cent a day per 10.00). daily_balance: 10 days on 1000.00 = 10.00, 30 days on 600.00 =
    18.00, 28.00 in all; open_amount (today's rule): 40 days on 600.00 = 24.00."""
    due = day("2024-05-01")
    acc = one_item(100000, due, pay("PAY-1", 40000, due + 10))
    proc = procedure(level(1, 1, interest=True), rate="36.5")
    daily = only(acc, due + 40, with_options(proc, interest_base="daily_balance"))
    assert daily.interest == 2800
    parts = daily.items[0].interest_parts or ()
    assert [(x.start - due, x.end - due, x.base_amount, x.amount) for x in parts] == [
        (0, 10, 100000, 1000),
        (10, 40, 60000, 1800),
    ]
    assert only(acc, due + 40, proc).interest == 2400


def test_a_payment_before_the_period_sets_the_first_balance() -> None:
    due = day("2024-05-01")
    acc = one_item(100000, due, pay("PAY-1", 40000, due - 3))
    proc = procedure(level(1, 1, interest=True), rate="36.5", min_interest="0")
    daily = only(acc, due + 40, with_options(proc, interest_base="daily_balance"))
    assert daily.interest == 2400


# -- properties ----------------------------------------------------------------------------

days = st.integers(min_value=day("2020-01-01"), max_value=day("2030-12-31"))
conventions = st.sampled_from(DAY_COUNTS)
amounts = st.integers(min_value=0, max_value=10**9)
rates = st.decimals(min_value=0, max_value=50, places=3)


@given(days, st.integers(1, 800), st.integers(1, 800), amounts, rates, conventions)
def test_splitting_a_period_where_the_rate_does_not_change_changes_nothing(
    start: int, first: int, second: int, base: int, rate: Decimal, convention: str
) -> None:
    mid, end = start + first, start + first + second
    _, whole = item_interest(start, end, [(start, base)], [(start, rate)], convention)
    _, left = item_interest(start, mid, [(start, base)], [(start, rate)], convention)
    _, right = item_interest(mid, end, [(mid, base)], [(mid, rate)], convention)
    assert whole == left + right
    cut, _ = item_interest(start, end, [(start, base), (mid, base)], [(start, rate)], convention)
    assert sum(p.days for p in cut) == day_count_days(convention, start, end)


@given(days, st.integers(0, 3000))
def test_act_360_is_never_below_act_365(start: int, length: int) -> None:
    assert year_fraction("act/360", start, start + length) >= year_fraction(
        "act/365", start, start + length
    )


@given(days, st.integers(0, 2000), st.integers(0, 100), amounts, amounts, rates, conventions)
def test_interest_is_monotone_in_days_and_balance(
    start: int, length: int, more: int, base: int, extra: int, rate: Decimal, convention: str
) -> None:
    def interest(n: int, b: int) -> Fraction:
        return item_interest(start, start + n, [(start, b)], [(start, rate)], convention)[1]

    assert interest(length + more, base) >= interest(length, base)
    assert interest(length, base + extra) >= interest(length, base)


@given(st.lists(st.fractions(min_value=0, max_value=10**6), max_size=8))
def test_shares_add_up_to_the_total_rounded_once(exacts: list[Fraction]) -> None:
    shares, total = distribute(exacts)
    assert sum(shares) == total
    assert all(abs(s - x) < 1 for s, x in zip(shares, exacts, strict=True))


@given(
    st.lists(
        st.tuples(st.integers(1, 10**8), st.integers(0, 400), st.integers(0, 30)),
        min_size=1,
        max_size=5,
    ),
    rates,
)
def test_the_options_path_with_no_option_equals_todays_rule(
    rows: list[tuple[int, int, int]], rate: Decimal
) -> None:
    """With act/365, a fixed rate and today's open amount, the general computation gives
    exactly the figures of stage 1's integer one (it is only used when an option is set)."""
    as_of = day("2025-01-01")
    acc = account(
        upsert(), invoice("I", *(item(f"I-{n}", a, as_of - d) for n, (a, d, _) in enumerate(rows)))
    )
    listed = [(it, 1, "advanced") for it in acc.items]
    terms = procedure(level(1, 1, interest=True), rate=str(rate)).terms("EUR")
    shares, total = _interest(terms, listed, as_of)
    general = _interest_with_options(acc, terms, listed, as_of, {})
    assert (general.shares, general.total) == (shares, total)
