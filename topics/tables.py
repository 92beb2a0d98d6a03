"""Every table of the worker, declared once: name, partitions, what its keys and values
are. `processors.app` builds the Faust tables from these; each table's changelog is
`<app_id>-<name>-changelog` (Faust's naming), compacted, with the table's partitions.

Keys and values are bytes on the wire and in RocksDB (the app's raw serializers); `key`
and `value` say what the bytes hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from topics.catalogue import ACCOUNT_PARTITIONS


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: str
    value: str
    #: ACCOUNT_PARTITIONS: the deployment's account partition count (co-partitioned with
    #: the account-scoped topics), else a fixed count
    partitions: int = ACCOUNT_PARTITIONS
    doc: str = ""

    def partition_count(self, account_partitions: int) -> int:
        return account_partitions if self.partitions == ACCOUNT_PARTITIONS else self.partitions


ACCOUNTS = TableSpec(
    "accounts", key="account id (UTF-8)",
    value="msgpack [index_day, packed account, history refs] (processors.state)",
    doc="One row per account: its state.")
DUE_INDEX = TableSpec(
    "due_index", key="%08d day | account id", value="empty",
    doc="The accounts of a partition by the next day a rule can fire.")
WORK_INDEX = TableSpec(
    "work_index", key="r|run|account, p|proposal, n|notice, c|pending, k|/a|/s| run, v|index",
    value="account id, a count, or a run's progress (processors.state)",
    doc="A partition's accounts by run, proposal or notice; its counts and run progress.")
RUNS = TableSpec(
    "runs", key="payment run id (UTF-8)", value="orjson of a run (processors.control)",
    partitions=1, doc="The proposal runs, one row per payment run (the control agent's).")

TABLES = (ACCOUNTS, DUE_INDEX, WORK_INDEX, RUNS)
BY_NAME = {t.name: t for t in TABLES}
