"""Who is deciding: a login against a users file (scrypt password hashes), or an identity
header set by a proxy in front of the page, or, with neither configured, the one local
user of a page served on the loopback interface only.

Sessions are a signed cookie (HMAC-SHA256 of user and expiry with the service's secret);
every form carries a token signed for its user (`form_token`), which is also the seed of
the decision's event id, so the same form sent twice is one decision.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

COOKIE = "dunning_review"
SESSION_SECONDS = 12 * 3600
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(bytes.fromhex(digest)))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def read_users(path: Path) -> dict[str, str]:
    """`name:hash` per line (`dunning review add-user` writes them); # comments."""
    users = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, stored = line.partition(":")
            users[name.strip()] = stored.strip()
    return users


@dataclass
class Auth:
    """`users`: a login form; `header`: the proxy's identity header; neither: `local`."""

    secret: bytes
    users: dict[str, str] | None = None
    header: str | None = None

    @property
    def mode(self) -> str:
        return "header" if self.header else "login" if self.users is not None else "local"

    def login(self, name: str, password: str) -> str | None:
        """A session cookie's value for a good name and password, else None."""
        stored = (self.users or {}).get(name)
        if stored is None or not check_password(password, stored):
            return None
        expires = int(time.time()) + SESSION_SECONDS
        return f"{name}|{expires}|{self._mac(f'{name}|{expires}')}"

    def user(self, cookie: str | None, headers: dict[str, str]) -> str | None:
        """Who sent the request, or None (not logged in)."""
        if self.mode == "header":
            value = (headers.get(self.header or "") or "").strip()
            return value or None
        if self.mode == "local":
            return "local"
        if not cookie or cookie.count("|") != 2:
            return None
        name, expires, mac = cookie.split("|")
        if not hmac.compare_digest(mac, self._mac(f"{name}|{expires}")):
            return None
        if not expires.isdigit() or int(expires) < time.time() or name not in (self.users
                                                                               or {}):
            return None
        return name

    def form_token(self, user: str) -> str:
        """A fresh token for one form, signed for its user."""
        nonce = secrets.token_hex(12)
        return f"{nonce}.{self._mac(f'form|{user}|{nonce}')[:32]}"

    def check_form(self, user: str, token: str) -> bool:
        nonce, _, mac = token.partition(".")
        return bool(nonce) and hmac.compare_digest(mac, self._mac(f"form|{user}|{nonce}")[:32])

    def _mac(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()
