"""HTTP views of the worker: account state, health, metrics."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP
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
        # -1: no rule can fire without new events; 0: looked at by the next run (the
        # procedures were not known yet when the row was written)
        body["next_evaluation_date"] = (
            convert.iso(stored.index_day) if stored.index_day > 0
            else "next run" if stored.index_day == 0 else None
        )
        return web.json(body)

    @app.page("/health/")
    async def health(web: View, request: Request) -> Response:
        recovery = app.tables.recovery  # type: ignore[attr-defined]
        ready = handlers.procedures.ready.is_set() and recovery.completed.is_set()
        return web.json({"status": "ok", "ready": ready}, status=200 if ready else 503)

    @app.page("/metrics/")
    async def metrics(web: View, request: Request) -> Response:
        # text/plain is the Prometheus text format (version 0.0.4)
        return web.text(handlers.metrics.exposition().decode())

    def lag() -> list[tuple[list[str], float]]:
        """Per input partition: the broker's highwater less what this worker applied."""
        consumer = app.consumer
        out = []
        for (topic, partition), applied in sorted(handlers.applied.items()):
            try:
                high = consumer.highwater(TP(topic, partition))
            except Exception:  # not assigned here any more
                continue
            if high is not None:
                out.append(([handlers.logical(topic), str(partition)],
                            float(max(0, high - applied))))
        return out

    def table_keys() -> list[tuple[list[str], float]]:
        out = []
        for name in ("accounts", "due_index", "work_index"):
            table = getattr(handlers, name)
            total = 0
            for db in list(getattr(table.data, "_dbs", {}).values()):
                try:
                    total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
                except Exception:  # a store without the property
                    continue
            out.append(([name], float(total)))
        return out

    handlers.metrics.add_gauges("dunning_consumer_lag", "Input records not yet applied",
                                ["topic", "partition"], lag)
    handlers.metrics.add_gauges("dunning_table_keys", "Keys in a table on this worker "
                                "(RocksDB estimate)", ["table"], table_keys)
