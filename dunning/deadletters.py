"""`dunning dead-letters …`: look at the inputs the worker could not use, and publish them
again once their cause is fixed.

    dunning dead-letters list [--reason R] [--json]
    dunning dead-letters replay ID… | --all [--reason R] [--dry-run]

`list` reads `dunning.dead-letters` from the beginning and shows each dead letter once: a
record that was replayed and failed again is written by the worker under the same id, so
the latest attempt is shown, with the number of attempts. A dead letter that was replayed
and then applied stays on the topic as it was (attempts unchanged): the worker writes
nothing for a success.

`replay` publishes a dead letter's original key and value bytes to its source topic (to the
partition it came from, so the record meets the rest of its account), with the record
header `dunning-replay-of: <dead-letter id>`. Inputs carry event ids, so replaying one that
was applied already changes nothing. An ID is a dead letter's id, or an unambiguous
beginning of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from config.logs import configure
from config.settings import Settings
from dunning.commands.common import settings as load_settings
from topics.broker import ensure_broker
from topics.catalogue import BY_NAME, DEAD_LETTERS, REPLAY_HEADER
from topics.clients import Received, read

TOPIC = DEAD_LETTERS
DETAIL_WIDTH = 80


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as `list` shows it: its latest attempt, and how many there were."""

    event_id: str
    reason: str
    detail: str
    source_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    failed_at: datetime
    first_failed_at: datetime
    attempts: int = 1
    #: Where the latest attempt sits on the dead-letter topic (partition, offset).
    position: tuple[int, int] = (0, 0)

    def short_detail(self, width: int = DETAIL_WIDTH) -> str:
        text = " ".join(self.detail.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    def line(self) -> str:
        return (f"{self.event_id}  {self.reason:<20}  "
                f"{self.source_topic}[{self.partition}]@{self.offset}  "
                f"attempts {self.attempts}  {self.short_detail()}")

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "reason": self.reason, "detail": self.detail,
            "source_topic": self.source_topic, "partition": self.partition,
            "offset": self.offset, "attempts": self.attempts,
            "key": None if self.key is None else self.key.decode("utf-8", "backslashreplace"),
            "value_bytes": len(self.value),
            "first_failed_at": _iso(self.first_failed_at), "failed_at": _iso(self.failed_at),
        }


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return _utc(value).isoformat()


def _later(new: DeadLetter, old: DeadLetter) -> bool:
    """Is `new` a later attempt than `old`? On one partition of the dead-letter topic (the
    catalogue has one) the offset says; across partitions, the time of failure."""
    if new.position[0] == old.position[0]:
        return new.position[1] > old.position[1]
    return (_utc(new.failed_at), new.position) > (_utc(old.failed_at), old.position)


def from_received(rec: Received) -> DeadLetter | None:
    """A dead letter from a record read off the topic; None when it is not one."""
    if rec.record_type != "DeadLetter" or rec.record is None:
        return None
    r = rec.record
    return DeadLetter(
        event_id=r["event_id"], reason=r["reason"], detail=r["detail"],
        source_topic=r["source_topic"], partition=r["partition"], offset=r["offset"],
        key=r["key"], value=r["value"], failed_at=r["failed_at"],
        first_failed_at=r["failed_at"], position=(rec.partition, rec.offset),
    )


def collect(received: Iterable[Received]) -> tuple[list[DeadLetter], int]:
    """Each dead letter once (its latest attempt, with the attempt count), in the order they
    first failed; and how many records of the topic were not readable dead letters."""
    by_id: dict[str, DeadLetter] = {}
    unreadable = 0
    for rec in received:
        dl = from_received(rec)
        if dl is None:
            unreadable += 1
            continue
        old = by_id.get(dl.event_id)
        if old is None:
            by_id[dl.event_id] = dl
            continue
        by_id[dl.event_id] = replace(
            dl if _later(dl, old) else old, attempts=old.attempts + 1,
            first_failed_at=min(old.first_failed_at, dl.first_failed_at, key=_utc),
        )
    letters = sorted(by_id.values(), key=lambda d: _utc(d.first_failed_at))  # stable
    return letters, unreadable


def with_reason(letters: Iterable[DeadLetter], reason: str | None) -> list[DeadLetter]:
    return [d for d in letters if reason is None or d.reason == reason]


class Selection(LookupError):
    """An ID that names no dead letter, or more than one."""


def select(letters: Sequence[DeadLetter], ids: Sequence[str] = (), *, every: bool = False,
           reason: str | None = None) -> list[DeadLetter]:
    """The dead letters to replay: those named by `ids` (whole ids or unambiguous
    beginnings, in the order given, each once), or with `every` all of them (of `reason`)."""
    if every:
        return with_reason(letters, reason)
    by_id = {d.event_id: d for d in letters}
    chosen: dict[str, DeadLetter] = {}
    for ident in ids:
        dl = by_id.get(ident)
        if dl is None:
            matches = [d for d in letters if d.event_id.startswith(ident)]
            if not matches:
                raise Selection(f"no dead letter {ident!r}")
            if len(matches) > 1:
                raise Selection(f"{ident!r} is the beginning of {len(matches)} dead letter ids: "
                                + ", ".join(d.event_id for d in matches[:5]))
            dl = matches[0]
        chosen.setdefault(dl.event_id, dl)
    return list(chosen.values())


@dataclass(frozen=True)
class Replay:
    """One record to publish again (`topic` is the catalogue name)."""

    dead_letter: DeadLetter
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def replay_of(dl: DeadLetter) -> Replay:
    # The worker stores a record without a value as b"" with reason "empty".
    value = None if dl.reason == "empty" and not dl.value else dl.value
    return Replay(dl, dl.source_topic, dl.partition, dl.key, value,
                  [(REPLAY_HEADER, dl.event_id.encode())])


class NotReplayable(ValueError):
    pass


def check_replayable(letters: Iterable[DeadLetter]) -> None:
    for dl in letters:
        if dl.source_topic not in BY_NAME:
            raise NotReplayable(f"dead letter {dl.event_id} came from {dl.source_topic!r}, "
                                "which is not a topic of the catalogue")


@dataclass(frozen=True)
class Published:
    replay: Replay
    partition: int
    offset: int


async def load(settings: Settings, idle_timeout: float = 1.0) -> tuple[list[DeadLetter], int]:
    return collect([rec async for rec in read(settings, TOPIC, idle_timeout=idle_timeout)])


ProducerFactory = Callable[[Settings], Any]


def _producer(settings: Settings) -> Any:
    return AIOKafkaProducer(**settings.producer_kwargs())


async def publish_replays(settings: Settings, replays: Sequence[Replay],
                          producer_factory: ProducerFactory = _producer) -> list[Published]:
    """Publish in the order given; every record is on the broker when this returns. A record
    goes to the partition it came from (when the topic still has it): its key then meets the
    rest of its account whatever partitioner the original producer used."""
    producer = producer_factory(settings)
    await producer.start()
    try:
        futures: list[Awaitable[Any]] = []
        for r in replays:
            name = settings.topic(r.topic)
            partitions = await producer.partitions_for(name)
            partition = r.partition if r.partition in partitions else None
            futures.append(await producer.send(name, r.value, key=r.key, partition=partition,
                                               headers=r.headers))
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Published(r, m.partition, m.offset) for r, m in zip(replays, metas, strict=True)]


# ---------------------------------------------------------------- command line
def _settings() -> Settings:
    settings = load_settings()
    configure(settings.log_format, settings.log_level)
    return settings


def _ready(settings: Settings) -> None:
    ensure_broker(settings)


def _warn_unreadable(unreadable: int) -> None:
    if unreadable:
        print(f"dunning: {unreadable} records of {TOPIC} are not readable dead letters "
              "(see `dunning consume dunning.dead-letters --from-beginning`)", file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> int:
    settings = _settings()
    _ready(settings)
    letters, unreadable = asyncio.run(load(settings))
    _warn_unreadable(unreadable)
    shown = with_reason(letters, args.reason)
    for dl in shown:
        print(json.dumps(dl.as_json(), ensure_ascii=False) if args.json else dl.line())
    if not args.json:
        print(f"{len(shown)} dead letters", file=sys.stderr)
    return 0


def check_replay_args(args: argparse.Namespace) -> None:
    if args.all and args.ids:
        raise SystemExit("dunning: dead-letters replay takes IDs or --all, not both")
    if not args.all and not args.ids:
        raise SystemExit("dunning: dead-letters replay needs IDs or --all")
    if args.reason is not None and not args.all:
        raise SystemExit("dunning: --reason goes with --all")


def describe(p: Published) -> str:
    dl = p.replay.dead_letter
    return (f"replayed {dl.event_id} ({dl.reason}, {dl.attempts} attempts) to "
            f"{p.replay.topic}[{p.partition}]@{p.offset}")


def cmd_replay(args: argparse.Namespace) -> int:
    check_replay_args(args)
    settings = _settings()
    _ready(settings)
    letters, unreadable = asyncio.run(load(settings))
    _warn_unreadable(unreadable)
    try:
        chosen = select(letters, args.ids, every=args.all, reason=args.reason)
        check_replayable(chosen)
    except (Selection, NotReplayable) as exc:
        raise SystemExit(f"dunning: {exc.args[0]}") from exc
    if not chosen:
        print("no dead letters to replay")
        return 0
    replays = [replay_of(dl) for dl in chosen]
    if args.dry_run:
        for r in replays:
            print(f"would replay {r.dead_letter.event_id} ({r.dead_letter.reason}) to "
                  f"{r.topic}[{r.partition}]")
        return 0
    for p in asyncio.run(publish_replays(settings, replays)):
        print(describe(p))
    print(f"replayed {len(replays)} dead letters; one that fails again shows up in "
          "`dunning dead-letters list` with one attempt more", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add `dead-letters list|replay` to the `dunning` command line."""
    p = subparsers.add_parser("dead-letters", help="list and replay dead letters",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)

    ls = sub.add_parser("list", help="each dead letter once, with its attempts")
    ls.add_argument("--reason", default=None, help="only dead letters of this reason")
    ls.add_argument("--json", action="store_true", help="JSON lines")
    ls.set_defaults(func=cmd_list)

    rp = sub.add_parser("replay", help="publish dead letters again to their source topic")
    rp.add_argument("ids", nargs="*", metavar="ID", help="dead-letter ids or their beginnings")
    rp.add_argument("--all", action="store_true", help="every dead letter (of --reason)")
    rp.add_argument("--reason", default=None, help="with --all: only this reason")
    rp.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    rp.set_defaults(func=cmd_replay)
