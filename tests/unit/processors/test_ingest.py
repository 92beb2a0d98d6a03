"""processors.ingest: billing events folded into their accounts, the rows stored once per
unit, what cannot be used dead-lettered with its reason, every record counted once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from domain.retention import event_day
from processors import convert
from processors import store as store_module
from tests.integration import events as e
from tests.unit.processors.fakes import PARTITION, D, Message, Rig


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return Rig(tmp_path)


def test_events_are_folded_into_their_accounts_and_the_applied_offsets_kept(rig: Rig) -> None:
    batch = [rig.message("billing.accounts", e.account("A"), 0),
             rig.message("billing.invoices", e.invoice("A", "I1", [("I1-a", "10.00", D)]), 1),
             rig.message("billing.payments", e.payment("A", "P1", "4.00", D), 2)]
    asyncio.run(rig.ingest.on_inputs(batch))
    a = rig.account("A")
    assert [i.item_id for i in a.items] == ["I1-a"]
    assert [p.payment_id for p in a.payments] == ["P1"]
    assert rig.ingest.applied == {
        (rig.settings.topic("billing.accounts"), PARTITION): 1,
        (rig.settings.topic("billing.invoices"), PARTITION): 2,
        (rig.settings.topic("billing.payments"), PARTITION): 3}
    # one row per changed account, with its due-index entry, went out as changelog
    changelog = [o for o in rig.outbox.sent if o[0] == "accounts-changelog"]
    assert [o[1] for o in changelog] == [b"A"]
    assert rig.counted("billing.invoices", "applied") == 1
    assert rig.outbox.records("dunning.dead-letters") == []


def test_what_cannot_be_used_is_dead_lettered_with_its_reason(rig: Rig) -> None:
    batch = [rig.message("billing.accounts", e.account("A"), 0, key=b"B"),
             Message(rig.settings.topic("billing.invoices"), b"A", b"garbage", 1),
             Message(rig.settings.topic("billing.invoices"), b"A", None, 2),
             rig.message("billing.accounts", e.account("A"), 3)]
    asyncio.run(rig.ingest.apply_unit(PARTITION, batch))
    letters = [r for _, r in rig.outbox.records("dunning.dead-letters")]
    assert [(r["reason"], r["offset"]) for r in letters] == [
        ("key_mismatch", 0), ("undecodable", 1), ("empty", 2)]
    assert letters[0]["source_topic"] == "billing.accounts"
    assert rig.account("A") is not None
    assert (rig.counted("billing.accounts", "applied"),
            rig.counted("billing.accounts", "dead_lettered"),
            rig.counted("billing.invoices", "dead_lettered")) == (1, 1, 2)


def test_an_event_applied_again_changes_nothing(rig: Rig) -> None:
    rec = e.account("A")
    asyncio.run(rig.ingest.apply_unit(PARTITION, [rig.message("billing.accounts", rec, 0)]))
    sent = len(rig.outbox.sent)
    asyncio.run(rig.ingest.apply_unit(PARTITION, [rig.message("billing.accounts", rec, 1)]))
    assert len(rig.outbox.sent) == sent  # no row rewritten
    assert rig.counted("billing.accounts", "applied") == 2


def test_an_account_is_compacted_as_of_the_latest_day_of_its_events(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, int]] = []
    compact = store_module.compact

    def recording(account: Any, today: int, keep: int) -> Any:
        calls.append((account.account_id, today, keep))
        return compact(account, today, keep)

    monkeypatch.setattr(store_module, "compact", recording)
    early = e.payment("A", "P1", "1.00", D)
    late = e.payment("A", "P2", "1.00", D.replace(day=20))
    batch = [rig.message("billing.accounts", e.account("A"), 0),
             rig.message("billing.payments", early, 1),
             rig.message("billing.payments", late, 2)]
    asyncio.run(rig.ingest.apply_unit(PARTITION, batch))
    days = [event_day(convert.input_event(*r)) for r in (early, late)]
    assert days[0] is not None and days[1] is not None and days[1] > days[0]
    assert calls == [("A", days[1], rig.settings.retention_days)]


def test_an_import_that_sets_a_level_is_chained_onto_the_accounts_history(rig: Rig) -> None:
    """Two imports of item I1 (the second, later one stands), the first again, and an
    older third: two history records, seq 1 and 2, the second chained to the first."""
    import hashlib

    first = e.imported("A", "I1", 1, D, event_id="imp-1")
    second = e.imported("A", "I1", 2, D.replace(day=20), notice=D.replace(day=21),
                        event_id="imp-2")
    older = e.imported("A", "I1", 1, D.replace(day=2), event_id="imp-3")
    asyncio.run(rig.ingest.apply_unit(PARTITION, [
        rig.message("billing.accounts", e.account("A"), 0),
        rig.message("billing.accounts", first, 1)]))
    asyncio.run(rig.ingest.apply_unit(PARTITION, [
        rig.message("billing.accounts", second, 2), rig.message("billing.accounts", first, 3),
        rig.message("billing.accounts", older, 4)]))
    history = rig.outbox.records("dunning.history")
    assert [(t, r["seq"], r["import_event_id"], r["old_level"], r["new_level"])
            for t, r in history] == [("DunningLevelImported", 1, "imp-1", 0, 1),
                                     ("DunningLevelImported", 2, "imp-2", 1, 2)]
    assert history[0][1]["prev_hash"] == ""
    body = rig.outbox.on("dunning.history")[0][2]
    header = rig.codec.header("DunningLevelImported")
    assert history[1][1]["prev_hash"] == hashlib.sha256(body[len(header):]).hexdigest()
    assert history[1][1]["recorded_for"] == D.replace(day=20)
    a = rig.account("A")
    assert (a.history_seq, len(a.imports), a.imports[0].level) == (2, 1, 2)
    assert rig.outbox.records("dunning.dead-letters") == []
