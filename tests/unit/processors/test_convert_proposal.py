"""The run's hand-built `DunningProposed` record is the schema-driven one, byte for byte."""

from hypothesis import HealthCheck, given, settings

from domain.proposal_run import propose
from processors import convert
from schemas.codec import Codec
from tests.unit.domain.strategies import dunned_accounts

CODEC = Codec()


def _generic(p: object) -> dict:
    return convert.to_avro("DunningProposed", p, raw=True,
                           event_id=p.proposal_id)  # type: ignore[attr-defined]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dunned_accounts())
def test_the_fast_record_is_the_schema_driven_record(case) -> None:
    account, procs = case
    for day in (0, 15, 45, 120):
        as_of = max((it.due_day for it in account.items), default=0) + day
        for p in propose(account, procs, as_of, f"run-{day}").proposals:
            fast = convert.proposal_record(p, raw=True)
            assert fast == _generic(p)
            assert CODEC.encode_raw("DunningProposed", fast) == \
                CODEC.encode_raw("DunningProposed", _generic(p))


def test_the_scale_is_the_schemas() -> None:
    schema = convert._schema("DunningProposed")
    scales = {f["type"]["scale"] for f in schema["fields"]
              if isinstance(f["type"], dict) and f["type"].get("logicalType") == "decimal"}
    assert scales == {convert.MONEY_SCALE}


def test_the_fast_record_on_the_benchmarks_accounts(tmp_path) -> None:
    """The accounts the benchmark runs over (many levels, currencies, interest, left-out
    items): every proposal of a backlog run gives the same bytes both ways."""
    from bench import bulk, common, gen
    from config.settings import Settings
    from domain.dates import to_day
    from processors.state import StoredAccount

    settings = Settings(partitions=1, state_dir=tmp_path, app_id="convert-test")
    worker = bulk.loader_worker(settings, common.procedure_records())
    spec = bulk.Spec(300, partitions=1)
    for i in range(spec.accounts):
        bulk.build_rows(worker, i, spec, 0)
    procs = worker.procedures.get()
    proposals = [p for raw in worker.accounts.parts[0].values()
                 for p in propose(StoredAccount.loads(raw).account, procs,
                                  to_day(gen.AS_OF), "run-1").proposals]
    assert len(proposals) > 150
    assert len({p.currency for p in proposals}) >= 2
    assert any(p.left_out for p in proposals)
    for p in proposals:
        assert CODEC.encode_raw("DunningProposed", convert.proposal_record(p, raw=True)) == \
            CODEC.encode_raw("DunningProposed", _generic(p))


def test_a_listed_charge_item_is_a_row_of_kind_charge_both_ways() -> None:
    """RULES.md decision 12: the open charge 5.00 of the first notice (pay by 29.01.2024)
    is listed on the second (05.02.) as a `ProposedItem` of kind `charge`, 7 days late,
    levels 0, after the invoice item (kind null); both ways give the same bytes."""
    from dataclasses import replace

    from domain.activity_run import execute
    from domain.procedures import CHARGES_FIRST
    from domain.review import record_proposals
    from tests.unit.domain.builders import account, day, invoice, item, level, procedure, upsert

    proc = replace(procedure(level(1, 7, charge="5.00"), level(2, 21, charge="10.00")),
                   clearing_order=CHARGES_FIRST)
    acc = account(upsert(), invoice("I", item("I-1", 10000, day("2024-01-01"))))
    (p,) = propose(acc, {"P": proc}, day("2024-01-15"), "R/1").proposals
    acc, notice = execute(record_proposals(acc, [p]), p.proposal_id)
    (second,) = propose(acc, {"P": proc}, day("2024-02-05"), "R/2").proposals
    fast = convert.proposal_record(second, raw=True)
    rows = [(i["item_id"], i["kind"], i["days_in_arrears"], i["new_level"]) for i in fast["items"]]
    assert rows == [("I-1", None, 35, 2), (f"{notice.notice_id}/charge", "charge", 7, 0)]
    assert CODEC.encode_raw("DunningProposed", fast) == \
        CODEC.encode("DunningProposed", convert.proposal_record(second))
