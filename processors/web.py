"""HTTP views of the worker: account state, health, metrics.

Every path answers with and without its trailing slash (`/metrics` is Prometheus'
default). Until the worker is ready (its tables recovered, the procedures read) an
account answers 503 with a JSON body; an unknown account is a JSON 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import faust
from faust.exceptions import NotReady, SameNode
from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable

from domain.errors import Rejected
from processors import convert, faust_private
from processors.state import StoredAccount, account_key

Handler = Callable[..., Awaitable[Response]]


Page = Callable[[str], Callable[[Handler], Handler]]


def register(app: faust.App, worker: Any) -> None:
    """The worker's pages and its scraped gauges."""

    def page(path: str) -> Callable[[Handler], Handler]:
        """`app.page` for `path` and for `path` with a trailing slash."""
        def decorate(fun: Handler) -> Handler:
            bare = path.rstrip("/")
            app.page(bare, name=fun.__name__)(fun)
            app.page(bare + "/", name=fun.__name__ + "/")(fun)
            return fun
        return decorate

    def not_ready() -> str | None:
        """Why the worker cannot answer for its tables yet (None: it can)."""
        recovery = getattr(app.tables, "recovery", None)
        if recovery is None or not recovery.completed.is_set():
            return "tables are being recovered"
        if not worker.procedures.ready.is_set():
            return "procedures are being read"
        return None

    _account_page(app, worker, page, not_ready)

    @page("/health/")
    async def health(web: View, request: Request) -> Response:
        ready = not_ready() is None
        return web.json({"status": "ok", "ready": ready}, status=200 if ready else 503)

    @page("/metrics/")
    async def metrics(web: View, request: Request) -> Response:
        # text/plain is the Prometheus text format (version 0.0.4)
        return web.text(worker.metrics.exposition().decode())

    _gauges(app, worker)


def unavailable(web: View, reason: str) -> Response:
    return web.json({"error": "not ready", "reason": reason}, status=503)


def _account_page(app: faust.App, worker: Any, page: Page,
                  not_ready: Callable[[], str | None]) -> None:
    accounts = worker.accounts

    async def changelog_metadata() -> None:
        """Make the producer know the accounts changelog's partitions.

        Faust's table router finds a key's owner through the producer's partitioner,
        which raises TypeError ('NoneType' object is not iterable) for a topic the producer
        has no metadata for: before its first write to the changelog, or during start-up.
        """
        producer = faust_private.producer_of(app)
        await asyncio.wait_for(
            producer.partitions_for(accounts.changelog_topic.get_topic_name()), timeout=5)

    async def owned(web: View, request: Request,
                    account_id: str) -> Response | StoredAccount:
        """The account when this worker owns it; else the owner's answer, a 503 or a 404."""
        reason = not_ready()
        if reason is not None:
            return unavailable(web, reason)
        key = account_key(account_id)
        try:
            await changelog_metadata()
            # the worker that owns the account's partition answers; SameNode: this one
            return await app.router.route_req(accounts.name, key, web.web, request)
        except SameNode:
            pass
        except (ServiceUnavailable, KeyError):
            return unavailable(web, "the account's partition is not assigned yet")
        except (NotReady, TimeoutError, TypeError):
            return unavailable(web, "no metadata for the accounts changelog yet")
        except aiohttp.ClientError as exc:
            return unavailable(web, f"the worker that owns the account does not answer: {exc}")
        raw = accounts.get(key)
        if raw is None:
            return web.json({"error": "unknown account", "account_id": account_id}, status=404)
        return StoredAccount.loads(raw)

    @page("/accounts/{account_id}/")
    async def account(web: View, request: Request, account_id: str) -> Response:
        found = await owned(web, request, account_id)
        if not isinstance(found, StoredAccount):
            return found
        return web.json(_account_body(found))

    _letter_page(worker, page, owned)


Owned = Callable[[View, Request, str], Awaitable["Response | StoredAccount"]]


def _letter_page(worker: Any, page: Page, owned: Owned) -> None:
    @page("/accounts/{account_id}/letters/{proposal_id}/")
    async def letter(web: View, request: Request, account_id: str,
                     proposal_id: str) -> Response:
        """The `PrintDunningLetter` that executing the proposal makes (Avro, as on
        dunning.letters): worked out on a copy of the account, nothing stored or sent. An
        executed proposal gives its notice's letter; a stale or decided one a 409."""
        found = await owned(web, request, account_id)
        if not isinstance(found, StoredAccount):
            return found
        try:
            value = convert.letter_of(found.account, proposal_id, worker.codec)
        except Rejected as exc:
            return web.json({"error": exc.code, "detail": str(exc)}, status=409)
        if value is None:
            return web.json({"error": "no_letter", "detail": "the notice sends no letter"},
                            status=404)
        return web.bytes(value, content_type="application/octet-stream")


def _account_body(stored: StoredAccount) -> dict[str, Any]:
    body = convert.account_json(stored.account)
    # -1: no rule can fire without new events; 0: looked at by the next run (the
    # procedures were not known yet when the row was written)
    body["next_evaluation_date"] = (
        convert.iso(stored.index_day) if stored.index_day > 0
        else "next run" if stored.index_day == 0 else None
    )
    return body


def _gauges(app: faust.App, worker: Any) -> None:
    def lag() -> list[tuple[list[str], float]]:
        """Per input partition: the broker's highwater less what this worker applied."""
        out = []
        for (topic, partition), applied in sorted(worker.applied.items()):
            high = worker.input_ends(topic, partition)
            if high is not None:
                out.append(([worker.logical(topic), str(partition)],
                            float(max(0, high - applied))))
        return out

    def table_keys() -> list[tuple[list[str], float]]:
        out = []
        for name in ("accounts", "due_index", "work_index"):
            total = 0
            for db in faust_private.open_dbs(getattr(worker, name)):
                try:
                    total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
                except Exception:  # a store without the property
                    continue
            out.append(([name], float(total)))
        return out

    worker.metrics.add_gauges("dunning_consumer_lag", "Input records not yet applied",
                              ["topic", "partition"], lag)
    worker.metrics.add_gauges("dunning_table_keys", "Keys in a table on this worker "
                              "(RocksDB estimate)", ["table"], table_keys)
