"""The worker's Prometheus metrics, one registry per app (tests run several apps)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.applied = Counter("dunning_applied", "Input events applied to account state",
                               ["topic"], registry=r)
        self.dead_letters = Counter("dunning_dead_letters", "Inputs sent to the dead-letter "
                                    "topic", ["reason"], registry=r)
        self.records = Counter("dunning_records", "Records read, once each, by topic and "
                               "outcome: applied (used, or a redelivery that changes nothing) "
                               "or dead_lettered", ["topic", "outcome"], registry=r)
        self.proposals = Counter("dunning_proposals", "Proposals made by proposal runs",
                                 registry=r)
        self.accounts_evaluated = Counter("dunning_accounts_evaluated", "Accounts looked at "
                                          "by proposal runs", registry=r)
        self.notices = Counter("dunning_notices", "Notices executed (activity runs)",
                               registry=r)
        self.commands = Counter("dunning_commands", "Commands emitted by notices and reversals",
                                registry=r)
        self.run_seconds = Histogram(
            "dunning_proposal_run_seconds", "From the payment run to the completed proposal "
            "run (the control worker's view)", registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 20, 30, 60, 120))
        self.slice_seconds = Histogram(
            "dunning_run_slice_seconds", "One partition's share of a proposal run",
            registry=r, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60))
        # Business outcomes of decisions (recorded on dunning.history / dunning.runs).
        self.not_executed = Counter("dunning_proposals_not_executed", "Approved proposals "
                                    "not executed (the account changed)", ["reason"],
                                    registry=r)
        self.reversals_refused = Counter("dunning_reversals_refused", "Notices a reversal "
                                         "request could not reverse", ["reason"], registry=r)
        self.decisions_refused = Counter("dunning_run_decisions_refused", "Run decisions "
                                         "refused (RunDecisionRefused)", ["reason"], registry=r)
        self.run_accounts_failed = Counter("dunning_run_accounts_failed", "Accounts a run "
                                           "slice or activity run left out after an error "
                                           "(logged)", registry=r)
        self.decisions_ignored = Counter("dunning_decisions_ignored", "Decisions about "
                                         "proposals that were decided before", registry=r)

    def add_gauges(self, name: str, doc: str, labels: list[str],
                   collect: Callable[[], Iterable[tuple[list[str], float]]]) -> None:
        """A gauge computed when scraped (consumer lag, table sizes)."""
        class _Gauge(Collector):
            def collect(self) -> Iterable[Any]:
                family = GaugeMetricFamily(name, doc, labels=labels)
                for values, value in collect():
                    family.add_metric(values, value)
                yield family

        self.registry.register(_Gauge())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
