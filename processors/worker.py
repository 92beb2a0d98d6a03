"""Running a worker: the Faust app built from the settings, under Faust's worker."""

from __future__ import annotations

from dunning.settings import Settings


def run_worker(settings: Settings) -> int:
    from faust import Worker

    from processors.app import create_app

    app = create_app(settings)
    worker = Worker(app, loglevel=settings.log_level.lower(), quiet=True,
                    override_logging=False)
    worker.execute_from_commandline()  # returns through SystemExit
    return 0
