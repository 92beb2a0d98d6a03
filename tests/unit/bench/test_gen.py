"""The benchmark data generator: reproducible from its seed, account by account."""

from __future__ import annotations

from datetime import timedelta

from bench import gen
from config.settings import Settings
from schemas.codec import Codec


def test_same_seed_same_events() -> None:
    assert list(gen.events(range(50), seed=3)) == list(gen.events(range(50), seed=3))


def test_an_account_does_not_depend_on_the_others() -> None:
    alone = gen.account_events(41, seed=3)
    assert alone == [e for e in gen.events(range(100), seed=3) if e[2]["account_id"]
                     == gen.account_id(41)]


def test_another_seed_other_events() -> None:
    assert list(gen.events(range(20), seed=1)) != list(gen.events(range(20), seed=2))


def test_the_mix() -> None:
    events = list(gen.events(range(2000), seed=1))
    kinds = {rtype for _, rtype, _ in events}
    assert kinds == {"AccountUpserted", "InvoiceIssued", "PaymentReceived", "DueDateChanged",
                     "DunningLockSet"}
    invoices = [r for _, rtype, r in events if rtype == "InvoiceIssued"]
    assert {len(r["items"]) for r in invoices} == {1, 2, 3}
    items = sum(len(r["items"]) for r in invoices)
    assert 2.6 < items / 2000 < 3.2  # about 3 items per account
    payments = [r for _, rtype, r in events if rtype == "PaymentReceived"]
    assert any(r["allocations"] is None for r in payments)  # unallocated
    by_id = {it["item_id"]: it["amount"] for r in invoices for it in r["items"]}
    partial = [a for r in payments for a in r["allocations"] or ()
               if a["amount"] < by_id[a["item_id"]]]
    assert partial  # partly paid items
    assert all(r["account_id"] == gen.account_id(int(r["account_id"][4:]))
               for _, _, r in events)


def test_every_record_encodes() -> None:
    codec = Codec.from_settings(Settings())
    for _, rtype, record in gen.events(range(300), seed=5):
        rt, back = codec.decode(codec.encode(rtype, record))
        assert rt == rtype and back["account_id"] == record["account_id"]
    day = gen.AS_OF + timedelta(days=1)
    daily = [e for i in range(2000) for e in gen.daily_events(i, 5, gen.AS_OF, day, 0.02)]
    assert 20 < len(daily) < 70
    for _, rtype, record in daily:
        codec.encode(rtype, record)
    codec.encode(*gen.payment_run(gen.AS_OF)[1:])


def test_daily_events_are_reproducible() -> None:
    day = gen.AS_OF + timedelta(days=1)
    first = [gen.daily_events(i, 1, gen.AS_OF, day) for i in range(500)]
    assert first == [gen.daily_events(i, 1, gen.AS_OF, day) for i in range(500)]
