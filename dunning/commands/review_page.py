"""`dunning review serve`: the clerk's worklist in a browser; `dunning review add-user`:
a login for it."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

from config.logs import configure
from config.settings import Settings
from dunning.commands.common import settings
from review.auth import Auth, hash_password, read_users
from review.service import Options, new_secret, serve
from topics.broker import ensure_broker


def _auth(args: argparse.Namespace, s: Settings) -> Auth:
    """The options win over the settings (`DUNNING_REVIEW_USERS`, `_USER_HEADER`,
    `_SECRET` or `_SECRET_FILE`)."""
    secret = s.review_secret.reveal().encode() if s.review_secret else new_secret()
    header = args.user_header or s.review_user_header
    users_file = args.users or s.review_users
    users = read_users(Path(users_file)) if users_file else None
    if header is None and users is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("dunning: review serve on a non-loopback address needs --users FILE "
                         "or --user-header NAME (who decides must be known)")
    return Auth(secret, users, header)


def cmd_serve(args: argparse.Namespace) -> int:
    s = settings()
    configure(s.log_format, s.log_level)
    ensure_broker(s)
    auth = _auth(args, s)
    options = Options(host=args.host, port=args.port, worker_url=args.worker or "",
                      users=Path(args.users) if args.users else None,
                      user_header=auth.header,
                      store=Path(args.store) if args.store else None)
    print(f"review page: http://{args.host}:{args.port}/ (login: {auth.mode})", flush=True)
    asyncio.run(serve(s, options, auth))
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    password = (sys.stdin.readline().rstrip("\n") if args.password_stdin
                else getpass.getpass(f"password for {args.name}: "))
    if len(password) < 8:
        raise SystemExit("dunning: a password needs at least 8 characters")
    path = Path(args.users)
    users = read_users(path) if path.exists() else {}
    users[args.name] = hash_password(password)
    path.write_text("".join(f"{n}:{h}\n" for n, h in sorted(users.items())))
    path.chmod(0o600)
    print(f"{args.name} can log in ({path})")
    return 0


def register(subparsers: Any) -> None:
    rv = subparsers.add_parser("review", help="the review web page (worklist) and its users")
    sub = rv.add_subparsers(dest="review_command", required=True)
    sv = sub.add_parser("serve", help="serve the worklist in a browser")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8090)
    sv.add_argument("--worker", default=None, metavar="URL",
                    help="a worker's HTTP address (default: this machine's worker port)")
    sv.add_argument("--users", default=None, metavar="FILE",
                    help="log in against this users file (dunning review add-user)")
    sv.add_argument("--user-header", default=None, metavar="NAME",
                    help="trust a proxy's identity header instead (e.g. X-Remote-User)")
    sv.add_argument("--store", default=None, metavar="FILE",
                    help="the page's SQLite store (default: DUNNING_STATE_DIR/review.sqlite)")
    sv.set_defaults(func=cmd_serve)
    au = sub.add_parser("add-user", help="add or change a login of the review page")
    au.add_argument("name")
    au.add_argument("--users", required=True, metavar="FILE")
    au.add_argument("--password-stdin", action="store_true")
    au.set_defaults(func=cmd_add_user)
