"""The review page (issue 16) in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright; no browser is downloaded), against a real broker, a worker and
`dunning review serve` as a subprocess: log in, open a run, filter, open a proposal and
its letter preview, approve a selection, reject one with a reason, approve the rest of
the run and watch the activity run complete and its letters appear. A second click on a
decision sends no second decision.

Set DUNNING_SCREENSHOTS=DIR to keep the worklist's and a proposal's screenshots there
(docs/ holds the ones of the last such run)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from pypdf import PdfReader

from dunning.sample import month
from tests.integration.harness import env_for, wait_for
from tests.unit.letters.test_payment import codes
from topics.broker import free_port

pytestmark = pytest.mark.broker

D = date(2026, 11, 20)
IBAN = "DE89370400440532013000"
RUN = f"PR-{D.isoformat()}/1"
CHROMIUM = "/usr/bin/chromium"
#: the flags that work on this kind of machine (closed network, root, no GPU)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def serve(story, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`dunning review serve` with a login for anna, on a free port; its base URL."""
    env = {**env_for(story.settings), "DUNNING_CREDITOR_IBAN": IBAN}  # letters get a code
    users = tmp_path / "users"
    subprocess.run([sys.executable, "-m", "dunning", "review", "add-user", "anna", "--users",
                    str(users), "--password-stdin"], input=b"pw-of-anna\n", env=env,
                   check=True, capture_output=True)
    port = free_port()
    log = open(tmp_path / "review.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dunning", "review", "serve", "--port", str(port), "--users",
         str(users), "--store", str(tmp_path / "review.sqlite"), "--worker",
         f"http://127.0.0.1:{story.settings.web_port}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False
    wait_for(healthy, timeout=60, what="review page caught up",
             explain=lambda: (tmp_path / "review.log").read_text(errors="replace")[-2000:])
    return proc, base


def rows(page: Page) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "#proposals tbody tr", "trs => trs.map(t => ({id: t.dataset.proposal, "
        "level: t.dataset.level, decision: t.dataset.decision}))")


def shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    keep = os.environ.get("DUNNING_SCREENSHOTS")
    if keep:
        shutil.copy(path, Path(keep) / name)


def records(story, topic: str, rtype: str | None = None) -> list[dict]:
    """`story.records` on a thread of its own: Playwright's sync API keeps an event loop
    running on this one, and the broker client runs its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(story.records, topic, rtype).result()


def decisions(story, rtype: str, proposal_id: str) -> list[dict]:
    return [r for r in records(story, "dunning.decisions", rtype)
            if r.get("proposal_id") == proposal_id]


def test_a_clerk_reviews_a_run_in_the_browser(story, tmp_path):
    s = story
    sample = month(40, D, seed=16, prefix="REV", procedures=("STANDARD", "BUSINESS"))
    for topic, recs in sample.by_topic():
        s.send(topic, recs)
    s.send("billing.payment-runs", sample.payment_runs)
    wait_for(lambda: [r for r in s.records("dunning.runs", "ProposalRunCompleted")
                      if r["run_id"] == RUN], timeout=90, what="the proposal run")
    proposals = [p for p in s.records("dunning.proposals") if p["run_id"] == RUN]
    assert len(proposals) >= 8, len(proposals)
    proc, base = serve(s, tmp_path)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            review_in_the_browser(s, page, base, tmp_path, proposals)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)


def review_in_the_browser(s, page: Page, base: str, tmp_path: Path, proposals) -> None:
    # not logged in: the login page, and nothing of an account
    page.goto(base + "/")
    assert "/login" in page.url and "REV-" not in page.content()
    page.fill("input[name=user]", "anna")
    page.fill("input[name=password]", "pw-of-anna")
    page.click("button[type=submit]")
    whatif(s, page)
    page.goto(base + "/")
    page.click(f"#runs a:text('{RUN}')")
    assert page.text_content("#run-status") == "proposed"
    assert len(rows(page)) == min(len(proposals), 50)

    # filter: level 1 only
    levels = sorted({p["level"] for p in proposals})
    page.select_option("select[name=level]", str(levels[0]))
    page.click("#apply-filter")
    filtered = rows(page)
    expected = [p for p in proposals if p["level"] == levels[0]]
    assert filtered and {r["level"] for r in filtered} == {str(levels[0])}
    assert len(filtered) == len(expected)
    assert f"{len(expected)} proposals match" in page.text_content("#count")
    shot(page, tmp_path, "review-worklist.png")

    # a proposal and its letter preview
    first = filtered[0]["id"]
    page.click(f"tr[data-proposal='{first}'] a")
    mine = next(p for p in proposals if p["proposal_id"] == first)
    assert mine["account_id"] in page.text_content("h1")
    for item in mine["items"]:
        assert item["item_id"] in page.text_content("#items")
    letter = page.request.get(base + page.get_attribute("#letter", "href"))
    assert letter.status == 200 and letter.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(letter.body())).pages)
    assert mine["account_id"] in text
    # with the letter service's creditor settings, the same EPC payment code it prints
    (code,) = [text for _, text in codes(letter.body())]
    fields = code.split("\n")
    assert fields[:4] == ["BCD", "002", "1", "SCT"] and fields[6] == IBAN
    assert fields[7] == f"EUR{mine['total_due']:.2f}"
    shot(page, tmp_path, "review-proposal.png")
    decide(s, page, base, filtered)


def whatif(s, page: Page) -> None:
    """The simulation on the page says what `dunning runs simulate` says (the run's
    proposals are undecided, so their groups are left out of both), and a procedures
    file that does not parse is named."""
    page.click("#whatif-link")
    page.fill("input[name=as_of]", D.isoformat())
    page.click("#simulate")
    heading = page.text_content("#whatif-result")
    cli = subprocess.run([sys.executable, "-m", "dunning", "runs", "simulate", "--as-of",
                          D.isoformat(), "--json", "--quiet"], env=env_for(s.settings),
                         capture_output=True, text=True, check=True)
    body = json.loads(cli.stdout)
    assert f"{body['accounts']} accounts, {len(body['proposals'])} proposals" in heading
    assert "published nothing" in heading
    assert body["groups_pending_proposal"] > 0
    assert f"{body['groups_pending_proposal']} groups left out" in page.content()
    page.fill("textarea[name=procedures]", "procedures: [{id: X}]")
    page.click("#simulate")
    assert "X" in page.text_content("#whatif-error")


def decide(s, page: Page, base: str, filtered: list[dict[str, str]]) -> None:
    page.goto(f"{base}/run?id={RUN}")
    ids = [r["id"] for r in rows(page)]
    approve, reject, twice = ids[:2], ids[2], ids[3]
    for pid in approve:
        page.check(f"input[name=ids][value='{pid}']")
    page.click("#approve")
    assert "approved 2" in page.text_content(".message")
    page.check(f"input[name=ids][value='{reject}']")
    page.fill("#reason", "customer called, pays on Friday")
    page.click("#reject")
    assert "rejected 1" in page.text_content(".message")

    # a double click, and the same form sent again behind the page's back
    page.check(f"input[name=ids][value='{twice}']")
    token = page.get_attribute("#worklist input[name=token]", "value")
    page.dblclick("#approve")
    page.wait_for_selector(".message")
    again = page.request.post(base + "/decide", form={
        "token": token, "run_id": RUN, "action": "approve", "ids": twice, "scope": "selected"})
    assert "decided before" in again.text()
    wait_for(lambda: decisions(s, "ProposalApproved", twice), timeout=30, what="approval")
    time.sleep(1.0)
    assert len(decisions(s, "ProposalApproved", twice)) == 1
    assert [r["decided_by"] for r in decisions(s, "ProposalApproved", approve[0])] == ["anna"]
    (rej,) = decisions(s, "ProposalRejected", reject)
    assert (rej["decided_by"], rej["reason"]) == ("anna", "customer called, pays on Friday")

    # the rest of the run, then the activity run and its letters
    page.click("#approve-run")
    assert "RunApproved sent" in page.text_content(".message")

    def executed() -> bool:
        page.goto(f"{base}/run?id={RUN}")
        return page.text_content("#run-status") == "executed"
    wait_for(executed, timeout=90, what="the activity run, on the page")
    notices = [r for r in records(s, "dunning.history", "DunningNoticeIssued")
               if r["run_id"] == RUN]
    issued = {r["proposal_id"] for r in notices}
    assert set(approve) | {twice} <= issued and reject not in issued
    letters = {r["notice_id"] for r in records(s, "dunning.letters", "PrintDunningLetter")}
    assert letters >= {r["notice_id"] for r in notices if "letter" in r["activities"]}
    page.select_option("select[name=decision]", "rejected")
    page.click("#apply-filter")
    assert [r["id"] for r in rows(page)] == [reject]
    # a rejected proposal has no letter to preview, and the page says why
    refused = page.request.get(f"{base}/proposal/letter.pdf?id={reject}")
    assert refused.status == 409 and "is not pending" in refused.text(), refused.text()
