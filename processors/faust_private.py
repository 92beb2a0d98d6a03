"""Every private Faust, aiokafka or mode API the processors use, in one place.

Nothing else in `processors/` touches a name with a leading underscore of those libraries
(nor the `message.acked` flag of Faust's consumer). Each function says why it is needed and
what breaks without it, so that an upgrade of faust-streaming (0.15) or aiokafka (0.14)
knows what to check. `topics/broker_quirks.py` holds the patches installed into Faust's
recovery and fetcher (`install_faust_recovery_fix`, `install_faust_fetch_wait`); they are
called from `processors.app`, not here.
"""

from __future__ import annotations

import weakref
from typing import Any


def producer_of(app: Any) -> Any:
    """The aiokafka producer under Faust's (`Producer._ensure_producer`).

    Needed to send one batch per topic partition (`create_batch`/`send_batch`) and to ask
    for a topic's partitions (`partitions_for`): Faust's `send` makes one future and one
    buffer entry per record, several times slower for a run's thousands of records, and
    the HTTP view needs the accounts changelog's metadata before Faust's router can find
    a key's owner. Without it: no batching (slow runs), and a TypeError in the router."""
    return app.producer._ensure_producer()  # noqa: SLF001


def db_of(table: Any, partition: int) -> Any:
    """The RocksDB database of one partition of a Faust table (`Store._db_for_partition`).

    Needed to write a unit's rows only after the broker has their changelog
    (`processors.writes`), and for key range scans (the due index, a run's accounts) that
    the Faust table API does not offer. Without it: rows written before their changelog
    (lost on a crash), and full scans of the table for every run."""
    return table.data._db_for_partition(partition)  # noqa: SLF001


def open_dbs(table: Any) -> list[Any]:
    """The RocksDB databases a Faust table has open on this worker (`Store._dbs`), for the
    table-size gauge. Without it the gauge says nothing."""
    return list(getattr(table.data, "_dbs", {}).values())


def set_current_event(event: Any | None) -> None:
    """Make `event` the current event of this task (`faust.streams._current_event`), as
    Faust's table API (the runs table) needs and `take_events` does not do for each event
    of a batch. Only the context variable is set, never the stream's own `current_event`,
    which the take buffer's filling task reads. Without it a write to the runs table
    outside Faust's own per-event loop raises (no current event to take the partition
    from)."""
    from faust import streams

    streams._current_event.set(  # noqa: SLF001
        None if event is None else weakref.ref(event))


def mark_acked(message: Any) -> None:
    """Mark a message acknowledged already (`Message.acked`), so that Faust's consumer
    skips it (`Consumer.ack` tests the flag) and never commits its offset.

    Needed because `take_events` acknowledges a batch in a `finally`: a batch whose
    handling did not finish (a SIGTERM cancels the agent in the middle of it) would have
    its offsets committed by the graceful stop and never be read again (input lost)."""
    message.acked = True


async def refresh_metadata(consumer: Any) -> None:
    """Ask the broker again for the cluster's metadata (`AIOKafkaConsumer._client.
    force_metadata_update`). Needed while the procedures topic is being created: without
    it the consumer waits for its next periodic metadata refresh (minutes) before it sees
    the topic's partitions, and the worker is not ready until then."""
    await consumer._client.force_metadata_update()  # noqa: SLF001
