"""The names the worker's processing core had before it was split (issue 14), for the
code that still imports them from here (the benchmarks' bulk loader, some tests): the
core is `processors.core.Worker`, the error policy `processors.errors`."""

from __future__ import annotations

from processors.core import Worker
from processors.errors import REPLAY_HEADER, check_key, replayed_dead_letter

Handlers = Worker

__all__ = ["REPLAY_HEADER", "Handlers", "Worker", "check_key", "replayed_dead_letter"]
