"""Running the review service: its store, the feed that keeps it, and the pages."""

from __future__ import annotations

import asyncio
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from config.settings import Settings
from letters.config import LetterSettings
from review.auth import Auth
from review.feed import Feed
from review.store import ReviewStore
from review.web import Context, make_app, templates
from schemas.codec import Codec
from topics.catalogue import DECISIONS
from topics.clients import publish

log = structlog.get_logger("dunning.review")


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 8090
    #: the worker whose HTTP views answer for any account (it routes to the owner)
    worker_url: str = ""
    users: Path | None = None
    user_header: str | None = None
    store: Path | None = None


def context(settings: Settings, options: Options, auth: Auth) -> Context:
    store = ReviewStore(options.store or settings.state_dir / "review.sqlite")
    codec = Codec.from_settings(settings)

    async def publish_decisions(rtype: str, records: list[dict[str, object]]) -> int:
        return await publish(settings, DECISIONS, [(rtype, r) for r in records], codec)

    return Context(store=store, feed=Feed(settings, store), auth=auth,
                   publish=publish_decisions,
                   worker_url=options.worker_url or f"http://127.0.0.1:{settings.web_port}",
                   letters=LetterSettings.from_env(), codec=codec,
                   templates=templates())


async def serve(settings: Settings, options: Options, auth: Auth,
                stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ctx = context(settings, options, auth)
    feed = asyncio.create_task(ctx.feed.run(stop))
    runner = web.AppRunner(make_app(ctx), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    log.info("review page served", url=f"http://{options.host}:{options.port}/",
             login=auth.mode)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await feed
        ctx.store.close()


def new_secret() -> bytes:
    return secrets.token_bytes(32)
