"""`dunning`: the one console script. Entry points parse, build and hand on; no logic."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from config.settings import Settings, SettingsError
from topics.broker import ensure_broker


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"dunning: {exc}") from exc


def _embedded(settings: Settings, port: int | None = None) -> Any:
    from topics.broker import EmbeddedBroker

    return EmbeddedBroker(settings.state_dir, port or settings.embedded_port)


# ---------------------------------------------------------------- broker
def cmd_broker(args: argparse.Namespace) -> int:
    settings = _settings()
    broker = _embedded(settings, args.port)
    if args.action == "start":
        pid = broker.start()
        print(f"embedded broker (Tansu) on {broker.bootstrap}, pid {pid}, log {broker.log_file}")
    elif args.action == "stop":
        print("stopped" if broker.stop() else "not running")
    else:
        pid = broker.pid()
        if pid is not None and broker.running():
            print(f"running on {broker.bootstrap}, pid {pid}")
        else:
            print("not running")
            return 3
    return 0


# ---------------------------------------------------------------- topics
def cmd_topics(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.action == "export":
        from topics.export import export

        print(export(settings, args.format), end="")
        return 0
    ensure_broker(settings)
    from topics.provision import apply_topics

    report = asyncio.run(apply_topics(settings))
    for line in report.lines():
        print(line)
    return 1 if report.differences and args.strict else 0


# ---------------------------------------------------------------- procedures
def cmd_procedures(args: argparse.Namespace) -> int:
    import yaml

    from domain.procedures import ProcedureError, parse_procedures
    from processors.convert import procedure_record
    from topics.clients import publish

    settings = _settings()
    try:
        data = yaml.safe_load(Path(args.file).read_text())
        procedures = parse_procedures(data)
    except (OSError, yaml.YAMLError, ProcedureError) as exc:
        raise SystemExit(f"dunning: {args.file}: {exc}") from exc
    ensure_broker(settings)
    records = [("DunningProcedureDefined", procedure_record(p)) for p in procedures]
    n = asyncio.run(publish(settings, "dunning.procedures", records))
    print(f"published {n} procedures: {', '.join(p.id for p in procedures)}")
    return 0


# ---------------------------------------------------------------- worker
def cmd_worker(args: argparse.Namespace) -> int:
    from config.logs import configure

    settings = _settings()
    configure(settings.log_format, settings.log_level)
    ensure_broker(settings)
    from processors.worker import run_worker

    return run_worker(settings)


# ---------------------------------------------------------------- produce / consume
def cmd_produce(args: argparse.Namespace) -> int:
    from schemas.jsonio import JsonRecordError, parse_line
    from topics.clients import WrongTopic, check_topic, publish

    settings = _settings()
    source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    records = []
    with source:
        for lineno, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                rtype, record = parse_line(line, lineno)
                check_topic(args.topic, rtype)
            except (JsonRecordError, WrongTopic) as exc:
                msg = str(exc) if str(exc).startswith("line") else f"line {lineno}: {exc}"
                raise SystemExit(f"dunning: {args.file}: {msg}") from exc
            records.append((rtype, record))
    ensure_broker(settings)
    n = asyncio.run(publish(settings, args.topic, records))
    print(f"published {n} records to {args.topic}", file=sys.stderr)
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    from schemas.jsonio import dumps
    from topics.clients import read

    settings = _settings()
    ensure_broker(settings)

    async def go() -> int:
        n = 0
        async for rec in read(settings, args.topic, from_beginning=args.from_beginning,
                              idle_timeout=args.idle_timeout):
            n += 1
            if rec.record is None:
                print(json.dumps({"type": None, "error": rec.error, "partition": rec.partition,
                                  "offset": rec.offset}))
            elif rec.record_type is not None:
                print(dumps(rec.record_type, rec.record), flush=True)
        return n

    n = asyncio.run(go())
    print(f"{n} records", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- account
def cmd_account(args: argparse.Namespace) -> int:
    settings = _settings()
    url = f"http://{args.host or settings.web_host}:{args.port or settings.web_port}"
    try:
        with urllib.request.urlopen(f"{url}/accounts/{args.account_id}/", timeout=10) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            print(f"unknown account {args.account_id}")
            return 1
        raise
    except OSError as exc:
        raise SystemExit(f"dunning: no worker answers on {url}: {exc}") from exc
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    from processors.convert import render_account

    print(render_account(body))
    return 0


# ---------------------------------------------------------------- review
def _decide(rtype: str, records: list[dict[str, Any]]) -> int:
    from processors.convert import new_event_id
    from topics.clients import publish

    settings = _settings()
    ensure_broker(settings)
    for r in records:
        r.setdefault("event_id", new_event_id())
    n = asyncio.run(publish(settings, "dunning.decisions", [(rtype, r) for r in records]))
    print(f"published {n} {rtype}")
    return 0


def proposal_status(history: list[Any]) -> dict[str, str]:
    """Each decided proposal's outcome, from the history topic: ``executed``, ``rejected``
    or ``not executed (REASON)``; a proposal not named is undecided."""
    status: dict[str, str] = {}
    for rec in history:
        r = rec.record or {}
        if rec.record_type == "DunningNoticeIssued":
            status[r["proposal_id"]] = "executed"
        elif rec.record_type == "history.ProposalRejected":
            status[r["proposal_id"]] = "rejected"
        elif rec.record_type == "ProposalNotExecuted":
            status[r["proposal_id"]] = f"not executed ({r['reason']})"
    return status


def cmd_proposals(args: argparse.Namespace) -> int:
    if args.action == "list":
        from schemas.jsonio import dumps
        from topics.clients import read_all

        settings = _settings()
        ensure_broker(settings)
        recs = asyncio.run(read_all(settings, "dunning.proposals"))
        status = proposal_status(asyncio.run(read_all(settings, "dunning.history")))
        for rec in recs:
            if rec.record and (args.run is None or rec.record["run_id"] == args.run):
                r = rec.record
                if args.json:
                    print(dumps("DunningProposed", r))
                else:
                    print(f"{r['proposal_id']}  run {r['run_id']}  {r['account_id']}  "
                          f"level {r['level']}  {r['total_due']} {r['currency']}  "
                          f"{','.join(r['activities'])}  "
                          f"{status.get(r['proposal_id'], 'undecided')}")
        return 0
    user = args.by
    if args.action == "approve":
        return _decide("ProposalApproved",
                       [{"proposal_id": p, "decided_by": user} for p in args.ids])
    return _decide("ProposalRejected", [
        {"proposal_id": p, "decided_by": user, "reason": args.reason} for p in args.ids])


def cmd_runs(args: argparse.Namespace) -> int:
    if args.action == "list":
        from topics.clients import read_all

        settings = _settings()
        ensure_broker(settings)
        for rec in asyncio.run(read_all(settings, "dunning.runs")):
            r = rec.record or {}
            extra = {k: v for k, v in r.items() if k not in ("event_id", "run_id")}
            print(f"{rec.record_type:<22} {r.get('run_id')}  "
                  + " ".join(f"{k}={v}" for k, v in extra.items()))
        return 0
    if args.action == "approve":
        return _decide("RunApproved", [{"run_id": r, "decided_by": args.by} for r in args.ids])
    if args.action == "delete":
        return _decide("RunDeleted", [{"run_id": r, "decided_by": args.by} for r in args.ids])
    return _decide("ProposalRunRequested",
                   [{"payment_run_id": r, "requested_by": args.by} for r in args.ids])


def cmd_reverse(args: argparse.Namespace) -> int:
    record: dict[str, Any] = {"requested_by": args.by, "reason": args.reason,
                              "notice_id": args.notice, "run_id": args.run,
                              "item_ids": args.item or None}
    return _decide("NoticeReversalRequested", [record])


def cmd_demo(args: argparse.Namespace) -> int:
    from dunning.demo import run_demo

    return run_demo(_settings(), accounts=args.accounts)


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dunning", description="The dunning engine: broker, topics, workers, records, "
        "review, letters, dead letters and audit.")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("broker", help="the embedded single-node broker (Tansu)")
    b.add_argument("action", choices=["start", "stop", "status"])
    b.add_argument("--port", type=int, default=None)
    b.set_defaults(func=cmd_broker)

    t = sub.add_parser("topics", help="create every topic of the catalogue")
    t.add_argument("action", choices=["apply", "export"])
    t.add_argument("--format", default="strimzi", choices=["strimzi"])
    t.add_argument("--strict", action="store_true", help="exit 1 when a topic differs")
    t.set_defaults(func=cmd_topics)

    pr = sub.add_parser("procedures", help="publish dunning procedures")
    pr.add_argument("action", choices=["apply"])
    pr.add_argument("file")
    pr.set_defaults(func=cmd_procedures)

    w = sub.add_parser("worker", help="run a stream-processing worker")
    w.set_defaults(func=cmd_worker)

    pd = sub.add_parser("produce", help="validate, encode and publish JSON lines")
    pd.add_argument("topic")
    pd.add_argument("--file", required=True)
    pd.set_defaults(func=cmd_produce)

    c = sub.add_parser("consume", help="print records as JSON lines")
    c.add_argument("topic")
    c.add_argument("--from-beginning", action="store_true")
    c.add_argument("--idle-timeout", type=float, default=2.0)
    c.set_defaults(func=cmd_consume)

    a = sub.add_parser("account", help="look at an account's state")
    a.add_argument("action", choices=["show"])
    a.add_argument("account_id")
    a.add_argument("--json", action="store_true")
    a.add_argument("--host", default=None)
    a.add_argument("--port", type=int, default=None)
    a.set_defaults(func=cmd_account)

    ps = sub.add_parser("proposals", help="list, approve or reject proposals")
    ps.add_argument("action", choices=["list", "approve", "reject"])
    ps.add_argument("ids", nargs="*")
    ps.add_argument("--run", default=None)
    ps.add_argument("--json", action="store_true")
    ps.add_argument("--by", default="cli")
    ps.add_argument("--reason", default="rejected at review")
    ps.set_defaults(func=cmd_proposals)

    r = sub.add_parser("runs", help="list, approve, delete or rerun proposal runs")
    r.add_argument("action", choices=["list", "approve", "delete", "rerun"])
    r.add_argument("ids", nargs="*", help="run ids (rerun: payment run ids)")
    r.add_argument("--by", default="cli")
    r.set_defaults(func=cmd_runs)

    rv = sub.add_parser("reverse", help="reverse a notice, some of its items, or a run")
    g = rv.add_mutually_exclusive_group(required=True)
    g.add_argument("--notice")
    g.add_argument("--run")
    rv.add_argument("--item", action="append", default=[])
    rv.add_argument("--reason", default="reversed on request")
    rv.add_argument("--by", default="cli")
    rv.set_defaults(func=cmd_reverse)

    from letters.cli import register as register_letters

    register_letters(sub)
    from dunning.deadletters import register as register_dead_letters

    register_dead_letters(sub)
    from audit.cli import register as register_audit

    register_audit(sub)

    d = sub.add_parser("demo", help="the whole story on the embedded broker")
    d.add_argument("--accounts", type=int, default=300)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
