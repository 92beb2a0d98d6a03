"""The worker's HTTP conventions: every path with and without its trailing slash, JSON
errors (404 for an unknown account, 503 while the worker is not ready), never a 500."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from tests.integration import events as e
from tests.integration.conftest import new_story
from tests.integration.harness import Worker, dig, env_for, wait_for

D = date(2026, 10, 1)


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get(port: int, path: str) -> Answer:
    """One GET; an HTTP error status is an answer too (urllib raises it)."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return Answer(resp.status, resp.headers.get_content_type(), resp.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers.get_content_type(), exc.read())


def test_each_path_answers_with_and_without_its_slash(story):
    acc = "HTTP-1"
    story.send("billing.accounts", [e.account(acc)])
    story.send("billing.invoices", [e.invoice(acc, "H1", [("H1-a", "100.00", D)])])
    wait_for(lambda: dig(story.worker.account(acc), "items", "H1-a"), what="account applied")
    port = story.settings.web_port

    for path in (f"/accounts/{acc}", f"/accounts/{acc}/"):
        answer = get(port, path)
        assert (answer.status, answer.content_type) == (200, "application/json"), path
        body = answer.json()
        assert body["account_id"] == acc and body["items"]["H1-a"]["open_amount"] == "100.00"
    assert get(port, f"/accounts/{acc}").json() == get(port, f"/accounts/{acc}/").json()

    for path in ("/health", "/health/"):
        answer = get(port, path)
        assert answer.status == 200, path
        assert answer.json() == {"status": "ok", "ready": True}

    for path in ("/metrics", "/metrics/"):
        answer = get(port, path)
        assert (answer.status, answer.content_type) == (200, "text/plain"), path
        assert "dunning_applied_total" in answer.body.decode()


def test_an_unknown_account_is_a_json_404_in_both_spellings(story):
    for path in ("/accounts/NOBODY-HERE", "/accounts/NOBODY-HERE/"):
        answer = get(story.settings.web_port, path)
        assert (answer.status, answer.content_type) == (404, "application/json"), path
        assert answer.json() == {"error": "unknown account", "account_id": "NOBODY-HERE"}


def test_during_start_up_an_account_is_503_json_or_refused_never_500(broker, tmp_path):
    """A worker started on a new machine (its state folder does not exist yet) and asked
    for an account from the first moment: before it is ready every answer is either no
    connection or 503 with a JSON reason; once ready, the account itself."""
    story = new_story(broker, tmp_path)
    acc = "HTTP-START"
    story.send("billing.accounts", [e.account(acc)])
    story.send("billing.invoices", [e.invoice(acc, "S1", [("S1-a", "50.00", D)])])
    settings = replace(story.settings, state_dir=tmp_path / "new" / "machine" / "state")
    assert not settings.state_dir.parent.exists()
    port = settings.web_port
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dunning", "worker"],
                                env=env_for(settings), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    worker = Worker(settings, proc=proc, log_path=log)
    refused = 0
    before_ready: list[Answer] = []
    after_ready: list[Answer] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"worker exited {proc.returncode}:\n{worker.log()}"
            assert time.monotonic() < deadline, f"worker not ready:\n{worker.log()}"
            try:
                answer = get(port, f"/accounts/{acc}/")
                health = get(port, "/health/")
            except (ConnectionError, urllib.error.URLError, http.client.HTTPException):
                refused += 1  # the web server is not listening yet
                time.sleep(0.05)
                continue
            ready = health.status == 200 and health.json()["ready"]
            (after_ready if ready else before_ready).append(answer)
            if ready and answer.status == 200:
                break
            time.sleep(0.05)
        assert settings.state_dir.is_dir()
        for answer in before_ready:
            assert answer.status != 500, answer.body.decode(errors="replace")
            if answer.status == 503:
                body = answer.json()
                assert body["error"] == "not ready" and body["reason"], body
            else:
                # ready between the two requests: the account answered as it does when ready
                assert answer.status in (200, 404), answer
        for answer in after_ready:
            assert answer.status in (200, 404), answer.body.decode(errors="replace")
            assert answer.content_type == "application/json"
        assert after_ready[-1].json()["items"]["S1-a"]["open_amount"] == "50.00"
        print(f"start-up: {refused} refused, {len(before_ready)} before ready "
              f"({sum(a.status == 503 for a in before_ready)} were 503), "
              f"{len(after_ready)} after")
    finally:
        assert worker.stop() == 0, worker.log()
