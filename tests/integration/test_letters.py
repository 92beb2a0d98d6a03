"""The letter service on the real broker: commands published to `dunning.letters` become
PDFs, e-mail letters reach an SMTP server, a second reader of the same records renders and
sends nothing new, and records it cannot use are skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from letters.printing import pdf_text
from letters.service import LetterService
from tests.integration.harness import make_settings, provision
from tests.unit.letters.helpers import RUN, SmtpServer, letter_record, notice_issued, plain
from topics.broker import EmbeddedBroker
from topics.clients import publish, publish_raw

pytestmark = pytest.mark.broker


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


def test_letters_from_the_broker(broker: EmbeddedBroker, unique: str, tmp_path: Path,
                                 smtp: SmtpServer) -> None:
    settings = make_settings(broker, f"letters{unique}", tmp_path, partitions=2)
    provision(settings)
    letters = [
        letter_record(command_id="L-de", notice_id="N-1", account_id="ACC-1", language="de"),
        letter_record(command_id="L-en", notice_id="N-2", account_id="ACC-2", language="en",
                      channel="print"),
        letter_record(command_id="L-pt", notice_id="N-3", account_id="ACC-3", language="pt",
                      email=None),
    ]
    history = [notice_issued(r["notice_id"], RUN, r["account_id"], [r["command_id"]])
               for r in letters]

    async def go() -> tuple[list, list]:
        await publish(settings, "dunning.letters", [("PrintDunningLetter", r) for r in letters])
        await publish(settings, "dunning.history", [("DunningNoticeIssued", h) for h in history])
        await publish_raw(settings, "dunning.letters", b"\x00\x01 not a letter", b"ACC-9")
        # Redelivered by the broker (the producer sent it twice).
        await publish(settings, "dunning.letters", [("PrintDunningLetter", letters[0])])
        first = LetterService(settings, smtp.settings())
        try:
            rendered = await first.run_until_idle(1.0)
            assert first.skipped == 1
        finally:
            first.close()
        # Another consumer group reads everything again: nothing new.
        again = LetterService(settings, smtp.settings(), group=f"{unique}-again")
        try:
            rendered_again = await again.run_until_idle(1.0)
        finally:
            again.close()
        return rendered, rendered_again

    rendered, rendered_again = asyncio.run(go())
    assert sorted(d.command_id for d in rendered) == ["L-de", "L-en", "L-pt"]
    assert rendered_again == []
    by_id = {d.command_id: d for d in rendered}
    assert (by_id["L-de"].delivery, by_id["L-de"].status) == ("email", "sent")
    assert (by_id["L-en"].delivery, by_id["L-en"].status) == ("print", "print")
    assert (by_id["L-pt"].delivery, by_id["L-pt"].template_language) == ("print", "en")
    assert by_id["L-pt"].fallback
    assert [m.rcpt_tos for m in smtp.messages] == [["buchhaltung@mueller-soehne.example"]]
    assert "1.286,69 €" in plain(pdf_text(by_id["L-de"].pdf_path))

    from letters.config import letters_dir
    from letters.store import Store

    with Store(letters_dir(settings)) as store:
        assert sorted(d.command_id for d in store.documents(run=RUN)) == ["L-de", "L-en", "L-pt"]
        assert store.documents(unsent=True) == []
