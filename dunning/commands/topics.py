"""`dunning topics apply|export`: create every topic of the catalogue, or write it out as
Kubernetes resources."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from dunning.commands.common import settings
from topics.broker import ensure_broker
from topics.export import export
from topics.provision import apply_topics


def cmd_topics(args: argparse.Namespace) -> int:
    s = settings()
    if args.action == "export":
        print(export(s, args.format), end="")
        return 0
    ensure_broker(s)
    report = asyncio.run(apply_topics(s))
    for line in report.lines():
        print(line)
    return 1 if report.differences and args.strict else 0


def register(subparsers: Any) -> None:
    t = subparsers.add_parser("topics", help="create every topic of the catalogue")
    t.add_argument("action", choices=["apply", "export"])
    t.add_argument("--format", default="strimzi", choices=["strimzi"])
    t.add_argument("--strict", action="store_true", help="exit 1 when a topic differs")
    t.set_defaults(func=cmd_topics)
