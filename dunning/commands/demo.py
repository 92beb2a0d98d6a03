"""`dunning demo`: the whole story on the embedded broker (the story is `dunning.demo`)."""

from __future__ import annotations

import argparse
from typing import Any

from dunning.commands.common import settings
from dunning.demo import run_demo


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(settings(), accounts=args.accounts, serve=args.serve)


def register(subparsers: Any) -> None:
    d = subparsers.add_parser("demo", help="the whole story on the embedded broker")
    d.add_argument("--accounts", type=int, default=300)
    d.add_argument("--serve", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the broker, the worker and the review page up until Ctrl-C "
                        "(default: when run from a terminal)")
    d.set_defaults(func=cmd_demo)
