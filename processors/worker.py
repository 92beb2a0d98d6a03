"""Running a worker: the Faust app built from the settings, under Faust's worker."""

from __future__ import annotations

import gc
import os
from pathlib import Path

from config.settings import Settings


class StateDirError(SystemExit):
    """The worker's state folder cannot be created or written (exit status 1)."""


def prepare_state_dir(settings: Settings) -> Path:
    """Create `DUNNING_STATE_DIR` (with its parents) for the worker's RocksDB tables.

    Faust creates only the last level of its data folder, so a worker on a new machine
    would stop with a FileNotFoundError. A folder that cannot be made or written is a
    `StateDirError` with one line naming the path and the variable."""
    path = Path(settings.state_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirError(_message(path, exc.strerror or str(exc))) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateDirError(_message(path, "Permission denied"))
    return path


def _message(path: Path, reason: str) -> str:
    return (f"dunning: cannot create or write the worker's state folder {path} "
            f"(DUNNING_STATE_DIR): {reason}")


#: Allocations between two young-generation collections (CPython's default: 700). A run
#: allocates and frees millions of short-lived objects (rows, records, dataclasses); with
#: the default the collector runs every few accounts and walks young objects that die
#: anyway. The older generations keep CPython's defaults.
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Move what is loaded at start (modules, the app, its tables) out of the collector's
    sight (`gc.freeze`: never freed anyway) and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def run_worker(settings: Settings) -> int:
    prepare_state_dir(settings)
    from faust import Worker

    from processors.app import create_app

    app = create_app(settings)
    tune_garbage_collector()
    worker = Worker(app, loglevel=settings.log_level.lower(), quiet=True,
                    override_logging=False)
    worker.execute_from_commandline()  # returns through SystemExit
    return 0
