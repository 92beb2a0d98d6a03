"""review.web over HTTP (aiohttp's test server on loopback, no broker): nothing without a
login, the worklist's filters, decisions published once with their user."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config.settings import Settings
from letters.config import LetterSettings
from review.auth import Auth, hash_password
from review.feed import Feed
from review.store import ReviewStore
from review.web import Context, make_app, templates
from schemas.codec import Codec
from tests.unit.review.builders import RUN, account, completed, feed, proposal, started
from topics.broker import free_port


class Published(list):
    async def __call__(self, rtype: str, records: list[dict[str, Any]]) -> int:
        self.extend((rtype, dict(r)) for r in records)
        return len(records)


@pytest.fixture
def ctx(tmp_path) -> Context:
    store = ReviewStore(tmp_path / "review.sqlite")
    feed(store, started(), *[account(n) for n in range(1, 5)], proposal(1, 1, "20.00"),
         proposal(2, 2, "60.00"), proposal(3, 2, "90.00"), proposal(4, 3, "500.00"),
         completed(4))
    settings = Settings(state_dir=tmp_path)
    f = Feed(settings, store)
    f.ready.set()
    return Context(store=store, feed=f, auth=Auth(b"k" * 32, {"anna": hash_password("pw-anna-1")}),
                   publish=Published(), worker_url=f"http://127.0.0.1:{free_port()}",
                   letters=LetterSettings(), codec=Codec.from_settings(settings),
                   templates=templates())


def run(ctx: Context, scenario: Any) -> Any:
    async def go() -> Any:
        async with TestClient(TestServer(make_app(ctx))) as client:
            return await scenario(client)
    return asyncio.run(go())


def token(html: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def logged_in(client: TestClient) -> None:
    resp = await client.post("/login", data={"user": "anna", "password": "pw-anna-1",
                                             "next": "/"})
    assert resp.status == 200 and "Proposal runs" in await resp.text()


def test_nothing_of_an_account_is_shown_without_a_login(ctx: Context) -> None:
    async def scenario(client: TestClient) -> None:
        for path in ("/", f"/run?id={RUN}", "/proposal?id=prop-000001",
                     "/proposal/letter.pdf?id=prop-000001"):
            resp = await client.get(path, allow_redirects=False)
            assert resp.status == 303 and resp.headers["Location"].startswith("/login"), path
        resp = await client.post("/decide", data={"ids": "prop-000001"}, allow_redirects=False)
        assert resp.status == 303
        bad = await client.post("/login", data={"user": "anna", "password": "nope"})
        assert bad.status == 401 and "ACC-" not in await bad.text()
        assert (await client.get("/health")).status == 200
    run(ctx, scenario)
    assert ctx.publish == []


def test_the_worklist_filters_and_a_decision_is_published_once_with_its_user(
        ctx: Context) -> None:
    async def scenario(client: TestClient) -> None:
        await logged_in(client)
        html = await (await client.get(f"/run?id={RUN}&level=2&sort=total&desc=1")).text()
        assert re.findall(r'data-proposal="(prop-\d+)"', html) == ["prop-000003", "prop-000002"]
        assert "2 proposals match" in html
        form = {"token": token(html), "run_id": RUN, "action": "approve",
                "ids": ["prop-000002", "prop-000003"], "scope": "selected"}
        first = await client.post("/decide", data=form)
        assert "approved 2" in await first.text()
        again = await client.post("/decide", data=form)  # the same form, a second click
        assert "approved 0; 2 decided before" in await again.text()
        reject = {"token": token(html), "run_id": RUN, "action": "reject", "ids": "prop-000004",
                  "scope": "selected", "reason": ""}
        assert "needs a reason" in await (await client.post("/decide", data=reject)).text()
        reject["reason"] = "customer called"
        assert "rejected 1" in await (await client.post("/decide", data=reject)).text()
        forged = {**form, "token": "abc.def", "ids": "prop-000001"}
        assert (await client.post("/decide", data=forged)).status == 403
    run(ctx, scenario)
    assert [(t, r["proposal_id"], r["decided_by"]) for t, r in ctx.publish] == [
        ("ProposalApproved", "prop-000002", "anna"), ("ProposalApproved", "prop-000003", "anna"),
        ("ProposalRejected", "prop-000004", "anna")]
    assert ctx.publish[2][1]["reason"] == "customer called"
    assert len({r["event_id"] for _, r in ctx.publish}) == 3


def test_every_undecided_proposal_matching_a_filter_and_the_whole_run(ctx: Context) -> None:
    async def scenario(client: TestClient) -> None:
        await logged_in(client)
        html = await (await client.get(f"/run?id={RUN}&min=50&currency=EUR")).text()
        form = {"token": token(html), "run_id": RUN, "action": "approve", "scope": "matching",
                "min": "50", "currency": "EUR"}
        assert "approved 3" in await (await client.post("/decide", data=form)).text()
        whole = {"token": token(html), "run_id": RUN, "action": "approve"}
        assert "RunApproved sent" in await (await client.post("/run/decide", data=whole)).text()
        assert "was sent before" in await (await client.post("/run/decide", data=whole)).text()
    run(ctx, scenario)
    assert sorted(r["proposal_id"] for t, r in ctx.publish if t == "ProposalApproved") == [
        "prop-000002", "prop-000003", "prop-000004"]
    assert [r["run_id"] for t, r in ctx.publish if t == "RunApproved"] == [RUN]


def test_a_proposal_shows_its_items_and_says_when_the_worker_cannot_be_asked(
        ctx: Context) -> None:
    async def scenario(client: TestClient) -> None:
        await logged_in(client)
        html = await (await client.get("/proposal?id=prop-000002")).text()
        assert "ACC-000002-1" in html and "advanced" in html and "not_due" in html
        assert "Customer 2" in html and "state is not available from the worker" in html
        pdf = await client.get("/proposal/letter.pdf?id=prop-000002")
        assert pdf.status == 502 and "does not answer" in await pdf.text()
    run(ctx, scenario)


def test_delete_request_again_and_reverse_a_run_or_a_notice_each_once(ctx: Context) -> None:
    async def scenario(client: TestClient) -> None:
        await logged_in(client)
        html = await (await client.get(f"/run?id={RUN}")).text()
        for action in ("delete", "rerun", "reverse"):
            form = {"token": token(html), "run_id": RUN, "action": action,
                    "reason": "sent in error"}
            assert "sent" in await (await client.post("/run/decide", data=form)).text()
            assert "was sent before" in await (await client.post("/run/decide",
                                                                 data=form)).text()
        one = {"token": token(html), "notice_id": "N-1", "reason": "paid before",
               "back": f"/run?id={RUN}"}
        assert "reversal requested" in await (await client.post("/notice/reverse",
                                                                data=one)).text()
        assert "requested before" in await (await client.post("/notice/reverse",
                                                              data=one)).text()
    run(ctx, scenario)
    assert [(t, {k: v for k, v in r.items() if k != "event_id"}) for t, r in ctx.publish] == [
        ("RunDeleted", {"run_id": RUN, "decided_by": "anna"}),
        ("ProposalRunRequested", {"payment_run_id": "PR-2026-11-20", "requested_by": "anna"}),
        ("NoticeReversalRequested", {"notice_id": None, "run_id": RUN, "item_ids": None,
                                     "requested_by": "anna", "reason": "sent in error"}),
        ("NoticeReversalRequested", {"notice_id": "N-1", "run_id": None, "item_ids": None,
                                     "requested_by": "anna", "reason": "paid before"})]


def test_the_letter_preview_is_written_in_the_business_texts(ctx: Context, tmp_path) -> None:
    """The preview renders the worker's `PrintDunningLetter` with the same texts as the
    letter service (`DUNNING_LETTER_TEXTS`): a procedure's own title wins over the bundled
    one. The worker is a real HTTP server on loopback answering the letter path."""
    from dataclasses import replace as _replace
    from io import BytesIO

    from aiohttp import web as aioweb
    from pypdf import PdfReader

    from tests.unit.schemas.samples import SAMPLES

    folder = tmp_path / "texts"
    (folder / "STANDARD").mkdir(parents=True)
    (folder / "STANDARD" / "de.toml").write_text(
        '[levels.2]\ntitle = "Zweite Zahlungserinnerung der Beispiel AG"\n', "utf-8")
    letter = {**SAMPLES["PrintDunningLetter"], "account_id": "ACC-000002"}
    body = ctx.codec.encode("PrintDunningLetter", letter)
    asked: list[str] = []

    async def answer(request: aioweb.Request) -> aioweb.Response:
        asked.append(request.path)
        return aioweb.Response(body=body, content_type="application/octet-stream")

    async def scenario(client: TestClient) -> bytes:
        worker = aioweb.Application()
        worker.router.add_get("/accounts/{account}/letters/{proposal}/", answer)
        runner = aioweb.AppRunner(worker)
        await runner.setup()
        port = int(ctx.worker_url.rsplit(":", 1)[1])
        await aioweb.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await logged_in(client)
            resp = await client.get("/proposal/letter.pdf?id=prop-000002")
            assert resp.status == 200, await resp.text()
            return await resp.read()
        finally:
            await runner.cleanup()

    ctx = _replace(ctx, letters=_replace(ctx.letters, texts_folder=folder))
    pdf = run(ctx, scenario)
    text = "\n".join(page.extract_text() or "" for page in PdfReader(BytesIO(pdf)).pages)
    assert asked == ["/accounts/ACC-000002/letters/prop-000002/"]
    assert "Zweite Zahlungserinnerung der Beispiel AG" in text
def test_a_proposal_shows_what_happened_to_the_letters_of_its_account(ctx: Context) -> None:
    from datetime import UTC, datetime

    feed(ctx.store, ("DunningNoticeIssued", {"proposal_id": "prop-000002", "notice_id": "n2"}),
         ("LetterDeliveryRecorded", {
             "event_id": "ld-1", "account_id": "ACC-000002", "notice_id": "n2",
             "command_id": "cmd-n2", "outcome": "failed",
             "detail": "recipient refused: 550 5.1.1 no such mailbox", "attempt": 1,
             "next_step": "print", "fallback": False,
             "at": datetime(2026, 12, 3, 9, 0, tzinfo=UTC)}))

    async def scenario(client: TestClient) -> tuple[str, str]:
        await logged_in(client)
        before = await (await client.get("/proposal?id=prop-000002")).text()
        feed(ctx.store, ("LetterDeliveryRecorded", {
            "event_id": "ld-2", "account_id": "ACC-000002", "notice_id": "n2",
            "command_id": "cmd-n2", "outcome": "printed", "detail": "PR_1.pdf", "attempt": 0,
            "next_step": None, "fallback": True,
            "at": datetime(2026, 12, 3, 10, 0, tzinfo=UTC)}))
        after = await (await client.get("/proposal?id=prop-000002")).text()
        return before, after

    before, after = run(ctx, scenario)
    assert '<strong id="reached">not reached yet</strong>' in before
    assert "550 5.1.1 no such mailbox" in before
    assert '<strong id="reached">customer reached</strong>' in after
    assert "printed (instead of e-mail)" in after and "PR_1.pdf" in after
    other = run(ctx, lambda client: _page(client, "prop-000003"))
    assert "no letter outcome recorded" in other


async def _page(client: TestClient, proposal_id: str) -> str:
    await logged_in(client)
    return await (await client.get(f"/proposal?id={proposal_id}")).text()
