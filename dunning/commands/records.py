"""`dunning produce TOPIC --file F` and `dunning consume TOPIC`: records as JSON lines in
and out of a topic, through the codec."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from dunning.commands.common import settings
from schemas.jsonio import JsonRecordError, dumps, parse_line
from topics.broker import ensure_broker
from topics.clients import WrongTopic, check_topic, publish, read


def _parse(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """The records of `--file` (or stdin), each checked against the topic."""
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
    return records


def cmd_produce(args: argparse.Namespace) -> int:
    s = settings()
    records = _parse(args)
    ensure_broker(s)
    n = asyncio.run(publish(s, args.topic, records))
    print(f"published {n} records to {args.topic}", file=sys.stderr)
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    s = settings()
    ensure_broker(s)

    async def go() -> int:
        n = 0
        async for rec in read(s, args.topic, from_beginning=args.from_beginning,
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


def register(subparsers: Any) -> None:
    pd = subparsers.add_parser("produce", help="validate, encode and publish JSON lines")
    pd.add_argument("topic")
    pd.add_argument("--file", required=True)
    pd.set_defaults(func=cmd_produce)

    c = subparsers.add_parser("consume", help="print records as JSON lines")
    c.add_argument("topic")
    c.add_argument("--from-beginning", action="store_true")
    c.add_argument("--idle-timeout", type=float, default=2.0)
    c.set_defaults(func=cmd_consume)
