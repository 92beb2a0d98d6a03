"""Row changes of one unit of work on one partition, written together.

A run slice or an activity run changes thousands of rows. Through the Faust table API each
change is a message of its own on the table's changelog (a future, a buffer entry, one
send); here they are collected, sent with the unit's other records in one batch per topic
partition, and written to the partition's RocksDB store only once the broker has them all.
The changelog records are the same bytes Faust writes (raw keys and values, `None` to
delete), so Faust's recovery reads them as its own.
"""

from __future__ import annotations

from typing import Any

from faust.types import TP

from processors import faust_private

Out = tuple[str, bytes | None, bytes | None, int | None]


class Writes:
    def __init__(self, partition: int) -> None:
        self.partition = partition
        self._rows: dict[tuple[int, bytes], tuple[Any, bytes | None]] = {}

    def __bool__(self) -> bool:
        return bool(self._rows)

    def set(self, table: Any, key: bytes, value: bytes) -> None:
        self._rows[(id(table), key)] = (table, value)

    def delete(self, table: Any, key: bytes) -> None:
        self._rows[(id(table), key)] = (table, None)

    def get(self, table: Any, key: bytes) -> bytes | None:
        """The row as this unit leaves it, else as stored."""
        pending = self._rows.get((id(table), key))
        if pending is not None:
            return pending[1]
        return db_of(table, self.partition).get(key)

    def changelog(self) -> list[Out]:
        p = self.partition
        return [(table.changelog_topic.get_topic_name(), key, value, p)
                for (_, key), (table, value) in self._rows.items()]

    def apply(self, offsets: dict[tuple[str, int], int] | None = None) -> None:
        """Write the rows to the local store (after the broker has the changelog), and
        remember each changelog's last offset as Faust does, so a restart's recovery reads
        only what came after."""
        tables = {}
        for (_, key), (table, value) in self._rows.items():
            db = db_of(table, self.partition)
            if value is None:
                db.delete(key)
            else:
                db.put(key, value)
            tables[id(table)] = table
        self._rows.clear()
        for table in tables.values():
            topic = table.changelog_topic.get_topic_name()
            last = (offsets or {}).get((topic, self.partition))
            if last is not None:
                table.data.set_persisted_offset(TP(topic, self.partition), last)


class UnitWrites(Writes):
    """The row changes of a unit over several accounts, made of each account's own
    (`merge`), so that an account whose change cannot be stored or sent can be taken out
    (`drop`)."""

    def merge(self, part: Writes) -> None:
        self._rows.update(part._rows)

    def drop(self, part: Writes) -> None:
        for key in part._rows:
            self._rows.pop(key, None)

    def changed_rows(self) -> list[tuple[str, bytes]]:
        """(changelog topic, key) of every row changed."""
        return [(table.changelog_topic.get_topic_name(), key)
                for (_, key), (table, _) in self._rows.items()]


class StagedWrites(UnitWrites):
    """Row changes staged on top of others (`base`), which they read through to."""

    def __init__(self, base: Writes) -> None:
        super().__init__(base.partition)
        self.base = base

    def get(self, table: Any, key: bytes) -> bytes | None:
        pending = self._rows.get((id(table), key))
        if pending is not None:
            return pending[1]
        return self.base.get(table, key)


db_of = faust_private.db_of
