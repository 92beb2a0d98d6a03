"""The environment a `python -m dunning worker` subprocess starts with: this process's
environment plus the DUNNING_* variables that make the worker's `Settings.from_env()` name
the same broker, app, topics, state folder and web port as `settings`.

Used by the demo, the benchmarks and the integration tests, which start workers of their
own; each adds what it needs beyond the common variables.
"""

from __future__ import annotations

import os

from config.settings import Settings


def worker_env(settings: Settings, *, with_auto_approve: bool = False,
               **extra: str) -> dict[str, str]:
    """`os.environ` with the worker's DUNNING_* variables (JSON logs), then `extra`.

    `with_auto_approve` passes `settings.auto_approve` on as DUNNING_AUTO_APPROVE; without
    it the worker reads that variable from the environment, as this process did."""
    env = dict(os.environ)
    env.update({
        "DUNNING_EMBEDDED_PORT": str(settings.embedded_port),
        "DUNNING_APP_ID": settings.app_id,
        "DUNNING_PARTITIONS": str(settings.partitions),
        "DUNNING_TOPIC_PREFIX": settings.topic_prefix,
        "DUNNING_STATE_DIR": str(settings.state_dir),
        "DUNNING_WEB_PORT": str(settings.web_port),
    })
    if with_auto_approve:
        env["DUNNING_AUTO_APPROVE"] = "true" if settings.auto_approve else "false"
    if settings.clock_file is not None:
        env["DUNNING_CLOCK_FILE"] = str(settings.clock_file)
    env["DUNNING_LOG_FORMAT"] = "json"
    env.update(extra)
    return env
