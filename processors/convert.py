"""Records ↔ domain objects, in one module.

Avro dicts (Decimal amounts, `date` objects) become domain events (integer minor units,
day numbers) here, and domain results become Avro dicts here; domain code never sees a
record, and agents never do arithmetic.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import schemas
from domain import events as ev
from domain import ids
from domain.dates import from_day, to_day
from domain.history import LetterDeliveryRecorded
from domain.interest import ACT_365
from domain.money import UnknownCurrency, from_minor, minor_units, to_milli, to_minor
from domain.procedures import (
    DEFAULT_PAY_WITHIN_DAYS,
    Level,
    Procedure,
    ProcedureError,
    procedure_to_dict,
)
from domain.rates import RateError, RateSet
from domain.run_calendar import (
    RunSchedule,
    ScheduleError,
    epoch,
    schedule_from_dict,
    schedule_to_dict,
)
from domain.settlement import credit, open_claims, plan_status
from domain.state import CANCELLED, CLOSED, IN_PLAN, OPEN, notice_ids
from processors.deadletter import Unusable
from schemas.codec import EPOCH_ORDINAL

__all__ = ["Unusable"]


# ---------------------------------------------------------------- small helpers
def day(value: date | int) -> int:
    return value if isinstance(value, int) else to_day(value)


def iso(day_number: int | None) -> str | None:
    return None if day_number is None else from_day(day_number).isoformat()


def new_event_id() -> str:
    """For records a person makes at the command line (decisions)."""
    return str(uuid.uuid4())


def plain(record: dict[str, Any]) -> dict[str, Any]:
    """A decision record as JSON-safe values (for the internal partition-work topic)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, date | datetime):
            out[key] = value.isoformat()
        elif isinstance(value, Decimal):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def reversal_id(request_event_id: str, notice_id: str) -> str:
    return ids.reversal_id(request_event_id, notice_id)


def money(amount: Decimal, currency: str, where: str) -> int:
    try:
        units = to_minor(amount, currency)
    except UnknownCurrency as exc:
        raise Unusable("unknown_currency", f"{where}: unknown currency {currency!r}") from exc
    except ValueError as exc:
        raise Unusable("invalid_amount", f"{where}: {exc}") from exc
    if units <= 0:
        raise Unusable("invalid_amount", f"{where}: amount must be positive, got {amount}")
    return units


def milli(amount: Decimal, where: str) -> int:
    """An amount whose currency is not known yet, in thousandths (domain.money.to_milli)."""
    try:
        units = to_milli(amount)
    except ValueError as exc:
        raise Unusable("invalid_amount", f"{where}: {exc}") from exc
    if units <= 0:
        raise Unusable("invalid_amount", f"{where}: amount must be positive, got {amount}")
    return units


def minor(amount: int, currency: str) -> Decimal:
    return from_minor(amount, currency)


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- inputs
def input_event(rtype: str, r: dict[str, Any]) -> ev.InputEvent:
    """An input record as a domain event (it needs nothing of the account's state, so an
    event means the same whatever arrived before it)."""
    build = _INPUT_EVENTS.get(rtype)
    if build is None:
        raise Unusable("unknown_record_type", rtype)
    return build(r)


def _account_upserted(r: dict[str, Any]) -> ev.InputEvent:
    a = r["postal_address"]
    currency = r["currency"]
    try:
        minor_units(currency)
    except UnknownCurrency as exc:
        raise Unusable("unknown_currency", f"unknown currency {currency!r}") from exc
    return ev.AccountUpserted(
        event_id=r["event_id"], account_id=r["account_id"], name=r["name"],
        language=r["language"], currency=currency, dunning_procedure=r["dunning_procedure"],
        postal_address=ev.PostalAddress(tuple(a["lines"]), a["postal_code"], a["city"],
                                        a["country"]),
        email=r.get("email"),
    )


def _lock_set(r: dict[str, Any]) -> ev.InputEvent:
    if day(r["valid_to"]) < day(r["valid_from"]):
        raise Unusable("invalid", "lock valid_to is before valid_from")
    return ev.DunningLockSet(
        event_id=r["event_id"], account_id=r["account_id"], lock_id=r["lock_id"],
        reason=r["reason"], valid_from=day(r["valid_from"]), valid_to=day(r["valid_to"]),
        item_id=r.get("item_id"),
    )


def _history_imported(r: dict[str, Any]) -> ev.InputEvent:
    until, notice = r.get("interest_until_date"), r.get("notice_date")
    return ev.DunningHistoryImported(
        event_id=r["event_id"], account_id=r["account_id"], item_id=r["item_id"],
        level=r["level"], last_dunned_date=day(r["last_dunned_date"]),
        interest_until_date=None if until is None else day(until),
        notice_date=None if notice is None else day(notice),
    )


def _invoice_issued(r: dict[str, Any]) -> ev.InputEvent:
    cur = r["currency"]
    if not r["items"]:
        raise Unusable("invalid", "an invoice without items")
    items = tuple(
        ev.InvoiceItem(
            item_id=i["item_id"], amount=money(i["amount"], cur, f"item {i['item_id']}"),
            due_date=day(i["due_date"]), dunning_procedure=i.get("dunning_procedure"),
            dunning_group=i.get("dunning_group"),
        )
        for i in r["items"]
    )
    return ev.InvoiceIssued(r["event_id"], r["account_id"], r["invoice_id"], cur,
                            day(r["issued_on"]), items)


def _payment_received(r: dict[str, Any]) -> ev.InputEvent:
    cur = r["currency"]
    allocations = r.get("allocations")
    return ev.PaymentReceived(
        event_id=r["event_id"], account_id=r["account_id"], payment_id=r["payment_id"],
        amount=money(r["amount"], cur, "payment"), currency=cur,
        received_on=day(r["received_on"]), payment_run_id=r.get("payment_run_id"),
        allocations=None if allocations is None else tuple(
            ev.Allocation(a["item_id"], money(a["amount"], cur, f"allocation {a['item_id']}"))
            for a in allocations
        ),
    )


def _plan_created(r: dict[str, Any]) -> ev.InputEvent:
    # Amounts in thousandths: the plan may come before its items and the account, and
    # takes their currency when it takes effect (domain.settlement).
    return ev.InstallmentPlanCreated(
        r["event_id"], r["account_id"], r["plan_id"], tuple(r["item_ids"]),
        tuple(
            ev.Installment(i["item_id"], milli(i["amount"], f"instalment {i['item_id']}"),
                           day(i["due_date"]))
            for i in r["installments"]
        ),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _letter_sent(r: dict[str, Any]) -> ev.InputEvent:
    return ev.LetterDelivery(
        event_id=r["event_id"], account_id=r["account_id"], outcome="sent",
        command_id=r["command_id"], notice_id=r["notice_id"], detail=r["recipient"],
        attempt=r["attempt"], at_ms=_ms(r["sent_at"]))


def _letter_failed(r: dict[str, Any]) -> ev.InputEvent:
    return ev.LetterDelivery(
        event_id=r["event_id"], account_id=r["account_id"], outcome="failed",
        command_id=r["command_id"], notice_id=r["notice_id"], detail=r["reason"],
        attempt=r["attempt"], at_ms=_ms(r["failed_at"]), permanent=r["permanent"],
        next_step=r["next_step"])


def _letter_printed(r: dict[str, Any]) -> ev.InputEvent:
    return ev.LetterDelivery(
        event_id=r["event_id"], account_id=r["account_id"], outcome="printed",
        command_id=r["command_id"], notice_id=r["notice_id"], detail=r["batch"], attempt=0,
        at_ms=_ms(r["printed_at"]), fallback=r["fallback"])


_INPUT_EVENTS: dict[str, Callable[[dict[str, Any]], ev.InputEvent]] = {
    "AccountUpserted": _account_upserted,
    "DunningLockSet": _lock_set,
    "DunningLockReleased": lambda r: ev.DunningLockReleased(r["event_id"], r["account_id"],
                                                            r["lock_id"]),
    "InvoiceIssued": _invoice_issued,
    "InvoiceCancelled": lambda r: ev.InvoiceCancelled(r["event_id"], r["account_id"],
                                                      r["invoice_id"]),
    "PaymentReceived": _payment_received,
    "PaymentReversed": lambda r: ev.PaymentReversed(r["event_id"], r["account_id"],
                                                    r["payment_id"], r["reason"]),
    "DueDateChanged": lambda r: ev.DueDateChanged(r["event_id"], r["account_id"],
                                                  r["item_id"], day(r["due_date"]),
                                                  r["reason"]),
    "InstallmentPlanCreated": _plan_created,
    "DunningHistoryImported": _history_imported,
    "InstallmentPlanCancelled": lambda r: ev.InstallmentPlanCancelled(
        r["event_id"], r["account_id"], r["plan_id"]),
    "LetterSent": _letter_sent,
    "LetterDeliveryFailed": _letter_failed,
    "LetterPrinted": _letter_printed,
}


# ---------------------------------------------------------------- procedures
def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value).normalize()


def _level(lv: dict[str, Any]) -> Level:
    pay = lv.get("pay_within_days")
    return Level(
        level=lv["level"], days_in_arrears=lv["days_in_arrears"],
        min_item_amount=Decimal(lv["min_item_amount"]).normalize(),
        min_total_amount=Decimal(lv["min_total_amount"]).normalize(),
        charge=Decimal(lv["charge"]).normalize(), interest=lv["interest"],
        activities=tuple(lv["activities"]),
        charge_percent=_dec(lv.get("charge_percent")), charge_min=_dec(lv.get("charge_min")),
        charge_max=_dec(lv.get("charge_max")),
        pay_within_days=DEFAULT_PAY_WITHIN_DAYS if pay is None else pay,
        activity_min_amounts=tuple((m["activity"], Decimal(m["amount"]).normalize())
                                   for m in lv.get("activity_min_amounts") or ()),
    )


def procedure(r: dict[str, Any]) -> Procedure:
    try:
        return Procedure(
            id=r["procedure_id"],
            min_days_between_dunnings=r["min_days_between_dunnings"],
            interest_rate_percent=Decimal(r["interest_rate_percent"]).normalize(),
            min_interest_amount=Decimal(r["min_interest_amount"]).normalize(),
            auto_approve=r["auto_approve"],
            levels=tuple(_level(lv) for lv in r["levels"]),
            day_count=r.get("day_count") or ACT_365,
            interest_base_rate=r.get("interest_base_rate"),
            interest_spread_percent=_dec(r.get("interest_spread_percent")),
            interest_base=r.get("interest_base") or "open_amount",
            clearing_order=None if r.get("clearing_order") is None
            else tuple(r["clearing_order"]),
        )
    except ProcedureError as exc:
        raise Unusable("invalid_procedure", str(exc)) from exc


def _level_record(lv: Level) -> dict[str, Any]:
    """One level as `ProcedureLevel`; an option at its default is null."""
    return {
        "level": lv.level, "days_in_arrears": lv.days_in_arrears,
        "min_item_amount": lv.min_item_amount, "min_total_amount": lv.min_total_amount,
        "charge": lv.charge, "interest": lv.interest, "activities": list(lv.activities),
        "charge_percent": lv.charge_percent, "charge_min": lv.charge_min,
        "charge_max": lv.charge_max,
        "pay_within_days": None if lv.pay_within_days == DEFAULT_PAY_WITHIN_DAYS
        else lv.pay_within_days,
        "activity_min_amounts": [{"activity": a, "amount": m} for a, m in lv.activity_min_amounts]
        or None,
    }


def procedure_record(p: Procedure) -> dict[str, Any]:
    """`DunningProcedureDefined` of `p`. The event id is derived from the procedure's YAML
    shape, which leaves out options at their default: an unchanged procedure keeps its id,
    and its options are written as null (RULES.md section 9)."""
    d = procedure_to_dict(p)
    return {
        "event_id": ids.history_event_id("procedure", p.id, repr(sorted(d.items()))),
        "procedure_id": p.id,
        "min_days_between_dunnings": p.min_days_between_dunnings,
        "interest_rate_percent": p.interest_rate_percent,
        "min_interest_amount": p.min_interest_amount,
        "auto_approve": p.auto_approve,
        "levels": [_level_record(lv) for lv in p.levels],
        "day_count": None if p.day_count == ACT_365 else p.day_count,
        "interest_base_rate": p.interest_base_rate,
        "interest_spread_percent": p.interest_spread_percent,
        "interest_base": None if p.interest_base == "open_amount" else p.interest_base,
        "clearing_order": None if p.clearing_order is None else list(p.clearing_order),
    }


# ---------------------------------------------------------------- rates
def rate_set(r: dict[str, Any]) -> RateSet:
    """An `InterestRateSet` record (logical values) as a domain `RateSet`."""
    try:
        return RateSet(r["rate_id"], day(r["valid_from"]), Decimal(r["percent"]).normalize())
    except RateError as exc:
        raise Unusable("invalid_rate", str(exc)) from exc


def rate_record(r: RateSet) -> dict[str, Any]:
    """`InterestRateSet` of `r`; its event id is derived from its content, so applying
    one file twice publishes the same records."""
    valid_from = from_day(r.valid_from)
    return {
        "event_id": ids.history_event_id("rate", r.rate_id, valid_from.isoformat(),
                                         str(r.percent)),
        "rate_id": r.rate_id, "valid_from": valid_from, "percent": r.percent,
    }


# ---------------------------------------------------------------- runs
def run_started(run_id: str, payment_run_id: str, as_of: int, scheduled_at: int | None = None,
                ticks_caught_up: int = 0) -> dict[str, Any]:
    """`ProposalRunStarted`; `scheduled_at` (epoch seconds) for a run the schedule started."""
    return {"event_id": ids.history_event_id("run-started", run_id), "run_id": run_id,
            "payment_run_id": payment_run_id, "as_of_date": from_day(as_of),
            "started_at": _now(), "scheduled_at": timestamp(scheduled_at),
            "ticks_caught_up": ticks_caught_up}


def timestamp(epoch_seconds: int | None) -> datetime | None:
    return None if epoch_seconds is None else datetime.fromtimestamp(epoch_seconds, UTC)


def epoch_seconds(moment: datetime) -> int:
    return epoch(moment)


# ---------------------------------------------------------------- the run schedule
def schedule_record(s: RunSchedule, event_id: str) -> dict[str, Any]:
    """`RunScheduleSet` of a schedule."""
    d = schedule_to_dict(s)
    return {**d, "event_id": event_id, "holidays": [date.fromisoformat(h) for h in d["holidays"]],
            "set_at": timestamp(s.set_at)}


def schedule(r: dict[str, Any]) -> RunSchedule:
    """The schedule of a `RunScheduleSet` (checked as a schedule file is)."""
    d = {k: v for k, v in r.items() if k != "event_id"}
    d["holidays"] = [h.isoformat() for h in r["holidays"]]
    d["set_at"] = epoch_seconds(r["set_at"])
    try:
        return schedule_from_dict(d)
    except ScheduleError as exc:
        raise Unusable("invalid_schedule", str(exc)) from exc


def start_missed(schedule_id: str, tick: int, caught_up: int) -> dict[str, Any]:
    """`ScheduledStartMissed`: its id fixed by the schedule and the start."""
    return {"event_id": ids.history_event_id("start-missed", schedule_id, tick),
            "schedule_id": schedule_id, "scheduled_at": timestamp(tick),
            "reason": "no_payment_run", "ticks_caught_up": caught_up}


def run_completed(run_id: str, payment_run_id: str, as_of: int,
                  totals: dict[str, int]) -> dict[str, Any]:
    return {"event_id": ids.history_event_id("run-completed", run_id), "run_id": run_id,
            "payment_run_id": payment_run_id, "as_of_date": from_day(as_of),
            "accounts_evaluated": totals["evaluated"], "proposals": totals["proposals"],
            "accounts_unknown_procedure": totals["unknown"],
            "groups_pending_proposal": totals.get("pending", 0),
            "accounts_failed": totals.get("failed", 0), "completed_at": _now()}


def activity_done(run_id: str, totals: dict[str, int], auto: bool = False) -> dict[str, Any]:
    """`ActivityRunCompleted`: one per run and way (auto-approved in the proposal run, or
    approved as a whole), its id fixed by them, so a record sent again is a duplicate."""
    not_executed = totals.get("not_executed", 0)
    return {"event_id": ids.history_event_id("activity-done", run_id, "auto" if auto else ""),
            "run_id": run_id, "notices": totals["notices"], "commands": totals["commands"],
            "not_executed": not_executed, "auto_approved": auto, "completed_at": _now()}


def run_decision_refused(decision: str, record: dict[str, Any], run_id: str, reason: str,
                         detail: str) -> dict[str, Any]:
    """`RunDecisionRefused`: a run decision that was taken too late or out of turn (a
    business outcome the clerk sees on dunning.runs, never a dead letter)."""
    return {"event_id": ids.history_event_id("run-decision-refused", record["event_id"]),
            "run_id": run_id, "decision": decision, "decision_event_id": record["event_id"],
            "reason": reason, "detail": detail,
            "decided_by": record.get("decided_by") or record.get("requested_by") or "",
            "refused_at": _now()}


# ---------------------------------------------------------------- outputs
_MISSING = object()
#: Schema field -> the domain attribute that holds it, where the names differ.
_ALIASES = {"recorded_for": "as_of_date", "from": "start", "to": "end"}


Convert = Callable[[Any, "str | None"], Any]
_PRIMITIVES = ("string", "int", "long", "boolean", "bytes", "null", "double", "float")


def _identity(value: Any, currency: str | None) -> Any:
    return value


def _compile(node: Any, names: dict[str, Any], raw: bool) -> Convert:
    """A converter for the schema `node`: `(value, currency) -> Avro data`, `value` being
    domain data (ints for money and days, tuples, dataclasses or dicts), money in
    `currency`. `raw`: for `Codec.encode_raw` (amounts as unscaled ints at the schema's
    scale, dates as days since 1970), same bytes, no Decimal or date objects on the way.
    The schema is read once per record type (`_converter`), not once per value."""
    if isinstance(node, str):
        return _compile(names[node], names, raw) if node in names else _identity
    if isinstance(node, list):  # a union: null or one type
        return _optional(_compile(next(b for b in node if b != "null"), names, raw))
    kind, logical = node.get("type"), node.get("logicalType")
    if logical == "decimal":
        return _rate(raw) if node["scale"] == RATE_SCALE else _money(node["scale"], raw)
    if logical == "date":
        return _raw_date if raw else _date
    if kind == "array":
        each = _compile(node["items"], names, raw)
        return lambda value, currency: [each(v, currency) for v in value]
    if kind == "record":
        return _record(node, names, raw)
    if isinstance(kind, dict | list | str) and kind not in _PRIMITIVES:
        return _compile(kind, names, raw)
    return _identity


def _optional(convert: Convert) -> Convert:
    return lambda value, currency: None if value is None else convert(value, currency)


def _money(scale: int, raw: bool) -> Convert:
    def money(value: Any, currency: str | None) -> Any:
        if currency is None:
            raise ValueError("money without a currency")
        return value * _scale_factor(currency, scale) if raw else from_minor(value, currency)
    return money


def _rate(raw: bool) -> Convert:
    """A rate (`Decimal` percent, decimal(12,6)), not money: no currency."""
    def rate(value: Any, currency: str | None) -> Any:
        if not raw:
            return value
        num, den = Decimal(value).as_integer_ratio()
        return num * 10**RATE_SCALE // den
    return rate


def _raw_date(value: Any, currency: str | None) -> int:
    return (value if isinstance(value, int) else value.toordinal()) - EPOCH_ORDINAL


def _date(value: Any, currency: str | None) -> date:
    return from_day(value) if isinstance(value, int) else value


def _record(node: dict[str, Any], names: dict[str, Any], raw: bool) -> Convert:
    name = node["name"]
    names.setdefault(name if "." in name else f"{node.get('namespace', 'dunning')}.{name}",
                     node)
    names.setdefault(name, node)
    fields = [(f["name"], _ALIASES.get(f["name"]), f.get("default"),
               _compile(f["type"], names, raw)) for f in node["fields"]]

    # Two loops, one reading attributes and one reading keys, rather than one loop over a
    # chosen accessor: its call per field cost a quarter of a notice (387 vs 287 us).
    def record(value: Any, currency: str | None) -> dict[str, Any]:
        if isinstance(value, dict):
            return from_dict(value, value.get("currency", currency))
        cur = getattr(value, "currency", currency)
        out = {}
        for field, alias, default, convert in fields:
            item = getattr(value, field, _MISSING)
            if item is _MISSING and alias is not None:
                item = getattr(value, alias, _MISSING)
            out[field] = convert(default if item is _MISSING else item, cur)
        return out

    def from_dict(value: dict[str, Any], cur: str | None) -> dict[str, Any]:
        out = {}
        for field, alias, default, convert in fields:
            item = value.get(field, _MISSING)
            if item is _MISSING and alias is not None:
                item = value.get(alias, _MISSING)
            out[field] = convert(default if item is _MISSING else item, cur)
        return out
    return record


@functools.cache
def _converter(record_type: str, raw: bool) -> Convert:
    return _compile(_schema(record_type), {}, raw)


#: The scale of every `Money` field of the schemas (decimal(20,3), ARCHITECTURE.md).
MONEY_SCALE = 3


@functools.cache
def _scale_factor(currency: str, scale: int) -> int:
    """Minor units of `currency` -> unscaled decimal at `scale`."""
    return 10 ** (scale - minor_units(currency))


@functools.cache
def _schema(record_type: str) -> dict[str, Any]:
    """The self-contained schema of a record type, read once (only read, never changed)."""
    return schemas.raw(record_type)


def to_avro(record_type: str, obj: Any, *, raw: bool = False, **fields: Any) -> dict[str, Any]:
    """A domain object as the Avro record `record_type`; `fields` set or override fields.
    `raw=True` gives the values `Codec.encode_raw` takes (the hot paths use it)."""
    if fields:
        base = {f: getattr(obj, f) for f in getattr(obj, "__slots__", ())
                if hasattr(obj, f)} if not isinstance(obj, dict) else dict(obj)
        base.update(fields)
        obj = base
    return _converter(record_type, raw)(obj, None)  # type: ignore[no-any-return]


def proposal_record(p: Any, raw: bool = False) -> dict[str, Any]:
    if raw:
        return proposal_record_raw(p)
    if p.claims:
        return to_avro("DunningProposed", p, event_id=p.proposal_id,
                       items=[*p.items, *claim_rows(p)])
    return to_avro("DunningProposed", p, event_id=p.proposal_id)


def claim_rows(p: Any) -> list[dict[str, Any]]:
    """The charge and interest items of earlier notices a proposal lists (RULES.md decision
    12), as `ProposedItem` rows after its items: `kind` says which, `invoice_id` is their
    notice, levels 0, no interest of their own."""
    return [{"item_id": c.item_id, "invoice_id": c.notice_id, "open_amount": c.open_amount,
             "due_date": c.due_day, "days_in_arrears": p.as_of_date - c.due_day,
             "previous_level": 0, "new_level": 0, "reason": "claim", "interest": 0,
             "interest_from": None, "interest_parts": None, "interest_reason": None,
             "kind": c.kind} for c in p.claims]


def proposal_record_raw(p: Any) -> dict[str, Any]:
    """`DunningProposed` for `Codec.encode_raw`, built field by field from the domain's
    integers: the run's hot path (a backlog run makes one per proposing group). The same
    record as the schema-driven `to_avro(..., raw=True)`, which the tests compare it with;
    a new field of the schema must be added here too (the test fails until it is)."""
    k = _scale_factor(p.currency, MONEY_SCALE)
    return {
        "event_id": p.proposal_id, "proposal_id": p.proposal_id, "run_id": p.run_id,
        "account_id": p.account_id, "procedure_id": p.procedure_id,
        "dunning_group": p.dunning_group, "currency": p.currency,
        "as_of_date": p.as_of_date - EPOCH_ORDINAL, "level": p.level,
        "activities": list(p.activities), "charge": p.charge * k,
        "interest": p.interest * k, "total_due": p.total_due * k,
        "items": [{"item_id": i.item_id, "invoice_id": i.invoice_id,
                   "open_amount": i.open_amount * k, "due_date": i.due_date - EPOCH_ORDINAL,
                   "days_in_arrears": i.days_in_arrears, "previous_level": i.previous_level,
                   "new_level": i.new_level, "reason": i.reason, "interest": i.interest * k,
                   "interest_from": None if i.interest_from is None
                   else i.interest_from - EPOCH_ORDINAL,
                   "interest_parts": None if i.interest_parts is None
                   else [_part_raw(x, k) for x in i.interest_parts],
                   "interest_reason": i.interest_reason, "kind": None} for i in p.items]
        + [{**row, "open_amount": row["open_amount"] * k,
            "due_date": row["due_date"] - EPOCH_ORDINAL} for row in claim_rows(p)],
        "level_changes": [{"item_id": c.item_id, "previous_level": c.previous_level,
                           "new_level": c.new_level, "reason": c.reason}
                          for c in p.level_changes],
        "left_out": [{"item_id": o.item_id, "reason": o.reason} for o in p.left_out],
        "activities_below_minimum": list(p.activities_below_minimum),
        "pay_within_days": p.pay_within_days,
    }


#: The scale of rates (`interest_rate_percent`, `rate_percent`): decimal(12,6).
RATE_SCALE = 6


def _part_raw(x: Any, k: int) -> dict[str, Any]:
    """One `InterestPart` for `Codec.encode_raw` (amounts times `k`, the rate unscaled)."""
    num, den = x.rate_percent.as_integer_ratio()
    return {"from": x.start - EPOCH_ORDINAL, "to": x.end - EPOCH_ORDINAL, "days": x.days,
            "rate_percent": num * 10**RATE_SCALE // den, "base_amount": x.base_amount * k,
            "amount": x.amount * k, "day_count": x.day_count}


def command_outputs(account: Any, notice: Any,
                    raw: bool = False) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic, record type, record) for every command of a notice or reversal; `raw`:
    the values `Codec.encode_raw` takes (the activity run's path)."""
    out = []
    for command in notice.commands:
        rtype = type(command).__name__
        out.append((schemas.TOPICS[rtype], rtype, to_avro(rtype, command, raw=raw)))
    return out


reversal_outputs = command_outputs


def notice_history(account: Any, notice: Any, raw: bool = False) -> tuple[str, dict[str, Any]]:
    return "DunningNoticeIssued", to_avro("DunningNoticeIssued", notice.history, raw=raw,
                                          seq=0, prev_hash="")


def reversal_history(account: Any, reversal: Any) -> tuple[str, dict[str, Any]]:
    from domain.reversal import find_notice

    currency = account.notices[find_notice(account, reversal.notice_id)].currency
    return "DunningNoticeReversed", to_avro("DunningNoticeReversed", reversal.history, seq=0,
                                            prev_hash="", currency=currency)


def rejection_history(account: Any, rejected: Any) -> tuple[str, dict[str, Any]]:
    return "history.ProposalRejected", to_avro("history.ProposalRejected", rejected, seq=0,
                                               prev_hash="")


def not_executed_history(account: Any, outcome: Any) -> tuple[str, dict[str, Any]]:
    return "ProposalNotExecuted", to_avro("ProposalNotExecuted", outcome, seq=0, prev_hash="")


def reversal_refused_history(account: Any, refused: Any) -> tuple[str, dict[str, Any]]:
    return "NoticeReversalRefused", to_avro("NoticeReversalRefused", refused, seq=0,
                                            prev_hash="")


def letter_of(account: Any, proposal_id: str, codec: Any) -> bytes | None:
    """The encoded `PrintDunningLetter` that executing the proposal makes (its notice's,
    when executed), worked out on a copy: nothing is stored. None: the notice sends no
    letter. Raises `Rejected` when the proposal cannot be executed (stale, decided)."""
    from domain.activity_run import execute

    after, notice = execute(account, proposal_id)
    for _, rtype, record in command_outputs(after, notice):
        if rtype == "PrintDunningLetter":
            return bytes(codec.encode(rtype, record))
    return None


def import_history(imported: Any) -> tuple[str, dict[str, Any]]:
    return "DunningLevelImported", to_avro("DunningLevelImported", imported, seq=0,
                                           prev_hash="")


def delivery_history(recorded: Any) -> tuple[str, dict[str, Any]]:
    """`LetterDeliveryRecorded`: a letter's outcome on the account's history (decision 14)."""
    return "LetterDeliveryRecorded", to_avro(
        "LetterDeliveryRecorded", recorded, seq=0, prev_hash="",
        at=_EPOCH + timedelta(milliseconds=recorded.at_ms))


def history_of(recorded: Any) -> tuple[str, dict[str, Any]]:
    """The history record (type, payload) of what an input event wrote: an imported level
    or a letter's outcome."""
    if isinstance(recorded, LetterDeliveryRecorded):
        return delivery_history(recorded)
    return import_history(recorded)


# ---------------------------------------------------------------- looking at state
def _money_json(amount: int, currency: str) -> str:
    return str(from_minor(amount, currency))


STATUS_NAMES = {OPEN: "open", CANCELLED: "cancelled", IN_PLAN: "in_plan", CLOSED: "closed"}


def account_json(a: Any) -> dict[str, Any]:
    """An account's state for people and tools (`GET /accounts/{id}`)."""
    master = a.master
    out: dict[str, Any] = {
        "account_id": a.account_id,
        "master": None if master is None else {
            "name": master.name, "language": master.language, "currency": master.currency,
            "dunning_procedure": master.dunning_procedure, "email": master.email,
            "postal_address": {"lines": list(master.postal_address.lines),
                               "postal_code": master.postal_address.postal_code,
                               "city": master.postal_address.city,
                               "country": master.postal_address.country},
        },
        "locks": [{"lock_id": lk.lock_id, "reason": lk.reason, "valid_from": iso(lk.valid_from),
                   "valid_to": iso(lk.valid_to), "item_id": lk.item_id} for lk in a.locks],
        "items": {},
        "payments": [{"payment_id": p.payment_id, "amount": _money_json(p.amount, p.currency),
                      "currency": p.currency, "received_on": iso(p.received_day),
                      "reversed": p.payment_id in a.reversed_payments,
                      "allocations": [{"item_id": al.item_id,
                                       "amount": _money_json(al.amount, p.currency)}
                                      for al in p.allocations]}
                     for p in a.payments],
        "credit": {c: _money_json(v, c) for c, v in credit(a).items() if v},
        "plans": [{"plan_id": pl.plan_id, "item_ids": list(pl.item_ids),
                   "cancelled": pl.plan_id in a.cancelled_plans,
                   "status": plan_status(a, pl)} for pl in a.plans],
        "notices": [],
        "pending_proposals": [p.proposal_id for p in a.pending],
        "imports": {imp.item_id: {"level": imp.level, "last_dunned": iso(imp.last_dunned_day),
                                  "interest_until": iso(imp.interest_until_day),
                                  "notice_date": iso(imp.notice_day)} for imp in a.imports},
        "history_seq": a.history_seq,
        "history_head": a.history_head,
    }
    for it in a.items:
        out["items"][it.item_id] = {
            "invoice_id": it.invoice_id, "currency": it.currency,
            "amount": _money_json(it.amount, it.currency),
            "open_amount": _money_json(it.open_amount, it.currency),
            "due_date": iso(it.due_day), "status": STATUS_NAMES.get(it.status, str(it.status)),
            "procedure": it.procedure,
            "group": it.group, "plan_id": it.plan_id, "level": it.level,
            "last_dunned": iso(it.last_dunned_day),
            "interest_until": iso(it.interest_until_day),
        }
    for n in a.notices:
        proposal_id, notice_id = notice_ids(a.account_id, n)
        out["notices"].append({
            "notice_id": notice_id, "proposal_id": proposal_id, "run_id": n.run_id,
            "level": n.level, "as_of": iso(n.as_of), "group": n.group,
            "charge": _money_json(n.charge, n.currency),
            "interest": _money_json(n.interest, n.currency), "in_effect": n.in_effect(),
            "reversed_items": list(n.reversed_items),
        })
    claims = open_claims(a)
    if claims:
        out["claims"] = _claims_json(claims)
    return out


def _claims_json(claims: list[Any]) -> dict[str, Any]:
    """The charge and interest items of an account (RULES.md decision 12), by item id."""
    return {c.item_id: {"kind": c.kind, "notice_id": c.notice_id, "currency": c.currency,
                        "amount": _money_json(c.amount, c.currency),
                        "open_amount": _money_json(amount, c.currency),
                        "due_date": iso(c.due_day), "group": c.group,
                        "status": "open" if c.amount else "reversed"}
            for c, amount in claims}


def render_account(body: dict[str, Any]) -> str:
    """`dunning account show`: the account as a person reads it."""
    lines = [f"account {body['account_id']}"]
    m = body.get("master")
    if m:
        lines.append(f"  procedure {m['dunning_procedure']}, currency {m['currency']}, "
                     f"language {m['language']}, e-mail {'yes' if m['email'] else 'no'}")
    else:
        lines.append("  (no master data yet)")
    for lk in body["locks"]:
        lines.append(f"  lock {lk['lock_id']} {lk['valid_from']}..{lk['valid_to']} "
                     f"({lk['reason']}){' item ' + lk['item_id'] if lk['item_id'] else ''}")
    lines.append(f"  {'item':<22} {'due':<10} {'amount':>12} {'open':>12}  level  last dunned")
    for item_id, it in sorted(body["items"].items()):
        lines.append(f"  {item_id:<22} {it['due_date']:<10} {it['amount']:>12} "
                     f"{it['open_amount']:>12}  {it['level']:>5}  {it['last_dunned'] or '-'}")
    for item_id, c in sorted(body.get("claims", {}).items()):
        lines.append(f"  {item_id:<22} {c['due_date']:<10} {c['amount']:>12} "
                     f"{c['open_amount']:>12}  {c['kind']} of notice {c['notice_id']}"
                     f"{'' if c['status'] == 'open' else ' (reversed)'}")
    for cur, amount in body["credit"].items():
        lines.append(f"  credit {amount} {cur}")
    if body.get("next_evaluation_date"):
        lines.append(f"  next evaluation on or after {body['next_evaluation_date']}")
    for n in body["notices"]:
        lines.append(f"  notice {n['notice_id']} run {n['run_id']} level {n['level']} "
                     f"on {n['as_of']}{'' if n['in_effect'] else ' (reversed)'}")
    for item_id, imp in sorted((body.get("imports") or {}).items()):
        lines.append(f"  level {imp['level']} of item {item_id} imported (last dunned "
                     f"{imp['last_dunned']}, last notice {imp['notice_date'] or '-'})")
    if body["pending_proposals"]:
        lines.append(f"  pending proposals: {', '.join(body['pending_proposals'])}")
    return "\n".join(lines)
