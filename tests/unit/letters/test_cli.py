"""`dunning letters list|show|send|resend|print` on a store filled without a broker."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader

from config.settings import Settings
from letters.cli import register
from letters.config import LetterSettings
from letters.model import Letter
from letters.service import LetterService
from tests.unit.letters.helpers import LETTERHEAD, RUN, SmtpServer, letter_record, plain

OTHER_RUN = "PR-2025-04-30/1"


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dunning")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["letters", *argv])
    return int(args.func(args) or 0)


@pytest.fixture(scope="module")
def rendered_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five letters of two runs: three e-mail letters, one print, one without an address."""
    state = tmp_path_factory.mktemp("letters-cli")
    service = LetterService(Settings(state_dir=state), LetterSettings(letterhead=LETTERHEAD))
    letters = [
        ("mail-a", "N1", "ACC-1", "email", "de", "a@x.example"),
        ("mail-b", "N2", "ACC-2", "email", "en", "b@x.example"),
        ("mail-c", "N3", "ACC-3", "email", "fr", "c@x.example"),
        ("paper-d", "N4", "ACC-4", "print", "de", None),
        ("noaddr-e", "N5", "ACC-5", "email", "de", None),
    ]
    for cid, notice, account, channel, lang, addr in letters:
        service.accept(Letter.from_record(letter_record(
            command_id=cid, notice_id=notice, account_id=account, channel=channel,
            language=lang, email=addr)))
        service.store.record_notice(notice, OTHER_RUN if cid == "mail-c" else RUN, account)
    service.close()
    return state


@pytest.fixture
def filled(rendered_once: Path, tmp_path: Path, smtp: SmtpServer,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[LetterService]:
    """A fresh copy of the five letters, and the environment pointing at it and at `smtp`."""
    state = tmp_path / "state"
    shutil.copytree(rendered_once, state)
    # Logging set-up would bind a handler to this test's captured stderr: leave it alone.
    monkeypatch.setattr("config.logs.configure", lambda *a, **k: None)
    monkeypatch.setenv("DUNNING_STATE_DIR", str(state))
    for name, value in smtp.env().items():
        monkeypatch.setenv(name, value)
    service = LetterService(Settings(state_dir=state), LetterSettings(letterhead=LETTERHEAD))
    yield service
    service.close()


def test_list_and_show(filled: LetterService, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["ID", "ACCOUNT", "RUN"]
    assert len(out) == 6
    assert cli("list", "--run", "PR-2025-04-30", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["command_id"] for r in rows] == ["mail-c"]
    assert cli("list", "--account", "ACC-4") == 0
    assert "paper-d" in capsys.readouterr().out

    assert cli("show", "mail-b") == 0
    out = capsys.readouterr().out
    first, rest = out.split("\n", 1)
    assert Path(first).is_file() and first == str(filled.store.get("mail-b").pdf_path)
    assert "status:     pending" in rest
    assert "Second reminder" in rest and "€1,286.69" in plain(rest)
    with pytest.raises(SystemExit, match="no letter"):
        cli("show", "nope")


def test_send_unsent_then_resend(filled: LetterService, smtp: SmtpServer,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    # One letter went out before.
    assert cli("resend", "mail-a") == 0
    assert [m.rcpt_tos for m in smtp.messages] == [["a@x.example"]]
    capsys.readouterr()

    assert cli("list", "--unsent") == 0
    listed = capsys.readouterr().out
    assert "mail-b" in listed and "mail-c" in listed and "mail-a" not in listed
    assert "paper-d" not in listed and "noaddr-e" not in listed

    assert cli("send", "--unsent") == 0
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
        "a@x.example", "b@x.example", "c@x.example"]
    assert cli("send", "--unsent") == 0  # nothing left: nothing sent
    assert len(smtp.messages) == 3
    capsys.readouterr()
    assert cli("list", "--unsent") == 0
    assert capsys.readouterr().out == ""

    assert cli("resend", "mail-b", "mail-c") == 0
    assert len(smtp.messages) == 5
    assert filled.store.get("mail-b").attempts == 2
    # Paper stays paper.
    assert cli("resend", "paper-d", "noaddr-e") == 1
    assert len(smtp.messages) == 5
    assert "never e-mailed" in capsys.readouterr().out


def test_print_a_run(filled: LetterService, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("print", "--run", RUN) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == tmp_path / "state" / "letters" / "print" / "PR-2025-03-31_1.pdf"
    reader = PdfReader(str(path))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert len(reader.pages) == 2 and "ACC-4" in text and "ACC-5" in text
    assert "ACC-1" not in text  # e-mailed, not printed
    out = tmp_path / "shop.pdf"
    assert cli("print", "--run", RUN, "--output", str(out), "--duplex") == 0
    assert len(PdfReader(str(out)).pages) == 4
    with pytest.raises(SystemExit, match="no print letters"):
        cli("print", "--run", "nope")


def test_send_needs_a_server(filled: LetterService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUNNING_SMTP_HOST")
    with pytest.raises(SystemExit, match="DUNNING_SMTP_HOST"):
        cli("send", "--unsent")
