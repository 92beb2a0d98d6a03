"""`dunning dead-letters list|replay` on in-memory records: each dead letter once (latest
attempt, attempt count), selection by id, and what a replay publishes."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.settings import Settings
from dunning import deadletters as dls
from processors.deadletter import dead_letter_record
from schemas.codec import Codec
from topics import catalogue
from topics.clients import Received

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
CODEC = Codec("single-object")


def received(offset: int, *, topic: str = "billing.invoices", source_offset: int = 7,
             code: str = "undecodable", detail: str = "bad bytes", value: bytes = b"\x00x",
             key: bytes | None = b"ACC-1", event_id: str | None = None,
             minutes: int = 0, partition: int = 0) -> Received:
    """A dead letter as `kafka_io.read` yields it: encoded and decoded by the codec."""
    record = dead_letter_record(topic=topic, partition=2, offset=source_offset, key=key,
                                value=value, code=code, detail=detail,
                                now=T0 + timedelta(minutes=minutes))
    if event_id is not None:
        record["event_id"] = event_id
    data = CODEC.encode("DeadLetter", record)
    rtype, decoded = CODEC.decode(data)
    return Received(dls.TOPIC, partition, offset, topic.encode(), data, rtype, decoded)


def test_the_header_is_the_one_the_worker_reads():
    from processors.errors import REPLAY_HEADER

    assert dls.REPLAY_HEADER == REPLAY_HEADER == catalogue.REPLAY_HEADER == "dunning-replay-of"


def test_each_dead_letter_once_latest_attempt_wins_with_the_attempt_count():
    first = received(0, source_offset=7, detail="first failure")
    dl_id = first.record["event_id"]
    other = received(1, topic="billing.payments", source_offset=3, code="key_mismatch")
    # replayed twice, failing again each time: the worker keeps the id
    again = received(2, source_offset=40, detail="second failure", minutes=5, event_id=dl_id)
    third = received(3, source_offset=41, code="unknown_item", detail="third", minutes=9,
                     event_id=dl_id)
    letters, unreadable = dls.collect([first, other, again, third])
    assert unreadable == 0
    assert [d.event_id for d in letters] == [dl_id, other.record["event_id"]]
    dl = letters[0]
    assert (dl.attempts, dl.offset, dl.reason, dl.detail) == (3, 41, "unknown_item", "third")
    assert dl.first_failed_at == T0 and dl.failed_at == T0 + timedelta(minutes=9)
    assert letters[1].attempts == 1


def test_on_one_partition_the_offset_decides_not_the_clock():
    first = received(0, source_offset=7, minutes=10)
    later_but_slow_clock = received(1, source_offset=40, minutes=1,
                                    event_id=first.record["event_id"], detail="later")
    (dl,), _ = dls.collect([later_but_slow_clock, first][::-1])
    assert (dl.offset, dl.detail, dl.attempts) == (40, "later", 2)
    assert dl.first_failed_at == T0 + timedelta(minutes=1)


def test_records_that_are_not_dead_letters_are_counted_not_shown():
    junk = Received(dls.TOPIC, 0, 5, None, b"\x01", None, None, error="undecodable")
    letters, unreadable = dls.collect([received(0), junk])
    assert len(letters) == 1 and unreadable == 1


def test_reason_filter_and_output_formats():
    letters, _ = dls.collect([
        received(0, detail="line one\nline two " + "x" * 200),
        received(1, source_offset=8, code="unknown_item", key=None),
    ])
    assert [d.reason for d in dls.with_reason(letters, "unknown_item")] == ["unknown_item"]
    assert dls.with_reason(letters, "nope") == []
    line = letters[0].line()
    assert line.startswith(letters[0].event_id + "  undecodable")
    assert "billing.invoices[2]@7" in line and "attempts 1" in line
    assert "line one line two" in line and "\n" not in line and line.endswith("…")
    assert len(letters[0].short_detail()) == dls.DETAIL_WIDTH
    doc = json.loads(json.dumps(letters[1].as_json()))
    assert doc["key"] is None and doc["attempts"] == 1 and doc["value_bytes"] == 2
    assert doc["failed_at"] == T0.isoformat() and doc["source_topic"] == "billing.invoices"


def _three() -> list[dls.DeadLetter]:
    letters, _ = dls.collect([
        received(0, event_id="dl-aaa111"), received(1, event_id="dl-aab222"),
        received(2, event_id="dl-bbb333", code="unknown_item"),
    ])
    return letters


def test_select_by_whole_id_or_unambiguous_beginning():
    letters = _three()
    assert [d.event_id for d in dls.select(letters, ["dl-bbb", "dl-aaa111", "dl-bbb333"])] == [
        "dl-bbb333", "dl-aaa111"]
    with pytest.raises(dls.Selection, match="beginning of 2"):
        dls.select(letters, ["dl-aa"])
    with pytest.raises(dls.Selection, match="no dead letter 'dl-zzz'"):
        dls.select(letters, ["dl-aaa111", "dl-zzz"])
    assert len(dls.select(letters, every=True)) == 3
    assert [d.event_id for d in dls.select(letters, every=True, reason="unknown_item")] == [
        "dl-bbb333"]


def test_a_replay_is_the_original_bytes_with_the_header_to_the_source_partition():
    letters, _ = dls.collect([received(0, value=b"\xc3\x01orig", key=b"ACC-9")])
    r = dls.replay_of(letters[0])
    assert (r.topic, r.partition, r.key, r.value) == ("billing.invoices", 2, b"ACC-9",
                                                      b"\xc3\x01orig")
    assert r.headers == [("dunning-replay-of", letters[0].event_id.encode())]
    (empty,), _ = dls.collect([received(0, value=b"", code="empty")])
    assert dls.replay_of(empty).value is None  # a record without a value, as it came


def test_only_catalogue_topics_are_replayable():
    letters, _ = dls.collect([received(0, topic="somewhere.else")])
    with pytest.raises(dls.NotReplayable, match="somewhere.else"):
        dls.check_replayable(letters)
    dls.check_replayable(_three())


class FakeProducer:
    def __init__(self, partitions: set[int]) -> None:
        self.partitions = partitions
        self.sent: list[tuple[Any, ...]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def partitions_for(self, topic: str) -> set[int]:
        return self.partitions

    async def send(self, topic: str, value: Any, key: Any = None, partition: Any = None,
                   headers: Any = None) -> Any:
        self.sent.append((topic, value, key, partition, headers))
        fut = asyncio.get_running_loop().create_future()
        meta = argparse.Namespace(partition=partition if partition is not None else 0,
                                  offset=100 + len(self.sent))
        fut.set_result(meta)
        return fut


def test_publish_replays_in_order_to_the_physical_topic():
    settings = Settings(topic_prefix="t1.")
    letters = _three()
    producer = FakeProducer({0, 1, 2, 3})
    out = asyncio.run(dls.publish_replays(settings, [dls.replay_of(d) for d in letters],
                                          lambda s: producer))
    assert producer.started and producer.stopped
    assert [s[0] for s in producer.sent] == ["t1.billing.invoices"] * 3
    assert [s[3] for s in producer.sent] == [2, 2, 2]
    assert [s[4][0][1] for s in producer.sent] == [b"dl-aaa111", b"dl-aab222", b"dl-bbb333"]
    assert [(p.partition, p.offset) for p in out] == [(2, 101), (2, 102), (2, 103)]
    assert dls.describe(out[0]) == (
        "replayed dl-aaa111 (undecodable, 1 attempts) to billing.invoices[2]@101")
    # a partition the topic no longer has: the producer's partitioner chooses
    fewer = FakeProducer({0, 1})
    asyncio.run(dls.publish_replays(settings, [dls.replay_of(letters[0])], lambda s: fewer))
    assert fewer.sent[0][3] is None


# ---------------------------------------------------------------- command line
def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dunning")
    dls.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dead-letters", *argv])
    return int(args.func(args) or 0)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[list[dls.Replay]]:
    """The commands on `_three()` without a broker; collects what replay would publish."""
    published: list[list[dls.Replay]] = []

    async def load(settings: Settings, idle_timeout: float = 1.0) -> Any:
        return _three(), 1

    async def publish(settings: Settings, replays: Any) -> list[dls.Published]:
        published.append(list(replays))
        return [dls.Published(r, r.partition, i) for i, r in enumerate(replays)]

    monkeypatch.setattr("config.logs.configure", lambda *a, **k: None)
    monkeypatch.setattr(dls, "_ready", lambda settings: None)
    monkeypatch.setattr(dls, "load", load)
    monkeypatch.setattr(dls, "publish_replays", publish)
    return published


def test_list_command(offline, capsys):
    assert cli("list") == 0
    out, err = capsys.readouterr()
    assert [ln.split()[0] for ln in out.splitlines()] == ["dl-aaa111", "dl-aab222", "dl-bbb333"]
    assert "3 dead letters" in err and "1 records" in err
    assert cli("list", "--reason", "unknown_item", "--json") == 0
    out, _ = capsys.readouterr()
    assert [json.loads(ln)["event_id"] for ln in out.splitlines()] == ["dl-bbb333"]


def test_replay_command(offline, capsys):
    assert cli("replay", "dl-bbb", "dl-aaa111") == 0
    assert [[r.dead_letter.event_id for r in batch] for batch in offline] == [
        ["dl-bbb333", "dl-aaa111"]]
    out, _ = capsys.readouterr()
    assert out.splitlines()[0].startswith("replayed dl-bbb333 (unknown_item, 1 attempts)")
    assert cli("replay", "--all", "--reason", "undecodable") == 0
    assert [r.dead_letter.event_id for r in offline[-1]] == ["dl-aaa111", "dl-aab222"]
    assert cli("replay", "--all", "--dry-run") == 0
    assert len(offline) == 2
    assert "would replay dl-bbb333 (unknown_item) to billing.invoices[2]" in capsys.readouterr()[0]
    assert cli("replay", "--all", "--reason", "nothing-like-it") == 0
    assert capsys.readouterr()[0] == "no dead letters to replay\n" and len(offline) == 2


@pytest.mark.parametrize(("argv", "message"), [
    ((), "needs IDs or --all"),
    (("dl-a", "--all"), "not both"),
    (("dl-aaa111", "--reason", "x"), "--reason goes with --all"),
    (("dl-aa",), "beginning of 2"),
    (("dl-zzz",), "no dead letter 'dl-zzz'"),
])
def test_replay_refuses_unclear_requests_before_publishing(offline, argv, message):
    with pytest.raises(SystemExit, match=message):
        cli("replay", *argv)
    assert offline == []
