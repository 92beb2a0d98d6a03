"""`dunning broker start|stop|status`: the embedded single-node broker (Tansu)."""

from __future__ import annotations

import argparse
from typing import Any

from dunning.commands.common import settings
from topics.broker import EmbeddedBroker


def cmd_broker(args: argparse.Namespace) -> int:
    s = settings()
    broker = EmbeddedBroker(s.state_dir, args.port or s.embedded_port)
    if args.action == "start":
        pid = broker.start()
        print(f"embedded broker (Tansu) on {broker.bootstrap}, pid {pid}, log {broker.log_file}")
    elif args.action == "stop":
        print("stopped" if broker.stop() else "not running")
    else:
        running = broker.pid()
        if running is not None and broker.running():
            print(f"running on {broker.bootstrap}, pid {running}")
        else:
            print("not running")
            return 3
    return 0


def register(subparsers: Any) -> None:
    b = subparsers.add_parser("broker", help="the embedded single-node broker (Tansu)")
    b.add_argument("action", choices=["start", "stop", "status"])
    b.add_argument("--port", type=int, default=None)
    b.set_defaults(func=cmd_broker)
