"""`dunning audit`: rebuild and verify dunning history from the history topic.

  dunning audit replay [--account ID] [--as-of DATE] [--out FILE]
      Read dunning.history from the beginning (progress on stderr) and rebuild every
      account's history: notices, reversals, rejected proposals, item levels and dates as
      of DATE. One JSON object per account, to FILE or stdout. With --account, a readable
      table of that account too (on stdout when --out is given, else on stderr).

  dunning audit verify [--worker URL] [--chain-only] [--json]
      Replay the whole topic, check every account's hash chain (seq from 1 without gaps,
      prev_hash, forks, order; byte-identical redeliveries are counted as duplicates) and
      compare the rebuilt state with the live state of a worker (default: DUNNING_WEB_HOST
      and DUNNING_WEB_PORT). Prints a summary; exits 1 on any problem, naming the account,
      seq and record (topic, partition, offset).

  dunning audit export --account ID --format csv|json [--as-of DATE] [--out FILE]
      One account's rebuilt history for an auditor: CSV (one row per item of every record,
      with each record's place and hashes) or JSON (the rebuilt history and every record).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import nullcontext
from datetime import date
from typing import Any, TextIO

import orjson

from config.settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"dunning: {exc}") from exc


def _ensure_broker(settings: Settings) -> None:
    from topics.broker import ensure_broker

    ensure_broker(settings)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _open_out(path: str | None) -> Any:
    if path is None or path == "-":
        return nullcontext(sys.stdout)
    return open(path, "w", encoding="utf-8")  # noqa: SIM115


def _run(coro: Any) -> Any:
    from audit.live import WorkerError
    from audit.replay import ReplayError
    from topics.clients import UnknownTopic

    try:
        return asyncio.run(coro)
    except (ReplayError, UnknownTopic, WorkerError) as exc:
        raise SystemExit(f"dunning audit: {exc}") from exc


# ---------------------------------------------------------------------- replay
def cmd_replay(args: argparse.Namespace) -> int:
    from audit.replay import Progress, Replay
    from audit.report import account_json, render_table

    settings = _settings()
    _ensure_broker(settings)
    replay = Replay(settings, account=args.account, as_of=args.as_of, progress=Progress())
    table_to: TextIO = sys.stdout if args.out not in (None, "-") else sys.stderr

    async def go(out: TextIO) -> int:
        from audit.runs import run_starts

        n = 0
        runs = await run_starts(settings)  # why each run started when it did
        async for accounts in replay.partitions():
            for acc in accounts:
                out.write(orjson.dumps(account_json(acc, runs)).decode() + "\n")
                n += 1
                if args.account is not None:
                    print(render_table(acc, runs), file=table_to)
        return n

    with _open_out(args.out) as out:
        n = _run(go(out))
    summary = replay.summary
    print(f"{n:,} accounts rebuilt from {summary.records:,} records"
          f"{' as of ' + args.as_of.isoformat() if args.as_of else ''}; "
          f"{summary.duplicates:,} duplicates, {len(summary.problems):,} problems"
          f"{' (see dunning audit verify)' if summary.problems else ''}", file=sys.stderr)
    if args.account is not None and n == 0:
        print(f"no history for account {args.account}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------- verify
def cmd_verify(args: argparse.Namespace) -> int:
    from audit.replay import Progress, jsonable_summary, verify

    settings = _settings()
    _ensure_broker(settings)
    worker = None if args.chain_only else (
        args.worker or f"http://{settings.web_host}:{settings.web_port}")
    summary = _run(verify(settings, worker=worker, progress=Progress()))
    if args.json:
        print(json.dumps(jsonable_summary(summary), indent=2))
    else:
        for line in summary.lines():
            print(line)
    return 0 if summary.ok else 1


# ---------------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace) -> int:
    from audit.replay import Progress, Replay
    from audit.report import export_csv, export_json

    settings = _settings()
    _ensure_broker(settings)
    replay = Replay(settings, account=args.account, as_of=args.as_of, progress=Progress(),
                    keep_records=True)
    accounts = _run(replay.run())
    if not accounts:
        print(f"no history for account {args.account}", file=sys.stderr)
        return 1
    acc = accounts[0]
    with _open_out(args.out) as out:
        if args.format == "csv":
            out.write(export_csv(acc))
        else:
            from audit.runs import run_starts

            runs = _run(run_starts(settings))
            out.write(json.dumps(export_json(acc, runs), indent=2) + "\n")
    if acc.problems:
        print(f"account {args.account}: {len(acc.problems)} problem(s) in its history; "
              "see the export's problems and dunning audit verify", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------- parser
def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `audit` and its subcommands to the `dunning` parser's subparsers."""
    p = subparsers.add_parser(
        "audit", help="rebuild and verify dunning history from the history topic",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="audit_command", required=True)

    r = sub.add_parser("replay", help="rebuild every account's dunning history")
    r.add_argument("--account", default=None, metavar="ID", help="only this account (+ table)")
    r.add_argument("--as-of", type=_date, default=None, metavar="DATE",
                   help="leave out records recorded for a later date")
    r.add_argument("--out", default=None, metavar="FILE", help="JSON lines here (default stdout)")
    r.set_defaults(func=cmd_replay)

    v = sub.add_parser("verify", help="check every chain and compare with a worker")
    v.add_argument("--worker", default=None, metavar="URL",
                   help="a worker's base URL, e.g. http://127.0.0.1:6066")
    v.add_argument("--chain-only", action="store_true", help="do not ask a worker")
    v.add_argument("--json", action="store_true", help="the summary as JSON")
    v.set_defaults(func=cmd_verify)

    e = sub.add_parser("export", help="one account's history for an auditor")
    e.add_argument("--account", required=True, metavar="ID")
    e.add_argument("--format", required=True, choices=["csv", "json"])
    e.add_argument("--as-of", type=_date, default=None, metavar="DATE")
    e.add_argument("--out", default=None, metavar="FILE", help="default stdout")
    e.set_defaults(func=cmd_export)
    return p


__all__ = ["register"]


if __name__ == "__main__":  # pragma: no cover - `python -m audit.cli ...`
    parser = argparse.ArgumentParser(prog="dunning")
    register(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args()
    sys.exit(int(parsed.func(parsed) or 0))

