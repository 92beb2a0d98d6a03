"""The worklist's pages (aiohttp, Jinja2 templates, a little JavaScript that only makes the
pages nicer: every page and every decision works without it).

Reads come from the review store; an account's locks, plans and notices and the letter
preview come from the worker that owns the account (its HTTP views); decisions are
published to `dunning.decisions` with the user who made them. A decision's event id is
derived from the form it was sent with, and remembered before it is published, so a form
sent twice (a double click, a reload) is one decision; a proposal decided already is left
alone and the page says by whom.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import jinja2
import orjson
import structlog
from aiohttp import web

from domain.ids import NAMESPACE
from domain.money import from_minor
from letters.config import LetterSettings
from letters.model import BadLetter, Letter
from letters.render import render
from letters.texts import texts_for
from review.auth import COOKIE, Auth
from review.feed import Feed
from review.store import SORTS, Filter, ReviewStore, amount_text
from review.whatif import BAD_INPUT, run_whatif
from schemas.codec import Codec

log = structlog.get_logger("dunning.review")

#: publishes (record type, records) to dunning.decisions
Publish = Callable[[str, list[dict[str, Any]]], Awaitable[int]]
OPEN = ("/login", "/health", "/static/")


@dataclass
class Context:
    store: ReviewStore
    feed: Feed
    auth: Auth
    publish: Publish
    worker_url: str
    #: the letter service's settings: letterhead and creditor (the payment code)
    letters: LetterSettings
    codec: Codec
    templates: jinja2.Environment


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("review", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]),
                             undefined=jinja2.StrictUndefined)
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.filters["money"] = lambda minor, currency: str(from_minor(int(minor or 0), currency))
    env.filters["amount"] = amount_text
    return env


CTX = web.AppKey("ctx", Context)
USER = web.RequestKey("user", str)


def _ctx(request: web.Request) -> Context:
    return request.app[CTX]


def page(request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
    ctx = _ctx(request)
    user = request.get(USER) or None
    html = ctx.templates.get_template(name).render(
        user=user, auth_mode=ctx.auth.mode, ready=ctx.feed.ready.is_set(),
        token=ctx.auth.form_token(user) if user else "", message=request.query.get("msg"),
        **values)
    return web.Response(text=html, content_type="text/html", status=status)


@web.middleware
async def login_required(request: web.Request, handler: Any) -> web.StreamResponse:
    """Nothing but the login page is shown to someone not logged in."""
    ctx = _ctx(request)
    user = ctx.auth.user(request.cookies.get(COOKIE), dict(request.headers))
    if user is None and not request.path.startswith(OPEN):
        if ctx.auth.mode == "header":
            raise web.HTTPUnauthorized(text=f"no {ctx.auth.header} header: not logged in")
        raise web.HTTPSeeOther(f"/login?{urlencode({'next': request.path_qs})}")
    request[USER] = user or ""
    return await handler(request)


# ---------------------------------------------------------------- login
async def login_form(request: web.Request) -> web.Response:
    return page(request, "login.html", next=request.query.get("next", "/"), failed=False)


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    cookie = _ctx(request).auth.login(str(form.get("user", "")), str(form.get("password", "")))
    target = str(form.get("next") or "/")
    if cookie is None:
        return page(request, "login.html", status=401, next=target, failed=True)
    response = web.HTTPSeeOther(target if target.startswith("/") else "/")
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE)
    raise response


async def health(request: web.Request) -> web.Response:
    feed = _ctx(request).feed
    return web.json_response({"ready": feed.ready.is_set(), "records": feed.records},
                             status=200 if feed.ready.is_set() else 503)


# ---------------------------------------------------------------- runs and worklists
async def runs(request: web.Request) -> web.Response:
    return page(request, "runs.html", runs=_ctx(request).store.runs())


def _decimal(text: str | None) -> Decimal | None:
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        raise web.HTTPBadRequest(text=f"not an amount: {text!r}") from None


def _int(text: str | None, default: int | None = None) -> int | None:
    if not text:
        return default
    if not text.isdigit():
        raise web.HTTPBadRequest(text=f"not a number: {text!r}")
    return int(text)


FILTERS = ("level", "procedure", "currency", "language", "channel", "decision", "min", "max",
           "sort", "desc")


def filter_of(q: Any) -> Filter:
    sort = q.get("sort") or "account"
    if sort not in SORTS:
        raise web.HTTPBadRequest(text=f"cannot sort by {sort!r}")
    return Filter(level=_int(q.get("level")), procedure=q.get("procedure") or None,
                  currency=q.get("currency") or None, language=q.get("language") or None,
                  channel=q.get("channel") or None, decision=q.get("decision") or None,
                  min_total=_decimal(q.get("min")), max_total=_decimal(q.get("max")),
                  sort=sort, descending=q.get("desc") == "1",
                  page=_int(q.get("page"), 1) or 1)


async def run_page(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    run_id = request.query.get("id", "")
    run = ctx.store.run(run_id)
    if run is None:
        raise web.HTTPNotFound(text=f"no run {run_id!r} (yet)")
    f = filter_of(request.query)
    worklist = ctx.store.worklist(run_id, f)
    kept = {k: request.query[k] for k in FILTERS if request.query.get(k)}
    return page(request, "run.html", run=run, worklist=worklist, f=f, kept=kept,
                sorts=list(SORTS), link=lambda **kw: _link(run_id, kept, **kw))


def _link(run_id: str, kept: dict[str, str], **changes: Any) -> str:
    args = {"id": run_id, **kept, **{k: str(v) for k, v in changes.items() if v is not None}}
    return "/run?" + urlencode(args)


# ---------------------------------------------------------------- a proposal
async def _worker_get(ctx: Context, path: str) -> tuple[int, bytes]:
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(ctx.worker_url.rstrip("/") + path) as resp:
            return resp.status, await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 599, f"the worker at {ctx.worker_url} does not answer: {exc}".encode()


async def proposal_page(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    p = ctx.store.proposal(request.query.get("id", ""))
    if p is None:
        raise web.HTTPNotFound(text="no such proposal")
    status, body = await _worker_get(ctx, f"/accounts/{quote(p['account_id'], safe='')}/")
    account = _json_or_none(body) if status == 200 else None
    stale = None
    if p["decision"] == "undecided":  # would it still go out as proposed?
        st, answer = await _worker_get(ctx, _letter_path(p))
        if st == 409:
            stale = (_json_or_none(answer) or {}).get("detail")
    return page(request, "proposal.html", p=p, account=account, stale=stale,
                deliveries=ctx.store.deliveries(p["account_id"]),
                account_error=None if account else body.decode(errors="replace")[:300])


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _letter_path(p: dict[str, Any]) -> str:
    return (f"/accounts/{quote(p['account_id'], safe='')}/letters/"
            f"{quote(p['proposal_id'], safe='')}/")


async def letter_preview(request: web.Request) -> web.Response:
    """The proposal's letter, rendered by the letter service's own renderer from the
    `PrintDunningLetter` executing it would make: the same PDF."""
    ctx = _ctx(request)
    p = ctx.store.proposal(request.query.get("id", ""))
    if p is None:
        raise web.HTTPNotFound(text="no such proposal")
    status, body = await _worker_get(ctx, _letter_path(p))
    if status != 200:
        detail = (_json_or_none(body) or {}).get("detail") or body.decode(errors="replace")
        return web.Response(status=409 if status == 409 else 502,
                            text=f"no letter preview: {detail}"[:500])
    _, record = ctx.codec.decode(body)
    try:
        rendered = render(Letter.from_record(record), ctx.letters.letterhead,
                          ctx.letters.creditor, texts_for(ctx.letters))
    except BadLetter as exc:
        return web.Response(status=409, text=f"the letter service would refuse it: {exc}")
    return web.Response(body=rendered.pdf, content_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{rendered.filename}"'})


# ---------------------------------------------------------------- decisions
def _event_id(token: str, rtype: str, subject: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"review|{token}|{rtype}|{subject}"))


async def _form(request: web.Request) -> tuple[Context, str, Any]:
    ctx = _ctx(request)
    user = request[USER]
    form = await request.post()
    if not ctx.auth.check_form(user, str(form.get("token", ""))):
        raise web.HTTPForbidden(text="this form is not yours or has expired: reload the page")
    return ctx, user, form


async def publish_once(ctx: Context, user: str, token: str, rtype: str,
                       records: list[dict[str, Any]], subject: str) -> int:
    """Publish the records whose event id (from the form) was not published before."""
    fresh = []
    for r in records:
        r["event_id"] = _event_id(token, rtype, r.get(subject) or "")
        if ctx.store.record_decision(r["event_id"], rtype, r.get(subject) or "", user):
            fresh.append(r)
    if fresh:
        await ctx.publish(rtype, fresh)
        log.info("decision published", record_type=rtype, count=len(fresh), user=user)
    return len(fresh)


async def decide_proposals(request: web.Request) -> web.StreamResponse:
    """Approve or reject a selection, every undecided proposal that matches the filter,
    or one proposal."""
    ctx, user, form = await _form(request)
    run_id = str(form.get("run_id", ""))
    action = str(form.get("action", ""))
    reason = str(form.get("reason", "")).strip()
    if action not in ("approve", "reject"):
        raise web.HTTPBadRequest(text=f"unknown action {action!r}")
    if action == "reject" and not reason:
        raise web.HTTPSeeOther(_back(form, run_id, "a rejection needs a reason"))
    if form.get("scope") == "matching":
        wanted = ctx.store.matching(run_id, filter_of(form))
    else:
        wanted = [str(v) for v in form.getall("ids", [])]
    undecided = ctx.store.undecided(wanted)
    rtype = "ProposalApproved" if action == "approve" else "ProposalRejected"
    records = [{"proposal_id": p, "decided_by": user,
                **({"reason": reason} if action == "reject" else {})} for p in undecided]
    sent = await publish_once(ctx, user, str(form["token"]), rtype, records, "proposal_id")
    ctx.store.mark(undecided, "approved" if action == "approve" else "rejected", user,
                   reason or None)
    skipped = len(wanted) - len(undecided)
    done = "approved" if action == "approve" else "rejected"
    msg = f"{done} {sent}" + (f"; {skipped} decided before, left as they were"
                              if skipped else "")
    raise web.HTTPSeeOther(_back(form, run_id, msg))


def _back(form: Any, run_id: str, msg: str) -> str:
    target = str(form.get("back") or "")
    if not target.startswith("/"):
        target = "/run?" + urlencode({"id": run_id})
    sep = "&" if "?" in target else "?"
    return f"{target}{sep}{urlencode({'msg': msg})}"


RUN_ACTIONS = {
    "approve": ("RunApproved", lambda run, user, reason: {"run_id": run["run_id"],
                                                          "decided_by": user}),
    "delete": ("RunDeleted", lambda run, user, reason: {"run_id": run["run_id"],
                                                        "decided_by": user}),
    "rerun": ("ProposalRunRequested", lambda run, user, reason: {
        "payment_run_id": run["payment_run_id"], "requested_by": user}),
    "reverse": ("NoticeReversalRequested", lambda run, user, reason: {
        "notice_id": None, "run_id": run["run_id"], "item_ids": None, "requested_by": user,
        "reason": reason or "reversed at review"}),
}


async def decide_run(request: web.Request) -> web.StreamResponse:
    """Approve, delete, request again or reverse a whole run."""
    ctx, user, form = await _form(request)
    run = ctx.store.run(str(form.get("run_id", "")))
    action = str(form.get("action", ""))
    if run is None or action not in RUN_ACTIONS:
        raise web.HTTPBadRequest(text="unknown run or action")
    rtype, build = RUN_ACTIONS[action]
    record = build(run, user, str(form.get("reason", "")).strip())
    sent = await publish_once(ctx, user, str(form["token"]), rtype, [record],
                              "run_id" if "run_id" in record else "payment_run_id")
    msg = f"{rtype} sent" if sent else f"{rtype} was sent before"
    raise web.HTTPSeeOther(_back(form, run["run_id"], msg))


async def reverse_notice(request: web.Request) -> web.StreamResponse:
    ctx, user, form = await _form(request)
    notice_id = str(form.get("notice_id", ""))
    record = {"notice_id": notice_id, "run_id": None, "item_ids": None, "requested_by": user,
              "reason": str(form.get("reason", "")).strip() or "reversed at review"}
    sent = await publish_once(ctx, user, str(form["token"]), "NoticeReversalRequested",
                              [record], "notice_id")
    raise web.HTTPSeeOther(_back(form, "", "reversal requested" if sent
                                 else "reversal was requested before"))


async def whatif_form(request: web.Request) -> web.Response:
    runs = _ctx(request).store.runs()
    return page(request, "whatif.html", as_of=runs[0]["as_of"] if runs else "",
                procedures="", accounts="", result=None, error=None)


async def whatif_page(request: web.Request) -> web.Response:
    """`dunning runs simulate` on the page (`review.whatif`): nothing is published."""
    ctx, _, form = await _form(request)
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in ("as_of", "procedures",
                                                                  "accounts")}
    try:
        result = await run_whatif(ctx.feed.settings, values["as_of"], values["procedures"],
                                  values["accounts"])
    except BAD_INPUT as exc:
        return page(request, "whatif.html", status=400, result=None, error=str(exc),
                    **values)
    return page(request, "whatif.html", result=result, error=None, **values)


def make_app(ctx: Context) -> web.Application:
    app = web.Application(middlewares=[login_required])
    app[CTX] = ctx
    app.add_routes([
        web.get("/login", login_form), web.post("/login", login), web.post("/logout", logout),
        web.get("/health", health), web.get("/", runs), web.get("/run", run_page),
        web.get("/proposal", proposal_page), web.get("/proposal/letter.pdf", letter_preview),
        web.post("/decide", decide_proposals), web.post("/run/decide", decide_run),
        web.post("/notice/reverse", reverse_notice),
        web.get("/whatif", whatif_form), web.post("/whatif", whatif_page),
        web.static("/static", str(_static())),
    ])
    return app


def _static() -> Any:
    from importlib import resources

    return resources.files("review") / "static"
