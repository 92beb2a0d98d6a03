"""The Faust baseline of the ingest benchmark: an agent that only decodes and counts.

The same input topics, partitions, consumer and stream settings as the worker's `ingest`
agent (`processors/app.py`, with its fetch wait for the embedded broker), no tables: for
every event `Codec.decode` of the value and one counter per topic. `GET /metrics/`
answers in the worker's format (`dunning_applied_total{topic="billing.invoices"} N`), so
the benchmark reads both alike.

Run: `python -m bench.faust_baseline` with the worker's `DUNNING_*` environment;
`BENCH_BASELINE_TAKE=1000`: the same agent over `stream.take(1000, within=0.05)` batches.
"""

from __future__ import annotations

import os

import faust
from faust.web import Request, Response, View

from config.settings import Settings
from schemas.codec import Codec
from topics import catalogue as cat


def create_app(settings: Settings, take: int = 0) -> faust.App:
    """`take` > 0: the agent reads `stream.take(take, within=0.05)` batches of values
    instead of one event at a time (counted under `batched`)."""
    from processors.app import app_settings

    # the worker's own Faust settings, without tables
    app = faust.App(settings.app_id, **app_settings(settings, store="memory://",
                                                     datadir="baseline"))
    codec = Codec.from_settings(settings)
    counts: dict[str, int] = {}
    logical = {settings.topic(t): t for t in cat.ACCOUNT_INPUTS}
    topic = app.topic(*(settings.topic(t) for t in cat.ACCOUNT_INPUTS), key_type=bytes,
                      value_type=bytes, key_serializer="raw", value_serializer="raw")

    if take:
        @app.agent(topic, concurrency=1)
        async def decode_and_count_batches(stream: faust.StreamT) -> None:
            async for values in stream.take(take, within=0.05):
                for value in values:
                    codec.decode(value)
                counts["batched"] = counts.get("batched", 0) + len(values)
    else:
        @app.agent(topic, concurrency=1)
        async def decode_and_count(stream: faust.StreamT) -> None:
            async for event in stream.events():
                message = event.message
                codec.decode(message.value)
                name = logical[message.topic]
                counts[name] = counts.get(name, 0) + 1

    @app.page("/metrics/")
    async def metrics(web: View, request: Request) -> Response:
        lines = [f'dunning_applied_total{{topic="{k}"}} {v}' for k, v in sorted(counts.items())]
        return web.text("\n".join(lines) + "\n")

    @app.page("/health/")
    async def health(web: View, request: Request) -> Response:
        return web.json({"status": "ok", "ready": True})

    return app


def main() -> None:
    from faust import Worker

    from config.logs import configure

    settings = Settings.from_env()
    configure(settings.log_format, "WARNING")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, int(os.environ.get("BENCH_BASELINE_TAKE", "0")))
    Worker(app, loglevel="warning", quiet=True, override_logging=False) \
        .execute_from_commandline()


if __name__ == "__main__":
    main()
