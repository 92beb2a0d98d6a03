"""Hostile input never takes a worker down (issue 13).

Thousands of malformed records over the five input topics and dunning.decisions (random
bytes, empty values, tombstones, truncated and bit-flipped Avro, wrong fingerprints and
framings, records of the wrong type, absurd amounts and dates, 1 MB strings, records
beyond 1 MiB, too long lists, missing / non-UTF-8 / other accounts' keys, event ids
applied before with another body), interleaved with the valid events of 200 accounts, on
the real broker. Afterwards the same worker process answers, every account is what
folding its valid events through the domain gives, every malformed record is
dead-lettered exactly once with its original bytes, and `dunning_records_total` accounts
for every record of every topic.

Size and seed: `DUNNING_FUZZ_RECORDS` (malformed records, default 10,000) and
`DUNNING_FUZZ_SEED` (default 13). A summary line gives the records per second through
the stream and the worker's resident memory before and after (`pytest -s` shows it).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from fastavro import parse_schema, schemaless_writer

import schemas
from domain.errors import Rejected
from domain.ingest import evolve
from domain.money import minor_units
from domain.state import Account, new_account
from processors import convert, limits
from processors.deadletter import Unusable
from processors.errors import check_key
from schemas.codec import EPOCH_ORDINAL, Codec, CodecError, strip_logical_types
from tests.integration.conftest import new_story
from tests.integration.harness import wait_for
from tests.unit.schemas.samples import sample
from topics import catalogue as cat

RECORDS = int(os.environ.get("DUNNING_FUZZ_RECORDS", "10000"))
SEED = int(os.environ.get("DUNNING_FUZZ_SEED", "13"))
ACCOUNTS = 200
CODEC = Codec()
D0 = date(2026, 6, 1)
PHASES = (cat.ACCOUNTS, cat.INVOICES, cat.DUE_DATES, cat.PAYMENTS)
CONTROL = (cat.PAYMENT_RUNS, cat.DECISIONS)
TOPICS = (*PHASES, *CONTROL)


# ---------------------------------------------------------------- the door, as a reference
def door(topic: str, key: bytes | None, value: bytes | None) -> str | None:
    """Why the worker's door refuses a record (size, framing, type, limits, key, the
    record's own rules), whatever the accounts' state; None if it passes."""
    if value is None:
        return "empty"
    try:
        limits.check_size(value)
        try:
            rtype, raw = CODEC.decode_raw(value)
        except CodecError:
            return "undecodable"
        if rtype not in cat.BY_NAME[topic].records:
            return "unknown_record_type"
        record = limits.check(rtype, raw)
        if topic in cat.ACCOUNT_INPUTS:
            check_key(key, record["account_id"])
            convert.input_event(rtype, record)
    except Unusable as exc:
        return exc.code
    return None


def domain_event(value: bytes) -> Any:
    rtype, raw = CODEC.decode_raw(value)
    return convert.input_event(rtype, limits.check(rtype, raw))


def digest(event: Any) -> bytes:
    return hashlib.blake2b(repr(event).encode(), digest_size=8).digest()


# ---------------------------------------------------------------- raw Avro
@dataclass
class Raw:
    """A record with raw values (decimals as unscaled ints, dates as days since 1970),
    written with the record's own fingerprint whatever its values: what a hostile
    producer can write (a decimal's precision is not part of the fingerprint)."""

    rtype: str
    record: dict[str, Any]

    def encode(self) -> bytes:
        schema = schemas.raw(self.rtype)
        buf = BytesIO()
        buf.write(CODEC.header(self.rtype))
        schemaless_writer(buf, _plain(self.rtype), _to_wire(schema, self.record, {}))
        return buf.getvalue()


_PLAIN: dict[str, Any] = {}


def _plain(rtype: str) -> Any:
    if rtype not in _PLAIN:
        _PLAIN[rtype] = parse_schema(strip_logical_types(schemas.raw(rtype)), named_schemas={})
    return _PLAIN[rtype]


def _to_wire(node: Any, v: Any, named: dict[str, Any]) -> Any:
    if isinstance(node, str):
        return _to_wire(named[node], v, named) if node in named else v
    if isinstance(node, list):
        return None if v is None else _to_wire(next(b for b in node if b != "null"), v, named)
    if node.get("logicalType") == "decimal":
        return v.to_bytes((abs(v).bit_length() + 8) // 8, "big", signed=True)
    kind = node["type"]
    if kind == "record":
        named[node["name"]] = named[f"{node.get('namespace', 'dunning')}.{node['name']}"] = node
        return {f["name"]: _to_wire(f["type"], v[f["name"]], named) for f in node["fields"]}
    if kind == "array":
        return [_to_wire(node["items"], x, named) for x in v]
    if isinstance(kind, dict | list):
        return _to_wire(kind, v, named)
    return v


def raw_of(rtype: str, record: dict[str, Any]) -> Raw:
    return Raw(rtype, CODEC.decode_raw(CODEC.encode(rtype, record))[1])


def days(d: date) -> int:
    return d.toordinal() - EPOCH_ORDINAL


# ---------------------------------------------------------------- the plan
@dataclass
class Rec:
    topic: str
    key: bytes | None
    value: bytes | None
    reason: str | None  # None: valid, must be applied
    account: str | None = None
    partition: int = -1
    offset: int = -1


@dataclass
class Plan:
    rng: random.Random
    accounts: dict[str, Account] = field(default_factory=dict)
    applied_ids: dict[str, list[str]] = field(default_factory=dict)  # account -> event ids
    items: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # (item, amount)
    payments: dict[str, list[str]] = field(default_factory=dict)
    currency: dict[str, str] = field(default_factory=dict)
    phases: list[list[Rec]] = field(default_factory=lambda: [[] for _ in PHASES])
    n: int = 0

    def uid(self, what: str) -> str:
        self.n += 1
        return f"{what}-{SEED}-{self.n}"

    # -- valid events: kept only if the domain takes them (folded here as the worker will)
    def valid(self, phase: int, acc: str, rtype: str, record: dict[str, Any]) -> bool:
        topic = PHASES[phase]
        value = CODEC.encode(rtype, record)
        assert door(topic, acc.encode(), value) is None, (rtype, record)
        event = domain_event(value)
        try:
            after = evolve(self.accounts[acc], event, digest(event))
        except Rejected:
            return False
        self.accounts[acc] = after
        self.applied_ids[acc].append(record["event_id"])
        self.phases[phase].append(Rec(topic, acc.encode(), value, None, acc))
        if self.rng.random() < 0.08:  # a redelivery: the same bytes again change nothing
            self.phases[phase].append(Rec(topic, acc.encode(), value, None, acc))
        return True

    def money(self, acc: str, low: float, high: float) -> Decimal:
        places = minor_units(self.currency[acc])
        q = Decimal(1).scaleb(-places)
        return Decimal(str(round(self.rng.uniform(low, high), places))).quantize(q)


def valid_events(plan: Plan) -> None:
    rng = plan.rng
    for i in range(ACCOUNTS):
        acc = f"FZ-{i:03d}"
        plan.accounts[acc] = new_account(acc)
        plan.applied_ids[acc], plan.items[acc], plan.payments[acc] = [], [], []
        plan.currency[acc] = rng.choice(("EUR",) * 7 + ("USD", "JPY", "BHD"))
        base = {"account_id": acc, "currency": plan.currency[acc], "language": "en",
                "dunning_procedure": rng.choice(("STANDARD", "CONSUMER", "BUSINESS")),
                "postal_address": {"lines": ["1 Main Street"], "postal_code": "10115",
                                   "city": "Berlin", "country": "DE"}, "occurred_at": None}
        plan.valid(0, acc, "AccountUpserted", {**base, "event_id": plan.uid("e"),
                                               "name": f"Customer {i}", "email": None})
        if rng.random() < 0.3:
            plan.valid(0, acc, "AccountUpserted", {**base, "event_id": plan.uid("e"),
                                                   "name": f"Customer {i} Ltd",
                                                   "email": f"c{i}@example.test"})
        if rng.random() < 0.2:
            plan.valid(0, acc, "DunningLockSet", {
                "event_id": plan.uid("e"), "account_id": acc, "lock_id": plan.uid("L"),
                "reason": "dispute", "valid_from": D0, "valid_to": D0 + timedelta(days=30),
                "item_id": None, "occurred_at": None})
        for _ in range(rng.randint(1, 3)):
            inv = plan.uid("INV")
            items = []
            for k in range(rng.randint(1, 3)):
                amount = (Decimal(10**15) if rng.random() < 0.01
                          else plan.money(acc, 1, 20000))
                items.append({"item_id": f"{inv}/{k}", "amount": amount,
                              "due_date": D0 + timedelta(days=rng.randint(0, 180)),
                              "dunning_procedure": None, "dunning_group": None})
            if plan.valid(1, acc, "InvoiceIssued", {
                    "event_id": plan.uid("e"), "account_id": acc, "invoice_id": inv,
                    "currency": plan.currency[acc], "issued_on": D0, "items": items,
                    "occurred_at": None}):
                plan.items[acc] += [(it["item_id"], it["amount"]) for it in items]
                if rng.random() < 0.1:
                    plan.valid(1, acc, "InvoiceCancelled", {
                        "event_id": plan.uid("e"), "account_id": acc, "invoice_id": inv,
                        "occurred_at": None})
        for item_id, _ in plan.items[acc]:
            if rng.random() < 0.2:
                plan.valid(2, acc, "DueDateChanged", {
                    "event_id": plan.uid("e"), "account_id": acc, "item_id": item_id,
                    "due_date": D0 + timedelta(days=rng.randint(0, 365)),
                    "reason": "agreed", "occurred_at": None})
        for _ in range(rng.randint(0, 2)):
            pay = plan.uid("PAY")
            allocations = None
            if plan.items[acc] and rng.random() < 0.3:
                item_id, amount = rng.choice(plan.items[acc])
                part = min(amount, plan.money(acc, 1, 500))
                allocations = [{"item_id": item_id, "amount": part}]
            if plan.valid(3, acc, "PaymentReceived", {
                    "event_id": plan.uid("e"), "account_id": acc, "payment_id": pay,
                    "amount": (allocations[0]["amount"] if allocations
                               else plan.money(acc, 1, 5000)),
                    "currency": plan.currency[acc], "received_on": D0 + timedelta(days=20),
                    "payment_run_id": None, "allocations": allocations, "occurred_at": None}):
                plan.payments[acc].append(pay)
                if rng.random() < 0.1:
                    plan.valid(3, acc, "PaymentReversed", {
                        "event_id": plan.uid("e"), "account_id": acc, "payment_id": pay,
                        "reason": "bounced", "occurred_at": None})


# ---------------------------------------------------------------- malformed records
def some_record(plan: Plan, topic: str, acc: str) -> tuple[str, dict[str, Any]]:
    """A fresh record that would be valid on `topic` (a new event of `acc`)."""
    rng = plan.rng
    rtype = rng.choice(cat.BY_NAME[topic].records)
    if rtype == "InstallmentPlanCreated":  # being reworked elsewhere: not fuzzed here
        rtype = "DueDateChanged"
    record = sample(rtype)
    record["event_id"] = plan.uid("m")
    if "account_id" in record:
        record["account_id"] = acc
        if "currency" in record:
            record["currency"] = plan.currency[acc]
        for row in record.get("items") or ():
            row["amount"] = Decimal(10)
        if rtype == "PaymentReceived":
            record["amount"], record["allocations"] = Decimal(10), None
    return rtype, record


def _strings(node: Any, path: tuple[Any, ...], out: list[tuple[Any, ...]]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _strings(v, (*path, k), out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _strings(v, (*path, i), out)
    elif isinstance(node, str):
        out.append(path)


def _set(record: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for p in path[:-1]:
        record = record[p]
    record[path[-1]] = value


DATE_FIELDS = {"InvoiceIssued": ("issued_on",), "PaymentReceived": ("received_on",),
               "DueDateChanged": ("due_date",), "DunningLockSet": ("valid_from", "valid_to"),
               "PaymentRunCompleted": ("as_of_date",)}
BAD_DAYS = (days(date(1899, 12, 31)), days(date(2200, 1, 1)), 2**31 - 1, -(2**31),
            -719162, 3_000_000)


def malformed(plan: Plan, topic: str, big: list[int]) -> Rec:
    """One malformed record for `topic`: refused by the door whatever the state."""
    rng = plan.rng
    acc = f"FZ-{rng.randrange(ACCOUNTS):03d}"
    key = acc.encode() if topic in cat.ACCOUNT_INPUTS else rng.choice(
        (None, b"\xff\xfe", b"R", os.urandom(8)))
    rtype, record = some_record(plan, topic, acc)
    good = CODEC.encode(rtype, record)
    kinds: list[Callable[[], bytes | None]] = [
        lambda: os.urandom(rng.randrange(0, 300)),
        lambda: b"",
        lambda: None,
        lambda: good[:rng.randrange(0, len(good))],
        lambda: flipped(rng, good),
        lambda: b"\xc3\x01" + os.urandom(8) + good[10:],
        lambda: b"\x00" + rng.randrange(1 << 32).to_bytes(4, "big") + good[10:],
        lambda: CODEC.encode(*wrong_type(rng, topic)),
        lambda: long_string(rng, rtype, record, big),
        lambda: bad_date(rng, rtype, record),
    ]
    if topic in (cat.INVOICES, cat.PAYMENTS):
        kinds += [lambda: bad_amount(rng, rtype, record)] * 2
        if big[2] > 0 and rng.random() < 0.05:  # 10,001 entries: a few of them do
            big[2] -= 1
            kinds = [lambda: too_many(rng, rtype, record)]
    if topic in cat.ACCOUNT_INPUTS:
        kinds += [lambda: semantics(rng, rtype, record)]
    if big and big[0] > 0 and rng.random() < 0.002 * max(1, 3000 // RECORDS):
        kinds = [lambda: too_large(rng, big)]
    for _ in range(20):
        value = rng.choice(kinds)()
        if value is None and key is None:
            key = b"k"  # a Kafka client does not send a record without both
        reason = door(topic, key, value)
        if reason is not None:
            return Rec(topic, key, value, reason, acc)
    raise AssertionError(f"no malformed record made for {topic}")


def flipped(rng: random.Random, good: bytes) -> bytes:
    data = bytearray(good)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(10, len(data))
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def wrong_type(rng: random.Random, topic: str) -> tuple[str, dict[str, Any]]:
    others = [r for r in ("PaymentReceived", "InvoiceIssued", "PaymentRunCompleted",
                          "RunApproved", "DunningProcedureDefined", "AccountUpserted")
              if r not in cat.BY_NAME[topic].records]
    return (rtype := rng.choice(others)), sample(rtype)


def long_string(rng: random.Random, rtype: str, record: dict[str, Any], big: list[int]) -> bytes:
    raw = raw_of(rtype, record)
    paths: list[tuple[Any, ...]] = []
    _strings(raw.record, (), paths)
    path = rng.choice(paths)
    if big[1] > 0 and rng.random() < 0.05:
        big[1] -= 1
        size = 1_000_000  # a 1 MB string: still within the record size
    else:
        size = rng.choice((201, 300, 1001, 2000, 5000))
    _set(raw.record, path, rng.choice("xyzé€") * size)
    return raw.encode()


def bad_date(rng: random.Random, rtype: str, record: dict[str, Any]) -> bytes:
    raw = raw_of(rtype, record)
    names = [f for f in DATE_FIELDS.get(rtype, ()) if f in raw.record]
    if "occurred_at" in raw.record and (not names or rng.random() < 0.3):
        raw.record["occurred_at"] = rng.choice((2**62, -(2**62), 7_258_118_400_000))
    elif rtype == "InvoiceIssued" and rng.random() < 0.5:
        raw.record["items"][0]["due_date"] = rng.choice(BAD_DAYS)
    elif names:
        raw.record[rng.choice(names)] = rng.choice(BAD_DAYS)
    else:
        return b"\xc3\x01"  # no date to break: a truncated header instead
    return raw.encode()


def bad_amount(rng: random.Random, rtype: str, record: dict[str, Any]) -> bytes:
    raw = raw_of(rtype, record)
    units = rng.choice((10**17 * 1000, 10**30 * 1000, 10**15 * 1000 + 1, 1 << 600,
                        -(10**20), 0, -1000))
    if rtype == "InvoiceIssued":
        raw.record["items"][0]["amount"] = units
    elif rtype == "PaymentReceived":
        raw.record["amount"] = units
    return raw.encode()


def too_many(rng: random.Random, rtype: str, record: dict[str, Any]) -> bytes:
    raw = raw_of(rtype, record)
    if rtype == "InvoiceIssued":
        one = raw.record["items"][0]
        raw.record["items"] = [{**one, "item_id": f"i{n}"} for n in range(10_001)]
    elif rtype == "PaymentReceived":
        raw.record["allocations"] = [{"item_id": f"i{n}", "amount": 1000}
                                     for n in range(10_001)]
    return raw.encode()


def semantics(rng: random.Random, rtype: str, record: dict[str, Any]) -> bytes:
    """A record within the limits that breaks a rule of its own."""
    record = copy.deepcopy(record)
    if "currency" in record:
        record["currency"] = rng.choice(("XXX", "EURO", "", "eur"))
    elif rtype == "DunningLockSet":
        record["valid_from"], record["valid_to"] = D0, D0 - timedelta(days=1)
    elif rtype == "InvoiceIssued":
        record["items"] = []
    else:
        return b"\xc3\x01\x00"
    return CODEC.encode(rtype, record)


def too_large(rng: random.Random, big: list[int]) -> bytes:
    big[0] -= 1
    size = 5_000_000 if big[0] < 2 else rng.randrange(limits.MAX_RECORD_BYTES + 1, 1_300_000)
    return CODEC.header("InvoiceIssued") + os.urandom(size)


def hostile(plan: Plan) -> None:
    """The malformed records, spread over the phases, interleaved with the valid ones;
    plus events with an id applied before and another body, after their originals."""
    rng = plan.rng
    # how many records beyond 1 MiB, with a 1 MB string, with a list of 10,001 entries
    big = [3 + RECORDS // 20000, 6 + RECORDS // 10000, 5 + RECORDS // 5000]
    for n in range(RECORDS):
        phase = n * len(PHASES) // RECORDS
        topic = rng.choice((*cat.ACCOUNT_INPUTS, *cat.ACCOUNT_INPUTS, *CONTROL))
        if phase >= 1 and topic in cat.ACCOUNT_INPUTS and rng.random() < 0.06:
            rec = duplicate_id(plan, topic)
        elif topic in cat.ACCOUNT_INPUTS and rng.random() < 0.06:
            rec = wrong_key(plan, topic)
        else:
            rec = malformed(plan, topic, big)
        plan.phases[phase].insert(rng.randrange(len(plan.phases[phase]) + 1), rec)


def duplicate_id(plan: Plan, topic: str) -> Rec:
    """A new body under the id of an event applied in an earlier phase."""
    rng = plan.rng
    acc = f"FZ-{rng.randrange(ACCOUNTS):03d}"
    rtype, record = some_record(plan, topic, acc)
    record["event_id"] = plan.applied_ids[acc][0]  # its first event: an upsert
    value = CODEC.encode(rtype, record)
    assert door(topic, acc.encode(), value) is None
    return Rec(topic, acc.encode(), value, "duplicate_event_id", acc)


def wrong_key(plan: Plan, topic: str) -> Rec:
    rng = plan.rng
    acc = f"FZ-{rng.randrange(ACCOUNTS):03d}"
    rtype, record = some_record(plan, topic, acc)
    key = rng.choice((None, acc.encode() + b"\xff", b"\xc3\x28", b"FZ-OTHER",
                      acc.lower().encode(), acc.encode() + b" "))
    value = CODEC.encode(rtype, record)
    assert door(topic, key, value) == "key_mismatch"
    return Rec(topic, key, value, "key_mismatch", acc)


# ---------------------------------------------------------------- the broker side
async def publish(settings: Any, recs: list[Rec]) -> None:
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), linger_ms=5,  # type: ignore[arg-type]
                                max_request_size=16 << 20)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(r.topic), r.value, key=r.key)
                   for r in recs]
        for r, meta in zip(recs, await asyncio.gather(*futures), strict=True):
            r.partition, r.offset = meta.partition, meta.offset
    finally:
        await producer.stop()


METRIC = re.compile(r"^dunning_records_total\{([^}]*)\} (\S+)$", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def counts(worker: Any) -> dict[tuple[str, str], int]:
    """(topic, outcome) -> `dunning_records_total` of the worker."""
    out = {}
    for labels, value in METRIC.findall(worker.text("/metrics/")):
        named = dict(LABEL.findall(labels))
        out[(named["topic"], named["outcome"])] = int(float(value))
    return out


def unaccounted(worker: Any, published: Counter[str]) -> dict[str, tuple[int, int, int]]:
    """Topic -> (published, applied, dead-lettered) where the last two do not add up."""
    seen = counts(worker)
    out = {}
    for t in TOPICS:
        applied, dead = seen.get((t, "applied"), 0), seen.get((t, "dead_lettered"), 0)
        if applied + dead != published[t]:
            out[t] = (published[t], applied, dead)
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def test_hostile_input_never_takes_the_worker_down(broker, tmp_path):
    plan = Plan(random.Random(SEED))
    valid_events(plan)
    hostile(plan)
    story = new_story(broker, tmp_path)
    worker = story.worker.start(timeout=120)
    try:
        run_story(plan, story, worker)
    finally:
        worker.stop()


def run_story(plan: Plan, story: Any, worker: Any) -> None:
    everything = [r for phase in plan.phases for r in phase]
    published: Counter[str] = Counter()
    assert worker.proc is not None
    pid = worker.proc.pid
    rss_before = rss_mib(pid)
    started = time.monotonic()
    for phase in plan.phases:
        asyncio.run(publish(story.settings, phase))
        published.update(r.topic for r in phase)

        deadline = time.monotonic() + 120 + len(everything) / 200
        while (missing := unaccounted(worker, published)) and time.monotonic() < deadline:
            assert worker.proc.poll() is None, f"the worker exited:\n{worker.log()}"
            time.sleep(0.2)
        assert not missing, f"records not accounted for: {missing}\n{worker.log()}"
    seconds = time.monotonic() - started
    rss_after = rss_mib(pid)

    # the same worker, still answering
    assert worker.proc.poll() is None and worker.proc.pid == pid
    assert worker.get("/health/")["ready"]

    # every record accounted for, per topic
    seen = counts(worker)
    for t in TOPICS:
        mine = [r for r in everything if r.topic == t]
        assert seen.get((t, "dead_lettered"), 0) == sum(r.reason is not None for r in mine), t
        assert seen.get((t, "applied"), 0) == sum(r.reason is None for r in mine), t

    # every malformed record dead-lettered exactly once, with its original bytes
    letters = [r.record for r in story.read("dunning.dead-letters", idle=1.0)]
    by_source = Counter((x["source_topic"], x["partition"], x["offset"]) for x in letters)
    letter_of = {(x["source_topic"], x["partition"], x["offset"]): x for x in letters}
    bad = [r for r in everything if r.reason is not None]
    assert len(letters) == len(bad)
    cut = 0
    for r in bad:
        where = (r.topic, r.partition, r.offset)
        assert by_source[where] == 1, (where, r.reason)
        letter = letter_of[where]
        assert letter["reason"] == r.reason, (where, letter["detail"])
        assert letter["key"] == r.key
        original = r.value if r.value is not None else b""
        if len(original) + len(r.key or b"") + 10_000 > limits.MAX_SEND_BYTES:
            cut += 1
            assert letter["value"] == original[:limits.DEAD_LETTER_KEEP]
            assert hashlib.sha256(original).hexdigest() in letter["detail"]
        else:
            assert letter["value"] == original, where

    # every account is what its valid events make of it
    for acc, expected in plan.accounts.items():
        body = worker.account(acc)
        assert body is not None, acc
        body.pop("next_evaluation_date", None)
        assert body == as_json(convert.account_json(expected)), acc

    # and the control agent still works: a payment run after all that completes
    run_id = f"PR-FUZZ-{SEED}"
    story.send("billing.payment-runs", [("PaymentRunCompleted", {
        "event_id": plan.uid("run"), "run_id": run_id, "as_of_date": date(2026, 12, 31),
        "completed_at": datetime(2026, 12, 31, 20, tzinfo=UTC), "payment_count": None,
        "occurred_at": None})])
    wait_for(lambda: [r for r in story.records("dunning.runs", "ProposalRunCompleted")
                      if r["payment_run_id"] == run_id], timeout=120, what="the run")
    assert worker.proc.poll() is None and worker.proc.pid == pid
    reasons = Counter(r.reason for r in bad)
    total = len(everything)
    print(f"\nfuzz seed {SEED}: {total} records ({len(bad)} malformed, {total - len(bad)} "
          f"valid, {sum(len(r.value or b'') for r in everything) / 2**20:.0f} MiB) in "
          f"{seconds:.1f} s: {total / seconds:.0f} records/s through the stream; worker "
          f"RSS {rss_before:.0f} MiB before, {rss_after:.0f} MiB after; {cut} dead letters "
          f"cut; reasons {dict(reasons.most_common())}")
