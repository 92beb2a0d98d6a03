"""Every topic, declared once: name, partitions, cleanup policy, retention, key; its
record types come from `schemas.TOPICS` (the record type -> topic map of CONTRACT.md).

Account-scoped topics share one partition count (`Settings.partitions`), so an account's
events, its table rows and the commands about it live on the same partition number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import schemas

DAY_MS = 24 * 3600 * 1000
FOREVER = -1

#: Partition count marker: the deployment's account partition count.
ACCOUNT_PARTITIONS = 0


@dataclass(frozen=True)
class TopicSpec:
    """One topic. Its record types are not declared here: they are the record types
    `schemas.TOPICS` puts on it (none for the processor's own topics)."""

    name: str
    #: The record fields a record's key is taken from: the first one set (non-empty).
    key: tuple[str, ...] = ("account_id",)
    partitions: int = ACCOUNT_PARTITIONS
    cleanup_policy: str = "delete"
    retention_ms: int = FOREVER
    internal: bool = False
    doc: str = ""
    records: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        records = tuple(r for r, topic in schemas.TOPICS.items() if topic == self.name)
        object.__setattr__(self, "records", records)

    def partition_count(self, account_partitions: int) -> int:
        return account_partitions if self.partitions == ACCOUNT_PARTITIONS else self.partitions

    def configs(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


ACCOUNTS = "billing.accounts"
INVOICES = "billing.invoices"
PAYMENTS = "billing.payments"
DUE_DATES = "billing.due-dates"
PAYMENT_RUNS = "billing.payment-runs"
PROCEDURES = "dunning.procedures"
SCHEDULES = "dunning.schedules"
RATES = "dunning.rates"
DECISIONS = "dunning.decisions"
RUNS = "dunning.runs"
PROPOSALS = "dunning.proposals"
LETTERS = "dunning.letters"
#: What happened to each letter, from the letter service; read by the ingest agent.
LETTER_DELIVERIES = "dunning.letter-deliveries"
LOCKS = "dunning.locks"
COLLECTIONS = "dunning.collections"
DEPOSITS = "dunning.deposits"
WORKFLOWS = "dunning.workflows"
POSTINGS = "dunning.postings"
HISTORY = "dunning.history"
DEAD_LETTERS = "dunning.dead-letters"
#: The processor's own: work addressed to one account partition (routed decisions, run
#: slices). Co-partitioned with the input topics.
PARTITION_WORK = "dunning.internal.partition-work"
#: The processor's own: one record per finished run slice, counted by the run coordinator.
RUN_PROGRESS = "dunning.internal.run-progress"

#: Account-scoped input topics, consumed by the ingest agent.
ACCOUNT_INPUTS = (ACCOUNTS, INVOICES, PAYMENTS, DUE_DATES)
INPUTS = (*ACCOUNT_INPUTS, PAYMENT_RUNS)
#: What the ingest agent reads: the billing inputs and the letter service's delivery
#: outcomes (account-partitioned too). A proposal run waits for `ACCOUNT_INPUTS` only: a
#: delivery changes nothing a run computes.
INGESTED = (*ACCOUNT_INPUTS, LETTER_DELIVERIES)

CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(ACCOUNTS, doc="Account master data and dunning locks, from billing."),
    TopicSpec(INVOICES, doc="Invoices and their items, from billing."),
    TopicSpec(PAYMENTS, doc="Payments and reversals, from billing."),
    TopicSpec(DUE_DATES, doc="Due-date changes and instalment plans, from billing."),
    TopicSpec(PAYMENT_RUNS, ("run_id",), partitions=1,
              doc="One record per finished payment run; starts a proposal run."),
    TopicSpec(PROCEDURES, ("procedure_id",), partitions=1, cleanup_policy="compact",
              doc="Dunning procedures, the latest per id."),
    TopicSpec(SCHEDULES, ("schedule_id",), partitions=1, cleanup_policy="compact",
              doc="The run schedule: when proposal and activity runs start."),
    TopicSpec(RATES, ("rate_id|valid_from",), partitions=1, cleanup_policy="compact",
              doc="Reference interest rates, the latest per rate id and valid-from date."),
    TopicSpec(DECISIONS, ("proposal_id", "run_id", "payment_run_id", "notice_id"), partitions=1,
              doc="Review decisions and requests, in the order they were taken."),
    TopicSpec(RUNS, ("run_id",), partitions=1, doc="Run lifecycle."),
    TopicSpec(PROPOSALS, doc="Stage 1 results."),
    TopicSpec(LETTERS, doc="Letters to print or e-mail."),
    TopicSpec(LETTER_DELIVERIES,
              doc="What happened to each letter: sent, failed (and why), printed."),
    TopicSpec(LOCKS, doc="Lock requests to billing."),
    TopicSpec(COLLECTIONS, doc="Releases to a collection agency."),
    TopicSpec(DEPOSITS, doc="Cash security deposit requests."),
    TopicSpec(WORKFLOWS, doc="Agent notifications and instalment-plan deactivations."),
    TopicSpec(POSTINGS, doc="Charge and interest postings for the ledger."),
    TopicSpec(HISTORY, doc="The audit log: every dunning state change, in order per account."),
    # The worker keys a dead letter by its source topic, which is no field of the record.
    TopicSpec(DEAD_LETTERS, (), partitions=1, retention_ms=30 * DAY_MS,
              doc="Inputs that could not be used, with the reason."),
    # Keyed by account_id, or by partition (the worker's own records, not published here).
    TopicSpec(PARTITION_WORK, internal=True, retention_ms=7 * DAY_MS,
              doc="Work routed to the owner of one account partition."),
    TopicSpec(RUN_PROGRESS, ("run_id",), partitions=1, internal=True,
              retention_ms=7 * DAY_MS, doc="Finished run slices, counted per run."),
)

BY_NAME = {t.name: t for t in CATALOGUE}


# The header a replayed dead letter carries: the dead letter's own coordinates, so that the
# worker can tell a replay from a first delivery (`dunning dead-letters replay`).
REPLAY_HEADER = "dunning-replay-of"
