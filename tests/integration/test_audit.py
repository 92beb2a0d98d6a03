"""`dunning audit` on the real broker (issue 5): a replay of the history topic after a
demo-sized story equals the worker's live state for every account; a flipped byte, a
deleted record and two swapped records each make `verify` fail and name the place; and a
topic of 100 000 history records replays with progress (its rate is printed)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from audit.replay import Progress, Replay
from audit.report import account_json
from config.settings import Settings
from dunning.sample import month
from schemas.codec import EPOCH_ORDINAL, Codec
from tests.integration import events as e
from tests.integration.conftest import new_story
from tests.integration.harness import audit_cli, dig, make_settings, wait_for
from topics.clients import read_all

pytestmark = pytest.mark.broker

D1 = date(2026, 11, 20)
D2 = D1 + timedelta(days=14)
HISTORY = "dunning.history"


# ---------------------------------------------------------------- helpers
def history(story: Any) -> list[Any]:
    return [r for r in story.read(HISTORY) if r.record is not None]


def of_type(recs: list[Any], rtype: str, run_id: str | None = None) -> list[dict[str, Any]]:
    return [r.record for r in recs if r.record_type == rtype
            and (run_id is None or r.record["run_id"] == run_id)]


def wait_run_completed(story: Any, run_id: str) -> None:
    wait_for(lambda: any(r["run_id"] == run_id for r in
                         story.records("dunning.runs", "ProposalRunCompleted")),
             timeout=60, what=f"ProposalRunCompleted {run_id}")


def live_items(worker: Any, account_ids: list[str]) -> dict[str, dict[str, tuple]]:
    out = {}
    for acc in account_ids:
        body = worker.account(acc)
        out[acc] = {} if body is None else {
            i: (it["level"], it["last_dunned"], it["interest_until"])
            for i, it in body["items"].items()}
    return out


def rebuilt_items(body: dict[str, Any]) -> dict[str, tuple]:
    return {i: (it["level"], it["last_dunned"], it["interest_until"])
            for i, it in body["items"].items()}


async def copy_topic(source: Settings, target: Settings, partitions: dict[int, list[Any]]) -> None:
    """Create `target`'s history topic and write `partitions` (partition -> records with
    key and value) to it, in order."""
    admin = AIOKafkaAdminClient(**source.kafka_client_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(target.topic(HISTORY), source.partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**source.kafka_client_kwargs(), linger_ms=5)
    await producer.start()
    try:
        futures = []
        for p, recs in sorted(partitions.items()):
            for key, value in recs:
                futures.append(await producer.send(target.topic(HISTORY), value, key=key,
                                                   partition=p))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def tampered(story: Any, name: str, original: dict[int, list[Any]],
             change: Any) -> tuple[Settings, dict[bytes, tuple[int, int]]]:
    """A copy of the history topic under another prefix, changed by `change(partitions)`;
    returns its settings and where each value landed (value -> (partition, offset))."""
    target = replace(story.settings, topic_prefix=f"{story.settings.topic_prefix}{name}.")
    parts = {p: [(r.key, r.value) for r in recs] for p, recs in original.items()}
    change(parts)
    asyncio.run(copy_topic(story.settings, target, parts))
    copied = asyncio.run(read_all(target, HISTORY, idle_timeout=0.3))
    assert len(copied) == sum(len(v) for v in parts.values())
    return target, {r.value: (r.partition, r.offset) for r in copied}


def problem_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("PROBLEM ")]


# ---------------------------------------------------------------- the story
def test_replay_equals_the_live_state_and_tampering_is_named(
        broker, tmp_path, monkeypatch, capsys):
    s = new_story(broker, tmp_path)
    s.worker.start()
    try:
        run_story_and_audit(s, tmp_path, monkeypatch, capsys)
    finally:
        s.worker.stop()


def run_story_and_audit(s, tmp_path, monkeypatch, capsys):
    sample = month(150, D1)
    accounts = [rec["account_id"] for t, rec in sample.accounts if t == "AccountUpserted"]
    for topic, recs in sample.by_topic():
        s.send(topic, recs)
    s.send("billing.payment-runs", sample.payment_runs)
    run1 = f"PR-{D1.isoformat()}/1"
    wait_run_completed(s, run1)
    props1 = [p for p in s.records("dunning.proposals") if p["run_id"] == run1]
    business = [p for p in props1 if p["procedure_id"] == "BUSINESS"]
    assert len(props1) > 40 and business
    rejected = business[0]
    s.send("dunning.decisions", [e.decision("ProposalRejected", proposal_id=rejected["proposal_id"],
                                            decided_by="reviewer", reason="customer called")])
    s.send("dunning.decisions", [e.decision("RunApproved", run_id=run1, decided_by="t")])
    wait_for(lambda: len(of_type(history(s), "DunningNoticeIssued")) == len(props1) - 1,
             timeout=60, what="run 1 executed")
    after_run1 = live_items(s.worker, accounts)

    run2_id = f"PR-{D2.isoformat()}"
    s.send("billing.payment-runs", [e.payment_run(run2_id, D2)])
    run2 = f"{run2_id}/1"
    wait_run_completed(s, run2)
    props2 = [p for p in s.records("dunning.proposals") if p["run_id"] == run2]
    assert props2
    s.send("dunning.decisions", [e.decision("RunApproved", run_id=run2, decided_by="t")])
    wait_for(lambda: len(of_type(history(s), "DunningNoticeIssued"))
             == len(props1) - 1 + len(props2), timeout=60, what="run 2 executed")

    # Reverse one notice of run 2 whole (one with interest, if any) and one item of another.
    issued2 = of_type(history(s), "DunningNoticeIssued", run2)
    whole = max(issued2, key=lambda n: (n["interest"], n["charge"]))
    partial = next(n for n in issued2 if n is not whole and
                   sum(1 for i in n["items"] if i["listed"]) >= 2)
    one_item = next(i["item_id"] for i in partial["items"] if i["listed"])
    s.send("dunning.decisions", [
        e.decision("NoticeReversalRequested", notice_id=whole["notice_id"], run_id=None,
                   item_ids=None, requested_by="auditor", reason="sent in error"),
        e.decision("NoticeReversalRequested", notice_id=partial["notice_id"], run_id=None,
                   item_ids=[one_item], requested_by="auditor", reason="paid before"),
    ])

    def reversed_live() -> bool:
        a = dig(s.worker.account(whole["account_id"]), "notices") or []
        b = dig(s.worker.account(partial["account_id"]), "notices") or []
        return (any(n["notice_id"] == whole["notice_id"] and not n["in_effect"] for n in a)
                and any(n["notice_id"] == partial["notice_id"] and n["reversed_items"]
                        for n in b))
    wait_for(reversed_live, timeout=30, what="reversals applied")
    recs = history(s)
    assert len(of_type(recs, "DunningNoticeReversed")) == 2
    assert len(of_type(recs, "history.ProposalRejected")) == 1
    worker_url = f"http://127.0.0.1:{s.settings.web_port}"

    # verify: every chain intact, the rebuilt state equals the live state.
    code, out, err = audit_cli(monkeypatch, capsys, s.settings, "verify", "--worker", worker_url)
    assert code == 0, out + err
    assert out.rstrip().endswith("OK")
    n_accounts = len({r.record["account_id"] for r in recs})
    assert f"{len(recs):,} records of {n_accounts:,} accounts" in out
    assert f"{n_accounts:,} accounts compared, 0 differ" in out
    assert "records/s" in err  # progress on stderr

    # replay to a file: every account's items equal what the worker serves, independently
    # of verify's comparison.
    lines_file = tmp_path / "replay.jsonl"
    code, out, err = audit_cli(monkeypatch, capsys, s.settings, "replay", "--out", str(lines_file))
    assert code == 0, err
    bodies = {b["account_id"]: b for b in map(orjson.loads, lines_file.read_text().splitlines())}
    assert len(bodies) == n_accounts
    live_now = live_items(s.worker, accounts)
    for acc in accounts:
        rebuilt = rebuilt_items(bodies[acc]) if acc in bodies else {}
        live = {i: v for i, v in live_now[acc].items() if v != (0, None, None) or i in rebuilt}
        assert rebuilt == live, acc
    rej = bodies[rejected["account_id"]]["rejected_proposals"]
    assert rej and rej[0]["proposal_id"] == rejected["proposal_id"]
    whole_body = bodies[whole["account_id"]]
    assert [n["in_effect"] for n in whole_body["notices"]
            if n["notice_id"] == whole["notice_id"]] == [False]
    assert whole_body["reversals"][0]["charge"] == f"{whole['charge']:.2f}"

    # as of the first run's date: the state the worker had after run 1 (later records,
    # the reversals of run-2 notices included, are recorded for D2).
    code, out, err = audit_cli(monkeypatch, capsys, s.settings, "replay", "--as-of", D1.isoformat())
    assert code == 0, err
    as_of_d1 = {b["account_id"]: b for b in map(orjson.loads, out.splitlines())}
    for acc in accounts:
        rebuilt = rebuilt_items(as_of_d1[acc]) if acc in as_of_d1 else {}
        before = {i: v for i, v in after_run1[acc].items()
                  if v != (0, None, None) or i in rebuilt}
        assert rebuilt == before, acc

    # one account: a JSON line on stdout and a table on stderr; the exports.
    acc = whole["account_id"]
    code, out, err = audit_cli(monkeypatch, capsys, s.settings, "replay", "--account", acc)
    assert code == 0 and json.loads(out)["account_id"] == acc
    assert f"account {acc}: " in err and "reversal" in err and "(reversed)" in err
    code, out, err = audit_cli(monkeypatch, capsys, s.settings, "export", "--account", acc,
                         "--format", "csv")
    assert code == 0 and out.startswith("account_id,seq,record_type")
    assert {row.split(",")[2] for row in out.splitlines()[1:]} >= {
        "DunningNoticeIssued", "DunningNoticeReversed"}
    code, out, err = audit_cli(monkeypatch, capsys, s.settings, "export", "--account", acc,
                         "--format", "json")
    exported = json.loads(out)
    assert [r["seq"] for r in exported["chain_records"]] == list(
        range(1, len(exported["chain_records"]) + 1))

    # ------------------------------------------------------------ tampering
    by_partition: dict[int, list[Any]] = defaultdict(list)
    for r in sorted(recs, key=lambda r: (r.partition, r.offset)):
        by_partition[r.partition].append(r)
    chains: dict[str, list[Any]] = defaultdict(list)
    for r in recs:
        chains[r.record["account_id"]].append(r)
    for chain in chains.values():
        chain.sort(key=lambda r: r.record["seq"])
    longest = sorted(chains, key=lambda a: (-len(chains[a]), a))
    three = longest[0]
    assert len(chains[three]) >= 3
    two = next(a for a in longest[1:] if len(chains[a]) >= 2)

    def verify_copy(target: Settings) -> tuple[int, str]:
        code, out, err = audit_cli(monkeypatch, capsys, target, "verify", "--worker", worker_url)
        assert "Traceback" not in err
        return code, out

    # (a) one byte flipped in the body of the first record of an account: still decodes,
    # but the next record's prev_hash no longer matches it.
    victim = chains[two][0]
    notice_id = victim.record["notice_id"].encode()
    at = victim.value.index(notice_id, 10)
    flipped = victim.value[:at] + bytes([victim.value[at] ^ 0x01]) + victim.value[at + 1:]

    def flip(parts: dict[int, list[Any]]) -> None:
        recs_p = parts[victim.partition]
        i = next(k for k, (_, v) in enumerate(recs_p) if v == victim.value)
        recs_p[i] = (recs_p[i][0], flipped)

    target, where = tampered(s, "flip", by_partition, flip)
    code, out = verify_copy(target)
    assert code == 1, out
    p, o = where[flipped]
    problems = problem_lines(out)
    assert problems[0].startswith(f"PROBLEM prev_hash: account {two} seq 2 ")
    assert f"seq 1 at {target.topic(HISTORY)} partition {p} offset {o}" in problems[0]
    assert f"{n_accounts - 1:,} intact, 1 broken" in out

    # (b) a record deleted from the middle of a chain: a gap.
    gone = chains[three][1]

    def delete(parts: dict[int, list[Any]]) -> None:
        parts[gone.partition] = [kv for kv in parts[gone.partition] if kv[1] != gone.value]

    target, where = tampered(s, "delete", by_partition, delete)
    code, out = verify_copy(target)
    assert code == 1, out
    after = chains[three][2]
    p, o = where[after.value]
    gap = problem_lines(out)[0]
    assert gap.startswith(f"PROBLEM gap: account {three} seq 3 {after.record_type}")
    assert f"at {target.topic(HISTORY)} partition {p} offset {o}: seq 2 missing" in gap
    assert f"{n_accounts - 1:,} intact, 1 broken" in out

    # (c) two records of one account swapped: a gap, then a record out of order.
    second, third = chains[three][1], chains[three][2]

    def swap(parts: dict[int, list[Any]]) -> None:
        recs_p = parts[second.partition]
        i = next(k for k, (_, v) in enumerate(recs_p) if v == second.value)
        j = next(k for k, (_, v) in enumerate(recs_p) if v == third.value)
        recs_p[i], recs_p[j] = recs_p[j], recs_p[i]

    target, where = tampered(s, "swap", by_partition, swap)
    code, out = verify_copy(target)
    assert code == 1, out
    problems = problem_lines(out)
    p3, o3 = where[third.value]
    p2, o2 = where[second.value]
    assert problems[0].startswith(f"PROBLEM gap: account {three} seq 3 ")
    assert f"partition {p3} offset {o3}: seq 2 missing" in problems[0]
    assert problems[1].startswith(f"PROBLEM out_of_order: account {three} seq 2 ")
    assert f"partition {p2} offset {o2}: seq 2 comes after seq 3" in problems[1]
    assert f"{n_accounts - 1:,} intact, 1 broken" in out


# ---------------------------------------------------------------- 100 000 records
N_ACCOUNTS = 20_000
PER_ACCOUNT = 5  # 100 000 records


def _change(item: str, old: tuple, new: tuple, interest: int = 0) -> dict[str, Any]:
    return {"item_id": item, "listed": True, "old_level": old[0], "new_level": new[0],
            "old_last_dunned": old[1], "new_last_dunned": new[1],
            "old_interest_until": old[2], "new_interest_until": new[2], "interest": interest}


def _issued(acc: str, k: int, day: int, level: int, items: list[dict[str, Any]],
            charge: int = 0, interest: int = 0, total: int = 250_000) -> tuple[str, dict]:
    nid = f"N-{acc}-{k}"
    return "DunningNoticeIssued", {
        "event_id": f"H-{nid}", "account_id": acc, "recorded_for": day, "notice_id": nid,
        "proposal_id": f"P-{acc}-{k}", "run_id": f"PR-{k}/1", "procedure_id": "STANDARD",
        "dunning_group": "", "currency": "EUR", "level": level, "activities": ["letter"],
        "charge": charge, "interest": interest, "total_due": total, "items": items,
        "command_ids": [f"C-{nid}-letter", f"C-{nid}-charge"]}


def synthetic_history(codec: Codec, n_accounts: int) -> list[tuple[bytes, list[bytes]]]:
    """Valid chained history of `n_accounts` accounts, five records each: a level-1
    notice, a level-2 notice with charge and interest, a rejected proposal, the reversal
    of the level-2 notice, and a level-2 notice again. Encoded on the codec's raw path
    (amounts in thousandths, dates in days since 1970-01-01)."""
    d1, d2, d3 = (d.toordinal() - EPOCH_ORDINAL for d in (D1, D2, D2 + timedelta(days=14)))
    never, lvl1, lvl2 = (0, None, None), (1, d1, None), (2, d2, d2)
    out = []
    for n in range(n_accounts):
        acc = f"SYN-{n:06d}"
        x, y = f"{acc}-I-0", f"{acc}-I-1"
        records = [
            _issued(acc, 1, d1, 1, [_change(x, never, lvl1), _change(y, never, lvl1)]),
            _issued(acc, 2, d2, 2, [_change(x, lvl1, lvl2, 1_260), _change(y, lvl1, lvl2)],
                    charge=5_000, interest=1_260, total=256_260),
            ("history.ProposalRejected", {
                "event_id": f"H-R-{acc}", "account_id": acc, "recorded_for": d3,
                "proposal_id": f"P-{acc}-3", "run_id": "PR-3/1", "decided_by": "reviewer",
                "reason": "customer called"}),
            ("DunningNoticeReversed", {
                "event_id": f"H-V-{acc}", "account_id": acc, "recorded_for": d2,
                "reversal_id": f"V-{acc}", "notice_id": f"N-{acc}-2", "run_id": "PR-2/1",
                "item_ids": [x, y], "charge": 5_000, "interest": 1_260,
                "items": [_change(x, lvl2, lvl1, 1_260), _change(y, lvl2, lvl1)],
                "command_ids": [f"C-V-{acc}"], "reason": "sent in error",
                "requested_by": "auditor", "currency": "EUR"}),
            _issued(acc, 4, d3, 2, [_change(x, lvl1, (2, d3, None)),
                                    _change(y, lvl1, (2, d3, None))]),
        ]
        head, values = "", []
        for seq, (rtype, rec) in enumerate(records, 1):
            value = codec.encode_raw(rtype, {**rec, "seq": seq, "prev_hash": head})
            head = hashlib.sha256(value[len(codec.header(rtype)):]).hexdigest()
            values.append(value)
        out.append((acc.encode(), values))
    return out


async def publish_batches(settings: Settings, accounts: list[tuple[bytes, list[bytes]]]) -> None:
    """Every record of an account on one partition, in order, in producer batches."""
    topic = settings.topic(HISTORY)
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, settings.partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), linger_ms=20,
                                max_batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for key, values in accounts:
            p = zlib.crc32(key) % settings.partitions
            by_partition[p] += [(key, v) for v in values]
        futures = []
        for p, recs in by_partition.items():
            batch = producer.create_batch()
            for key, value in recs:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=p))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def test_a_replay_of_100_000_history_records_shows_progress_and_finishes(
        broker, tmp_path, capsys):
    settings = make_settings(broker, "big" + str(time.monotonic_ns())[-6:], tmp_path)
    codec = Codec.from_settings(settings)
    t0 = time.perf_counter()
    accounts = synthetic_history(codec, N_ACCOUNTS)
    t1 = time.perf_counter()
    asyncio.run(publish_batches(settings, accounts))
    t2 = time.perf_counter()

    stream = io.StringIO()
    progress = Progress(stream, every_s=0.5)
    replay = Replay(settings, progress=progress)
    out_file = tmp_path / "replay.jsonl"

    async def go() -> Counter[str]:
        levels: Counter[str] = Counter()
        with out_file.open("w") as out:
            async for part in replay.partitions():
                for acc in part:
                    out.write(orjson.dumps(account_json(acc)).decode() + "\n")
                    levels.update(str(it.level) for it in acc.items.values())
        return levels

    levels = asyncio.run(go())
    summary = replay.summary
    assert summary.ok, summary.lines()[:20]
    assert summary.records == summary.applied == N_ACCOUNTS * PER_ACCOUNT
    assert summary.accounts == N_ACCOUNTS and summary.duplicates == 0
    assert levels == Counter({"2": 2 * N_ACCOUNTS})
    shown = stream.getvalue().splitlines()
    assert shown[0] == f"replay: {N_ACCOUNTS * PER_ACCOUNT:,} records to read"
    during = [line for line in shown[1:-1] if re.search(r" / 100,000 records \(\d+ %\), ", line)]
    assert during, shown  # progress while reading
    assert re.fullmatch(r"replay: 100,000 records in [\d.]+ s, [\d,]+ records/s", shown[-1])
    assert sum(1 for _ in out_file.open()) == N_ACCOUNTS
    with capsys.disabled():
        print(f"\n[audit] generated 100,000 chained history records in {t1 - t0:.1f} s, "
              f"published in {t2 - t1:.1f} s; replay: {summary.seconds:.2f} s, "
              f"{summary.rate:,.0f} records/s ({progress.rate:,.0f} records/s by the progress "
              "line), JSON lines written")
