"""`dunning procedures apply FILE`: publish dunning procedures from a YAML file."""

from __future__ import annotations

import argparse
from typing import Any

from domain.procedures import ProcedureError, parse_procedures
from dunning.commands.common import publish_records, read_yaml, settings
from processors.convert import procedure_record
from topics.catalogue import PROCEDURES


def cmd_procedures(args: argparse.Namespace) -> int:
    s = settings()
    procedures = read_yaml(args.file, parse_procedures, (ProcedureError,))
    records = [("DunningProcedureDefined", procedure_record(p)) for p in procedures]
    n = publish_records(s, PROCEDURES, records)
    print(f"published {n} procedures: {', '.join(p.id for p in procedures)}")
    return 0


def register(subparsers: Any) -> None:
    pr = subparsers.add_parser("procedures", help="publish dunning procedures")
    pr.add_argument("action", choices=["apply"])
    pr.add_argument("file")
    pr.set_defaults(func=cmd_procedures)
