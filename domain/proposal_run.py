"""The proposal run, stage 1 of RULES.md: which groups of an account get a notice.

:func:`propose` is a pure function of the account, the procedures, the as-of day and the
run id. Its first pass only asks "does any item advance?" with integers it already has,
so an account with nothing to do costs one loop over its items and no allocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from domain import ids
from domain.charges import activities_carried_out, notice_charge
from domain.interest import (
    RATE_UNKNOWN,
    InterestPart,
    distribute,
    item_interest,
    rate_steps,
)
from domain.money import div_round_half_up
from domain.procedures import LevelTerms, Procedure, Terms
from domain.settlement import daily_balances, open_claims
from domain.state import (
    CANCELLED,
    CLOSED,
    IN_PLAN,
    Account,
    ClaimLine,
    Item,
    LeftOutItem,
    LevelChange,
    Proposal,
    ProposedItem,
    group_last_notice_day,
)

Rates = Mapping[str, tuple[tuple[int, Decimal], ...]]
"""Reference rates by rate id: ``(valid_from day, percent)``, sorted by day."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the proposal run found for one account.

    ``unknown_procedure`` names the procedure that could not be found: the account's own
    (then nothing is dunned) or, failing that, the smallest unknown override of an
    overdue open item (those items are not dunned).
    """

    proposals: tuple[Proposal, ...]
    unknown_procedure: str | None
    pending_groups: int = 0
    """Groups left out (reason ``pending_proposal``): they would be looked at, but an
    undecided proposal of an earlier run is still pending for them."""


_NOTHING = Evaluation((), None)

ADVANCED = "advanced"
HELD = "held"
DECREASED = "decreased"


def item_level(terms: Terms, level: int, open_amount: int, days: int) -> int:
    """Step 2 of the proposal run: the proposed level of an overdue item.

    ``level`` above the procedure's highest (the procedure changed) counts as the highest.
    """
    top = terms.top
    cur = level if level < top else top
    levels = terms.levels
    if cur < top:
        nxt = levels[cur + 1]
        assert nxt is not None
        if days >= nxt.days_in_arrears and open_amount >= nxt.min_item:
            return cur + 1
    if cur >= 1:
        here = levels[cur]
        assert here is not None
        if open_amount < here.min_item:
            while cur >= 1:
                lv = levels[cur]
                assert lv is not None
                if open_amount >= lv.min_item:
                    break
                cur -= 1
    return cur


def _locked_item(account: Account, item_id: str, day: int) -> bool:
    for lock in account.locks:
        if lock.item_id == item_id and lock.valid_from <= day <= lock.valid_to:
            return True
    return False


def propose(
    account: Account,
    procedures: Mapping[str, Procedure],
    as_of: int,
    run_id: str,
    rates: Rates | None = None,
) -> Evaluation:
    """Steps 1-7 of "Proposal run (stage 1)" for one account on day ``as_of``; ``rates``
    are the reference rates known (``dunning.rates``), for procedures with a base rate."""
    master = account.master
    if master is None:
        return _NOTHING
    default_id = master.dunning_procedure
    default = procedures.get(default_id)
    if default is None:
        return Evaluation((), default_id)
    locks = account.locks
    if locks:
        for lock in locks:
            if lock.item_id is None and lock.valid_from <= as_of <= lock.valid_to:
                return _NOTHING

    hot, unknown = _advancing_groups(account, procedures, default_id, default, as_of)
    if hot is None:
        return _NOTHING if unknown is None else Evaluation((), unknown)

    proposals = []
    waiting = _pending_groups(account, run_id)
    pending_groups = 0
    for key in sorted(hot):
        if waiting and key in waiting:
            pending_groups += 1
            continue
        pid, currency, group = key
        procedure = default if pid == default_id else procedures[pid]
        proposal = _group_proposal(
            account, procedure.terms(currency), key, default_id, as_of, run_id, rates or {}
        )
        if proposal is not None:
            proposals.append(proposal)
    return Evaluation(tuple(proposals), unknown, pending_groups)


def _advancing_groups(
    account: Account,
    procedures: Mapping[str, Procedure],
    default_id: str,
    default: Procedure,
    as_of: int,
) -> tuple[set[tuple[str, str, str]] | None, str | None]:
    """The groups with an item that advances on ``as_of`` (``None``: none), and the
    smallest unknown procedure override of an overdue open item."""
    locks = account.locks
    hot: set[tuple[str, str, str]] | None = None
    unknown: str | None = None
    for it in account.items:
        if it.status or it.open_amount <= 0:
            continue
        days = as_of - it.due_day
        if days < 1:
            continue
        pid = it.procedure
        if pid is None or pid == default_id:
            pid = default_id
            terms = default.terms(it.currency)
        else:
            override = procedures.get(pid)
            if override is None:
                if unknown is None or pid < unknown:
                    unknown = pid
                continue
            terms = override.terms(it.currency)
        cur = it.level
        if cur >= terms.top:
            continue
        nxt = terms.levels[cur + 1]
        assert nxt is not None
        if days < nxt.days_in_arrears or it.open_amount < nxt.min_item:
            continue
        if locks and _locked_item(account, it.item_id, as_of):
            continue
        key = (pid, it.currency, it.group)
        if hot is None:
            hot = {key}
        else:
            hot.add(key)
    return hot, unknown


def _pending_groups(account: Account, run_id: str) -> set[tuple[str, str, str]] | None:
    """The groups with an undecided proposal of another run than ``run_id`` (RULES.md
    "Undecided proposals"): they get no new proposal until it is decided."""
    if not account.pending:
        return None
    return {
        (p.procedure_id, p.currency, p.dunning_group) for p in account.pending if p.run_id != run_id
    }


def _exclusion(account: Account, it: Item, as_of: int) -> str | None:
    st = it.status
    if st in (CANCELLED, CLOSED):
        return "cancelled"
    if st == IN_PLAN:
        return "installment_plan"
    if it.open_amount <= 0:
        return "paid"
    if as_of - it.due_day < 1:
        return "not_due"
    if account.locks and _locked_item(account, it.item_id, as_of):
        return "locked"
    return None


@dataclass(slots=True)
class _Sorted:
    """A group's items sorted out for a notice: listed (with new level and reason), level
    changes to 0, left out, the notice's level and the listed items' open total."""

    listed: list[tuple[Item, int, str]]
    changes: list[LevelChange]
    left_out: list[LeftOutItem]
    level: int = 0
    total_open: int = 0


def _sort_out(
    account: Account, terms: Terms, members: list[Item], as_of: int, last: int | None
) -> _Sorted:
    out = _Sorted([], [], [])
    first = terms.levels[1]
    assert first is not None
    for it in members:
        why = _exclusion(account, it, as_of)
        if why is not None:
            if it.open_amount > 0 or (
                last is not None and it.level >= 1 and it.last_dunned_day == last
            ):
                out.left_out.append(LeftOutItem(it.item_id, why))
            continue
        days = as_of - it.due_day
        cur = it.level
        new = item_level(terms, cur, it.open_amount, days)
        if new >= 1:
            reason = ADVANCED if new > cur else (DECREASED if new < cur else HELD)
            out.listed.append((it, new, reason))
            out.total_open += it.open_amount
            if new > out.level:
                out.level = new
        elif cur != 0:
            out.changes.append(LevelChange(it.item_id, cur, 0, DECREASED))
        else:
            why = (
                "below_days_in_arrears" if days < first.days_in_arrears else "below_min_item_amount"
            )
            out.left_out.append(LeftOutItem(it.item_id, why))
    return out


@dataclass(slots=True)
class _Interest:
    """The interest of a notice: share per listed item (``None``: the level has none),
    the total, and with an option of RULES.md section 9 each item's parts and reason."""

    shares: list[int] | None = None
    total: int = 0
    parts: list[tuple[InterestPart, ...]] | None = None
    reasons: list[str | None] | None = None


def _proposed_items(
    listed: list[tuple[Item, int, str]], found: _Interest, as_of: int
) -> tuple[ProposedItem, ...]:
    shares = found.shares
    items = []
    for index, (it, new, reason) in enumerate(listed):
        until = it.interest_until_day
        interest_from = None
        if shares is not None:
            interest_from = it.due_day if until is None or until < it.due_day else until
        items.append(
            ProposedItem(
                item_id=it.item_id,
                invoice_id=it.invoice_id,
                open_amount=it.open_amount,
                due_date=it.due_day,
                days_in_arrears=as_of - it.due_day,
                previous_level=it.level,
                new_level=new,
                reason=reason,
                interest=shares[index] if shares is not None else 0,
                interest_from=interest_from,
                last_dunned_date=it.last_dunned_day,
                interest_until_date=until,
                interest_parts=found.parts[index] if found.parts is not None else None,
                interest_reason=found.reasons[index] if found.reasons is not None else None,
            )
        )
    return tuple(items)


def _group_proposal(
    account: Account,
    terms: Terms,
    key: tuple[str, str, str],
    default_id: str,
    as_of: int,
    run_id: str,
    rates: Rates,
) -> Proposal | None:
    pid, currency, group = key
    last = group_last_notice_day(account, pid, currency, group)
    if last is not None and as_of - last < terms.min_days_between_dunnings:
        return None
    members = [
        it
        for it in account.items
        if it.currency == currency and it.group == group and (it.procedure or default_id) == pid
    ]
    found = _sort_out(account, terms, members, as_of, last)
    if found.level == 0:
        return None
    lv = terms.levels[found.level]
    assert lv is not None
    if found.total_open < lv.min_total:
        return None
    listed = found.listed
    listed.sort(key=lambda entry: (entry[0].due_day, entry[0].item_id))
    interest = _Interest()
    if lv.interest:
        if terms.plain_interest:
            interest.shares, interest.total = _interest(terms, listed, as_of)
        else:
            interest = _interest_with_options(account, terms, listed, as_of, rates)
    charge = _charge(lv, found.total_open)
    claims = _listed_claims(account, key) if account.notices else ()
    total_due = found.total_open + charge + interest.total + sum(c.open_amount for c in claims)
    activities, below = activities_carried_out(lv.activities, lv.activity_min, total_due)
    return Proposal(
        proposal_id=ids.proposal_id(run_id, account.account_id, pid, currency, group),
        run_id=run_id,
        account_id=account.account_id,
        procedure_id=pid,
        dunning_group=group,
        currency=currency,
        as_of_date=as_of,
        level=found.level,
        activities=activities,
        charge=charge,
        interest=interest.total,
        total_due=total_due,
        items=_proposed_items(listed, interest, as_of),
        level_changes=tuple(found.changes),
        left_out=tuple(found.left_out),
        auto_approve=terms.auto_approve,
        last_notice_date=last,
        activities_below_minimum=below,
        pay_within_days=lv.pay_within_days,
        claims=claims,
        clearing_order=terms.clearing_order,
    )


def _listed_claims(account: Account, key: tuple[str, str, str]) -> tuple[ClaimLine, ...]:
    """The group's open charge and interest items of earlier notices (RULES.md decision
    12), in (due day, item id) order: listed on the notice and counted in its total."""
    pid, currency, group = key
    return tuple(
        sorted(
            (
                ClaimLine(cl.item_id, cl.kind, cl.notice_id, amount, cl.due_day)
                for cl, amount in open_claims(account)
                if amount > 0
                and (cl.procedure_id, cl.currency, cl.group) == (pid, currency, group)
            ),
            key=lambda c: (c.due_day, c.item_id),
        )
    )


def _charge(lv: LevelTerms, total_open: int) -> int:
    """Step 4's charge, with the percentage charge of RULES.md section 9."""
    return notice_charge(lv.charge, total_open, lv.charge_percent, lv.charge_min, lv.charge_max)


def _interest_start(it: Item) -> int:
    until = it.interest_until_day
    return it.due_day if until is None or until < it.due_day else until


def _interest_with_options(
    account: Account,
    terms: Terms,
    listed: list[tuple[Item, int, str]],
    as_of: int,
    rates: Rates,
) -> _Interest:
    """Step 5 with the options of RULES.md section 9: day count, rate timeline, daily
    balance. An item whose period has a day without a rate gets none (``rate_unknown``)."""
    exacts: list[Fraction] = []
    found = _Interest(parts=[], reasons=[])
    assert found.parts is not None and found.reasons is not None
    fixed = [(0, Decimal(terms.rate_num) / Decimal(terms.rate_den))]
    for it, _, _ in listed:
        start = _interest_start(it)
        steps: list[tuple[int, Decimal]] | None = fixed
        if terms.base_rate is not None:
            timeline = rates.get(terms.base_rate, ())
            steps = rate_steps(timeline, terms.spread, start, as_of) if start < as_of else fixed
        if steps is None:
            exacts.append(Fraction(0))
            found.parts.append(())
            found.reasons.append(RATE_UNKNOWN)
            continue
        balances = (
            daily_balances(account, it.item_id, start, as_of)
            if terms.daily_balance
            else [(start, it.open_amount)]
        )
        parts, exact = item_interest(start, as_of, balances, steps, terms.day_count)
        exacts.append(exact)
        found.parts.append(parts)
        found.reasons.append(None)
    shares, total = distribute(exacts)
    if total <= 0 or total < terms.min_interest:
        shares, total = [0] * len(listed), 0
    found.shares, found.total = shares, total
    return found


def _interest(
    terms: Terms, listed: list[tuple[Item, int, str]], as_of: int
) -> tuple[list[int], int]:
    """Step 5: (share per listed item, interest of the notice).

    ``sum(open * days)`` in integers, times the rate once, divided by 36500 once,
    rounded half-up once. Shares are the exact per-item amounts, floored, plus one
    minor unit each for the largest remainders (ties by position), so they add up to
    the rounded total exactly. Interest below ``min_interest`` (or zero) is not posted:
    every share is then 0.
    """
    den = terms.rate_den * 36500
    num = terms.rate_num
    weights = []
    for it, _, _ in listed:
        until = it.interest_until_day
        start = it.due_day if until is None or until < it.due_day else until
        days = as_of - start
        weights.append(it.open_amount * days if days > 0 else 0)
    total = div_round_half_up(sum(weights) * num, den)
    if total <= 0 or total < terms.min_interest:
        return [0] * len(listed), 0
    shares = []
    remainders = []
    for index, w in enumerate(weights):
        q, r = divmod(w * num, den)
        shares.append(q)
        remainders.append((-r, index))
    missing = total - sum(shares)
    remainders.sort()
    for _, index in remainders[:missing]:
        shares[index] += 1
    return shares, total
