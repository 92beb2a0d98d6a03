"""The decisions about proposals, carried out on the account partition that holds them
(the partition-work agent): a proposal approved or rejected, a run approved (the activity
run) or deleted, notices reversed. An approved proposal the account no longer calls for
is not executed (`ProposalNotExecuted`, RULES.md "Decisions of this project").
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from domain.activity_run import Notice, execute, execute_approved, not_executed
from domain.errors import Rejected
from domain.reversal import reversal_refused, reverse
from domain.review import drop_run, notices_of_run, reject, run_executed
from domain.run import pending_of_run, run_of_proposal
from domain.state import Account
from processors import convert
from processors import messages as m
from processors.metrics import Metrics
from processors.outbox import Outbox
from processors.state import StoredAccount, notice_key, proposal_key, run_key
from processors.store import Store
from processors.writes import Out, Writes
from topics import catalogue as cat

log = structlog.get_logger("dunning.worker")

NO_OUTCOMES = {"notices": 0, "commands": 0, "not_executed": 0}


class ActivityRun:
    def __init__(self, *, store: Store, outbox: Outbox, metrics: Metrics) -> None:
        self.store = store
        self.outbox = outbox
        self.metrics = metrics

    # ------------------------------------------------------------------ one proposal
    def execute(self, stored: StoredAccount, proposal_id: str, outs: list[Out],
                w: Writes) -> tuple[int, str]:
        """Execute one pending (or already executed) proposal; append its records.
        Returns the number of commands and the run id."""
        account, notice = execute(stored.account, proposal_id)
        return self._emit(stored, account, notice, outs, w), notice.run_id

    def _emit(self, stored: StoredAccount, account: Account, notice: Notice, outs: list[Out],
              w: Writes) -> int:
        """The records of an executed notice (commands, history) and its index entry;
        the number of commands."""
        stored.account = account
        commands = convert.command_outputs(account, notice, raw=True)
        for topic, rtype, record in commands:
            outs.append(self.outbox.record(topic, rtype, record, account.account_id, raw=True))
        rtype, payload = convert.notice_history(account, notice, raw=True)
        outs.append(self.outbox.history(stored, rtype, payload, raw=True))
        w.set(self.store.work_index, notice_key(notice.notice_id), account.account_id.encode())
        self.metrics.notices.inc()
        self.metrics.commands.inc(len(commands))
        return len(commands)

    def approve_one(self, stored: StoredAccount, proposal_id: str, outs: list[Out],
                    w: Writes) -> dict[str, int]:
        """The outcome of one approved proposal: its notice, or a `ProposalNotExecuted`
        history record when the account changed since the run."""
        account, outcome = execute_approved(stored.account, proposal_id)
        if isinstance(outcome, Notice):  # executed once: its records from this outcome
            commands = self._emit(stored, account, outcome, outs, w)
            return {"notices": 1, "commands": commands, "not_executed": 0}
        stored.account = account
        rtype, payload = convert.not_executed_history(account, outcome)
        outs.append(self.outbox.history(stored, rtype, payload))
        self.metrics.not_executed.labels(outcome.reason).inc()
        log.info("approved proposal not executed", proposal_id=proposal_id,
                 run_id=outcome.run_id, reason=outcome.reason)
        return {"notices": 0, "commands": 0, "not_executed": 1}

    def _account_for(self, key: bytes, w: Writes) -> StoredAccount | None:
        account_id = w.get(self.store.work_index, key)
        if account_id is None:
            return None
        return self.store.load(account_id.decode(), w)

    async def approve(self, partition: int, msg: m.Approve) -> None:
        async with self.store.lock(partition):
            w = Writes(partition)
            stored = self._account_for(proposal_key(msg.proposal_id), w)
            if stored is None:
                return  # another partition's proposal
            run_id = run_of_proposal(stored.account, msg.proposal_id)
            if run_id is None:
                # decided before (rejected, not executed, or its run deleted): that
                # decision stands and was recorded then
                self.metrics.decisions_ignored.inc()
                log.info("approval of a proposal decided before", proposal_id=msg.proposal_id)
                return
            outs: list[Out] = []
            # (executed before: the same records again, same ids)
            c = self.approve_one(stored, msg.proposal_id, outs, w)
            self.store.store_decided(stored, w)
            outs.append(self.outbox.message(cat.RUN_PROGRESS, m.Executed(
                run_id, c["notices"], c["not_executed"]), run_id))
            await self.store.commit(outs, w)

    async def reject(self, partition: int, msg: m.Reject) -> None:
        async with self.store.lock(partition):
            w = Writes(partition)
            stored = self._account_for(proposal_key(msg.proposal_id), w)
            if stored is None:
                return
            try:
                account, rejected = reject(stored.account, msg.proposal_id, msg.decided_by,
                                           msg.reason or "")
            except Rejected as exc:  # executed before: the notice stands (reverse it)
                self.metrics.decisions_ignored.inc()
                log.info("rejection of an executed proposal", proposal_id=msg.proposal_id,
                         reason=exc.code)
                return
            stored.account = account
            outs: list[Out] = []
            if rejected is not None:
                rtype, payload = convert.rejection_history(account, rejected)
                outs.append(self.outbox.history(stored, rtype, payload))
            # decided: the group can be proposed again, so its next day is computed anew
            self.store.store_decided(stored, w)
            await self.store.commit(outs, w)

    # ------------------------------------------------------------------ a whole run
    async def approve_run(self, partition: int, msg: m.ApproveRun) -> None:
        run_id = msg.run_id
        # kept with each unit's rows: an approval done again after a crash (the partition
        # finds only what is still pending) still reports every outcome once
        progress = b"a|" + run_id.encode()
        totals: dict[str, Any] = self.store.kept(progress) or dict(NO_OUTCOMES)

        def work(account_id: str, outs: list[Out], w: Writes) -> dict[str, int]:
            stored = self.store.load(account_id, w)
            c = dict(NO_OUTCOMES)
            for proposal_id in pending_of_run(stored.account, run_id):
                for k, v in self.approve_one(stored, proposal_id, outs, w).items():
                    c[k] += v
            self.store.store_decided(stored, w)
            return c

        for ids in self.store.run_batches(partition, run_id):
            async with self.store.lock(partition):
                failed = await self.store.commit_each(partition, ids, work, totals, progress)
                if failed:
                    await self._not_executed_after_error(partition, run_id, failed, totals,
                                                         progress)
            await asyncio.sleep(0)
        await self.outbox.send([self.outbox.message(cat.RUN_PROGRESS, m.ApproveDone(
            run_id, partition, **{k: totals.get(k, 0) for k in (
                "notices", "commands", "not_executed", "failed")}), run_id)])

    async def _not_executed_after_error(self, partition: int, run_id: str,
                                        failed: dict[str, str], totals: dict[str, Any],
                                        progress: bytes) -> None:
        """The run's proposals on accounts whose execution failed are decided without a
        notice (`processing_error`), so each still gets one outcome; an account where even
        that fails keeps them pending, logged."""
        def work(account_id: str, outs: list[Out], w: Writes) -> dict[str, int]:
            stored = self.store.load(account_id, w)
            n = 0
            for proposal in [p for p in stored.account.pending if p.run_id == run_id]:
                account, outcome = not_executed(
                    stored.account, proposal, "processing_error", failed[account_id])
                stored.account = account
                rtype, payload = convert.not_executed_history(account, outcome)
                outs.append(self.outbox.history(stored, rtype, payload))
                self.metrics.not_executed.labels("processing_error").inc()
                n += 1
            self.store.store_decided(stored, w)
            return {"not_executed": n}

        await self.store.commit_each(partition, list(failed), work, totals, progress)

    async def delete_run(self, partition: int, msg: m.DeleteRun) -> None:
        for ids in self.store.run_batches(partition, msg.run_id):
            async with self.store.lock(partition):
                w = Writes(partition)
                for account_id in ids:
                    stored = self.store.load(account_id, w)
                    if run_executed(stored.account, msg.run_id):
                        continue  # an executed notice cannot be deleted, only reversed
                    stored.account = drop_run(stored.account, msg.run_id)
                    self.store.store_decided(stored, w)
                    w.delete(self.store.work_index, run_key(msg.run_id, account_id))
                await self.store.commit([], w)

    # ------------------------------------------------------------------ reversals
    async def reverse(self, partition: int, msg: m.Reverse) -> None:
        if msg.notice_id:
            account_id = self.store.db(self.store.work_index, partition).get(
                notice_key(msg.notice_id))
            batches = [[account_id.decode()]] if account_id is not None else []
        else:
            batches = list(self.store.run_batches(partition, msg.run_id or ""))
        for ids in batches:
            async with self.store.lock(partition):
                w = Writes(partition)
                outs: list[Out] = []
                for account_id in ids:
                    stored = self.store.load(account_id, w)
                    notice_ids = ([msg.notice_id] if msg.notice_id else
                                  list(notices_of_run(stored.account, msg.run_id or "")))
                    for notice_id in notice_ids:
                        self._reverse_notice(stored, notice_id, msg, outs)
                    self.store.store_decided(stored, w)
                await self.store.commit(outs, w)

    def _reverse_notice(self, stored: StoredAccount, notice_id: str, msg: m.Reverse,
                        outs: list[Out]) -> None:
        item_ids = tuple(msg.item_ids) if msg.item_ids else None
        requested_by = msg.requested_by or ""
        reversal_id = convert.reversal_id(msg.event_id, notice_id)
        try:
            account, reversal = reverse(stored.account, notice_id, item_ids, reversal_id,
                                        requested_by, msg.reason or "")
        except Rejected as exc:
            # this notice stays; the others of the request go ahead
            refused = reversal_refused(stored.account, notice_id, reversal_id, requested_by,
                                       exc)
            rtype, payload = convert.reversal_refused_history(stored.account, refused)
            outs.append(self.outbox.history(stored, rtype, payload))
            self.metrics.reversals_refused.labels(exc.code).inc()
            return
        stored.account = account
        if reversal.history is None:
            return  # nothing left to reverse
        for topic, rtype, record in convert.reversal_outputs(account, reversal):
            outs.append(self.outbox.record(topic, rtype, record, account.account_id))
        rtype, payload = convert.reversal_history(account, reversal)
        outs.append(self.outbox.history(stored, rtype, payload))
