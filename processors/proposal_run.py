"""A run slice: one partition's share of a proposal run (the partition-work agent).

The slice waits for the run barrier (every input event published before the payment run
is in the account state), then evaluates the partition's due accounts (or all of them
after a procedure change or a rerun) a batch at a time, records and publishes their
proposals, executes those auto-approved, moves the due index, and reports its counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from domain.proposal_run import propose
from domain.review import record_proposals
from domain.run import auto_approves
from processors import convert
from processors import messages as m
from processors.activity_run import ActivityRun
from processors.metrics import Metrics
from processors.outbox import Outbox
from processors.state import NO_DAY, StoredAccount, proposal_key, run_key
from processors.store import Store
from processors.writes import Out, Writes
from schemas.codec import Codec
from topics import catalogue as cat

log = structlog.get_logger("dunning.worker")

VERSION_KEY = b"v|index"
#: (physical input topic, partition) -> the offset after the last event applied
AppliedOffset = Callable[[str, int], int]


class ProposalRun:
    def __init__(self, *, store: Store, outbox: Outbox, codec: Codec, metrics: Metrics,
                 activities: ActivityRun, applied_offset: AppliedOffset) -> None:
        self.store = store
        self.outbox = outbox
        self.codec = codec
        self.metrics = metrics
        self.activities = activities
        self.applied_offset = applied_offset
        self.settings = store.settings
        self.procedures = store.procedures
        #: runs whose slices execute every proposal (the schedule's activity run
        #: `together`, `Slice.auto_approve`), as a procedure's `auto_approve` does
        self.together: set[str] = set()

    async def wait_applied(self, partition: int, targets: dict[str, int]) -> None:
        """The run barrier: every input event published before the payment run, on every
        input topic of this partition, is in the account state."""
        while True:
            lagging = {t: off for t, off in targets.items()
                       if self.applied_offset(t, partition) < off}
            if not lagging:
                return
            await asyncio.sleep(0.02)

    async def slice(self, partition: int, msg: m.Slice) -> None:
        run_id, as_of = msg.run_id, msg.as_of
        done_key = b"s|" + run_id.encode()
        done = self.store.work_index.get(done_key)
        if done is not None:  # done before: its report again
            await self.outbox.send([self.outbox.message(cat.RUN_PROGRESS, m.decode(done),
                                                        run_id)])
            return
        started = time.monotonic()
        if msg.auto_approve:
            self.together.add(run_id)
        await self.wait_applied(partition, msg.targets)
        await self.procedures.ready.wait()
        barrier_s = time.monotonic() - started
        full = msg.full or (
            self.store.work_index.get(VERSION_KEY) != self.procedures.version.encode())
        counts = await self._evaluate_slice(partition, run_id, as_of, full)
        report = m.SliceDone(run_id=run_id, partition=partition, **counts)
        self.store.work_index[VERSION_KEY] = self.procedures.version.encode()
        self.store.work_index[done_key] = m.encode(report)
        seconds = time.monotonic() - started
        self.metrics.slice_seconds.observe(seconds)
        log.info("run slice done", run_id=run_id, partition=partition, full=bool(full),
                 evaluated=counts["evaluated"], proposals=counts["proposals"],
                 barrier_s=round(barrier_s, 3), seconds=round(seconds, 3))
        self.metrics.accounts_evaluated.inc(counts["evaluated"])
        self.metrics.proposals.inc(counts["proposals"])
        await self.outbox.send([self.outbox.message(cat.RUN_PROGRESS, report, run_id)])

    async def _evaluate_slice(self, partition: int, run_id: str, as_of: int,
                              full: bool) -> dict[str, Any]:
        procs = self.procedures.get()
        # Groups with an undecided proposal of an earlier run are left out of this one
        # (RULES.md "Undecided proposals"; the due index skips them until decided).
        # The slice's counts so far, kept with each unit's rows (`commit_each`), so a slice
        # done again after a crash counts what the first attempt committed too.
        progress = b"k|" + run_id.encode()
        counts: dict[str, Any] = self.store.kept(progress) or {
            "evaluated": 0, "proposals": 0, "unknown": 0, "notices": 0, "commands": 0,
            "failed": 0, "pending": self.store.pending_count(Writes(partition))}
        for keys in self.store.candidates(partition, as_of, full):
            async with self.store.lock(partition):
                await self.evaluate(partition, keys, run_id, as_of, procs, counts, progress)
            await asyncio.sleep(0)
        return {k: v for k, v in counts.items() if k not in ("kind", "run_id", "partition")}

    async def evaluate(self, partition: int, keys: list[tuple[bytes, int]], run_id: str,
                       as_of: int, procs: Any, counts: dict[str, Any],
                       progress: bytes) -> None:
        """One batch of a run slice: propose, record, publish, move the due index."""
        days = {key.decode(): day for key, day in keys}

        def work(account_id: str, outs: list[Out], w: Writes) -> dict[str, int]:
            stored = self.store.load_existing(account_id, w)
            if stored is None:
                return {}
            return self.evaluate_account(stored, days[account_id], run_id, as_of, procs,
                                         outs, w)

        await self.store.commit_each(partition, list(days), work, counts, progress)

    def evaluate_account(self, stored: StoredAccount, key_day: int, run_id: str, as_of: int,
                         procs: Any, outs: list[Out], w: Writes) -> dict[str, int]:
        account = stored.account
        c = {"evaluated": 1, "proposals": 0, "unknown": 0, "notices": 0, "commands": 0}
        evaluation = propose(account, procs, as_of, run_id, self.procedures.rate_timelines())
        if evaluation.unknown_procedure:
            c["unknown"] = 1
        if not evaluation.proposals:
            # Nothing to do: only the account's place in the due index moves; the row
            # itself is not rewritten.
            self.store.reindex(account.account_id, key_day,
                               self.store.next_day(account, as_of + 1), w)
            return c
        account = record_proposals(account, evaluation.proposals)
        for proposal in evaluation.proposals:
            c["proposals"] += 1
            outs.append((self.settings.topic(cat.PROPOSALS), account.account_id.encode(),
                         self.codec.encode_raw("DunningProposed",
                                               convert.proposal_record(proposal, raw=True)),
                         None))
            w.set(self.store.work_index, proposal_key(proposal.proposal_id),
                  account.account_id.encode())
        w.set(self.store.work_index, run_key(run_id, account.account_id), b"")
        stored.account = account
        for proposal in evaluation.proposals:
            if auto_approves(self.settings.auto_approve or run_id in self.together,
                             procs[proposal.procedure_id].auto_approve):
                c["commands"] += self.activities.execute(stored, proposal.proposal_id, outs,
                                                         w)[0]
                c["notices"] += 1
        if key_day not in (NO_DAY, stored.index_day):
            self.store.reindex(account.account_id, key_day, None, w)
        self.store.compact(stored, as_of)
        self.store.store(stored, self.store.next_day(stored.account, as_of + 1), w)
        return c
