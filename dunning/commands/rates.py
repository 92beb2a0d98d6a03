"""`dunning rates apply FILE`: publish reference interest rates from a YAML file."""

from __future__ import annotations

import argparse
from typing import Any

from domain.rates import RateError, parse_rates
from dunning.commands.common import publish_records, read_yaml, settings
from processors.convert import rate_record
from topics.catalogue import RATES


def cmd_rates(args: argparse.Namespace) -> int:
    s = settings()
    rates = read_yaml(args.file, parse_rates, (RateError,))
    n = publish_records(s, RATES, [("InterestRateSet", rate_record(r)) for r in rates])
    print(f"published {n} rates: {', '.join(sorted({r.rate_id for r in rates}))}")
    return 0


def register(subparsers: Any) -> None:
    pr = subparsers.add_parser("rates", help="publish reference interest rates")
    pr.add_argument("action", choices=["apply"])
    pr.add_argument("file")
    pr.set_defaults(func=cmd_rates)
