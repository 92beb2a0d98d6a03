"""Documents from commands, without a broker: one per command id, bad records skipped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from config.settings import Settings
from letters.model import Letter
from letters.printing import pdf_text
from letters.render import render
from letters.service import LetterService, pick_examples
from schemas.codec import Codec
from tests.unit.letters.helpers import LETTERHEAD, RUN, letter_record, notice_issued, plain

WHERE = {"topic": "dunning.letters", "partition": 0, "offset": 0}


@pytest.fixture
def service(tmp_path: Path) -> LetterService:
    from letters.config import LetterSettings

    svc = LetterService(Settings(state_dir=tmp_path), LetterSettings(letterhead=LETTERHEAD))
    yield svc
    svc.close()


def feed(service: LetterService, *values: bytes | None, topic: str = "dunning.letters") -> None:
    async def go() -> None:
        for v in values:
            await service.handle(topic, v, WHERE)
    asyncio.run(go())


def test_a_command_becomes_one_document(service: LetterService) -> None:
    codec = Codec()
    data = codec.encode("PrintDunningLetter", letter_record())
    feed(service, data)
    docs = service.store.documents()
    assert len(docs) == 1
    doc = docs[0]
    assert (doc.command_id, doc.account_id, doc.language, doc.template_language) == (
        "cmd-letter-0001", "ACC-100042", "de", "de")
    assert (doc.channel, doc.delivery, doc.status, doc.attempts) == ("email", "email",
                                                                     "pending", 0)
    assert doc.pdf_path.is_file() and doc.pdf_path.is_relative_to(service.folder)
    assert doc.title == "2. Mahnung" and doc.total_due == "1286.69" and doc.pages == 1
    # The stored bytes are what the command renders, again.
    assert doc.pdf_path.read_bytes() == render(Letter.from_record(letter_record()),
                                               LETTERHEAD).pdf
    assert "1.286,69 €" in plain(pdf_text(doc.pdf_path))

    # Redelivered: nothing new rendered, the file untouched.
    mtime = doc.pdf_path.stat().st_mtime_ns
    feed(service, data, data)
    assert service.store.documents() == [doc]
    assert doc.pdf_path.stat().st_mtime_ns == mtime
    assert service.rendered == ["cmd-letter-0001"]


def test_fallback_and_missing_address_are_noted(service: LetterService) -> None:
    codec = Codec()
    feed(service,
         codec.encode("PrintDunningLetter", letter_record(command_id="c-pt", language="pt")),
         codec.encode("PrintDunningLetter", letter_record(command_id="c-noaddr", email=None)),
         codec.encode("PrintDunningLetter", letter_record(command_id="c-print",
                                                          channel="print")))
    pt = service.store.get("c-pt")
    assert pt is not None and pt.fallback and pt.template_language == "en"
    assert pt.language == "pt" and "no template for language 'pt'" in (pt.note or "")
    noaddr = service.store.get("c-noaddr")
    assert noaddr is not None
    assert (noaddr.channel, noaddr.delivery, noaddr.status) == ("email", "print", "print")
    assert "no e-mail address" in (noaddr.note or "")
    printed = service.store.get("c-print")
    assert printed is not None and (printed.delivery, printed.status) == ("print", "print")
    assert printed.email is None  # a print letter has no address to be e-mailed to
    assert service.store.due() == [pt]


def test_bad_records_are_skipped(service: LetterService) -> None:
    codec = Codec()
    bad_letter = letter_record(command_id="c-bad", channel="fax")
    feed(service,
         b"not avro at all",
         None,
         codec.encode("SetDunningLock", {"command_id": "l1", "notice_id": "n",
                                         "account_id": "A", "reason": "r"}),
         codec.encode("PrintDunningLetter", bad_letter),
         codec.encode("PrintDunningLetter", letter_record(command_id="c-good")))
    assert [d.command_id for d in service.store.documents()] == ["c-good"]
    assert service.skipped == 3


def test_run_ids_come_from_the_history(service: LetterService) -> None:
    codec = Codec()
    feed(service,
         codec.encode("PrintDunningLetter", letter_record(command_id="c1")),
         codec.encode("PrintDunningLetter", letter_record(
             command_id="c2", notice_id="other-notice", account_id="ACC-2")))
    assert service.store.documents(run=RUN) == []
    feed(service,
         codec.encode("DunningNoticeIssued", notice_issued(
             letter_record()["notice_id"], RUN, "ACC-100042", ["c1"])),
         b"garbage on the history is not ours to judge",
         topic="tx.dunning.history")
    assert [d.command_id for d in service.store.documents(run=RUN)] == ["c1"]
    assert [d.command_id for d in service.store.documents(run="PR-2025-03-31")] == ["c1"]
    assert service.store.documents(run="PR-2025") == []
    assert service.store.get("c1").run_id == RUN
    assert [d.command_id for d in service.store.documents(account="ACC-2")] == ["c2"]
    assert service.skipped == 0


def test_find_by_id_prefix(service: LetterService) -> None:
    for cid in ("abc-1", "abc-2", "xyz-1"):
        service.accept(Letter.from_record(letter_record(command_id=cid)))
    assert service.store.find("xyz").command_id == "xyz-1"
    assert service.store.find("abc-2").command_id == "abc-2"
    with pytest.raises(LookupError):
        service.store.find("abc")
    with pytest.raises(KeyError):
        service.store.find("nope")


def test_pick_examples_prefers_different_languages(service: LetterService) -> None:
    for cid, lang, level in (("a", "de", 1), ("b", "de", 2), ("c", "en", 1), ("d", "fr", 3)):
        service.accept(Letter.from_record(letter_record(command_id=cid, language=lang,
                                                        level=level)))
    picked = pick_examples(service.store.documents(), 3)
    assert sorted(d.template_language for d in picked) == ["de", "en", "fr"]
