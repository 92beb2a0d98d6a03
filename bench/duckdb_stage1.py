"""A DuckDB baseline of stage 1 (issue 15): the proposal run as one SQL query over Parquet.

The batch a finance team would write against a warehouse: the account state exported to
Parquet, stage 1 of `docs/RULES.md` ("Proposal run") as one SQL query over it, run on the
same bulk-loaded state as the worker's backlog run, and its proposal count checked equal
to the worker's.

Export (not timed; cached next to the bulk state, `<cache>/<spec>/duckdb-<source hash>/`):
the rows of every `accounts` table partition, opened read-only with the store's options
(`bench.bulk.table_paths`), decoded with the worker's own code
(`processors.state.StoredAccount.loads` → `domain.state.Account`; an item's status and
open amount are `domain.settlement`'s, stored in the row and read as the worker reads
them), into these tables (`TABLES`; integers: day numbers, minor units):

* accounts: one row per account: its procedure (NULL: no master data);
* items: one per item: procedure override (or NULL), currency, dunning group, due day,
  open amount, status (0 open, 1 cancelled, 2 source of an active plan, 3 instalment of
  a cancelled plan), level, last-dunned day, interest-until day;
* locks: one per dunning lock: item id (NULL: the whole account), valid from, valid to;
* groups: one per group with a notice in effect: its last notice day
  (`domain.state.group_last_notice_day`);
* pending: one per undecided proposal: its group and run id;
* terms: one per procedure and currency: top level, min days between dunnings, the
  yearly rate in per cent as `rate_num / rate_den` exactly, min interest;
* levels: one per level and currency: days in arrears, min item, min total, charge,
  interest (true/false).

`terms` and `levels` are `domain.procedures.Procedure.terms(currency)` of the procedures
the worker gets (`bench.common.procedure_records`) for every currency of an item.

Query (`SQL`, timed: the wall clock of `CREATE TABLE proposals AS <query>` and fetching
its count): one row per proposal with its level, listed items, charge, interest and
total due, all in integers (interest: `sum(open × days) × rate_num`, divided by
`rate_den × 36500` once and rounded half-up once, as `domain.proposal_run._interest`).

    python -m bench.duckdb_stage1 [--accounts 10000]   # SQL vs domain.proposal_run.propose
    python -m bench.duckdb_stage1 --synthetic 20000    # the same on every case of stage 1
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench import bulk, common, gen
from domain.events import PostalAddress
from domain.procedures import Procedure
from domain.state import (
    Account,
    ExecutedNotice,
    Item,
    Lock,
    Master,
    NoticeLine,
    Proposal,
    group_last_notice_day,
)

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "accounts": (("account_id", "VARCHAR"), ("procedure_id", "VARCHAR")),
    "items": (
        ("account_id", "VARCHAR"), ("item_id", "VARCHAR"), ("procedure_id", "VARCHAR"),
        ("currency", "VARCHAR"), ("dunning_group", "VARCHAR"), ("due_day", "INTEGER"),
        ("open_amount", "BIGINT"), ("status", "TINYINT"), ("level", "INTEGER"),
        ("last_dunned_day", "INTEGER"), ("interest_until_day", "INTEGER")),
    "locks": (("account_id", "VARCHAR"), ("item_id", "VARCHAR"), ("valid_from", "INTEGER"),
              ("valid_to", "INTEGER")),
    "groups": (("account_id", "VARCHAR"), ("procedure_id", "VARCHAR"), ("currency", "VARCHAR"),
               ("dunning_group", "VARCHAR"), ("last_notice_day", "INTEGER")),
    "pending": (("account_id", "VARCHAR"), ("procedure_id", "VARCHAR"),
                ("currency", "VARCHAR"), ("dunning_group", "VARCHAR"), ("run_id", "VARCHAR")),
    "terms": (("procedure_id", "VARCHAR"), ("currency", "VARCHAR"), ("top", "INTEGER"),
              ("min_days_between", "INTEGER"), ("rate_num", "BIGINT"), ("rate_den", "BIGINT"),
              ("min_interest", "BIGINT")),
    "levels": (("procedure_id", "VARCHAR"), ("currency", "VARCHAR"), ("level", "INTEGER"),
               ("days_in_arrears", "INTEGER"), ("min_item", "BIGINT"), ("min_total", "BIGINT"),
               ("charge", "BIGINT"), ("interest", "BOOLEAN")),
}
NULL = "\\N"

SQL = """
-- Stage 1 of docs/RULES.md, "Proposal run": which dunning groups get a notice on $as_of.
-- Every amount is an integer of the currency's minor units, every date a day number.
WITH
looked_at AS (      -- 1. accounts with master data, a known procedure and no valid lock
    SELECT a.account_id, a.procedure_id AS default_id
    FROM accounts a
    WHERE a.procedure_id IN (SELECT procedure_id FROM terms)
      AND NOT EXISTS (
          SELECT 1 FROM locks l
          WHERE l.account_id = a.account_id AND l.item_id IS NULL
            AND l.valid_from <= $as_of AND $as_of <= l.valid_to)
),
due AS (            -- 1. items not locked, paid, cancelled, in a plan or not yet due
    SELECT i.account_id, t.procedure_id, i.currency, i.dunning_group, i.due_day,
           i.open_amount, i.interest_until_day, $as_of - i.due_day AS days,
           least(i.level, t.top) AS cur      -- a level above the top counts as the top
    FROM items i
    JOIN looked_at a USING (account_id)
    JOIN terms t ON t.procedure_id = coalesce(i.procedure_id, a.default_id)
                AND t.currency = i.currency  -- an unknown override: not dunned
    WHERE i.status = 0 AND i.open_amount > 0 AND $as_of - i.due_day >= 1
      AND NOT EXISTS (
          SELECT 1 FROM locks l
          WHERE l.account_id = i.account_id AND l.item_id = i.item_id
            AND l.valid_from <= $as_of AND $as_of <= l.valid_to)
),
leveled AS (        -- 2. advance one level, else the highest level <= cur it still reaches
    SELECT d.*,
           CASE WHEN nxt.level IS NOT NULL THEN d.cur + 1
                ELSE coalesce((SELECT max(l.level) FROM levels l
                               WHERE l.procedure_id = d.procedure_id
                                 AND l.currency = d.currency AND l.level <= d.cur
                                 AND l.min_item <= d.open_amount), 0)
           END AS new
    FROM due d
    LEFT JOIN levels nxt
      ON nxt.procedure_id = d.procedure_id AND nxt.currency = d.currency
     AND nxt.level = d.cur + 1
     AND d.days >= nxt.days_in_arrears AND d.open_amount >= nxt.min_item
),
grouped AS (        -- 3. groups; 4. notice level; 5. sum(open x days) of the listed items
    SELECT account_id, procedure_id, currency, dunning_group,
           bool_or(new > cur) AS advances,
           max(new) AS level,
           count(*) FILTER (WHERE new >= 1) AS listed,
           coalesce(sum(open_amount) FILTER (WHERE new >= 1), 0) AS total_open,
           coalesce(sum(open_amount::HUGEINT * greatest(0, $as_of - greatest(
               due_day, coalesce(interest_until_day, due_day)))) FILTER (WHERE new >= 1), 0)
               AS weight
    FROM leveled
    GROUP BY account_id, procedure_id, currency, dunning_group
),
proposed AS (       -- 3. advances, min_total_amount, frequency; undecided proposals
    SELECT g.*, lv.charge, lv.interest AS with_interest, t.min_interest,
           -- 5. weight x rate / 100 / 365, rounded half-up once (weight >= 0)
           (2 * g.weight * t.rate_num + t.rate_den * 36500) // (2 * t.rate_den * 36500)
               AS rounded
    FROM grouped g
    JOIN terms t USING (procedure_id, currency)
    JOIN levels lv USING (procedure_id, currency, level)
    LEFT JOIN groups n USING (account_id, procedure_id, currency, dunning_group)
    WHERE g.advances
      AND g.total_open >= lv.min_total
      AND (n.last_notice_day IS NULL OR $as_of - n.last_notice_day >= t.min_days_between)
      AND NOT EXISTS (
          SELECT 1 FROM pending p
          WHERE p.account_id = g.account_id AND p.procedure_id = g.procedure_id
            AND p.currency = g.currency AND p.dunning_group = g.dunning_group
            AND p.run_id <> $run_id)
),
posted AS (         -- 5. interest only when above zero and at least min_interest_amount
    SELECT *, CASE WHEN with_interest AND rounded > 0 AND rounded >= min_interest
                   THEN rounded ELSE 0 END AS interest
    FROM proposed
)
SELECT account_id, procedure_id, currency, dunning_group, level, listed, charge,
       interest, total_open + charge + interest AS total_due      -- 6. total
FROM posted
"""


def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def procedures() -> dict[str, Procedure]:
    """The procedures the benchmark's worker gets, as domain objects."""
    from processors import convert

    return {p.id: p for p in map(convert.procedure, common.procedure_records())}


def account_rows(account: Account) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(table, row) for everything stage 1 reads of one account."""
    acc = account.account_id
    master = account.master
    yield "accounts", (acc, None if master is None else master.dunning_procedure)
    for it in account.items:
        yield "items", (acc, it.item_id, it.procedure, it.currency, it.group, it.due_day,
                        it.open_amount, it.status, it.level, it.last_dunned_day,
                        it.interest_until_day)
    for lock in account.locks:
        yield "locks", (acc, lock.item_id, lock.valid_from, lock.valid_to)
    for pid, currency, group in sorted({(n.procedure_id, n.currency, n.group)
                                        for n in account.notices}):
        last = group_last_notice_day(account, pid, currency, group)
        if last is not None:
            yield "groups", (acc, pid, currency, group, last)
    for p in account.pending:
        yield "pending", (acc, p.procedure_id, p.currency, p.dunning_group, p.run_id)


def terms_rows(procs: Mapping[str, Procedure],
               currencies: set[str]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(table, row) of every procedure in every currency (`Procedure.terms`)."""
    for pid in sorted(procs):
        for currency in sorted(currencies):
            t = procs[pid].terms(currency)
            yield "terms", (pid, currency, t.top, t.min_days_between_dunnings, t.rate_num,
                            t.rate_den, t.min_interest)
            for lv in t.levels[1:]:
                assert lv is not None
                yield "levels", (pid, currency, lv.level, lv.days_in_arrears, lv.min_item,
                                 lv.min_total, lv.charge, lv.interest)


def stored_accounts(state_dir: Path, partitions: int) -> Iterator[Account]:
    """Every account of a bulk-loaded state dir, read-only, as the worker decodes it."""
    from faust.stores.rocksdb import RocksDBOptions
    from rocksdict import AccessType, Rdict

    from config.settings import Settings
    from processors.state import StoredAccount

    settings = Settings(partitions=partitions, state_dir=state_dir, app_id="bench-bulk")
    paths, options = bulk.table_paths(settings)
    db_options = RocksDBOptions(**options).as_options()
    for path in paths["accounts"]:
        db = Rdict(path, options=db_options, access_type=AccessType.read_only())
        try:
            for value in db.values():
                yield StoredAccount.loads(value).account
        finally:
            db.close()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _to_parquet(con: Any, csv_path: Path, table: str, out: Path) -> None:
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in TABLES[table])
    con.execute(
        f"COPY (SELECT * FROM read_csv('{csv_path}', header=false, auto_detect=false, "
        f"columns={{{columns}}}, delim=',', quote='\"', escape='\"', nullstr='\\N')) "
        f"TO '{out / (table + '.parquet')}' (FORMAT parquet)")


def export(state_dir: Path, partitions: int, out: Path) -> dict[str, Any]:
    """Write the Parquet tables of a bulk-loaded state dir into `out` (see the module)."""
    return export_accounts(stored_accounts(state_dir, partitions), out)


def export_accounts(accounts: Iterable[Account], out: Path) -> dict[str, Any]:
    """Write the Parquet tables of `accounts` into `out`."""
    import duckdb

    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    files = {t: (out / f"{t}.csv").open("w", newline="") for t in TABLES}
    writers = {t: csv.writer(f, lineterminator="\n") for t, f in files.items()}
    counts = dict.fromkeys(TABLES, 0)
    currencies: set[str] = set()
    try:
        for account in accounts:
            currencies.update(it.currency for it in account.items)
            for table, row in account_rows(account):
                writers[table].writerow([_csv_cell(v) for v in row])
                counts[table] += 1
        for table, row in terms_rows(procedures(), currencies):
            writers[table].writerow([_csv_cell(v) for v in row])
            counts[table] += 1
    finally:
        for f in files.values():
            f.close()
    con = duckdb.connect()
    try:
        for table in TABLES:
            _to_parquet(con, out / f"{table}.csv", table, out)
            (out / f"{table}.csv").unlink()
    finally:
        con.close()
    return {"rows": counts, "seconds": round(time.monotonic() - t0, 2)}


def exported(state_dir: Path, partitions: int) -> tuple[Path, dict[str, Any]]:
    """The Parquet export of a cached bulk state (`bulk.cached_state`'s `state` dir),
    made on first use and kept beside it; exports by an older version of this file are
    removed."""
    import json

    base = state_dir.parent
    out = base / f"duckdb-{_source_hash()}"
    info = out / "info.json"
    if info.exists():
        return out, json.loads(info.read_text())
    for old in base.glob("duckdb-*"):
        if ".building-" not in old.name:
            shutil.rmtree(old, ignore_errors=True)
    building = base / f"{out.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    result = export(state_dir, partitions, building)
    (building / "info.json").write_text(json.dumps(result))
    try:
        building.rename(out)
    except OSError:  # made by another process meanwhile
        shutil.rmtree(building, ignore_errors=True)
    return out, json.loads(info.read_text())


def connect(parquet: Path) -> Any:
    """A DuckDB connection (in memory) with a view per exported table."""
    import duckdb

    con = duckdb.connect()
    for table in TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
                    f"'{parquet / (table + '.parquet')}')")
    return con


def run(con: Any, as_of: int, run_id: str) -> dict[str, Any]:
    """Stage 1 as one query, timed: the proposals into a table, and their count."""
    con.execute("DROP TABLE IF EXISTS proposals")
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE proposals AS {SQL}", {"as_of": as_of, "run_id": run_id})
    count = con.execute("SELECT count(*) FROM proposals").fetchone()[0]
    seconds = time.perf_counter() - t0
    interest, total_due = con.execute(
        "SELECT coalesce(sum(interest), 0), coalesce(sum(total_due), 0) FROM proposals"
    ).fetchone()
    return {"proposals": int(count), "seconds": round(seconds, 3),
            "interest": int(interest), "total_due": int(total_due),
            "threads": int(con.execute("SELECT current_setting('threads')").fetchone()[0])}


def baseline(state_dir: Path, partitions: int, as_of: int, run_id: str,
             worker_proposals: int, worker_seconds: float) -> dict[str, Any]:
    """For `bench.run`: export (cached, not timed), the query (timed), the count check
    against the worker's backlog run, and the ratio worker seconds / DuckDB seconds."""
    parquet, info = exported(state_dir, partitions)
    con = connect(parquet)
    try:
        result = run(con, as_of, run_id)
    finally:
        con.close()
    result["export"] = info
    result["worker_proposals"] = worker_proposals
    result["equal"] = result["proposals"] == worker_proposals
    result["worker_over_duckdb"] = round(worker_seconds / max(result["seconds"], 1e-9), 2)
    return result


Key = tuple[str, str, str, str]


def domain_proposals(accounts: Iterable[Account], as_of: int,
                     run_id: str) -> dict[Key, tuple[int, ...]]:
    """`domain.proposal_run.propose` over the same accounts: (account, procedure, currency,
    group) -> (level, listed, charge, interest, total due)."""
    from domain.proposal_run import propose

    procs = procedures()
    out: dict[Key, tuple[int, ...]] = {}
    for account in accounts:
        for p in propose(account, procs, as_of, run_id).proposals:
            out[(p.account_id, p.procedure_id, p.currency, p.dunning_group)] = (
                p.level, len(p.items), p.charge, p.interest, p.total_due)
    return out


def sql_proposals(con: Any) -> dict[Key, tuple[int, ...]]:
    """The proposals table of the last `run`, in the shape of `domain_proposals`."""
    rows = con.execute("SELECT * FROM proposals").fetchall()
    return {tuple(r[:4]): tuple(int(v) for v in r[4:]) for r in rows}


def _compare(parquet: Path, accounts: Iterable[Account], as_of: int,
             run_id: str) -> dict[str, Any]:
    con = connect(parquet)
    try:
        result = run(con, as_of, run_id)
        sql = sql_proposals(con)
    finally:
        con.close()
    t0 = time.monotonic()
    dom = domain_proposals(accounts, as_of, run_id)
    differing = sorted(k for k in sql.keys() | dom.keys() if sql.get(k) != dom.get(k))
    return {**result, "domain_proposals": len(dom),
            "domain_s": round(time.monotonic() - t0, 2), "differing": len(differing),
            "with_interest": sum(1 for v in dom.values() if v[3]),
            "first_differences": [(k, sql.get(k), dom.get(k)) for k in differing[:5]]}


def compare(spec: bulk.Spec) -> dict[str, Any]:
    """The SQL against the domain on the bulk state of `spec`, proposal by proposal."""
    from domain.dates import to_day

    state_dir, _ = bulk.cached_state(spec)
    parquet, info = exported(state_dir, spec.partitions)
    as_of, run_id = to_day(spec.as_of), f"{gen.payment_run(spec.as_of)[2]['run_id']}/1"
    out = _compare(parquet, stored_accounts(state_dir, spec.partitions), as_of, run_id)
    return {**out, "export": info}


# -- synthetic accounts: every case of stage 1 the bulk state does not have ---------------

SYNTHETIC_AS_OF = 740_000
_PROCEDURES = ("STANDARD", "CONSUMER", "BUSINESS", "UNKNOWN")


def _synthetic_items(rnd: random.Random, aid: str, as_of: int) -> list[Item]:
    items = []
    for k in range(rnd.randrange(7)):
        due = as_of - rnd.randrange(-10, 120)
        amount = rnd.randrange((3000, 60_000, 2_000_000)[rnd.randrange(3)])
        currency = rnd.choice(("EUR", "GBP") if rnd.random() < 0.9 else ("JPY", "BHD"))
        items.append(Item(
            item_id=f"{aid}-{k}", invoice_id=f"{aid}-V{k % 2}", currency=currency,
            amount=amount, due_day=due,
            procedure=None if rnd.random() < 0.8 else rnd.choice(_PROCEDURES),
            group="" if rnd.random() < 0.7 else rnd.choice(("a", "b", "x,y", '"q"')),
            plan_id=None, status=rnd.choice((0, 0, 0, 0, 0, 1, 2, 3)),
            open_amount=amount if rnd.random() < 0.6 else rnd.randrange(amount + 1),
            level=rnd.choice((0, 0, 0, 1, 2, 3, 4, 5)),
            last_dunned_day=None if rnd.random() < 0.5 else as_of - rnd.randrange(40),
            interest_until_day=None if rnd.random() < 0.6 else due + rnd.randrange(-20, 100)))
    return sorted(items, key=lambda it: it.item_id)


def _synthetic_notice(rnd: random.Random, k: int, item: Item, default: str,
                      as_of: int) -> ExecutedNotice:
    pid = item.procedure or default if rnd.random() < 0.8 else rnd.choice(_PROCEDURES)
    line = NoticeLine(item.item_id, True, 0, 1, None, None, 0, 1, item.due_day)
    return ExecutedNotice(
        run_id=f"R{k}", procedure_id=pid, group=item.group, currency=item.currency, level=1,
        as_of=as_of - rnd.randrange(30), activities=("letter",), charge=0, interest=0,
        lines=(line,), plan_ids=(), language=None, recipient=None,
        reversed_items=(item.item_id,) if rnd.random() < 0.2 else ())


def synthetic_account(i: int, rnd: random.Random, as_of: int, run_id: str) -> Account:
    """A random account with what stage 1 looks at: levels (above the top too), partly
    paid, cancelled and in-plan items, overrides (unknown ones too), groups, four
    currencies, account and item locks, notices (some reversed), undecided proposals of
    this run and of an earlier one, accounts without master data."""
    aid = f"S{i:07d}"
    default = rnd.choice(_PROCEDURES if rnd.random() < 0.1 else _PROCEDURES[:3])
    address = PostalAddress(("1 Sample Street",), "10115", "Berlin", "DE")
    master = None if rnd.random() < 0.03 else Master("n", "en", "EUR", default, address, None)
    items = _synthetic_items(rnd, aid, as_of)
    locks = []
    for k in range(rnd.choice((0, 0, 0, 0, 1, 2))):
        start = as_of + rnd.randrange(-30, 10)
        target = rnd.choice(items).item_id if items and rnd.random() < 0.6 else None
        locks.append(Lock(f"L{k}", "disputed", start, start + rnd.randrange(30), target))
    notices = tuple(_synthetic_notice(rnd, k, rnd.choice(items), default, as_of)
                    for k in range(rnd.choice((0, 0, 1, 2, 3))) if items)
    pending = tuple(
        Proposal(f"P{k}", rnd.choice((run_id, "OLD/1")), aid, it.procedure or default, it.group,
                 it.currency, as_of, 1, (), 0, 0, 0, (), (), (), False, None)
        for k, it in enumerate(items[:1]) if rnd.random() < 0.25)
    return Account(aid, master=master, locks=tuple(locks), items=tuple(items),
                   notices=notices, pending=pending)


def compare_synthetic(n: int, seed: int) -> dict[str, Any]:
    """The SQL against the domain on `n` synthetic accounts, proposal by proposal."""
    import tempfile

    rnd = random.Random(f"duckdb-stage1/{seed}")
    run_id = "RUN/1"
    accounts = [synthetic_account(i, rnd, SYNTHETIC_AS_OF, run_id) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        info = export_accounts(accounts, Path(tmp))
        return {**_compare(Path(tmp), accounts, SYNTHETIC_AS_OF, run_id), "export": info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=common.PARTITIONS)
    ap.add_argument("--synthetic", type=int, metavar="N",
                    help="N synthetic accounts (every case of stage 1) instead of bulk state")
    args = ap.parse_args()
    common.quiet()
    if args.synthetic:
        out = compare_synthetic(args.synthetic, args.seed)
    else:
        out = compare(bulk.Spec(args.accounts, args.seed, partitions=args.partitions))
    print(f"duckdb stage 1: {out['proposals']} proposals in {out['seconds']} s; "
          f"domain.proposal_run.propose: {out['domain_proposals']} in {out['domain_s']} s "
          f"({out['with_interest']} with interest); differing: {out['differing']}")
    for diff in out["first_differences"]:
        print("  (account, procedure, currency, group), sql, domain:", diff)
    sys.exit(0 if out["differing"] == 0 else 1)


if __name__ == "__main__":
    main()
