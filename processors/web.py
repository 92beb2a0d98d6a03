"""HTTP views of the worker: account state, health, metrics."""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from processors import convert
from processors.state import account_key


def register(app: faust.App, handlers: Any) -> None:
    accounts = handlers.accounts

    @app.page("/accounts/{account_id}/")
    @app.table_route(table=accounts, match_info="account_id")
    async def account(web: View, request: Request, account_id: str) -> Response:
        raw = accounts.get(account_key(account_id))
        if raw is None:
            return web.json({"error": "unknown account", "account_id": account_id}, status=404)
        from processors.state import StoredAccount

        stored = StoredAccount.loads(raw)
        body = convert.account_json(stored.account)
        body["next_evaluation_date"] = (
            convert.iso(stored.index_day) if stored.index_day >= 0 else None
        )
        return web.json(body)

    @app.page("/health/")
    async def health(web: View, request: Request) -> Response:
        ready = handlers.procedures.ready.is_set() and app.tables.recovery.completed.is_set()
        return web.json({"status": "ok", "ready": ready}, status=200 if ready else 503)

    @app.page("/metrics/")
    async def metrics(web: View, request: Request) -> Response:
        lines = []
        for name, value in sorted(handlers.metrics.items()):
            metric, _, label = name.partition(".")
            lines.append(f'dunning_{metric}_total{{kind="{label}"}} {value}')
        return web.text("\n".join(lines) + "\n")
