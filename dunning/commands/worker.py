"""`dunning worker`: run a stream-processing worker."""

from __future__ import annotations

import argparse
from typing import Any

from config.logs import configure
from dunning.commands.common import settings
from processors.worker import run_worker
from topics.broker import ensure_broker


def cmd_worker(args: argparse.Namespace) -> int:
    s = settings()
    configure(s.log_format, s.log_level)
    ensure_broker(s)
    return run_worker(s)


def register(subparsers: Any) -> None:
    w = subparsers.add_parser("worker", help="run a stream-processing worker")
    w.set_defaults(func=cmd_worker)
