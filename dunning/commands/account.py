"""`dunning account show ID`: an account's state, from a worker's HTTP interface."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from dunning.commands.common import settings
from processors.convert import render_account


def cmd_account(args: argparse.Namespace) -> int:
    s = settings()
    url = f"http://{args.host or s.web_host}:{args.port or s.web_port}"
    try:
        with urllib.request.urlopen(f"{url}/accounts/{args.account_id}/", timeout=10) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            print(f"unknown account {args.account_id}")
            return 1
        raise
    except OSError as exc:
        raise SystemExit(f"dunning: no worker answers on {url}: {exc}") from exc
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(render_account(body))
    return 0


def register(subparsers: Any) -> None:
    a = subparsers.add_parser("account", help="look at an account's state")
    a.add_argument("action", choices=["show"])
    a.add_argument("account_id")
    a.add_argument("--json", action="store_true")
    a.add_argument("--host", default=None)
    a.add_argument("--port", type=int, default=None)
    a.set_defaults(func=cmd_account)
