"""`dunning procedures apply FILE`: publish dunning procedures from a YAML file."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import yaml

from domain.procedures import ProcedureError, parse_procedures
from dunning.commands.common import settings
from processors.convert import procedure_record
from topics.broker import ensure_broker
from topics.catalogue import PROCEDURES
from topics.clients import publish


def cmd_procedures(args: argparse.Namespace) -> int:
    s = settings()
    try:
        data = yaml.safe_load(Path(args.file).read_text())
        procedures = parse_procedures(data)
    except (OSError, yaml.YAMLError, ProcedureError) as exc:
        raise SystemExit(f"dunning: {args.file}: {exc}") from exc
    ensure_broker(s)
    records = [("DunningProcedureDefined", procedure_record(p)) for p in procedures]
    n = asyncio.run(publish(s, PROCEDURES, records))
    print(f"published {n} procedures: {', '.join(p.id for p in procedures)}")
    return 0


def register(subparsers: Any) -> None:
    pr = subparsers.add_parser("procedures", help="publish dunning procedures")
    pr.add_argument("action", choices=["apply"])
    pr.add_argument("file")
    pr.set_defaults(func=cmd_procedures)
