"""Bad input never stops the worker and is never dropped silently: each kind lands in
`dunning.dead-letters` with the original bytes, where it came from and a reason."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

from schemas.codec import Codec
from tests.integration import events as e
from tests.integration.harness import dig, wait_for
from topics.clients import publish_raw

D = date(2026, 10, 1)


def test_each_kind_of_bad_input_is_dead_lettered_and_the_worker_goes_on(story):
    acc = "DL-1"
    s = story.settings
    codec = Codec.from_settings(s)
    story.send("billing.accounts", [e.account(acc)])
    story.send("billing.invoices", [e.invoice(acc, "G1", [("G1-a", "100.00", D)],
                                              event_id="dl-inv-1")])
    garbage = b"\x00\x01not avro at all"
    asyncio.run(publish_raw(s, "billing.invoices", garbage, acc.encode()))
    wrong_type = codec.encode(*e.payment_run("PR-x", D))
    asyncio.run(publish_raw(s, "billing.invoices", wrong_type, acc.encode()))
    negative = e.payment(acc, "NEG", "5.00", D)
    negative[1]["amount"] = Decimal("-5.00")
    unknown_currency = e.invoice(acc, "G2", [("G2-a", "10.00", D)], currency="ABC")
    same_id_other_body = e.invoice(acc, "G3", [("G3-a", "99.00", D)], event_id="dl-inv-1")
    story.send("billing.payments", [negative])
    story.send("billing.invoices", [unknown_currency, same_id_other_body])
    wrong_key = codec.encode(*e.payment(acc, "KEY", "1.00", D))
    asyncio.run(publish_raw(s, "billing.payments", wrong_key, b"SOMEONE-ELSE"))
    # the worker goes on: a good event after all the bad ones is applied (the payment may
    # be applied before the invoice: until both are, G1-a is absent or still at 100.00)
    story.send("billing.payments", [e.payment(acc, "OK", "30.00", D)])
    wait_for(lambda: dig(story.worker.account(acc), "items", "G1-a", "open_amount") == "70.00",
             what="good event applied")

    def six_dead_letters() -> list[dict] | None:
        found = story.records("dunning.dead-letters")
        return found if len(found) >= 6 else None

    letters = wait_for(six_dead_letters, what="six dead letters")
    by_reason = {r["reason"]: r for r in letters}
    assert set(by_reason) >= {"undecodable", "unknown_record_type", "invalid_amount",
                              "unknown_currency", "duplicate_event_id", "key_mismatch"}
    assert by_reason["undecodable"]["value"] == garbage
    assert by_reason["undecodable"]["source_topic"] == "billing.invoices"
    assert by_reason["unknown_record_type"]["value"] == wrong_type
    assert by_reason["key_mismatch"]["key"] == b"SOMEONE-ELSE"
    assert by_reason["key_mismatch"]["source_topic"] == "billing.payments"
    assert all(r["offset"] >= 0 and r["detail"] for r in letters)
    state = story.worker.account(acc)
    assert "G2-a" not in state["items"] and "G3-a" not in state["items"]
    assert [p["payment_id"] for p in state["payments"]] == ["OK"]
    # the metrics endpoint counts both
    w = story.worker
    assert w.metric("dunning_dead_letters_total", reason="undecodable") >= 1
    assert w.metric("dunning_dead_letters_total", reason="key_mismatch") >= 1
    assert w.metric("dunning_applied_total", topic="billing.payments") >= 1
    assert "dunning_consumer_lag" in w.text("/metrics/")
