"""processors.messages: every internal message through its one codec, and the messages
the worker wrote before they were types."""

from __future__ import annotations

import orjson
import pytest

from processors import messages as m

ALL = [
    m.Slice("PR-1/1", 20000, {"t.billing.accounts": 7}, full=True),
    m.Approve("P-1"), m.Reject("P-1", "clerk", "paid already"),
    m.ApproveRun("PR-1/1"), m.DeleteRun("PR-1/1"),
    m.Reverse("E-1", notice_id="N-1", item_ids=["I-a"], requested_by="clerk", reason="x"),
    m.Executed("PR-1/1", notices=1, not_executed=0),
    m.SliceDone("PR-1/1", 3, evaluated=10, proposals=2, pending=1),
    m.ApproveDone("PR-1/1", 3, notices=2, commands=4, not_executed=1, failed=0),
]


@pytest.mark.parametrize("message", ALL, ids=lambda x: x.kind)
def test_every_message_comes_back_as_it_went(message: m.Message) -> None:
    assert m.decode(m.encode(message)) == message


def test_messages_of_the_version_before_are_read() -> None:
    # as the old worker broadcast an approval: the decision record's fields and a kind
    old = orjson.dumps({"kind": "approve", "event_id": "E", "proposal_id": "P-9",
                        "decided_by": "clerk", "decided_at": "2026-09-01T00:00:00"})
    assert m.decode(old) == m.Approve("P-9")
    slice_done = orjson.dumps({"evaluated": 4, "proposals": 1, "unknown": 0, "notices": 0,
                               "commands": 0, "failed": 0, "pending": 2,
                               "kind": "slice_done", "run_id": "R/1", "partition": 1})
    done = m.decode(slice_done)
    assert isinstance(done, m.SliceDone)
    assert (done.partition, done.evaluated, done.pending) == (1, 4, 2)
    assert done.counts()["proposals"] == 1
    reverse = m.decode(orjson.dumps({"kind": "reverse", "event_id": "E", "run_id": "R/1"}))
    assert reverse == m.Reverse("E", run_id="R/1")


@pytest.mark.parametrize("data", [b"not json", b"{}", b'{"kind": "nope"}',
                                  b'{"kind": "approve"}', b"[1]"])
def test_what_is_no_message_says_so(data: bytes) -> None:
    with pytest.raises(m.UnknownMessage):
        m.decode(data)
