"""processors.state_codec: compact msgpack of an account, exact round trip."""

import time
from dataclasses import replace

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.state import Account, new_account
from processors.state_codec import FORMAT_VERSION, pack, unpack
from tests.unit.domain.builders import account, day, invoice, item, pay, upsert
from tests.unit.domain.strategies import BASE, dunned_accounts


def three_items_one_payment() -> Account:
    return account(
        upsert(procedure="CONSUMER"),
        invoice(
            "INV-2024-0001",
            item("INV-2024-0001-1", 11900, day("2024-01-15")),
            item("INV-2024-0001-2", 5000, day("2024-02-01")),
            item("INV-2024-0001-3", 2500, day("2024-03-01")),
        ),
        pay("PAY-88123", 3000, day("2024-01-20")),
    )


def test_round_trip_of_a_new_account() -> None:
    assert unpack(pack(new_account("A"))) == new_account("A")


def test_a_packed_account_starts_with_the_format_version_and_has_no_field_names() -> None:
    data = pack(three_items_one_payment())
    value = msgpack.unpackb(data, raw=False)
    assert value[0] == FORMAT_VERSION
    assert b"open_amount" not in data and b"item_id" not in data


def test_an_account_with_three_items_and_one_payment_stays_small() -> None:
    acc = three_items_one_payment()
    data = pack(acc)
    assert unpack(data) == acc
    # Master data (name, address, e-mail) is about 80 of these bytes.
    assert len(data) < 210


def test_an_unknown_format_version_is_refused() -> None:
    data = msgpack.packb([99, "A"], use_bin_type=True)
    with pytest.raises(ValueError, match="format"):
        unpack(data)


def test_a_sha256_history_head_is_kept_exactly() -> None:
    for head in ("ab" * 32, "AB" * 32, "not a hash", ""):
        acc = replace(three_items_one_payment(), history_head=head, history_seq=7)
        assert unpack(pack(acc)) == acc


def test_pack_and_unpack_are_fast_enough_for_the_proposal_run() -> None:
    acc = three_items_one_payment()
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        unpack(pack(acc))
    per_call = (time.perf_counter() - start) / n
    assert per_call < 500e-6  # generous: about 20 us on the project's machine


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dunned_accounts())
def test_every_account_round_trips_exactly(case) -> None:  # type: ignore[no-untyped-def]
    acc, _ = case
    data = pack(acc)
    back = unpack(data)
    assert back == acc
    assert pack(back) == data


def test_a_format_1_row_is_read_with_its_plan_amounts_in_thousandths() -> None:
    import msgpack

    from processors import state_codec
    from tests.unit.domain.builders import account, day, invoice, item, plan, upsert

    acc = account(
        upsert(currency="JPY"),
        plan("PL", ("A", "B"), ("A-1", 300, day("2024-03-01")), currency="JPY"),  # no B yet
        invoice("I", item("A", 500, day("2024-01-10")), currency="JPY"),
    )
    assert acc.plans[0].installments[0].amount == 300_000  # 300 JPY in thousandths
    v = list(msgpack.unpackb(state_codec.pack(acc), raw=False, use_list=False))
    # format 1 held the amount in minor units of the currency it was read with (JPY: 300)
    v[0] = 1
    v[12] = [[p[0], p[1], [[i[0], 300, i[2]] for i in p[2]]] for p in v[12]]
    old = state_codec.unpack(msgpack.packb(v, use_bin_type=True))
    assert old == acc


def test_a_compacted_account_round_trips_with_its_event_days_and_horizon() -> None:
    from domain.retention import compact

    acc = compact(three_items_one_payment(), day("2024-01-16") + 730, 730)
    assert acc.horizon == day("2024-01-16") and acc.seen_days
    assert unpack(pack(acc)) == acc


def test_a_format_2_row_is_read_with_no_event_days() -> None:
    acc = three_items_one_payment()
    v = list(msgpack.unpackb(pack(acc), raw=False, use_list=False))
    v[0], v[6] = 2, v[6][0]  # format 2: seen alone, without days
    old = unpack(msgpack.packb(v, use_bin_type=True))
    assert old == replace(acc, seen_days=())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dunned_accounts(), st.integers(0, 600))
def test_every_compacted_account_round_trips_exactly(case, offset) -> None:  # type: ignore[no-untyped-def]
    from domain.retention import compact

    acc = compact(case[0], BASE + offset + 730, 730)
    data = pack(acc)
    assert unpack(data) == acc
    assert pack(unpack(data)) == data


def test_charge_and_interest_items_round_trip_and_leave_other_rows_alone() -> None:
    """RULES.md decision 12: a notice that keeps its charge and interest as items stores its
    clearing order and the claims it listed; a pending proposal its claims too. A notice
    without them packs as before (no trailing fields)."""
    from domain.activity_run import execute
    from domain.procedures import CHARGES_FIRST
    from domain.proposal_run import propose
    from domain.review import record_proposals
    from tests.unit.domain.builders import level, procedure

    plain = procedure(level(1, 7, charge="5.00"), level(2, 21, charge="10.00", interest=True))
    proc = replace(plain, clearing_order=CHARGES_FIRST)
    acc = account(upsert(), invoice("I", item("I-1", 10000, day("2024-01-01"))))
    (p,) = propose(acc, {"P": proc}, day("2024-01-15"), "R/1").proposals
    acc, _ = execute(record_proposals(acc, [p]), p.proposal_id)
    (second,) = propose(acc, {"P": proc}, day("2024-02-05"), "R/2").proposals
    assert second.claims and second.clearing_order == CHARGES_FIRST
    pending = record_proposals(acc, [second])
    assert unpack(pack(pending)) == pending
    done, _ = execute(pending, second.proposal_id)
    assert done.notices[1].claims == second.claims
    assert unpack(pack(done)) == done
    # the same notice without clearing_order packs as before: no trailing fields
    fresh = account(upsert(), invoice("I", item("I-1", 10000, day("2024-01-01"))))
    (q,) = propose(fresh, {"P": plain}, day("2024-01-15"), "R/3").proposals
    row = msgpack.unpackb(pack(record_proposals(fresh, [q])), strict_map_key=False)
    assert q.clearing_order is None and not q.claims
    assert len(row[16][-1]) == 16  # ends at last_notice_date, as before
