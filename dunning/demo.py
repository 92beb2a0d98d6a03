"""`dunning demo`: the whole story on the embedded broker, from sample events to commands."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from config.settings import EMBEDDED, Settings
from config.worker_env import worker_env
from domain.money import from_minor, to_minor
from domain.procedures import parse_procedures
from dunning.sample import month
from processors.convert import new_event_id, procedure_record
from topics.broker import EmbeddedBroker, free_port, port_open
from topics.catalogue import (
    COLLECTIONS,
    DEPOSITS,
    HISTORY,
    LETTERS,
    LOCKS,
    PAYMENT_RUNS,
    POSTINGS,
    PROCEDURES,
    PROPOSALS,
    RUNS,
    WORKFLOWS,
)
from topics.clients import publish, read, read_all
from topics.provision import apply_topics

AS_OF = date(2026, 11, 20)
PROCEDURES_FILE = Path(__file__).parent / "data" / "procedures.yaml"


def say(text: str) -> None:
    print(text, flush=True)


def _ready(settings: Settings) -> bool:
    try:
        url = f"http://127.0.0.1:{settings.web_port}/health/"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


async def _wait_record(settings: Settings, topic: str, rtype: str, run_id: str,
                       timeout: float = 120, **fields: Any) -> dict[str, Any]:
    """Follow a topic until the record arrives (one consumer, no polling); `fields` are
    values it must have too."""
    return (await _wait_records(settings, topic, rtype, run_id, timeout, **fields))[-1][1]


async def _wait_records(settings: Settings, topic: str, rtype: str, run_id: str,
                        timeout: float = 120,
                        **fields: Any) -> list[tuple[str, dict[str, Any]]]:
    """The run's records of a topic (type, record), up to and with the first `rtype`
    that has the values `fields`."""
    seen: list[tuple[str, dict[str, Any]]] = []
    async for rec in read(settings, topic, idle_timeout=timeout, until_end=False):
        r = rec.record
        if not r or r.get("run_id") != run_id or rec.record_type is None:
            continue
        seen.append((rec.record_type, r))
        if rec.record_type == rtype and all(r.get(k) == v for k, v in fields.items()):
            return seen
    raise SystemExit(f"dunning demo: no {rtype} for {run_id} within {timeout} s")


def run_demo(settings: Settings, accounts: int = 300, serve: bool | None = None) -> int:
    from config.logs import configure

    configure(settings.log_format, "WARNING")
    started = time.monotonic()
    broker = None
    if settings.broker == EMBEDDED and not port_open(settings.embedded_port):
        broker = EmbeddedBroker(settings.state_dir, settings.embedded_port)
        say(f"starting the embedded broker on 127.0.0.1:{settings.embedded_port}")
        broker.start()
    # Fresh names for every demo, so it can run again on the same broker.
    tag = f"demo{int(time.time())}"
    settings = replace(settings, app_id=f"dunning-{tag}", topic_prefix=f"{tag}.",
                       state_dir=settings.state_dir / tag, web_port=free_port(), partitions=4)
    worker = page = None
    try:
        _topics_and_procedures(settings)
        worker = _start_worker(settings)
        _month(settings, accounts)
        _summary(settings)
        _render_letters(settings)
        review_run = _unapproved_run(settings, AS_OF + timedelta(days=7))
        page, url = _review_page(settings)
        say(f"review the unapproved run {review_run} in a browser: {url}run?id={review_run}")
        say(f"where to look next: DUNNING_TOPIC_PREFIX={settings.topic_prefix} "
            f"DUNNING_EMBEDDED_PORT={settings.embedded_port} dunning consume dunning.history "
            "--from-beginning; README.md; docs/ARCHITECTURE.md")
        say(f"demo finished in {time.monotonic() - started:.1f} s")
        _keep_serving(serve, url)
        return 0
    finally:
        for proc in (page, worker):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        if broker is not None:
            broker.stop()


def _unapproved_run(settings: Settings, as_of: date) -> str:
    """One more payment run, whose proposals are left for a clerk (CONSUMER's are
    auto-approved: the others wait)."""
    run_id, completed = _proposal_run(settings, f"PR-{as_of.isoformat()}", as_of)
    say(f"{as_of}: proposal run {run_id}: {completed['proposals']} proposals, not approved")
    return run_id


def _review_page(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    """`dunning review serve` on a free loopback port (no login: local only), once it has
    read the topics."""
    port = free_port()
    log_path = settings.state_dir / "review.log"
    page = subprocess.Popen(
        [sys.executable, "-m", "dunning", "review", "serve", "--port", str(port),
         "--worker", f"http://127.0.0.1:{settings.web_port}"],
        env=worker_env(settings), stdout=open(log_path, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "health", timeout=2) as resp:
                if resp.status == 200:
                    return page, url
        except OSError:
            pass
        if page.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"dunning demo: the review page did not start; see {log_path}")
        time.sleep(0.3)


def _keep_serving(serve: bool | None, url: str) -> None:
    """Keep the broker, the worker and the page up until Ctrl-C: always with `--serve`,
    never with `--no-serve`, and by default when run from a terminal."""
    if serve is None:
        serve = sys.stdin.isatty()
    if not serve:
        say("(the page stops with the demo; `dunning demo --serve` keeps it up)")
        return
    say(f"serving {url} until Ctrl-C")

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def _topics_and_procedures(settings: Settings) -> None:
    report = asyncio.run(apply_topics(settings))
    say(f"topics: {len(report.created)} created under the prefix {settings.topic_prefix!r}")
    procedures = parse_procedures(yaml.safe_load(PROCEDURES_FILE.read_text()))
    asyncio.run(publish(settings, PROCEDURES,
                        [("DunningProcedureDefined", procedure_record(p)) for p in procedures]))
    say(f"procedures: {', '.join(p.id for p in procedures)}")


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    """`python -m dunning worker` in a process group of its own, once it answers."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.state_dir / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "dunning", "worker"],
                              env=worker_env(settings), stdout=open(log_path, "wb"),  # noqa: SIM115
                              stderr=subprocess.STDOUT, start_new_session=True)
    say(f"worker started (pid {worker.pid}, log {log_path}); waiting until it is ready")
    deadline = time.monotonic() + 120
    while not _ready(settings):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"dunning demo: the worker did not start; see {log_path}")
        time.sleep(0.3)
    return worker


def _month(settings: Settings, accounts: int) -> None:
    """The sample month's billing events, then a month of weekly payment runs; the
    customers' payments arrive in the last week."""
    sample = month(accounts, AS_OF)
    t0 = time.monotonic()
    n = 0
    for topic, records in sample.by_topic():
        if topic != "billing.payments":
            n += asyncio.run(publish(settings, topic, records))
    say(f"published {n} billing events for {accounts} accounts "
        f"({time.monotonic() - t0:.1f} s); notable: "
        + ", ".join(f"{k} ({v})" for k, v in sample.notable.items()))
    for week in (4, 3, 2, 1, 0):
        as_of = AS_OF - timedelta(days=7 * week)
        if week == 0:
            paid = asyncio.run(publish(settings, "billing.payments", sample.payments))
            say(f"published {paid} payments received in the last week")
        _payment_run(settings, f"PR-{as_of.isoformat()}", as_of)


def _proposal_run(settings: Settings, payment_run_id: str,
                  as_of: date) -> tuple[str, dict[str, Any]]:
    """Publish a completed payment run; its proposal run id and ProposalRunCompleted."""
    asyncio.run(publish(settings, PAYMENT_RUNS, [("PaymentRunCompleted", {
        "event_id": f"demo-{payment_run_id}", "run_id": payment_run_id, "as_of_date": as_of,
        "completed_at": datetime.combine(as_of, datetime.min.time(), UTC), "payment_count": None,
    })]))
    run_id = f"{payment_run_id}/1"
    return run_id, asyncio.run(_wait_record(settings, RUNS, "ProposalRunCompleted", run_id))


def _payment_run(settings: Settings, payment_run_id: str, as_of: date) -> None:
    """One payment run: the proposal run it starts, then approval of what is left."""
    t_run = time.monotonic()
    run_id, completed = _proposal_run(settings, payment_run_id, as_of)
    proposal_seconds = time.monotonic() - t_run
    t_act = time.monotonic()
    asyncio.run(publish(settings, "dunning.decisions", [(
        "RunApproved", {"event_id": new_event_id(), "run_id": run_id, "decided_by": "demo"})]))
    # the approval's activity run, not the auto-approved proposals' (sent with the
    # proposal run): the next week's payments must not meet proposals still executing
    records = asyncio.run(_wait_records(settings, RUNS, "ActivityRunCompleted", run_id,
                                        auto_approved=False))
    act_seconds = time.monotonic() - t_act
    done = records[-1][1]
    # the auto-approved proposals' record comes before the approval's (with the proposal
    # run's completion)
    auto = [r["notices"] for t, r in records
            if t == "ActivityRunCompleted" and r.get("auto_approved")]
    say(f"{as_of}: proposal run {run_id}: {completed['accounts_evaluated']} accounts evaluated, "
        f"{completed['proposals']} proposals in {proposal_seconds:.2f} s; "
        f"{sum(auto)} auto-approved (CONSUMER) notices; approved: "
        f"{done['notices']} notices, {done['commands']} commands in {act_seconds:.2f} s")


def _amount(value: Any, currency: str) -> str:
    return str(from_minor(to_minor(value, currency), currency))


def _summary(settings: Settings) -> None:
    proposals = [r.record for r in asyncio.run(read_all(settings, PROPOSALS)) if r.record]
    levels = Counter(p["level"] for p in proposals)
    per_level = ", ".join(f"level {k}: {v}" for k, v in sorted(levels.items()))
    say(f"proposals per level over the month: {per_level}")
    say("commands per topic:")
    letters: list[dict[str, Any]] = []
    for topic in (LETTERS, LOCKS, COLLECTIONS, DEPOSITS, WORKFLOWS, POSTINGS, HISTORY):
        recs = asyncio.run(read_all(settings, topic, idle_timeout=0.2))
        say(f"  {topic:<22} {len(recs)}")
        if topic == LETTERS:
            letters = [r.record for r in recs if r.record]
    say("three sample letters:")
    for letter in sorted(letters, key=lambda r: -r["level"])[:3]:
        cur = letter["currency"]
        items = ", ".join(f"{i['item_id']} {_amount(i['open_amount'], cur)}"
                          for i in letter["items"])
        say(f"  {letter['account_id']} level {letter['level']} ({letter['language']}, "
            f"{letter['channel']}), as of {letter['as_of_date']}: {items}; charge "
            f"{_amount(letter['charge'], cur)}, interest {_amount(letter['interest'], cur)}, "
            f"total due {_amount(letter['total_due'], cur)} {cur}")


def _render_letters(settings: Settings) -> None:
    """Render the run's letters as PDFs with the reference letter service."""
    from letters.service import pick_examples, render_pending

    docs = asyncio.run(render_pending(settings, idle_seconds=1.0))
    say(f"rendered {len(docs)} letters as PDF; open these three:")
    for doc in pick_examples(docs, 3):
        say(f"  {doc.pdf_path}")
