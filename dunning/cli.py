"""`dunning`: the one console script. Entry points parse, build and hand on; no logic.

Each command group is a module with `register(subparsers)`: those of `dunning.commands`,
the dead letters (`dunning.deadletters`), the letter service's (`letters.cli`) and the
auditor's (`audit.cli`).
"""

from __future__ import annotations

import argparse
import sys

from audit import cli as audit_cli
from dunning import deadletters
from dunning.commands import (
    account,
    broker,
    demo,
    migration,
    procedures,
    rates,
    records,
    review,
    review_page,
    schedule,
    topics,
    worker,
)
from dunning.commands.common import settings as _settings
from letters import cli as letters_cli

__all__ = ["_settings", "build_parser", "main"]  # _settings: tests call dunning.cli._settings

#: In the order `dunning --help` lists them.
GROUPS = (broker, topics, procedures, rates, schedule, migration, worker, records, account,
          review, review_page, letters_cli, deadletters, audit_cli, demo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dunning", description="The dunning engine: broker, topics, workers, records, "
        "review, letters, dead letters and audit.")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
