"""review.auth: passwords, session cookies, form tokens, the identity header."""

from __future__ import annotations

import time

from review.auth import Auth, check_password, hash_password, read_users

SECRET = b"s" * 32


def test_a_password_hash_checks_only_its_password() -> None:
    stored = hash_password("correct horse")
    assert check_password("correct horse", stored)
    assert not check_password("Correct horse", stored)
    assert not check_password("correct horse", "plain")
    assert hash_password("correct horse") != stored  # salted


def test_a_session_cookie_names_its_user_until_it_is_tampered_with_or_expires(tmp_path,
                                                                           monkeypatch) -> None:
    users = tmp_path / "users"
    users.write_text(f"# clerks\nanna:{hash_password('secret-1')}\n")
    auth = Auth(SECRET, read_users(users))
    assert auth.mode == "login" and auth.login("anna", "wrong") is None
    cookie = auth.login("anna", "secret-1")
    assert cookie is not None and auth.user(cookie, {}) == "anna"
    name, expires, mac = cookie.split("|")
    assert auth.user(f"ben|{expires}|{mac}", {}) is None
    assert Auth(b"other" * 8, read_users(users)).user(cookie, {}) is None
    monkeypatch.setattr(time, "time", lambda: int(expires) + 1)
    assert auth.user(cookie, {}) is None
    assert auth.user(None, {"X-Remote-User": "anna"}) is None  # no header mode


def test_a_form_token_is_signed_for_its_user_and_the_header_mode_trusts_the_proxy() -> None:
    auth = Auth(SECRET, header="X-Remote-User")
    assert auth.mode == "header"
    assert auth.user(None, {"X-Remote-User": "clerk.schmidt"}) == "clerk.schmidt"
    assert auth.user(None, {}) is None
    token = auth.form_token("anna")
    assert auth.check_form("anna", token) and not auth.check_form("ben", token)
    assert auth.form_token("anna") != token
    assert Auth(SECRET).user(None, {}) == "local"


def test_serving_beyond_loopback_needs_a_login_or_an_identity_header(tmp_path) -> None:
    import argparse

    import pytest

    from config.settings import Settings
    from dunning.commands.review_page import _auth

    none = Settings()
    args = argparse.Namespace(host="0.0.0.0", users=None, user_header=None)
    with pytest.raises(SystemExit, match="needs --users FILE or --user-header"):
        _auth(args, none)
    assert _auth(argparse.Namespace(host="127.0.0.1", users=None, user_header=None),
                 none).mode == "local"
    assert _auth(argparse.Namespace(host="0.0.0.0", users=None,
                                    user_header="X-Remote-User"), none).mode == "header"
    users = tmp_path / "users"
    users.write_text(f"anna:{hash_password('pw-anna-1')}\n")
    secret = tmp_path / "secret"
    secret.write_text("the same secret on every start")
    configured = Settings.from_env({"DUNNING_REVIEW_USERS": str(users),
                                    "DUNNING_REVIEW_SECRET_FILE": str(secret)})
    first, second = _auth(args, configured), _auth(args, configured)
    assert first.mode == "login"
    cookie = first.login("anna", "pw-anna-1")
    assert second.user(cookie, {}) == "anna"  # a restart keeps the sessions
