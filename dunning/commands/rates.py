"""`dunning rates apply FILE`: publish reference interest rates from a YAML file."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import yaml

from domain.rates import RateError, parse_rates
from dunning.commands.common import settings
from processors.convert import rate_record
from topics.broker import ensure_broker
from topics.catalogue import RATES
from topics.clients import publish


def cmd_rates(args: argparse.Namespace) -> int:
    s = settings()
    try:
        rates = parse_rates(yaml.safe_load(Path(args.file).read_text()))
    except (OSError, yaml.YAMLError, RateError) as exc:
        raise SystemExit(f"dunning: {args.file}: {exc}") from exc
    ensure_broker(s)
    records = [("InterestRateSet", rate_record(r)) for r in rates]
    n = asyncio.run(publish(s, RATES, records))
    print(f"published {n} rates: {', '.join(sorted({r.rate_id for r in rates}))}")
    return 0


def register(subparsers: Any) -> None:
    pr = subparsers.add_parser("rates", help="publish reference interest rates")
    pr.add_argument("action", choices=["apply"])
    pr.add_argument("file")
    pr.set_defaults(func=cmd_rates)
