"""A day in the life of the dunning engine (issue 12, item 8): a seeded, randomized story of
several weeks of daily payment runs on the real broker, with one worker that is restarted
(SIGTERM and kill -9) at random moments, checked after every day against a small model of
what billing published. The model is written from RULES.md ("Account state"), not from
`domain/`, so it is an independent second opinion on open amounts and exclusions.

Every day:
1. billing publishes the day's events of every account; an account's events are spread
   over the four account topics in shuffled order relative to each other (a plan before
   its invoice and account, a payment before its invoice, a due-date change before its
   invoice, a lock before the account upsert), each topic keeping the publisher's order;
2. the payment run completes (sometimes twice: the second event starts nothing new), and
   sometimes payments, cancellations and locks race the proposal run;
3. clerks decide runs of earlier days that were left open; then payments (full, partial,
   allocated, unallocated), cancellations, due-date changes, locks and instalment plans
   land between the proposal run and the approval;
4. clerks approve whole runs, approve and reject single proposals, delete runs and run
   them again, or leave them open for later days; they reverse single notices, single
   items and whole runs;
5. the worker is restarted (SIGTERM, kill -9) at the chosen moments.

Invariants, after every step:
* every approved run completes: an `ActivityRunCompleted` for it arrives on dunning.runs;
* no proposed item was paid, cancelled, locked or in an active instalment plan before the
  run event, and its open amount and due date are what the published events give;
* an approved proposal is executed as proposed (a `DunningNoticeIssued` with its level,
  amounts and items) when nothing it was computed from changed, and is not executed
  (`ProposalNotExecuted`, with a fitting reason) when a listed item was paid, cancelled,
  put in a plan, locked, or changed otherwise since the proposal run;
* a group with an undecided proposal of an earlier run gets no new proposal;
* every proposal has exactly one outcome (notice or ProposalNotExecuted for approved,
  the history's ProposalRejected for rejected, none for a deleted run);
* a deletion of a run with executed proposals is refused on dunning.runs;
* a reversal reverses every targeted notice that no later notice in effect covers and
  refuses (`NoticeReversalRefused`) the others;
* command ids: one id is never two different commands (a re-sent command after a kill has
  the same id and content), no notice has two commands of one kind, and every command is
  named by the history record of its notice or reversal;
* nothing is dead-lettered; at the end `dunning audit verify` passes and the replayed
  history equals the worker's live state.

Run it as a test (`pytest tests/integration/test_day_in_the_life.py`, knobs
DUNNING_DAYS, DUNNING_ACCOUNTS, DUNNING_SEED, DUNNING_RESTARTS) or directly, with its own
embedded broker: `python -m tests.integration.daylife --days 60 --accounts 500 --seed 7`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from config.settings import Settings
from schemas.codec import Codec
from topics.broker_quirks import true_end_offsets
from topics.clients import check_topic, key_for, partitions_of

ACCOUNTS_T = "billing.accounts"
INVOICES_T = "billing.invoices"
PAYMENTS_T = "billing.payments"
DUE_DATES_T = "billing.due-dates"
ACCOUNT_TOPICS = (ACCOUNTS_T, INVOICES_T, PAYMENTS_T, DUE_DATES_T)
COMMAND_TOPICS = ("dunning.letters", "dunning.locks", "dunning.collections", "dunning.deposits",
                  "dunning.workflows", "dunning.postings")
TAPPED = ("dunning.runs", "dunning.proposals", *COMMAND_TOPICS, "dunning.history",
          "dunning.dead-letters")
PROCEDURES_FILE = Path(__file__).parents[2] / "dunning" / "data" / "procedures.yaml"

#: Commands of a notice, by record type: at most one of each per notice (a
#: DeactivateInstallmentPlan once per plan).
ISSUE_KINDS = {"PrintDunningLetter": "letter", "SetDunningLock": "lock",
               "ReleaseToCollectionAgency": "collection", "RequestSecurityDeposit": "deposit",
               "NotifyAgent": "workflow",
               "DeactivateInstallmentPlan": "deactivate_installment_plan",
               "PostDunningCharge": "charge", "PostDunningInterest": "interest"}
REVERSAL_KINDS = ("PostDunningChargeReversal", "PostDunningInterestReversal")
NOT_EXECUTED_REASONS = ("paid", "cancelled", "in_plan", "locked", "stale_proposal")
EXPONENT = {"EUR": 2, "JPY": 0}


def short(rtype: str) -> str:
    """`ProposalRejected` for `history.ProposalRejected` (history copies have a namespace)."""
    return rtype.rsplit(".", 1)[-1]


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-EXPONENT[currency])


def iso(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True)
class Config:
    days: int = 18
    accounts: int = 40
    seed: int = 1
    restarts: int = 2
    start: date = date(2026, 11, 2)
    timeout: float = 60.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ) if env is None else env
        return cls(days=int(env.get("DUNNING_DAYS", cls.days)),
                   accounts=int(env.get("DUNNING_ACCOUNTS", cls.accounts)),
                   seed=int(env.get("DUNNING_SEED", cls.seed)),
                   restarts=int(env.get("DUNNING_RESTARTS", cls.restarts)))


# ---------------------------------------------------------------------------- the model
@dataclass
class ItemView:
    item_id: str
    invoice_id: str
    currency: str
    amount: Decimal
    due: date
    group: str
    status: str  # open | cancelled | in_plan | closed (instalment of a cancelled plan)
    open: Decimal
    plan_id: str | None = None


@dataclass
class AccountView:
    """An account as the events published so far make it (RULES.md "Account state")."""

    account_id: str
    master: tuple[str, str] | None  # (procedure, currency)
    items: dict[str, ItemView]
    locks: list[tuple[date, date, str | None]]
    log: tuple[str, ...]

    def locked(self, day: date, item_id: str | None = None) -> bool:
        """A lock valid on `day` (bounds inclusive): account-wide, or on `item_id`."""
        return any(f <= day <= t and (i is None or i == item_id) for f, t, i in self.locks)

    def excluded(self, item_id: str, day: date) -> str | None:
        """Why the item must not be dunned on `day` (RULES.md "Proposal run" 1), or None."""
        it = self.items.get(item_id)
        if it is None:
            return "unknown (no published event made it)"
        if self.master is None:
            return "on an account without master data"
        if self.locked(day):
            return "locked (account lock)"
        if self.locked(day, item_id):
            return "locked (item lock)"
        if it.status in ("cancelled", "closed"):
            return "cancelled"
        if it.status == "in_plan":
            return "in an active instalment plan"
        if it.open <= 0:
            return "fully paid"
        return None

    def events(self, limit: int = 40) -> str:
        shown = self.log[-limit:]
        more = f"  … {len(self.log) - limit} earlier\n" if len(self.log) > limit else ""
        return more + "".join(f"    {line}\n" for line in shown)


class AccountModel:
    """The set of events billing published for one account, folded the way RULES.md says:
    allocations reduce the item they name (held while the item is unknown; what exceeds the
    item, names a cancelled item or another currency is unallocated); the unallocated rest
    of every payment clears open items of its currency in (due date, item id) order; a
    reversed payment never happened; a cancelled invoice closes its items; the last
    due-date change wins; an active plan's sources get no unallocated money and are not
    dunned, its instalments are items; a cancelled plan closes its instalments, and money
    allocated to them goes to its sources."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.master: tuple[str, str] | None = None
        self.email: str | None = None
        self.invoices: dict[str, tuple[str, list[tuple[str, Decimal, date, str]]]] = {}
        self.cancelled: set[str] = set()
        self.due: dict[str, date] = {}
        self.payments: dict[str, tuple[Decimal, str, date, list[tuple[str, Decimal]]]] = {}
        self.reversed: set[str] = set()
        self.locks: dict[str, tuple[date, date, str | None]] = {}
        self.plans: dict[str, tuple[tuple[str, ...], list[tuple[str, Decimal, date]]]] = {}
        self.plans_cancelled: set[str] = set()
        self.log: list[str] = []
        self.raw: list[tuple[int | None, str, dict[str, Any]]] = []

    def apply(self, rtype: str, r: dict[str, Any], day: int | None = None) -> None:
        if rtype == "AccountUpserted":
            self.master = (r["dunning_procedure"], r["currency"])
            self.email = r["email"]
        elif rtype == "DunningLockSet":
            self.locks[r["lock_id"]] = (r["valid_from"], r["valid_to"], r["item_id"])
        elif rtype == "DunningLockReleased":
            self.locks.pop(r["lock_id"], None)
        elif rtype == "InvoiceIssued":
            self.invoices[r["invoice_id"]] = (r["currency"], [
                (i["item_id"], i["amount"], i["due_date"], i["dunning_group"] or "")
                for i in r["items"]])
        elif rtype == "InvoiceCancelled":
            self.cancelled.add(r["invoice_id"])
        elif rtype == "PaymentReceived":
            self.payments[r["payment_id"]] = (
                r["amount"], r["currency"], r["received_on"],
                [(a["item_id"], a["amount"]) for a in r["allocations"] or []])
        elif rtype == "PaymentReversed":
            self.reversed.add(r["payment_id"])
        elif rtype == "DueDateChanged":
            self.due[r["item_id"]] = r["due_date"]
        elif rtype == "InstallmentPlanCreated":
            self.plans[r["plan_id"]] = (tuple(r["item_ids"]), [
                (i["item_id"], i["amount"], i["due_date"]) for i in r["installments"]])
        elif rtype == "InstallmentPlanCancelled":
            self.plans_cancelled.add(r["plan_id"])
        else:  # pragma: no cover - a story bug
            raise ValueError(rtype)
        self.log.append(("" if day is None else f"day {day}: ") + describe(rtype, r))
        self.raw.append((day, rtype, r))

    def view(self) -> AccountView:
        items: dict[str, ItemView] = {}
        for inv_id, (currency, lines) in self.invoices.items():
            for item_id, amount, due, group in lines:
                status = "cancelled" if inv_id in self.cancelled else "open"
                items[item_id] = ItemView(item_id, inv_id, currency, amount,
                                          self.due.get(item_id, due), group, status, amount)
        sources_of: dict[str, tuple[str, ...]] = {}
        for plan_id, (sources, instalments) in sorted(self.plans.items()):
            if not all(s in items for s in sources):
                continue  # held until its items arrive
            first = items[sources[0]]
            cancelled = plan_id in self.plans_cancelled
            sources_of[plan_id] = sources
            if not cancelled:
                for s in sources:
                    if items[s].status == "open":
                        items[s].status = "in_plan"
            for inst_id, amount, due in instalments:
                items[inst_id] = ItemView(
                    inst_id, plan_id, first.currency, amount, self.due.get(inst_id, due),
                    first.group, "closed" if cancelled else "open",
                    Decimal(0) if cancelled else amount, plan_id)
        pool: dict[str, Decimal] = defaultdict(Decimal)
        for pid in sorted(self.payments, key=lambda p: (self.payments[p][2], p)):
            if pid in self.reversed:
                continue
            amount, currency, _, allocations = self.payments[pid]
            rest = amount
            for item_id, part in allocations:
                rest -= part
                it = items.get(item_id)
                if it is None:
                    continue  # kept for the item; neither applied nor unallocated
                left = part
                if it.currency == currency and it.status in ("open", "in_plan"):
                    take = min(left, it.open)
                    it.open -= take
                    left -= take
                elif it.currency == currency and it.status == "closed" and it.plan_id:
                    for src in sorted((items[s] for s in sources_of[it.plan_id]),
                                      key=lambda x: (x.due, x.item_id)):
                        if src.status in ("open", "in_plan") and left > 0:
                            take = min(left, src.open)
                            src.open -= take
                            left -= take
                rest += left
            pool[currency] += rest
        for currency, money in pool.items():
            for it in sorted(items.values(), key=lambda x: (x.due, x.item_id)):
                if money <= 0:
                    break
                if it.currency == currency and it.status == "open":
                    take = min(money, it.open)
                    it.open -= take
                    money -= take
        return AccountView(self.account_id, self.master, items, list(self.locks.values()),
                           tuple(self.log))


def describe(rtype: str, r: dict[str, Any]) -> str:
    """One line per published event, for failure messages."""
    if rtype == "AccountUpserted":
        return f"AccountUpserted {r['dunning_procedure']} {r['currency']}"
    if rtype == "DunningLockSet":
        on = f" item {r['item_id']}" if r["item_id"] else ""
        return f"DunningLockSet {r['lock_id']} {r['valid_from']}..{r['valid_to']}{on}"
    if rtype == "DunningLockReleased":
        return f"DunningLockReleased {r['lock_id']}"
    if rtype == "InvoiceIssued":
        lines = ", ".join(f"{i['item_id']} {i['amount']} due {i['due_date']}"
                          + (f" group {i['dunning_group']}" if i["dunning_group"] else "")
                          for i in r["items"])
        return f"InvoiceIssued {r['invoice_id']}: {lines}"
    if rtype == "InvoiceCancelled":
        return f"InvoiceCancelled {r['invoice_id']}"
    if rtype == "PaymentReceived":
        alloc = ", ".join(f"{a['item_id']} {a['amount']}" for a in r["allocations"] or [])
        return (f"PaymentReceived {r['payment_id']} {r['amount']} {r['currency']} received "
                f"{r['received_on']}" + (f" allocated {alloc}" if alloc else " unallocated"))
    if rtype == "PaymentReversed":
        return f"PaymentReversed {r['payment_id']}"
    if rtype == "DueDateChanged":
        return f"DueDateChanged {r['item_id']} -> {r['due_date']}"
    if rtype == "InstallmentPlanCreated":
        inst = ", ".join(f"{i['item_id']} {i['amount']} due {i['due_date']}"
                         for i in r["installments"])
        return f"InstallmentPlanCreated {r['plan_id']} of {', '.join(r['item_ids'])}: {inst}"
    if rtype == "InstallmentPlanCancelled":
        return f"InstallmentPlanCancelled {r['plan_id']}"
    return rtype


def missing_events(m: AccountModel, body: dict[str, Any] | None
                   ) -> list[tuple[int | None, str, dict[str, Any]]]:
    """The published events of an account whose effect the worker's view does not show.
    Events a later one may undo or overwrite (released locks, master data, due-date
    changes) are not looked at."""
    released = {r["lock_id"] for _, t, r in m.raw if t == "DunningLockReleased"}
    return [(d, t, r) for d, t, r in m.raw
            if t not in ("AccountUpserted", "DueDateChanged")
            and not (t == "DunningLockSet" and r["lock_id"] in released)
            and not ingested(t, r, body)]


def ingested(rtype: str, r: dict[str, Any], body: dict[str, Any] | None) -> bool:
    """Whether the worker's view of the account (`GET /accounts/{id}/`) shows the event."""
    if body is None:
        return False
    items = body.get("items") or {}
    if rtype == "AccountUpserted":
        return (body.get("master") or {}).get("email") == r["email"]
    if rtype == "DunningLockSet":
        return any(lk["lock_id"] == r["lock_id"] and lk["valid_to"] == iso(r["valid_to"])
                   and lk["valid_from"] == iso(r["valid_from"]) for lk in body["locks"])
    if rtype == "DunningLockReleased":
        return all(lk["lock_id"] != r["lock_id"] for lk in body["locks"])
    if rtype == "InvoiceIssued":
        return all(i["item_id"] in items for i in r["items"])
    if rtype == "InvoiceCancelled":
        mine = [it for it in items.values() if it["invoice_id"] == r["invoice_id"]]
        return bool(mine) and all(it["status"] == "cancelled" for it in mine)
    if rtype == "PaymentReceived":
        return any(p["payment_id"] == r["payment_id"] for p in body["payments"])
    if rtype == "PaymentReversed":
        return any(p["payment_id"] == r["payment_id"] and p["reversed"] for p in body["payments"])
    if rtype == "DueDateChanged":
        return (items.get(r["item_id"]) or {}).get("due_date") == iso(r["due_date"])
    if rtype == "InstallmentPlanCreated":  # its instalments appear once its items are known
        return (any(p["plan_id"] == r["plan_id"] for p in body["plans"])
                and (r["installments"][0]["item_id"] in items
                     or not all(i in items for i in r["item_ids"])))
    if rtype == "InstallmentPlanCancelled":
        return any(p["plan_id"] == r["plan_id"] and p["cancelled"] for p in body["plans"])
    return False


# ---------------------------------------------------------------------------- the tap
@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    rtype: str
    record: dict[str, Any]


class Tap:
    """Every output topic, consumed from the beginning into memory while the story runs."""

    def __init__(self, settings: Settings, codec: Codec) -> None:
        self.settings = settings
        self.codec = codec
        self.logical = {settings.topic(t): t for t in TAPPED}
        self.recs: dict[str, list[Rec]] = {t: [] for t in TAPPED}
        self.pos: dict[TopicPartition, int] = {}
        self.errors: list[str] = []
        #: run id -> records on dunning.runs, in arrival order
        self.runs: dict[str, list[Rec]] = defaultdict(list)
        #: run id -> proposal id -> DunningProposed (first seen)
        self.proposals: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.proposal_conflicts: list[str] = []
        #: proposal id -> event id -> outcome on the history (notice, not executed, rejected)
        self.outcomes: dict[str, dict[str, Rec]] = defaultdict(dict)
        #: requested_by of a reversal request -> event id -> DunningNoticeReversed/Refused
        self.reversal_outcomes: dict[str, dict[str, Rec]] = defaultdict(dict)
        #: history event id -> first value; conflicting re-sends
        self.history_values: dict[str, bytes | None] = {}
        self.history_conflicts: list[str] = []
        self.history: list[Rec] = []  # unique by event id, in arrival order
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        kwargs = self.settings.kafka_client_kwargs()
        self.consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False,
                                         auto_offset_reset="earliest", fetch_max_wait_ms=20)
        await self.consumer.start()
        self.tps: list[TopicPartition] = []
        for t in TAPPED:
            self.tps += await partitions_of(self.consumer, self.settings.topic(t))
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.consumer.stop()

    async def _loop(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50, max_records=5000)
            for tp, recs in batch.items():
                for r in recs:
                    self._add(tp, r)
                if recs:
                    self.pos[tp] = recs[-1].offset + 1

    def _add(self, tp: TopicPartition, r: Any) -> None:
        topic = self.logical[tp.topic]
        if r.value is None:
            self.errors.append(f"{topic} partition {tp.partition} offset {r.offset}: no value")
            return
        try:
            rtype, record = self.codec.decode(r.value)
        except Exception as exc:  # a record the test cannot read is a failure, not a crash
            self.errors.append(f"{topic} partition {tp.partition} offset {r.offset}: "
                               f"undecodable: {exc}")
            return
        rec = Rec(topic, tp.partition, r.offset, r.value, short(rtype), record)
        self.recs[topic].append(rec)
        if topic == "dunning.runs":
            self.runs[record.get("run_id") or ""].append(rec)
        elif topic == "dunning.proposals":
            known = self.proposals[record["run_id"]].get(record["proposal_id"])
            if known is None:
                self.proposals[record["run_id"]][record["proposal_id"]] = record
            elif known != record:
                self.proposal_conflicts.append(
                    f"proposal {record['proposal_id']} published twice with different "
                    f"content: {known} / {record}")
        elif topic == "dunning.history":
            eid = record["event_id"]
            if eid in self.history_values:
                if self.history_values[eid] != r.value:
                    self.history_conflicts.append(
                        f"history event {eid} ({rec.rtype}, account {record['account_id']}) "
                        f"re-sent with different bytes (offset {r.offset})")
                return
            self.history_values[eid] = r.value
            self.history.append(rec)
            if rec.rtype in ("DunningNoticeIssued", "ProposalNotExecuted", "ProposalRejected"):
                self.outcomes[record["proposal_id"]][eid] = rec
            elif rec.rtype in ("DunningNoticeReversed", "NoticeReversalRefused"):
                self.reversal_outcomes[record["requested_by"]][eid] = rec

    async def sync(self, timeout: float = 30.0) -> None:
        """Wait until everything on the tapped topics right now has been read."""
        ends = await true_end_offsets(self.settings.kafka_client_kwargs(), self.tps)
        deadline = time.monotonic() + timeout
        while any(self.pos.get(tp, 0) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError("the tap does not reach the end of the output topics")
            await asyncio.sleep(0.01)

    def of(self, topic: str, rtype: str | None = None) -> list[dict[str, Any]]:
        return [r.record for r in self.recs[topic] if rtype is None or r.rtype == rtype]

    def run_records(self, run_id: str, rtype: str, after: int = 0) -> list[dict[str, Any]]:
        return [r.record for r in self.runs.get(run_id, [])[after:] if r.rtype == rtype]


# ---------------------------------------------------------------------------- bookkeeping
@dataclass
class RunState:
    run_id: str
    payment_run_id: str
    as_of: date
    attempt: int
    day: int
    proposals: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: proposal id -> auto | approved | rejected | deleted
    decided: dict[str, str] = field(default_factory=dict)
    status: str = "open"  # open | approved | deleted
    decide_on: int | None = None
    #: notices executed or reversed per group when the run started
    versions: Counter[Any] = field(default_factory=Counter)

    def undecided(self) -> list[str]:
        return [p for p in sorted(self.proposals) if p not in self.decided]


@dataclass
class Expect:
    """What one approved proposal must come to, decided when the approval is sent."""

    proposal: dict[str, Any]
    reasons: set[str]  # empty: a notice; else ProposalNotExecuted with one of these
    why: list[str]
    run_id: str
    how: str  # auto | single | run
    day: int


def group_key(p: dict[str, Any]) -> tuple[str, str, str, str]:
    return (p["account_id"], p["procedure_id"], p["currency"], p["dunning_group"] or "")


class Aborted(Exception):
    """The story cannot go on (a run never completed, the worker did not start)."""


# ---------------------------------------------------------------------------- the story
class DayInTheLife:
    def __init__(self, story: Any, cfg: Config,
                 verify: Callable[[Settings, str], tuple[bool, list[str]]] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.story = story
        self.settings: Settings = story.settings
        self.worker = story.worker
        self.cfg = cfg
        self.verify_fn = verify or library_verify
        self.say = log or (lambda text: None)
        self.rng = random.Random(cfg.seed)
        self.codec = Codec.from_settings(self.settings)
        self.tap = Tap(self.settings, self.codec)
        procs = yaml.safe_load(PROCEDURES_FILE.read_text())["procedures"]
        self.auto = {p["id"]: bool(p.get("auto_approve")) for p in procs}
        #: procedure -> level 1's (days_in_arrears, min_item_amount, min_total_amount)
        self.first_level = {p["id"]: (int(p["levels"][0]["days_in_arrears"]),
                                      Decimal(p["levels"][0]["min_item_amount"]),
                                      Decimal(p["levels"][0]["min_total_amount"]))
                            for p in procs}
        self.gen: dict[str, AccountModel] = {}
        self.pub: dict[str, AccountModel] = {}
        self.profiles: dict[str, tuple[str, str, int]] = {}
        self.queues: dict[tuple[str, str], deque[tuple[int, str, dict[str, Any]]]] = {}
        self.counters: dict[tuple[str, str], int] = Counter()
        self.planned: set[str] = set()
        self.runs: dict[str, RunState] = {}
        self.payment_runs: dict[str, list[str]] = {}  # payment run id -> run ids started
        self.expects: dict[str, Expect] = {}
        self.reversal_expects: dict[str, tuple[int, dict[str, tuple[str, set[str]]]]] = {}
        self.failures: list[str] = []
        self._reported: set[Any] = set()
        self.stats: Counter[str] = Counter()
        self.published: Counter[str] = Counter()
        self.timeouts = 0
        self.aborted = False
        self.lost_accounts: set[str] = set()
        self.day = 0
        self.as_of = cfg.start
        self.step = "setup"
        self.seen_dead = 0
        self.log_marks: dict[Path, int] = {}
        self.log_limits: dict[Path, int] = {}
        self.seen_errors = 0
        self.restart_plan = self._plan_restarts()
        self.started = time.monotonic()

    # ------------------------------------------------------------------ reporting
    def where(self) -> str:
        return f"seed {self.cfg.seed}, day {self.day} ({self.as_of}), {self.step}"

    def fail(self, message: str, key: Any = None) -> None:
        key = key if key is not None else message
        if key in self._reported:
            return
        self._reported.add(key)
        self.failures.append(f"[{self.where()}] {message}")
        self.say(f"FAILURE [{self.where()}] {message.splitlines()[0]}")

    def abort(self, message: str) -> None:
        self.fail(message)
        raise Aborted(message)

    async def until(self, predicate: Callable[[], Any], what: str, hard: bool = False,
                    timeout: float | None = None) -> bool:
        limit = timeout or (self.cfg.timeout if self.timeouts == 0 else 10.0)
        deadline = time.monotonic() + limit
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)
        self.timeouts += 1
        message = f"timed out after {limit:.0f} s waiting for {what}"
        errors = [line[:300] for line in self.worker.log().splitlines()
                  if '"level": "error"' in line or '"level": "critical"' in line]
        if errors:
            message += "\n  last errors in the worker's log:\n    " + "\n    ".join(errors[-3:])
        if hard or self.timeouts > 6:
            self.abort(message + f"\n  worker log (tail):\n{self.worker.log()[-2500:]}")
        self.fail(message)
        return False

    # ------------------------------------------------------------------ plumbing
    def new_id(self) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4).hex

    def next(self, acc: str, kind: str) -> int:
        self.counters[(acc, kind)] += 1
        return self.counters[(acc, kind)]

    async def send(self, topic: str, records: list[tuple[str, dict[str, Any]]]) -> None:
        futures = []
        for rtype, rec in records:
            check_topic(topic, rtype)
            futures.append(await self.producer.send(
                self.settings.topic(topic), self.codec.encode(rtype, rec),
                key=key_for(topic, rec)))
        await asyncio.gather(*futures)

    async def send_mixed(self, events: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Publish (topic, type, record) in this order (each topic partition keeps it); the
        model learns each event once the broker has it."""
        futures = []
        for topic, rtype, rec in events:
            check_topic(topic, rtype)
            futures.append(await self.producer.send(
                self.settings.topic(topic), self.codec.encode(rtype, rec),
                key=key_for(topic, rec)))
        await asyncio.gather(*futures)
        for _, rtype, rec in events:
            self.pub[rec["account_id"]].apply(rtype, rec, self.day)
            self.published[rtype] += 1

    async def decide(self, rtype: str, **fields: Any) -> dict[str, Any]:
        rec = {"event_id": self.new_id(), **fields}
        await self.send("dunning.decisions", [(rtype, rec)])
        return rec

    def views(self) -> dict[str, AccountView]:
        return {acc: m.view() for acc, m in self.pub.items()}

    async def bodies(self, accounts: Iterable[str]) -> dict[str, Any]:
        """The worker's view of each account; None while it cannot answer (not ready)."""
        def one(account_id: str) -> Any:
            try:
                return self.worker.account(account_id)
            except (OSError, ValueError):
                return None

        wanted = sorted(set(accounts))
        got = await asyncio.gather(*(asyncio.to_thread(one, a) for a in wanted))
        return dict(zip(wanted, got, strict=True))

    async def wait_ingested(self, events: list[tuple[str, str, dict[str, Any]]],
                            what: str) -> None:
        pending = list(events)
        state = {"left": pending}

        async def check() -> bool:
            bodies = await self.bodies(r["account_id"] for _, _, r in state["left"])
            state["left"] = [(t, rt, r) for t, rt, r in state["left"]
                             if not ingested(rt, r, bodies[r["account_id"]])]
            return not state["left"]

        deadline = time.monotonic() + self.cfg.timeout
        while not await check():
            if time.monotonic() > deadline:
                left = "; ".join(describe(rt, r) + f" ({r['account_id']})"
                                 for _, rt, r in state["left"][:5])
                self.timeouts += 1
                self.fail(f"{what}: the worker did not apply these events within "
                          f"{self.cfg.timeout:.0f} s: {left}")
                return
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ restarts
    def _plan_restarts(self) -> dict[int, list[tuple[str, int]]]:
        plan: dict[int, list[tuple[str, int]]] = defaultdict(list)
        if self.cfg.days < 2:
            return plan
        moments = ("before_run", "during_run", "during_activity", "during_reversal")
        sigs = [signal.SIGTERM if k % 2 == 0 else signal.SIGKILL
                for k in range(self.cfg.restarts)]
        self.rng.shuffle(sigs)
        for sig in sigs:
            plan[self.rng.randrange(1, self.cfg.days)].append((self.rng.choice(moments), sig))
        return plan

    async def maybe_restart(self, moment: str) -> None:
        todo = self.restart_plan.get(self.day, [])
        for entry in list(todo):
            if entry[0] == moment or moment == "end_of_day":
                todo.remove(entry)
                await self.restart(entry[1], moment)

    async def restart(self, sig: int, moment: str) -> None:
        name = "SIGKILL" if sig == signal.SIGKILL else "SIGTERM"
        if moment in ("during_activity", "during_reversal", "during_run"):
            await asyncio.sleep(self.rng.uniform(0.0, 0.3))
        t0 = time.monotonic()
        self.say(f"day {self.day}: {name} to the worker ({moment})")
        if self.worker.log_path is not None:  # what it logs while it stops is not checked
            self.log_limits[self.worker.log_path] = self.worker.log_path.stat().st_size
        await asyncio.to_thread(self.worker.stop, sig)
        try:
            await asyncio.to_thread(self.worker.start)
        except RuntimeError as exc:
            self.abort(f"the worker did not come back after {name}: {exc}")
        self.stats[f"restarts {name}"] += 1
        self.stats["restart seconds"] += int(time.monotonic() - t0)

    # ------------------------------------------------------------------ the publisher
    def emit(self, acc: str, topic: str, rtype: str, rec: dict[str, Any], delay: int = 0) -> None:
        """Queue one billing event for publication `delay` days from today, behind every
        earlier event of the account on the same topic (the publisher's order)."""
        q = self.queues.setdefault((acc, topic), deque())
        release = max(self.day + delay, q[-1][0] if q else 0)
        q.append((release, rtype, rec))
        self.gen[acc].apply(rtype, rec)

    def settled(self, acc: str) -> bool:
        """Every event generated for the account is published."""
        return acc in self.pub and all(not self.queues.get((acc, t)) for t in ACCOUNT_TOPICS)

    def amount(self, currency: str, lo: int = 20, hi: int = 800) -> Decimal:
        if EXPONENT[currency] == 0:
            return Decimal(self.rng.randint(lo, hi))
        return (Decimal(self.rng.randint(lo * 100, hi * 100)) / 100).quantize(Decimal("0.01"))

    def part(self, total: Decimal, currency: str, lo: float = 0.2, hi: float = 0.8) -> Decimal:
        q = quantum(currency)
        value = (total * Decimal(str(round(self.rng.uniform(lo, hi), 3)))).quantize(q, ROUND_DOWN)
        return max(value, q)

    def allocated(self, m: AccountModel, item_id: str) -> Decimal:
        return sum((a for pid, (_, _, _, allocs) in m.payments.items() if pid not in m.reversed
                    for i, a in allocs if i == item_id), Decimal(0))

    def r_upsert(self, acc: str, email: str | None) -> dict[str, Any]:
        procedure, currency, _ = self.profiles[acc]
        return {"event_id": self.new_id(), "account_id": acc, "name": f"Customer {acc}",
                "language": self.rng.choice(["en", "de", "fr"]), "currency": currency,
                "dunning_procedure": procedure,
                "postal_address": {"lines": [f"{self.rng.randint(1, 99)} Main Street"],
                                   "postal_code": "10115", "city": "Berlin", "country": "DE"},
                "email": email}

    def r_invoice(self, acc: str, dues: list[date], group: str | None) -> dict[str, Any]:
        currency = self.profiles[acc][1]
        inv = f"{acc}-I{self.next(acc, 'I')}"
        return {"event_id": self.new_id(), "account_id": acc, "invoice_id": inv,
                "currency": currency, "issued_on": min(dues) - timedelta(days=14),
                "items": [{"item_id": f"{inv}-{k}", "amount": self.amount(currency),
                           "due_date": d, "dunning_procedure": None, "dunning_group": group}
                          for k, d in enumerate(dues, 1)]}

    def r_payment(self, acc: str, amount: Decimal,
                  allocations: list[tuple[str, Decimal]] | None) -> dict[str, Any]:
        return {"event_id": self.new_id(), "account_id": acc,
                "payment_id": f"{acc}-P{self.next(acc, 'P')}", "amount": amount,
                "currency": self.profiles[acc][1],
                "received_on": self.as_of - timedelta(days=self.rng.randint(0, 3)),
                "payment_run_id": None,
                "allocations": None if allocations is None else
                [{"item_id": i, "amount": a} for i, a in allocations]}

    def r_lock(self, acc: str, start: date, end: date, item_id: str | None) -> dict[str, Any]:
        return {"event_id": self.new_id(), "account_id": acc,
                "lock_id": f"{acc}-L{self.next(acc, 'L')}", "reason": "dispute",
                "valid_from": start, "valid_to": end, "item_id": item_id}

    def r_plan(self, acc: str, item: ItemView) -> dict[str, Any] | None:
        total = item.open
        if total < quantum(item.currency) * 4:
            return None
        plan = f"{acc}-PL{self.next(acc, 'PL')}"
        n = self.rng.randint(2, 3)
        first = self.part(total, item.currency, 0.25, 0.5)
        amounts = [first] + ([total - first] if n == 2 else
                             [self.part(total - first, item.currency, 0.3, 0.6)])
        if n == 3:
            amounts.append(total - amounts[0] - amounts[1])
        if any(a <= 0 for a in amounts):
            return None
        start = self.as_of - timedelta(days=self.rng.choice([20, 10, 0, -7]))
        self.planned.add(item.item_id)
        return {"event_id": self.new_id(), "account_id": acc, "plan_id": plan,
                "item_ids": [item.item_id],
                "installments": [{"item_id": f"{plan}-{k}", "amount": a,
                                  "due_date": start + timedelta(days=15 * (k - 1))}
                                 for k, a in enumerate(amounts, 1)]}

    def r_due(self, acc: str, item: ItemView) -> dict[str, Any]:
        shift = self.rng.choice([-12, -6, -3, 4, 9, 15, 25])
        return {"event_id": self.new_id(), "account_id": acc, "item_id": item.item_id,
                "due_date": item.due + timedelta(days=shift), "reason": "agreed with customer"}

    def payable(self, v: AccountView, instalments: bool = True) -> list[ItemView]:
        return [it for it in v.items.values() if it.status in ("open", "in_plan") and it.open > 0
                and (instalments or it.plan_id is None)]

    def plannable(self, v: AccountView) -> list[ItemView]:
        return [it for it in v.items.values() if it.status == "open" and it.plan_id is None
                and it.item_id not in self.planned and it.open > 0]

    def payment_for(self, acc: str, v: AccountView, kind: str,
                    targets: list[ItemView] | None = None) -> dict[str, Any] | None:
        """A payment of `kind` (full, partial, multi, unallocated) on the publisher's view."""
        m = self.gen[acc]
        currency = self.profiles[acc][1]
        items = targets or self.payable(v)
        if kind == "unallocated" or not items:
            total = sum((it.open for it in v.items.values() if it.status == "open"
                         and it.currency == currency), Decimal(0))
            base = total if total > 0 else self.amount(currency)
            return self.r_payment(acc, self.part(base, currency, 0.15, 1.1), None)
        it = self.rng.choice(items)
        rest = it.amount - self.allocated(m, it.item_id)
        if rest <= 0:
            return self.r_payment(acc, self.part(it.amount, currency), None)
        if kind == "full":
            return self.r_payment(acc, rest, [(it.item_id, rest)])
        if kind == "partial":
            share = self.part(rest, currency)
            return self.r_payment(acc, share, [(it.item_id, share)])
        other = self.rng.choice(items)
        share = self.part(other.amount, currency, 0.1, 0.5)
        extra = self.part(rest, currency, 0.05, 0.3)
        allocations = [(it.item_id, rest)] + ([(other.item_id, share)] if other is not it else [])
        return self.r_payment(acc, rest + share + extra, allocations)

    def onboard(self, acc: str) -> None:
        """An account's first events, on the four topics in shuffled order: each topic gets
        its own delay, and a lock may come before the account on billing.accounts."""
        procedure, currency, _ = self.profiles[acc]
        self.gen[acc] = AccountModel(acc)
        self.pub[acc] = AccountModel(acc)
        spread = self.day < self.cfg.days - 6
        delay = {t: (self.rng.choice([0, 0, 1, 2, 3]) if spread else 0) for t in ACCOUNT_TOPICS}
        if self.rng.random() < 0.2:
            start = self.as_of - timedelta(days=self.rng.randint(0, 4))
            self.emit(acc, ACCOUNTS_T, "DunningLockSet",
                      self.r_lock(acc, start, start + timedelta(days=self.rng.randint(0, 8)),
                                  None), delay[ACCOUNTS_T])
        self.emit(acc, ACCOUNTS_T, "AccountUpserted",
                  self.r_upsert(acc, self.rng.choice([f"{acc.lower()}@example.test", None])),
                  delay[ACCOUNTS_T])
        for k in range(self.rng.randint(1, 3)):
            back = (0, 50) if k == 0 else (-10, 40)
            dues = [self.as_of - timedelta(days=self.rng.randint(*back))
                    for _ in range(self.rng.randint(1, 3))]
            group = "B" if self.rng.random() < 0.12 else None
            self.emit(acc, INVOICES_T, "InvoiceIssued", self.r_invoice(acc, dues, group),
                      delay[INVOICES_T])
        v = self.gen[acc].view()
        if self.rng.random() < 0.35:
            kind = self.rng.choice(["full", "partial", "unallocated", "multi"])
            pay = self.payment_for(acc, v, kind)
            if pay is not None:
                self.emit(acc, PAYMENTS_T, "PaymentReceived", pay, delay[PAYMENTS_T])
        if self.rng.random() < 0.25:
            it = self.rng.choice(list(v.items.values()))
            self.emit(acc, DUE_DATES_T, "DueDateChanged", self.r_due(acc, it), delay[DUE_DATES_T])
        if self.rng.random() < 0.2:
            candidates = self.plannable(self.gen[acc].view())
            plan = self.r_plan(acc, self.rng.choice(candidates)) if candidates else None
            if plan is not None:
                self.emit(acc, DUE_DATES_T, "InstallmentPlanCreated", plan, delay[DUE_DATES_T])

    def everyday(self, acc: str) -> None:
        """What may happen to a known account on an ordinary day."""
        m = self.gen[acc]
        if m.master is None:
            return
        v = m.view()
        delay = 1 if self.rng.random() < 0.15 and self.day < self.cfg.days - 3 else 0
        r = self.rng.random()
        if r < 0.07:
            dues = [self.as_of + timedelta(days=self.rng.randint(-25, 10))
                    for _ in range(self.rng.randint(1, 3))]
            group = "B" if self.rng.random() < 0.12 else None
            self.emit(acc, INVOICES_T, "InvoiceIssued", self.r_invoice(acc, dues, group), delay)
        elif r < 0.15:
            kind = self.rng.choice(["full", "full", "partial", "unallocated", "multi"])
            pay = self.payment_for(acc, v, kind)
            if pay is not None:
                self.emit(acc, PAYMENTS_T, "PaymentReceived", pay, delay)
        elif r < 0.165:
            live = sorted(p for p in m.payments if p not in m.reversed)
            if live:
                self.emit(acc, PAYMENTS_T, "PaymentReversed", {
                    "event_id": self.new_id(), "account_id": acc,
                    "payment_id": self.rng.choice(live), "reason": "bounced"}, delay)
        elif r < 0.18:
            open_invoices = sorted(i for i in m.invoices if i not in m.cancelled)
            if open_invoices:
                self.emit(acc, INVOICES_T, "InvoiceCancelled", {
                    "event_id": self.new_id(), "account_id": acc,
                    "invoice_id": self.rng.choice(open_invoices)}, delay)
        elif r < 0.205:
            if v.items:
                it = self.rng.choice(sorted(v.items.values(), key=lambda x: x.item_id))
                self.emit(acc, DUE_DATES_T, "DueDateChanged", self.r_due(acc, it), delay)
        elif r < 0.23:
            start = self.as_of + timedelta(days=self.rng.randint(-6, 3))
            end = start + timedelta(days=self.rng.randint(0, 10))
            items = sorted(i for i, it in v.items.items() if it.plan_id is None)
            on = self.rng.choice(items) if items and self.rng.random() < 0.4 else None
            self.emit(acc, ACCOUNTS_T, "DunningLockSet", self.r_lock(acc, start, end, on), delay)
        elif r < 0.245:
            if m.locks:
                self.emit(acc, ACCOUNTS_T, "DunningLockReleased", {
                    "event_id": self.new_id(), "account_id": acc,
                    "lock_id": self.rng.choice(sorted(m.locks))}, delay)
        elif r < 0.26:
            candidates = self.plannable(v)
            plan = self.r_plan(acc, self.rng.choice(candidates)) if candidates else None
            if plan is not None:
                self.emit(acc, DUE_DATES_T, "InstallmentPlanCreated", plan, delay)
        elif r < 0.27:
            active = sorted(p for p in m.plans if p not in m.plans_cancelled)
            if active:
                self.emit(acc, DUE_DATES_T, "InstallmentPlanCancelled", {
                    "event_id": self.new_id(), "account_id": acc,
                    "plan_id": self.rng.choice(active)}, delay)
        elif r < 0.275:
            email = None if m.email else f"{acc.lower()}@example.test"
            self.emit(acc, ACCOUNTS_T, "AccountUpserted", self.r_upsert(acc, email), delay)

    def generate_day(self) -> None:
        for acc, (_, _, day) in self.profiles.items():
            if day == self.day:
                self.onboard(acc)
            elif acc in self.gen:
                self.everyday(acc)

    async def publish_day(self) -> None:
        """Today's events, interleaved at random across topics and accounts (each queue
        keeps its order), in small chunks, each on the broker before the next is sent."""
        ready: list[list[tuple[str, str, dict[str, Any]]]] = []
        for (_, topic), q in self.queues.items():
            take = []
            while q and q[0][0] <= self.day:
                _, rtype, rec = q.popleft()
                take.append((topic, rtype, rec))
            if take:
                ready.append(take)
        order: list[tuple[str, str, dict[str, Any]]] = []
        while ready:
            k = self.rng.randrange(len(ready))
            order.append(ready[k].pop(0))
            if not ready[k]:
                ready.pop(k)
        while order:
            n = self.rng.randint(1, 8)
            await self.send_mixed(order[:n])
            order = order[n:]

    # ------------------------------------------------------------------ history views
    def notice_book(self) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
        """Notices from the history as the tap saw it: per notice its lines and reversed
        items; per account its notices in the order they were executed."""
        book: dict[str, dict[str, Any]] = {}
        order: dict[str, list[str]] = defaultdict(list)
        recs = sorted(self.tap.history, key=lambda r: (r.record["account_id"], r.record["seq"]))
        for r in recs:
            rec = r.record
            if r.rtype == "DunningNoticeIssued":
                book[rec["notice_id"]] = {
                    "account_id": rec["account_id"], "run_id": rec["run_id"],
                    "group": (rec["account_id"], rec["procedure_id"], rec["currency"],
                              rec["dunning_group"] or ""),
                    "lines": [i["item_id"] for i in rec["items"]],
                    "listed": [i["item_id"] for i in rec["items"] if i["listed"]],
                    "reversed": set(), "record": rec}
                order[rec["account_id"]].append(rec["notice_id"])
            elif r.rtype == "DunningNoticeReversed" and rec["notice_id"] in book:
                book[rec["notice_id"]]["reversed"] |= set(rec["item_ids"] or [])
        return book, order

    def group_versions(self) -> Counter[tuple[str, str, str, str]]:
        """Per dunning group: how many notices were executed or reversed (a change of the
        group's last notice, levels and dates)."""
        book, _ = self.notice_book()
        versions: Counter[tuple[str, str, str, str]] = Counter()
        for n in book.values():
            versions[n["group"]] += 1
        for r in self.tap.history:
            if r.rtype == "DunningNoticeReversed" and r.record["notice_id"] in book:
                versions[book[r.record["notice_id"]]["group"]] += 1
        return versions

    def undecided_groups(self) -> dict[tuple[str, str, str, str], str]:
        out = {}
        for rs in self.runs.values():
            if rs.status == "deleted":
                continue
            for pid in rs.undecided():
                out[group_key(rs.proposals[pid])] = f"{pid} of run {rs.run_id}"
        return out

    # ------------------------------------------------------------------ stage 1
    async def start_run(self, payment_run_id: str, attempt: int, rerun: bool = False) -> RunState:
        run_id = f"{payment_run_id}/{attempt}"
        self.step = f"proposal run {run_id}"
        await self.tap.sync()
        before = self.views()
        versions = self.group_versions()
        undecided = self.undecided_groups()
        self.payment_runs.setdefault(payment_run_id, []).append(run_id)
        if rerun:
            await self.decide("ProposalRunRequested", payment_run_id=payment_run_id,
                              requested_by="clerk")
        else:
            event = {"event_id": self.new_id(), "run_id": payment_run_id,
                     "as_of_date": self.as_of,
                     "completed_at": datetime(self.as_of.year, self.as_of.month,
                                              self.as_of.day, 20, tzinfo=UTC),
                     "payment_count": None}
            await self.send("billing.payment-runs", [("PaymentRunCompleted", event)])
            if self.rng.random() < 0.15:  # billing sends the run twice: nothing new starts
                await self.send("billing.payment-runs", [
                    ("PaymentRunCompleted", {**event, "event_id": self.new_id()})])
                self.stats["payment runs sent twice"] += 1
        racing = await self.race() if not rerun and self.rng.random() < 0.3 else []
        await self.maybe_restart("during_run")
        await self.until(lambda: self.tap.run_records(run_id, "ProposalRunCompleted"),
                         f"ProposalRunCompleted for {run_id}", hard=True)
        done = self.tap.run_records(run_id, "ProposalRunCompleted")[0]
        n = done["proposals"]
        await self.until(lambda: len(self.tap.proposals.get(run_id, {})) >= n,
                         f"the {n} DunningProposed of {run_id}")
        if racing:
            await self.wait_ingested(racing, f"events racing {run_id}")
        await self.tap.sync()
        rs = RunState(run_id, payment_run_id, self.as_of if not rerun else
                      self.runs[f"{payment_run_id}/{attempt - 1}"].as_of, attempt, self.day,
                      dict(self.tap.proposals.get(run_id, {})), versions=versions)
        self.runs[run_id] = rs
        self.stats["proposal runs"] += 1
        self.stats["proposals"] += len(rs.proposals)
        if len(rs.proposals) != n:
            self.fail(f"ProposalRunCompleted of {run_id} counts {n} proposals, "
                      f"dunning.proposals has {len(rs.proposals)}")
        racers = {r["account_id"] for _, _, r in racing}
        failed = len(self.failures)
        self.check_proposals(rs, before, racers, undecided, done)
        self.check_first_notices(rs, before, racers, undecided)
        suspects = sorted({a for f in self.failures[failed:]
                           for a in self.pub if f"account {a}" in f or f"'{a}'" in f})
        await self.show_worker_view(suspects)
        auto = []
        for pid, p in rs.proposals.items():
            if self.auto.get(p["procedure_id"]):
                rs.decided[pid] = "auto"
                auto.append(pid)
                self.stats["auto-approved proposals"] += 1
                # executed at once, as proposed (exclusions are checked above)
                self.expects[pid] = Expect(p, set(), [], run_id, "auto", self.day)
        if auto:
            await self.wait_outcomes(auto, f"the notices of the auto-approved proposals of "
                                     f"{run_id}")
            self.check_outcomes_now(f"auto-approved proposals of {run_id}", auto)
        return rs

    async def race(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Payments, cancellations and locks published right after the run event: the run may
        or may not see them, but everything published before it must be in."""
        events = []
        accounts = [a for a in sorted(self.pub) if self.settled(a) and self.pub[a].master]
        for acc in self.rng.sample(accounts, min(len(accounts), self.rng.randint(1, 3))):
            v = self.gen[acc].view()
            r = self.rng.random()
            if r < 0.6:
                pay = self.payment_for(acc, v, self.rng.choice(["full", "partial", "unallocated"]))
                if pay is not None:
                    events.append((PAYMENTS_T, "PaymentReceived", pay))
            elif r < 0.8:
                open_invoices = sorted(i for i in self.gen[acc].invoices
                                       if i not in self.gen[acc].cancelled)
                if open_invoices:
                    events.append((INVOICES_T, "InvoiceCancelled", {
                        "event_id": self.new_id(), "account_id": acc,
                        "invoice_id": self.rng.choice(open_invoices)}))
            else:
                events.append((ACCOUNTS_T, "DunningLockSet", self.r_lock(
                    acc, self.as_of - timedelta(days=1), self.as_of + timedelta(days=3), None)))
        for _, rtype, rec in events:
            self.gen[rec["account_id"]].apply(rtype, rec)
        await self.send_mixed(events)
        self.stats["events racing a run"] += len(events)
        return events

    def check_proposals(self, rs: RunState, before: dict[str, AccountView], racing: set[str],
                        undecided: dict[tuple[str, str, str, str], str],
                        done: dict[str, Any]) -> None:
        for pid, p in sorted(rs.proposals.items()):
            acc = p["account_id"]
            v = before.get(acc) or AccountModel(acc).view()
            for it in p["items"]:
                iid = it["item_id"]
                why = v.excluded(iid, rs.as_of)
                if why is not None:
                    self.fail(f"proposal {pid} of {rs.run_id} (as of {rs.as_of}) lists item "
                              f"{iid} of account {acc}, which was {why} before the run event."
                              f"\n  account {acc}'s events published before the run event:\n"
                              f"{v.events()}", key=("excluded", pid, iid))
                elif acc not in racing:
                    mine = v.items[iid]
                    if it["open_amount"] != mine.open or it["due_date"] != mine.due:
                        self.fail(
                            f"proposal {pid} of {rs.run_id}: item {iid} of account {acc} "
                            f"proposed with open amount {it['open_amount']} due "
                            f"{it['due_date']}; the events published before the run give "
                            f"{mine.open} due {mine.due}.\n  account {acc}'s events:\n"
                            f"{v.events()}", key=("amount", pid, iid))
            key = group_key(p)
            if key in undecided:
                self.fail(f"proposal {pid} of {rs.run_id} for group {key} although the group "
                          f"has the undecided proposal {undecided[key]} (expected: left out, "
                          "reason pending_proposal)", key=("pending", pid))
        if undecided and "groups_pending_proposal" not in done:
            self.fail("ProposalRunCompleted has no groups_pending_proposal although groups "
                      "with undecided proposals exist", key="no groups_pending_proposal")

    async def show_worker_view(self, accounts: list[str]) -> None:
        """The worker's own view of accounts a check failed on, to tell a lost event from a
        wrong computation."""
        for acc, body in (await self.bodies(accounts)).items():
            if body is None:
                self.fail(f"the worker's view of account {acc}: unknown", key=("view", acc))
                continue
            items = ", ".join(f"{i} {it['status']} open {it['open_amount']} due {it['due_date']}"
                              for i, it in sorted(body["items"].items()))
            pays = ", ".join(
                f"{p['payment_id']} {p['amount']}{' reversed' if p['reversed'] else ''} ("
                + ", ".join(f"{x['item_id']} {x['amount']}" for x in p["allocations"]) + ")"
                for p in body["payments"])
            missing = [f"day {d}: {describe(t, r)}" for d, t, r in missing_events(
                self.pub[acc], body)]
            self.fail(f"the worker's view of account {acc} now: items {items}; payments {pays}; "
                      f"credit {body.get('credit')}; locks {body.get('locks')}; plans "
                      f"{body.get('plans')}"
                      + (f"\n  published events the worker does not show: {'; '.join(missing)}"
                         if missing else ""), key=("view", acc, self.step))


    def check_first_notices(self, rs: RunState, before: dict[str, AccountView],
                            racing: set[str],
                            undecided: dict[tuple[str, str, str, str], str]) -> None:
        """Groups that never had a notice: all their items are at level 0, so RULES.md's
        stage 1 is simple enough to say exactly which of them must get a proposal (level 1,
        listing every open, unexcluded item that reaches level 1's days in arrears and
        minimum item amount, when they reach its minimum total), and which must not."""
        noticed = {n["group"] for n in self.notice_book()[0].values()}
        proposed: dict[tuple[str, str, str, str], dict[str, Any]] = {
            group_key(p): p for p in rs.proposals.values()}
        for acc, v in sorted(before.items()):
            if acc in racing or v.master is None or v.locked(rs.as_of):
                continue
            procedure = v.master[0]
            groups: dict[tuple[str, str, str, str], list[ItemView]] = defaultdict(list)
            for it in v.items.values():
                groups[(acc, procedure, it.currency, it.group)].append(it)
            for key, items in sorted(groups.items()):
                if key in undecided or key in noticed:
                    continue
                days, min_item, min_total = self.first_level[procedure]
                q = quantum(key[2])
                min_item = min_item.quantize(q, ROUND_HALF_UP)
                min_total = min_total.quantize(q, ROUND_HALF_UP)
                due = sorted((it for it in items if v.excluded(it.item_id, rs.as_of) is None
                              and (rs.as_of - it.due).days >= max(1, days)
                              and it.open >= min_item), key=lambda it: it.item_id)
                want = [it.item_id for it in due] if due and sum(
                    (it.open for it in due), Decimal(0)) >= min_total else []
                got = proposed.get(key)
                got_items = sorted(i["item_id"] for i in got["items"]) if got else []
                self.stats["never-dunned groups checked"] += 1
                if want == got_items and (not got or got["level"] == 1):
                    continue
                detail = ", ".join(
                    f"{it.item_id} open {it.open} due {it.due} ({it.status}"
                    f"{', ' + why if (why := v.excluded(it.item_id, rs.as_of)) else ''})"
                    for it in sorted(items, key=lambda x: x.item_id))
                self.fail(
                    f"run {rs.run_id} (as of {rs.as_of}), group {key} (never dunned; level 1: "
                    f"{days} days, item >= {min_item}, total >= {min_total}): expected "
                    f"{'a level-1 proposal listing ' + str(want) if want else 'no proposal'}, "
                    f"saw {'level ' + str(got['level']) + ' listing ' + str(got_items) if got else 'none'}"  # noqa: E501
                    f".\n  items: {detail}\n  account {acc}'s events:\n{v.events()}",
                    key=("first notice", rs.run_id, key))

    # ------------------------------------------------------------------ stage 2
    def expect(self, p: dict[str, Any], before: dict[str, AccountView],
               versions_then: Counter[Any], versions_now: Counter[Any], how: str) -> None:
        """What the approval of `p` must come to, from the model now (`before`: the accounts
        when the approval is sent) and the group's notices then and now."""
        acc = p["account_id"]
        v = before.get(acc) or AccountModel(acc).view()
        reasons: set[str] = set()
        why: list[str] = []
        as_of = p["as_of_date"]
        if v.locked(as_of):
            reasons.add("locked")
            why.append(f"the account is locked on {as_of}")
        for it in p["items"]:
            mine = v.items.get(it["item_id"])
            iid = it["item_id"]
            if mine is None:
                reasons.add("stale_proposal")
                why.append(f"item {iid} unknown")
                continue
            if mine.status in ("cancelled", "closed"):
                reasons.add("cancelled")
                why.append(f"item {iid} cancelled")
            elif mine.status == "in_plan":
                reasons.add("in_plan")
                why.append(f"item {iid} in an active plan")
            elif mine.open <= 0:
                reasons.add("paid")
                why.append(f"item {iid} fully paid")
            if v.locked(as_of, iid):
                reasons.add("locked")
                why.append(f"item {iid} locked on {as_of}")
            if mine.open != it["open_amount"] or mine.due != it["due_date"]:
                reasons.add("stale_proposal")
                why.append(f"item {iid}: open {it['open_amount']} -> {mine.open}, due "
                           f"{it['due_date']} -> {mine.due}")
        key = group_key(p)
        if versions_then[key] != versions_now[key]:
            reasons.add("stale_proposal")
            why.append("a notice of the group was executed or reversed since the proposal run")
        if reasons:
            reasons.add("stale_proposal")  # a processor may name the general reason
        self.expects[p["proposal_id"]] = Expect(p, reasons, why, p["run_id"], how, self.day)

    def check_outcome(self, pid: str) -> None:
        ex = self.expects[pid]
        outs = list(self.tap.outcomes.get(pid, {}).values())
        p = ex.proposal
        label = (f"proposal {pid} (account {p['account_id']}, run {ex.run_id}, approved "
                 f"{'by RunApproved' if ex.how == 'run' else ex.how} on day {ex.day})")
        if not outs:
            self.fail(f"{label}: no outcome on dunning.history (expected "
                      f"{'a DunningNoticeIssued' if not ex.reasons else 'ProposalNotExecuted'})",
                      key=("no outcome", pid))
            return
        if len(outs) > 1:
            self.fail(f"{label}: {len(outs)} outcomes: "
                      f"{[(o.rtype, o.record['event_id']) for o in outs]}", key=("outcomes", pid))
        out = outs[0]
        if out.rtype == "ProposalRejected":
            self.fail(f"{label}: a ProposalRejected history record, but it was approved",
                      key=("outcome type", pid))
        elif not ex.reasons and out.rtype != "DunningNoticeIssued":
            self.fail(f"{label}: expected a DunningNoticeIssued (nothing it was computed from "
                      f"changed), saw {out.rtype} reason {out.record.get('reason')!r} detail "
                      f"{out.record.get('detail')!r}", key=("outcome type", pid))
        elif ex.reasons and out.rtype == "DunningNoticeIssued":
            self.fail(f"{label}: executed as a notice although {'; '.join(ex.why)} "
                      f"(expected ProposalNotExecuted, reason one of {sorted(ex.reasons)})",
                      key=("outcome type", pid))
        elif out.rtype == "ProposalNotExecuted" and out.record["reason"] not in ex.reasons:
            self.fail(f"{label}: ProposalNotExecuted reason {out.record['reason']!r} "
                      f"(detail {out.record.get('detail')!r}); expected one of "
                      f"{sorted(ex.reasons)} because {'; '.join(ex.why)}",
                      key=("reason", pid))
        if out.rtype == "DunningNoticeIssued":
            n = out.record
            mine = {"level": p["level"], "charge": p["charge"], "interest": p["interest"],
                    "total_due": p["total_due"], "listed": sorted(i["item_id"] for i in p["items"])}
            theirs = {"level": n["level"], "charge": n["charge"], "interest": n["interest"],
                      "total_due": n["total_due"],
                      "listed": sorted(i["item_id"] for i in n["items"] if i["listed"])}
            if mine != theirs:
                self.fail(f"{label}: the notice {n['notice_id']} is not the proposal as "
                          f"approved: proposed {mine}, issued {theirs}", key=("as approved", pid))

    def check_outcomes_now(self, what: str, pids: list[str]) -> None:
        for pid in pids:
            self.check_outcome(pid)

    async def wait_outcomes(self, pids: list[str], what: str) -> None:
        await self.until(lambda: all(self.tap.outcomes.get(p) for p in pids), what)
        await self.tap.sync()

    async def approve(self, rs: RunState, allow_delete: bool = True) -> None:
        """Reject and approve single proposals, then approve the whole run."""
        self.step = f"review of {rs.run_id}"
        await self.tap.sync()
        undecided = rs.undecided()
        before = self.views()
        versions = self.group_versions()
        rejects = [p for p in undecided if self.rng.random() < 0.12]
        rest = [p for p in undecided if p not in rejects]
        singles = [p for p in rest if self.rng.random() < 0.15]
        for pid in rejects:
            rec = await self.decide("ProposalRejected", proposal_id=pid, decided_by="clerk",
                                    reason="customer called")
            if self.rng.random() < 0.2:  # delivered twice
                await self.send("dunning.decisions", [("ProposalRejected", rec)])
            rs.decided[pid] = "rejected"
            self.stats["proposals rejected"] += 1
        for pid in singles:
            self.expect(rs.proposals[pid], before, self.versions_at(rs), versions, "single")
            rec = await self.decide("ProposalApproved", proposal_id=pid, decided_by="clerk")
            if self.rng.random() < 0.2:
                await self.send("dunning.decisions", [("ProposalApproved", rec)])
            rs.decided[pid] = "approved"
            self.stats["proposals approved singly"] += 1
        if rejects or singles:
            await self.wait_outcomes(rejects + singles, f"outcomes of single decisions on "
                                     f"{rs.run_id}")
            self.check_rejections(rejects)
            self.check_outcomes_now("single approvals", singles)
        if (allow_delete and self.acted_on(rs) and self.rng.random() < 0.3
                and not await self.refused_deletion(rs)):
            return
        pending = rs.undecided()
        await self.tap.sync()
        before = self.views()
        versions = self.group_versions()
        for pid in pending:
            self.expect(rs.proposals[pid], before, self.versions_at(rs), versions, "run")
            rs.decided[pid] = "approved"
        mark = len(self.tap.runs.get(rs.run_id, []))
        await self.decide("RunApproved", run_id=rs.run_id, decided_by="clerk")
        rs.status = "approved"
        self.stats["runs approved"] += 1
        await self.maybe_restart("during_activity")
        ok = await self.until(
            lambda: self.tap.run_records(rs.run_id, "ActivityRunCompleted", mark),
            f"ActivityRunCompleted for {rs.run_id} after RunApproved")
        await self.wait_outcomes(pending, f"outcomes of the proposals of {rs.run_id}")
        self.check_outcomes_now("run approval", pending)
        if ok:
            self.check_activity_counts(rs, pending, mark)

    def versions_at(self, rs: RunState) -> Counter[Any]:
        return rs.versions

    def acted_on(self, rs: RunState) -> list[str]:
        """The run's proposals that were approved or executed (docs/RULES.md 10.4: such a
        run cannot be deleted)."""
        return [pid for pid, how in sorted(rs.decided.items()) if how in ("auto", "approved")]

    def check_rejections(self, pids: list[str]) -> None:
        for pid in pids:
            outs = list(self.tap.outcomes.get(pid, {}).values())
            if [o.rtype for o in outs] != ["ProposalRejected"]:
                self.fail(f"rejected proposal {pid}: expected one history ProposalRejected, saw "
                          f"{[o.rtype for o in outs]}", key=("rejected", pid))

    def check_activity_counts(self, rs: RunState, pending: list[str], mark: int) -> None:
        done = self.tap.run_records(rs.run_id, "ActivityRunCompleted", mark)[0]
        kinds = Counter(next(iter(self.tap.outcomes[p].values())).rtype
                        for p in pending if self.tap.outcomes.get(p))
        if done["notices"] != kinds["DunningNoticeIssued"]:
            self.fail(f"ActivityRunCompleted of {rs.run_id} counts {done['notices']} notices; "
                      f"the history has {kinds['DunningNoticeIssued']} for the "
                      f"{len(pending)} proposals the RunApproved executed",
                      key=("activity notices", rs.run_id, mark))
        if "not_executed" not in done:
            self.fail("ActivityRunCompleted has no not_executed", key="no not_executed")
        elif done["not_executed"] != kinds["ProposalNotExecuted"]:
            self.fail(f"ActivityRunCompleted of {rs.run_id} counts {done['not_executed']} not "
                      f"executed; the history has {kinds['ProposalNotExecuted']} "
                      "ProposalNotExecuted", key=("activity not executed", rs.run_id, mark))

    def deletion_refusals(self, run_id: str, after: int) -> list[dict[str, Any]]:
        return [r.record for r in self.tap.runs.get(run_id, [])[after:]
                if r.rtype == "RunDeletionRefused" or (
                    r.rtype == "RunDecisionRefused" and r.record.get("decision") == "RunDeleted")]

    async def refused_deletion(self, rs: RunState) -> bool:
        """A run with approved proposals cannot be deleted (docs/RULES.md 10.4): the refusal
        is on dunning.runs and the run goes on. Without a refusal the processor deleted the
        run: the story then treats it as deleted (False)."""
        step = self.step
        self.step = f"deletion of {rs.run_id} (has approved proposals)"
        mark = len(self.tap.runs.get(rs.run_id, []))
        await self.decide("RunDeleted", run_id=rs.run_id, decided_by="clerk")
        self.stats["deletions refused (expected)"] += 1
        deadline = time.monotonic() + 15.0
        while not self.deletion_refusals(rs.run_id, mark) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self.step = step
        if self.deletion_refusals(rs.run_id, mark):
            return True
        approved = []
        for pid in self.acted_on(rs):
            outs = [o.rtype + (f" {o.record['reason']}" if "reason" in o.record else "")
                    for o in self.tap.outcomes.get(pid, {}).values()]
            approved.append(f"{pid} ({rs.decided[pid]}: {', '.join(outs) or 'no outcome'})")
        self.fail(f"RunDeleted of {rs.run_id}: no RunDecisionRefused within 15 s, although the "
                  f"run has approved proposals: {'; '.join(approved)} (docs/RULES.md 10.4: "
                  "deleting a run with an executed or approved proposal is refused); the story "
                  "goes on as if the run was deleted", key=("not refused", rs.run_id))
        rs.status = "deleted"
        for pid in rs.undecided():
            rs.decided[pid] = "deleted"
        return False

    async def delete_and_rerun(self, rs: RunState) -> RunState:
        self.step = f"deletion of {rs.run_id}"
        mark = len(self.tap.runs.get(rs.run_id, []))
        await self.decide("RunDeleted", run_id=rs.run_id, decided_by="clerk")
        rs.status = "deleted"
        for pid in rs.undecided():
            rs.decided[pid] = "deleted"
        self.stats["runs deleted"] += 1
        rerun = await self.start_run(rs.payment_run_id, rs.attempt + 1, rerun=True)
        if self.deletion_refusals(rs.run_id, mark):
            self.fail(f"the deletion of {rs.run_id} was refused, but none of its proposals was "
                      "approved", key=("deletion refused", rs.run_id))
        self.stats["reruns"] += 1
        return rerun

    async def review(self, rs: RunState, allow_delete: bool = True) -> None:
        """The clerks' choice for a run that was just proposed."""
        self.step = f"review of {rs.run_id}"
        r = self.rng.random()
        undecided = rs.undecided()
        if not undecided:
            if self.rng.random() < 0.3:
                await self.approve(rs, allow_delete=False)
            return
        if r < 0.5:
            await self.approve(rs, allow_delete)
        elif r < 0.8:
            if r < 0.62:  # decide a few now, the rest later
                await self.singles(rs)
            rs.decide_on = self.day + self.rng.randint(1, 3)
            self.stats["runs left open"] += 1
        elif allow_delete and not self.acted_on(rs):
            rerun = await self.delete_and_rerun(rs)
            await self.review(rerun, allow_delete=False)
        else:
            if allow_delete and not await self.refused_deletion(rs):
                return
            await self.approve(rs, allow_delete=False)

    async def singles(self, rs: RunState) -> None:
        await self.tap.sync()
        before = self.views()
        versions = self.group_versions()
        chosen = [p for p in rs.undecided() if self.rng.random() < 0.35]
        for pid in chosen:
            if self.rng.random() < 0.4:
                await self.decide("ProposalRejected", proposal_id=pid, decided_by="clerk",
                                  reason="promised to pay")
                rs.decided[pid] = "rejected"
                self.stats["proposals rejected"] += 1
            else:
                self.expect(rs.proposals[pid], before, self.versions_at(rs), versions, "single")
                await self.decide("ProposalApproved", proposal_id=pid, decided_by="clerk")
                rs.decided[pid] = "approved"
                self.stats["proposals approved singly"] += 1
        await self.wait_outcomes(chosen, f"outcomes of single decisions on {rs.run_id}")
        self.check_rejections([p for p in chosen if rs.decided[p] == "rejected"])
        self.check_outcomes_now("single approvals",
                                [p for p in chosen if rs.decided[p] == "approved"])

    async def decide_open_runs(self, final: bool = False) -> None:
        for rs in sorted(self.runs.values(), key=lambda r: r.run_id):
            if rs.status != "open" or rs.decide_on is None:
                continue
            if final or rs.decide_on <= self.day:
                self.step = f"late review of {rs.run_id}"
                if not final and not self.acted_on(rs) and self.rng.random() < 0.2:
                    rerun = await self.delete_and_rerun(rs)
                    await self.approve(rerun, allow_delete=False)
                else:
                    await self.approve(rs, allow_delete=not final)

    # ------------------------------------------------------------------ between run and review
    async def mid_review(self, rs: RunState) -> None:
        """Billing events that land after the proposal run and before the approval."""
        self.step = f"events between {rs.run_id} and its review"
        events: list[tuple[str, str, dict[str, Any]]] = []
        touched: set[str] = set()
        for pid in rs.undecided():
            p = rs.proposals[pid]
            acc = p["account_id"]
            if acc in touched or not self.settled(acc) or self.rng.random() > 0.35:
                continue
            touched.add(acc)
            v = self.gen[acc].view()
            listed = [v.items[i["item_id"]] for i in p["items"] if i["item_id"] in v.items]
            if not listed:
                continue
            it = self.rng.choice(listed)
            kind = self.rng.choice(["full", "full", "partial", "unallocated", "cancel", "due",
                                    "lock", "item_lock", "plan", "release", "invoice"])
            ev: tuple[str, str, dict[str, Any]] | None = None
            if kind in ("full", "partial", "unallocated"):
                pay = self.payment_for(acc, v, kind, [it])
                ev = (PAYMENTS_T, "PaymentReceived", pay) if pay else None
            elif kind == "cancel" and it.plan_id is None:
                ev = (INVOICES_T, "InvoiceCancelled", {"event_id": self.new_id(),
                                                       "account_id": acc,
                                                       "invoice_id": it.invoice_id})
            elif kind == "due":
                ev = (DUE_DATES_T, "DueDateChanged", self.r_due(acc, it))
            elif kind in ("lock", "item_lock"):
                start = rs.as_of - timedelta(days=self.rng.randint(0, 3))
                on = it.item_id if kind == "item_lock" and it.plan_id is None else None
                ev = (ACCOUNTS_T, "DunningLockSet", self.r_lock(
                    acc, start, rs.as_of + timedelta(days=self.rng.randint(0, 5)), on))
            elif kind == "plan" and it in self.plannable(v):
                plan = self.r_plan(acc, it)
                ev = (DUE_DATES_T, "InstallmentPlanCreated", plan) if plan else None
            elif kind == "release" and self.gen[acc].locks:
                ev = (ACCOUNTS_T, "DunningLockReleased", {
                    "event_id": self.new_id(), "account_id": acc,
                    "lock_id": self.rng.choice(sorted(self.gen[acc].locks))})
            elif kind == "invoice":
                ev = (INVOICES_T, "InvoiceIssued", self.r_invoice(
                    acc, [it.due - timedelta(days=self.rng.randint(1, 5))], None))
            if ev is not None:
                events.append(ev)
        if not events:
            return
        for _, rtype, rec in events:
            self.gen[rec["account_id"]].apply(rtype, rec)
        self.rng.shuffle(events)
        await self.send_mixed(events)
        self.stats["events between run and review"] += len(events)
        await self.wait_ingested(events, f"events between {rs.run_id} and its review")

    # ------------------------------------------------------------------ reversals
    def reversal_plan(self, book: dict[str, dict[str, Any]], order: dict[str, list[str]],
                      notice_id: str, items: list[str] | None) -> tuple[str, set[str]] | None:
        """('reversed', item ids) or ('refused', item ids) for one notice, or None when
        nothing is left to reverse (DOMAIN.md "Reversal")."""
        n = book[notice_id]
        targets = set(n["lines"] if items is None else items) - n["reversed"]
        if not targets:
            return None
        later = order[n["account_id"]][order[n["account_id"]].index(notice_id) + 1:]
        for m in later:
            if any(i in book[m]["lines"] and i not in book[m]["reversed"] for i in targets):
                return ("refused", targets)
        return ("reversed", targets)

    async def reverse(self) -> None:
        self.step = "reversal"
        await self.tap.sync()
        book, order = self.notice_book()
        live = [nid for nid, n in sorted(book.items()) if set(n["lines"]) - n["reversed"]]
        if not live:
            return
        tag = f"clerk-{self.next('-', 'reversal')}"
        kind = self.rng.choice(["notice", "notice", "items", "run"])
        expected: dict[str, tuple[str, set[str]]] = {}
        if kind == "run":
            run_id = book[self.rng.choice(live)]["run_id"]
            for nid, n in book.items():
                if n["run_id"] == run_id:
                    plan = self.reversal_plan(book, order, nid, None)
                    if plan:
                        expected[nid] = plan
            fields = {"notice_id": None, "run_id": run_id, "item_ids": None}
        else:
            nid = self.rng.choice(live)
            items = None
            if kind == "items":
                left = [i for i in book[nid]["listed"] if i not in book[nid]["reversed"]]
                items = [self.rng.choice(left)] if left else None
            plan = self.reversal_plan(book, order, nid, items)
            if plan:
                expected[nid] = plan
            fields = {"notice_id": nid, "run_id": None, "item_ids": items}
        await self.decide("NoticeReversalRequested", requested_by=tag,
                          reason=f"reversal {kind}", **fields)
        self.stats[f"reversal requests ({kind})"] += 1
        self.reversal_expects[tag] = (self.day, expected)
        await self.maybe_restart("during_reversal")
        await self.until(lambda: {r.record["notice_id"] for r in
                                  self.tap.reversal_outcomes.get(tag, {}).values()}
                         >= set(expected),
                         f"the outcomes of reversal request {tag} ({kind} "
                         f"{fields['notice_id'] or fields['run_id']}): {len(expected)} notices")
        await self.tap.sync()
        self.check_reversal(tag)

    def check_reversal(self, tag: str) -> None:
        day, expected = self.reversal_expects[tag]
        seen: dict[str, list[Rec]] = defaultdict(list)
        for r in self.tap.reversal_outcomes.get(tag, {}).values():
            seen[r.record["notice_id"]].append(r)
        for nid in sorted(set(seen) | set(expected)):
            want = expected.get(nid)
            got = seen.get(nid, [])
            label = f"reversal request {tag} (day {day}), notice {nid}"
            if want is None:
                self.fail(f"{label}: nothing was left to reverse, saw "
                          f"{[g.rtype for g in got]}", key=("reversal", tag, nid))
                continue
            if len(got) != 1:
                self.fail(f"{label}: expected one outcome ({want[0]}), saw "
                          f"{[g.rtype for g in got]}", key=("reversal", tag, nid))
                continue
            out = got[0]
            if want[0] == "reversed":
                if out.rtype != "DunningNoticeReversed":
                    self.fail(f"{label}: expected DunningNoticeReversed of {sorted(want[1])} "
                              f"(no later notice in effect includes them), saw {out.rtype} "
                              f"reason {out.record.get('reason')!r} detail "
                              f"{out.record.get('detail')!r}", key=("reversal", tag, nid))
                elif set(out.record["item_ids"] or []) != want[1]:
                    self.fail(f"{label}: reversed items {sorted(out.record['item_ids'] or [])}, "
                              f"expected {sorted(want[1])}", key=("reversal", tag, nid))
            else:
                if out.rtype != "NoticeReversalRefused":
                    self.fail(f"{label}: expected NoticeReversalRefused (a later notice in "
                              f"effect includes {sorted(want[1])}), saw {out.rtype}",
                              key=("reversal", tag, nid))
                elif out.record["reason"] != "later_notice_in_effect":
                    self.fail(f"{label}: refused with reason {out.record['reason']!r}, expected "
                              "later_notice_in_effect", key=("reversal", tag, nid))

    # ------------------------------------------------------------------ every day
    async def check_day(self) -> None:
        self.step = "end-of-day checks"
        await self.tap.sync()
        dead = self.tap.recs["dunning.dead-letters"]
        for r in dead[self.seen_dead:]:
            d = r.record
            try:
                rtype, original = self.codec.decode(d["value"])
                what = f"{rtype} {({k: original.get(k) for k in ('account_id', 'proposal_id', 'run_id', 'notice_id', 'payment_run_id') if original.get(k)})}"  # noqa: E501
            except Exception:
                what = "undecodable bytes"
            self.fail(f"dead letter from {d['source_topic']} (partition {d['partition']}, "
                      f"offset {d['offset']}): reason {d['reason']!r}, detail {d['detail']!r}; "
                      f"the record: {what}", key=("dead", r.offset))
        self.seen_dead = len(dead)
        for e in self.tap.errors[self.seen_errors:]:
            self.fail(f"output record the test cannot read: {e}", key=("error", e))
        self.seen_errors = len(self.tap.errors)
        for c in self.tap.proposal_conflicts + self.tap.history_conflicts:
            self.fail(c, key=("conflict", c))
        self.check_commands()
        self.check_unique_outcomes()
        self.check_worker_logs()
        await self.check_ingest()
        for prid, run_ids in self.payment_runs.items():
            started = {r for r in self.tap.runs if r.startswith(prid + "/")
                       and self.tap.run_records(r, "ProposalRunStarted")}
            if not started <= set(run_ids):
                self.fail(f"payment run {prid}: runs {sorted(started - set(run_ids))} started, "
                          f"only {run_ids} expected (a second PaymentRunCompleted must start "
                          "nothing new)", key=("runs started", prid))

    def check_worker_logs(self) -> None:
        """An error in a worker's log (an agent that crashed, an event that failed) is a
        failure, even when the story recovers from it."""
        for path in sorted(self.settings.state_dir.glob(f"worker-{self.settings.web_port}-*.log")):
            start = self.log_marks.get(path, 0)
            with path.open("rb") as f:
                f.seek(start)
                data = f.read()
            limit = self.log_limits.get(path)
            if limit is not None:
                data = data[:max(0, limit - start)]
            end = data.rfind(b"\n") + 1
            self.log_marks[path] = start + end
            for line in data[:end].decode(errors="replace").splitlines():
                if '"level": "error"' in line or '"level": "critical"' in line:
                    event = line.split('"event": ', 1)[-1][:300]
                    self.fail(f"error in the worker's log {path.name}: {event}",
                              key=("log", event[:120]))

    async def check_ingest(self) -> None:
        """Everything billing published so far is in the worker's state (every wait of the
        day is over, and the day's proposal run had its barrier)."""
        bodies = await self.bodies(self.pub)
        for acc, body in sorted(bodies.items()):
            lost = missing_events(self.pub[acc], body)
            if body is None and not self.pub[acc].raw:
                continue
            for d, t, r in lost:
                self.fail(f"account {acc}: the worker's state does not show the {t} published "
                          f"on day {d} ({describe(t, r)}, event {r['event_id']}), although "
                          "every wait since has passed (a lost input event?)",
                          key=("lost", r["event_id"]))
            if lost:
                self.lost_accounts.add(acc)

    def check_unique_outcomes(self) -> None:
        decided = {pid: how for rs in self.runs.values() for pid, how in rs.decided.items()}
        for pid, outs in self.tap.outcomes.items():
            kinds = sorted(o.rtype for o in outs.values())
            how = decided.get(pid)
            if len(outs) > 1:
                self.fail(f"proposal {pid} ({how}): {len(outs)} outcomes on the history: "
                          f"{kinds}", key=("outcomes", pid))
            if how in (None, "deleted") and outs:
                self.fail(f"proposal {pid} ({'of a deleted run' if how else 'undecided'}): "
                          f"has an outcome {kinds}", key=("outcome undecided", pid))
            if how == "rejected" and kinds != ["ProposalRejected"]:
                self.fail(f"rejected proposal {pid}: outcomes {kinds}", key=("rejected", pid))

    def check_commands(self) -> None:
        by_id: dict[str, Rec] = {}
        for topic in COMMAND_TOPICS:
            for r in self.tap.recs[topic]:
                cid = r.record["command_id"]
                first = by_id.setdefault(cid, r)
                if first is not r and (first.rtype, first.record) != (r.rtype, r.record):
                    self.fail(f"command id {cid} is two different commands: {first.rtype} "
                              f"{first.record} on {first.topic} and {r.rtype} {r.record} on "
                              f"{r.topic}", key=("command conflict", cid))
        kinds: dict[tuple[str, str, str | None], set[str]] = defaultdict(set)
        for cid, r in by_id.items():
            if r.rtype in ISSUE_KINDS:
                kinds[(r.record["notice_id"], r.rtype, r.record.get("plan_id"))].add(cid)
        for (nid, rtype, plan), ids in kinds.items():
            if len(ids) > 1:
                self.fail(f"notice {nid} has {len(ids)} {rtype} commands"
                          f"{' for plan ' + plan if plan else ''} with different ids: "
                          f"{sorted(ids)}", key=("two commands", nid, rtype, plan))
        named: set[str] = set()
        book, _ = self.notice_book()
        for nid, n in book.items():
            rec = n["record"]
            named |= set(rec["command_ids"])
            for cid in rec["command_ids"]:
                if cid not in by_id:
                    self.fail(f"notice {nid} names command {cid}, which is on no command topic",
                              key=("missing command", cid))
            for activity in rec["activities"]:
                rtypes = [t for t, a in ISSUE_KINDS.items() if a == activity]
                if activity == "deactivate_installment_plan":
                    continue
                got = [k for k in kinds if k[0] == nid and k[1] in rtypes]
                if len(got) != 1:
                    self.fail(f"notice {nid} (level {rec['level']}, activities "
                              f"{rec['activities']}) has {len(got)} {activity} commands",
                              key=("activity", nid, activity))
            for amount, rtype in ((rec["charge"], "PostDunningCharge"),
                                  (rec["interest"], "PostDunningInterest")):
                has = any(k[0] == nid and k[1] == rtype for k in kinds)
                if has != (amount > 0):
                    self.fail(f"notice {nid}: {rtype} {'present' if has else 'missing'} for an "
                              f"amount of {amount}", key=("posting", nid, rtype))
        for r in self.tap.history:
            if r.rtype == "DunningNoticeReversed":
                named |= set(r.record["command_ids"] or [])
                for cid in r.record["command_ids"] or []:
                    if cid not in by_id:
                        self.fail(f"reversal {r.record['reversal_id']} names command {cid}, "
                                  "which is on no command topic", key=("missing command", cid))
        for cid, r in by_id.items():
            if cid not in named:
                self.fail(f"command {cid} ({r.rtype}, notice {r.record.get('notice_id')}) is "
                          "named by no history record", key=("unnamed", cid))
        charge_rev: Counter[str] = Counter()
        interest_rev: dict[str, Decimal] = defaultdict(Decimal)
        for cid, r in by_id.items():
            if r.rtype in REVERSAL_KINDS:
                orig = r.record.get("reverses_command_id")
                if orig not in by_id:
                    self.fail(f"{r.rtype} {cid} reverses {orig}, which is no command",
                              key=("reverses", cid))
                elif r.rtype == "PostDunningChargeReversal":
                    charge_rev[orig] += 1
                else:
                    interest_rev[orig] += r.record["amount"]
        for orig, n in charge_rev.items():
            if n > 1:
                self.fail(f"the charge {orig} is reversed {n} times", key=("charge rev", orig))
        for orig, total in interest_rev.items():
            if total > by_id[orig].record["amount"]:
                self.fail(f"the interest {orig} of {by_id[orig].record['amount']} is reversed "
                          f"by {total} in all", key=("interest rev", orig, total))

    # ------------------------------------------------------------------ the story
    async def story_days(self) -> None:
        rng = self.rng
        currencies = ["EUR"] * 6 + ["JPY"]
        procedures = ["STANDARD"] * 10 + ["BUSINESS"] * 7 + ["CONSUMER"] * 3
        first_wave = max(1, int(self.cfg.accounts * 0.4))
        last_day = max(1, int(self.cfg.days * 0.6))
        for n in range(self.cfg.accounts):
            day = 0 if n < first_wave else rng.randint(1, last_day)
            self.profiles[f"A{n:04d}"] = (rng.choice(procedures), rng.choice(currencies), day)
        for day in range(self.cfg.days):
            self.day = day
            self.as_of = self.cfg.start + timedelta(days=day)
            self.step = "billing events"
            # One random stream per day and phase: a day that went differently (a run that
            # saw a racing event, a restart) changes later days only through their state.
            self.rng = random.Random(f"{self.cfg.seed}:{day}:billing")
            self.generate_day()
            await self.publish_day()
            self.rng = random.Random(f"{self.cfg.seed}:{day}:review")
            await self.maybe_restart("before_run")
            rs = await self.start_run(f"PR-{self.as_of.isoformat()}", 1)
            await self.decide_open_runs()
            await self.mid_review(rs)
            await self.review(rs)
            if rng.random() < 0.4:
                await self.reverse()
            await self.maybe_restart("end_of_day")
            await self.check_day()
            self.say(f"day {day} ({self.as_of}): {len(rs.proposals)} proposals, "
                     f"{len(self.tap.history)} history records, {len(self.failures)} failures")
        self.step = "closing the books"
        await self.decide_open_runs(final=True)
        await self.check_day()
        for tag in self.reversal_expects:
            self.check_reversal(tag)

    async def run_async(self) -> None:
        kwargs = self.settings.kafka_client_kwargs()
        self.producer = AIOKafkaProducer(**kwargs, linger_ms=2)
        await self.producer.start()
        await self.tap.start()
        try:
            await self.story_days()
        except Aborted:
            self.aborted = True
            with contextlib.suppress(Exception):  # what led to it: dead letters, log errors
                await asyncio.wait_for(self.check_day(), 60)
        finally:
            await self.tap.stop()
            await self.producer.stop()

    def audit(self) -> None:
        """`dunning audit verify` and the replay against the live state (test_audit's way)."""
        from audit.replay import Replay
        from audit.report import account_json
        from tests.integration.test_audit import live_items, rebuilt_items

        self.step = "audit"
        url = f"http://127.0.0.1:{self.settings.web_port}"
        ok, lines = self.verify_fn(self.settings, url)
        if not ok:
            problems = [line for line in lines if line.startswith("PROBLEM")][:25]
            self.fail("dunning audit verify failed:\n  " + "\n  ".join(
                [line for line in lines if not line.startswith("PROBLEM")] + problems))
        accounts = asyncio.run(Replay(self.settings).run())
        bodies = {a.account_id: account_json(a) for a in accounts}
        live_now = live_items(self.worker, sorted(self.pub))
        for acc in sorted(self.pub):
            rebuilt = rebuilt_items(bodies[acc]) if acc in bodies else {}
            live = {i: v for i, v in live_now[acc].items() if v != (0, None, None) or i in rebuilt}
            if rebuilt != live:
                diff = {i: (rebuilt.get(i), live.get(i)) for i in sorted(set(rebuilt) | set(live))
                        if rebuilt.get(i) != live.get(i)}
                self.fail(f"account {acc}: the replayed history differs from the live state "
                          f"(item: (replayed, live) level/last dunned/interest until): {diff}",
                          key=("replay", acc))

    def run(self) -> Result:
        """The whole story: start the worker, the days, the audit, stop the worker."""
        self.started = time.monotonic()
        self.worker.start()
        try:
            asyncio.run(self.run_async())
            if not self.aborted:
                self.audit()
        finally:
            self.worker.stop()
        return Result(self.cfg, self.summary(), list(self.failures))

    def summary(self) -> dict[str, Any]:
        outcomes = Counter()
        reasons: Counter[str] = Counter()
        for outs in self.tap.outcomes.values():
            for o in outs.values():
                outcomes[o.rtype] += 1
                if o.rtype == "ProposalNotExecuted":
                    reasons[o.record["reason"]] += 1
        history = Counter(r.rtype for r in self.tap.history)
        return {
            "seed": self.cfg.seed, "days": self.day + 1, "of days": self.cfg.days,
            "accounts": self.cfg.accounts,
            "events published": sum(self.published.values()),
            "events by type": dict(sorted(self.published.items())),
            "payment runs": len(self.payment_runs),
            **dict(sorted(self.stats.items())),
            "notices issued": outcomes["DunningNoticeIssued"],
            "not executed": outcomes["ProposalNotExecuted"],
            "not executed by reason": dict(sorted(reasons.items())),
            "rejections (history)": outcomes["ProposalRejected"],
            "reversals (history)": history["DunningNoticeReversed"],
            "reversals refused (history)": history["NoticeReversalRefused"],
            "history records": len(self.tap.history),
            "commands": sum(len(self.tap.recs[t]) for t in COMMAND_TOPICS),
            "dead letters": len(self.tap.recs["dunning.dead-letters"]),
            "accounts missing published events": len(self.lost_accounts),
            "failures": len(self.failures),
            "seconds": round(time.monotonic() - self.started, 1),
        }


@dataclass
class Result:
    cfg: Config
    summary: dict[str, Any]
    failures: list[str]

    def summary_text(self) -> str:
        lines = [f"[day in the life] seed {self.cfg.seed}, {self.cfg.days} days, "
                 f"{self.cfg.accounts} accounts, {self.cfg.restarts} restarts"]
        for k, v in self.summary.items():
            lines.append(f"  {k:<34} {v}")
        return "\n".join(lines)

    def failure_text(self, limit: int = 60) -> str:
        shown = self.failures[:limit]
        more = (f"\n… and {len(self.failures) - limit} more" if len(self.failures) > limit
                else "")
        return (f"{len(self.failures)} failure(s) (reproduce with DUNNING_SEED="
                f"{self.cfg.seed} DUNNING_DAYS={self.cfg.days} "
                f"DUNNING_ACCOUNTS={self.cfg.accounts}):\n" + "\n".join(shown) + more)


def library_verify(settings: Settings, url: str) -> tuple[bool, list[str]]:
    from audit.replay import Silent, verify

    summary = asyncio.run(verify(settings, worker=url, progress=Silent()))
    return summary.ok, summary.lines()


# ---------------------------------------------------------------------------- __main__
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.integration.daylife",
        description="A day in the life of the dunning engine on its own embedded broker.")
    defaults = Config.from_env()
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--accounts", type=int, default=defaults.accounts)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--restarts", type=int, default=defaults.restarts)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--keep", action="store_true",
                        help="keep the broker's and the worker's folders (logs) and print where")
    args = parser.parse_args(argv)
    cfg = Config(days=args.days, accounts=args.accounts, seed=args.seed, restarts=args.restarts)

    from tests.integration.conftest import new_story
    from topics.broker import EmbeddedBroker, free_port

    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = tempfile.mkdtemp(prefix="daylife-")
            print(f"state and logs kept in {tmp}", file=sys.stderr)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="daylife-"))
        broker = EmbeddedBroker(Path(tmp) / "broker", free_port())
        broker.start()
        try:
            story = new_story(broker, Path(tmp), run_batch=4)
            say = None if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
            result = DayInTheLife(story, cfg, log=say).run()
        finally:
            broker.stop()
    print(result.summary_text())
    if result.failures:
        print(result.failure_text(limit=200))
        return 1
    print("all invariants held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
