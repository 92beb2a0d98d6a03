"""`dunning runs simulate`: stage 1 on a copy of the workers' state, with the procedures in
force and with changed ones (`domain.simulation`), without touching a worker.

The copy is the accounts table's changelog (`<app id>-accounts-changelog`), read
partition by partition to its end as the read begins: every row a worker has committed
(a worker sends a unit's changelog before it writes its rows, so the changelog is never
behind a worker). The procedures in force are those of `dunning.procedures`. Nothing is
written to any topic or table and no consumer group is joined, so it is safe during a
real run; an account a run changes while it is read shows the version read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog

from config.settings import Settings
from domain.procedures import Procedure
from domain.simulation import Simulation
from processors.procedures import ProcedureCatalog
from processors.state import StoredAccount
from schemas.codec import Codec
from topics.catalogue import PROCEDURES, RATES
from topics.clients import latest_by_key, partition_of, read_all
from topics.tables import ACCOUNTS

log = structlog.get_logger("dunning.simulate")

#: (partitions read, partitions to read, accounts read so far)
Progress = Callable[[int, int, int], None]


@dataclass(slots=True)
class SimulationRun:
    """A simulation and where its inputs came from."""

    simulation: Simulation
    changelog: str
    partitions: list[int]
    in_force: dict[str, Procedure]
    simulated: dict[str, Procedure]
    #: the procedures the file changes or adds
    changed: list[str]
    #: rows that could not be read (logged), keys of the accounts asked for and not found
    unreadable: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def changelog_of(settings: Settings) -> str:
    return f"{settings.app_id}-{ACCOUNTS.name}-changelog"


def partitions_of(settings: Settings, account_ids: Iterable[str]) -> list[int]:
    """The account partitions the accounts live on (murmur2 of the id, as the producers
    and the worker put them)."""
    return sorted({partition_of(a.encode(), settings.partitions) for a in account_ids})


async def catalog_in_force(settings: Settings, codec: Codec) -> ProcedureCatalog:
    """The procedures and reference rates a worker would hold after reading
    `dunning.procedures` and `dunning.rates`."""
    catalog = ProcedureCatalog(settings, codec)
    for topic in (PROCEDURES, RATES):
        for rec in await read_all(settings, topic, idle_timeout=0.2):
            if rec.value is not None:
                catalog.apply(rec.value)
    return catalog


async def simulate(settings: Settings, as_of: int, changes: Iterable[Procedure] = (),
                   account_ids: Iterable[str] | None = None,
                   progress: Progress | None = None) -> SimulationRun:
    codec = Codec.from_settings(settings)
    catalog = await catalog_in_force(settings, codec)
    in_force = dict(catalog.get())
    changed = {p.id: p for p in changes}
    simulated = {**in_force, **changed} if changed else in_force
    wanted = set(account_ids) if account_ids is not None else None
    parts = (partitions_of(settings, wanted) if wanted is not None
             else list(range(settings.partitions)))
    simulation = Simulation(as_of, rates=dict(catalog.rate_timelines()))
    run = SimulationRun(simulation, changelog_of(settings), parts, in_force,
                        simulated, sorted(changed))
    found: set[str] = set()
    done = 0
    async for _, rows in latest_by_key(settings, run.changelog, parts):
        for key, value in rows.items():
            account_id = key.decode(errors="replace")
            if value is None or (wanted is not None and account_id not in wanted):
                continue
            try:
                account = StoredAccount.loads(value).account
            except Exception as exc:  # one bad row is reported, the rest simulated
                run.unreadable.append(account_id)
                log.warning("account row not readable", account_id=account_id[:200],
                            error=f"{type(exc).__name__}: {exc}"[:300])
                continue
            found.add(account_id)
            run.simulation.add(account, in_force, simulated)
        done += 1
        if progress is not None:
            progress(done, len(parts), run.simulation.accounts)
    if wanted is not None:
        run.missing = sorted(wanted - found - set(run.unreadable))
    return run
