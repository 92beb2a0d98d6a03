"""`dunning letters serve`: `PrintDunningLetter` commands in, PDF letters and e-mails out.

The service consumes `dunning.letters` in its own consumer group (`dunning-letters`, after
the topic prefix), at least once: offsets are committed after the documents of a batch are
recorded. A command id seen before renders, stores and sends nothing new. It also reads
`dunning.history` for `DunningNoticeIssued` (notice -> run id, for `--run`). Records it
cannot use are logged and skipped: the processor's dead-letter topic is for its inputs,
and these are its outputs.

E-mail letters are sent by a second task, so a slow SMTP server never stalls the consumer.
That task also publishes what happened to each letter on `dunning.letter-deliveries`
(`letters.feedback`, decision 14): at start, what an earlier run left unpublished, then
after every round; `run_until_idle` stops only once everything is published.

For tests and the demo: `await LetterService(settings).run_until_idle(idle_seconds)`, or
`await render_pending(settings, idle_seconds=...)`: both return the documents rendered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from babel.numbers import get_currency_precision

from config.settings import Settings
from letters.config import LetterSettings, group_id, letters_dir
from letters.documents import Collected, collect
from letters.feedback import Publisher
from letters.mailer import Mailer, SendFn, SleepFn, smtp_send
from letters.model import BadLetter, Letter
from letters.render import Rendered, render
from letters.store import Document, Store, iso, now_utc
from letters.texts import check_at_start, texts_for
from schemas.codec import Codec

log = structlog.get_logger("dunning.letters")

LETTERS_TOPIC = "dunning.letters"
HISTORY_TOPIC = "dunning.history"
#: How long `run_until_idle` waits for partitions before it starts counting idle time.
JOIN_TIMEOUT = 30.0


def _safe(name: str, limit: int = 48) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x")[:limit]


def document_path(letter: Letter) -> Path:
    """Where a letter's PDF goes, relative to the letters folder: `<as-of>/<account>-<id>.pdf`
    (a hash of the command id keeps two ids that clean up alike apart)."""
    digest = hashlib.sha256(letter.command_id.encode()).hexdigest()[:10]
    name = f"{_safe(letter.account_id)}-{_safe(letter.command_id, 40)}-{digest}.pdf"
    return Path(letter.as_of_date.isoformat()) / name


def _amount(value: Decimal, currency: str) -> str:
    """An amount as a string in the currency's minor unit (`"119.00"`, `"500"` for JPY)."""
    digits = get_currency_precision(currency)
    return str(value.quantize(Decimal(1).scaleb(-digits)))


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pdf")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LetterService:
    """Renders, stores and sends letters; consumes the letters topic when run."""

    def __init__(
        self, settings: Settings, cfg: LetterSettings | None = None, *,
        send: SendFn = smtp_send, sleep: SleepFn = asyncio.sleep, group: str | None = None,
    ) -> None:
        """`group`: another consumer group than `<topic prefix>dunning-letters`."""
        self.settings = settings
        self.group = group or group_id(settings)
        self.cfg = cfg if cfg is not None else LetterSettings.from_env()
        self.folder = letters_dir(settings)
        self.store = Store(self.folder)
        self.mailer = Mailer(self.cfg, self.store, send=send, sleep=sleep)
        self.texts = texts_for(self.cfg)
        self.codec = Codec.from_settings(settings)
        self.publisher = Publisher(settings, self.store, self.codec)
        self.rendered: list[str] = []  # command ids rendered by this service object
        self.skipped = 0
        self._wake = asyncio.Event()
        self._sending = False
        self._last_record = 0.0

    def close(self) -> None:
        self.store.close()

    # -- one command ---------------------------------------------------------------------
    def accept(self, letter: Letter, rendered: Rendered | None = None,
               invoices: Collected | None = None) -> tuple[Document, bool]:
        """Render and record a letter unless its command id is known: (record, whether new).
        Its invoice documents are fetched unless given (`invoices`)."""
        known = self.store.get(letter.command_id)
        if known is not None:
            return known, False
        if rendered is None:
            rendered = render(letter, self.cfg.letterhead, self.cfg.creditor, self.texts)
        rel = document_path(letter)
        if invoices is None:
            invoices = asyncio.run(collect(self.cfg.invoice_documents, letter, self.folder, rel))
        _write_atomically(self.folder / rel, rendered.pdf)
        notes = []
        if rendered.fallback:
            notes.append(f"no template for language {letter.language!r}: written in "
                         f"{rendered.language}")
        if letter.channel == "email" and not letter.email:
            notes.append("e-mail channel, but no e-mail address: collected for printing")
        emailed = letter.email is not None
        doc, created = self.store.add({
            "command_id": letter.command_id, "notice_id": letter.notice_id,
            "account_id": letter.account_id, "level": letter.level,
            "language": letter.language, "template_language": rendered.language,
            "fallback": int(rendered.fallback), "channel": letter.channel,
            "delivery": "email" if emailed else "print", "email": letter.email,
            "currency": letter.currency, "total_due": _amount(letter.total_due, letter.currency),
            "as_of_date": letter.as_of_date.isoformat(), "title": rendered.title,
            "filename": rendered.filename, "created_at": iso(now_utc()),
            "pdf_path": rel.as_posix(), "sha256": rendered.sha256, "pages": rendered.pages,
            "status": invoices.status(emailed, self.cfg.invoice_documents_required),
            "note": "; ".join(notes) or None,
            "command_json": json.dumps(letter.to_json(), ensure_ascii=False, sort_keys=True),
            **invoices.record(),
        })
        if created and invoices.missing:
            log.warning("invoice documents missing", command_id=letter.command_id,
                        account_id=letter.account_id, missing=list(invoices.missing),
                        held=doc.status == "held")
        if created:
            self.rendered.append(letter.command_id)
            log.info("letter rendered", command_id=letter.command_id,
                     account_id=letter.account_id, level=letter.level,
                     language=rendered.language, fallback=rendered.fallback,
                     delivery=doc.delivery)
        return doc, created

    async def accept_async(self, letter: Letter) -> tuple[Document, bool]:
        """`accept`, rendering in a worker thread so the consumer keeps its heartbeat."""
        if self.store.get(letter.command_id) is None:
            rendered = await asyncio.to_thread(render, letter, self.cfg.letterhead,
                                                 self.cfg.creditor, self.texts)
            invoices = await collect(self.cfg.invoice_documents, letter, self.folder,
                                     document_path(letter))
            return self.accept(letter, rendered, invoices)
        return self.accept(letter)

    async def handle(self, topic: str, value: bytes | None, where: dict[str, Any]) -> None:
        """One consumed record; anything unusable is logged and skipped."""
        history = topic.endswith(HISTORY_TOPIC)
        if value is None:
            return
        try:
            rtype, record = self.codec.decode(value)
        except Exception as exc:
            if not history:
                self.skipped += 1
                log.warning("letter record skipped: undecodable", error=str(exc), **where)
            return
        if history:
            if rtype == "DunningNoticeIssued":
                self.store.record_notice(record["notice_id"], record["run_id"],
                                         record["account_id"])
            return
        if rtype != "PrintDunningLetter":
            self.skipped += 1
            log.warning("letter record skipped: not a PrintDunningLetter", record_type=rtype,
                        **where)
            return
        try:
            letter = Letter.from_record(record)
        except BadLetter as exc:
            self.skipped += 1
            log.warning("letter record skipped: unusable", error=str(exc),
                        command_id=record.get("command_id"), **where)
            return
        try:
            _, created = await self.accept_async(letter)
        except Exception as exc:  # a letter we cannot render must not stop the others
            self.skipped += 1
            log.exception("letter record skipped: rendering failed", error=str(exc),
                          command_id=letter.command_id, account_id=letter.account_id, **where)
            return
        if not created:
            log.info("letter seen before: nothing new", command_id=letter.command_id,
                     account_id=letter.account_id)

    # -- the loops -----------------------------------------------------------------------
    async def _consume(self, stop: asyncio.Event, consumer: AIOKafkaConsumer) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=50)
            if not batch:
                continue
            for tp, records in batch.items():
                for rec in records:
                    self._last_record = loop.time()
                    await self.handle(tp.topic, rec.value, {
                        "topic": tp.topic, "partition": tp.partition, "offset": rec.offset})
            try:
                await consumer.commit()
            except Exception as exc:  # a rebalance: the records come again, harmlessly
                log.warning("offset commit failed; records will be seen again", error=str(exc))
            self._last_record = loop.time()
            self._wake.set()

    async def _send_loop(self, stop: asyncio.Event, poll: float) -> None:
        while not stop.is_set():
            self._wake.clear()
            self._sending = True
            try:
                if self.cfg.email_enabled:
                    await self.mailer.send_due()
            except Exception as exc:  # never let the sender die
                log.exception("sending letters failed", error=str(exc))
            finally:
                await self._publish()
                self._sending = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll)

    async def _publish(self) -> None:
        """Publish the delivery outcomes not published yet; a broker that fails leaves
        them for the next round (they are kept in the store)."""
        try:
            await self.publisher.publish_pending()
        except Exception as exc:
            log.warning("delivery outcomes not published yet; tried again later",
                        error=f"{type(exc).__name__}: {exc}"[:300])

    def _nothing_to_send(self) -> bool:
        if self._sending or self.store.outcomes(unpublished=True, limit=1):
            return False
        return not self.cfg.email_enabled or not self.store.due()

    async def run(self, stop: asyncio.Event | None = None, *,
                  idle_seconds: float | None = None, poll: float = 30.0) -> list[Document]:
        """Consume and send until `stop` is set or, with `idle_seconds`, until nothing has
        come in for that long and nothing is left to send. Returns the documents rendered."""
        stop = stop or asyncio.Event()
        s = self.settings
        # The texts, checked for every procedure in force: a bad text stops the start.
        await check_at_start(s, self.cfg, self.texts)
        consumer = AIOKafkaConsumer(
            s.topic(LETTERS_TOPIC), s.topic(HISTORY_TOPIC),
            group_id=self.group, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=200, **s.kafka_client_kwargs(),  # type: ignore[arg-type]
        )
        await consumer.start()
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._last_record = started
        tasks = [asyncio.create_task(self._consume(stop, consumer)),
                 asyncio.create_task(self._send_loop(stop, 0.5 if idle_seconds else poll))]
        log.info("letters service started", group=self.group, folder=str(self.folder),
                 email=self.cfg.email_enabled)
        try:
            joined_at: float | None = None
            while not stop.is_set():
                done = [t for t in tasks if t.done()]
                for t in done:
                    t.result()  # a crashed loop raises here
                if idle_seconds is not None:
                    now = loop.time()
                    if joined_at is None and (consumer.assignment()
                                              or now - started > JOIN_TIMEOUT):
                        joined_at = now
                        self._last_record = max(self._last_record, now)
                    if (joined_at is not None and now - self._last_record >= idle_seconds
                            and self._nothing_to_send()):
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.1)
        finally:
            stop.set()
            self._wake.set()
            for t in tasks:
                try:
                    await asyncio.wait_for(t, timeout=60)
                except Exception as exc:
                    log.warning("letters task ended with an error", error=str(exc))
            await consumer.stop()
        docs = [self.store.get(cid) for cid in self.rendered]
        return [d for d in docs if d is not None]

    async def run_until_idle(self, idle_seconds: float = 2.0) -> list[Document]:
        return await self.run(idle_seconds=idle_seconds)

    async def serve(self) -> None:
        """Run until SIGINT or SIGTERM."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.run(stop)


async def render_pending(
    settings: Settings, idle_seconds: float = 3.0, cfg: LetterSettings | None = None,
) -> list[Document]:
    """Render every letter command not rendered yet (and e-mail them when an SMTP server is
    configured), until the letters topic has been quiet for `idle_seconds`; returns the
    documents rendered by this call (`Document.pdf_path` is the PDF). For the demo:
    `asyncio.run(render_pending(settings, idle_seconds=1.0))`. `cfg` defaults to
    `LetterSettings.from_env()`."""
    service = LetterService(settings, cfg)
    try:
        return await service.run_until_idle(idle_seconds)
    finally:
        service.close()


def render_pending_sync(
    settings: Settings, idle_seconds: float = 3.0, cfg: LetterSettings | None = None,
) -> list[Document]:
    """`render_pending` for code without an event loop."""
    return asyncio.run(render_pending(settings, idle_seconds, cfg))


def pick_examples(docs: Sequence[Document], n: int = 3) -> list[Document]:
    """Up to `n` documents to show someone: different languages and levels first."""
    chosen: list[Document] = []

    def add(pred: Any) -> None:
        for d in docs:
            if len(chosen) < n and d not in chosen and pred(d):
                chosen.append(d)

    add(lambda d: d.template_language not in {c.template_language for c in chosen}
        and d.level not in {c.level for c in chosen})
    add(lambda d: d.template_language not in {c.template_language for c in chosen})
    add(lambda d: d.level not in {c.level for c in chosen})
    add(lambda d: True)
    return chosen
