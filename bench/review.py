"""Review page benchmark: a filtered, sorted page of a run's worklist of 100,000 proposals.

The review store (`review.store`, SQLite) is filled with N proposals of one run (levels
1–4, three procedures, two currencies, four languages, e-mail and print) the way the feed
fills it, then the page is asked over HTTP (aiohttp on loopback, no login configured) for
filtered pages: one filter at a time and several together, sorted, first and a late page.
Before every request the store counts as changed (as after a decision), so the run's
summary is worked out again each time: nothing is served from the cache. Prints the
median and the slowest of each (target: a filtered page in under 300 ms).

    python -m bench.review [--proposals 100000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import common
from config.settings import Settings
from letters.config import LetterSettings
from review.auth import Auth
from review.feed import Feed
from review.store import ReviewStore
from review.web import Context, make_app, templates
from schemas.codec import Codec
from topics.broker import free_port

TARGET_MS = 300.0
RUN = "PR-2026-11-20/1"
QUERIES = {
    "no filter": "",
    "level 2": "&level=2",
    "level 2, EUR, 100–500, by total": "&level=2&currency=EUR&min=100&max=500&sort=total",
    "language fr, print, by name desc": "&language=fr&channel=print&sort=name&desc=1",
    "BUSINESS, undecided, page 40": "&procedure=BUSINESS&decision=undecided&page=40",
    "total ≥ 1000, page 100": "&min=1000&currency=EUR&sort=total&page=100",
}


def fill(store: ReviewStore, n: int, seed: int) -> float:
    """N proposals and their accounts, applied as the feed applies records."""
    from tests.unit.review.builders import account, completed, proposal, started

    rnd = random.Random(seed)
    t = time.monotonic()
    with store.transaction():
        store.apply(*started())
        for i in range(n):
            store.apply(*account(i, rnd.choice(["de", "en", "fr", "it"]),
                                 None if rnd.random() < 0.3 else "a@example.test"))
            cents = rnd.randrange(1500, 300000)
            store.apply(*proposal(i, rnd.randrange(1, 5), str(Decimal(cents) / 100),
                                  "CHF" if rnd.random() < 0.1 else "EUR",
                                  procedure=rnd.choice(["STANDARD", "CONSUMER", "BUSINESS"])))
        store.apply(*completed(n))
    return time.monotonic() - t


async def measure(ctx: Context, repeat: int) -> dict[str, dict[str, float]]:
    runner = web.AppRunner(make_app(ctx), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    out: dict[str, dict[str, float]] = {}
    try:
        async with aiohttp.ClientSession() as session:
            for name, query in QUERIES.items():
                times, count = [], ""
                for _ in range(repeat):
                    ctx.store.version += 1  # as after a decision: nothing cached
                    t = time.perf_counter()
                    async with session.get(f"http://127.0.0.1:{port}/run?id={RUN}{query}") as r:
                        body = await r.text()
                        assert r.status == 200, body[:300]
                    times.append((time.perf_counter() - t) * 1000)
                    count = body.split('id="count">', 1)[1].split(" ", 1)[0]
                out[name] = {"median_ms": round(statistics.median(times), 1),
                             "max_ms": round(max(times), 1), "matching": int(count)}
                print(f"{name:<36} {out[name]['median_ms']:>7.1f} ms (max "
                      f"{out[name]['max_ms']:.1f}), {count} match", flush=True)
    finally:
        await runner.cleanup()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--proposals", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    common.quiet()
    with tempfile.TemporaryDirectory() as tmp:
        store = ReviewStore(Path(tmp) / "review.sqlite")
        seconds = fill(store, args.proposals, args.seed)
        print(f"{args.proposals:,} proposals stored in {seconds:.1f} s", flush=True)
        settings = Settings(state_dir=Path(tmp))
        feed = Feed(settings, store)
        feed.ready.set()
        ctx = Context(store=store, feed=feed, auth=Auth(b"bench" * 8), publish=_nothing,
                      worker_url="http://127.0.0.1:9", letters=LetterSettings(),
                      codec=Codec.from_settings(settings), templates=templates())
        pages = asyncio.run(measure(ctx, args.repeat))
        store.close()
    worst = max(p["median_ms"] for p in pages.values())
    met = worst <= TARGET_MS
    print(f"\nslowest median of a filtered page: {worst:.1f} ms (target <= {TARGET_MS:.0f} ms: "
          f"{'met' if met else 'MISSED'})")
    results: dict[str, Any] = {
        "benchmark": "review", "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": common.machine(), "proposals": args.proposals, "fill_s": round(seconds, 1),
        "pages": pages, "target": {"median_ms <=": TARGET_MS, "met": met}}
    print(f"results: {common.write_json(f'review-{args.proposals}', results)}")


async def _nothing(rtype: str, records: list[dict[str, Any]]) -> int:
    return 0


if __name__ == "__main__":
    main()
