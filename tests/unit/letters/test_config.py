from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings, SettingsError
from letters.config import LetterSettings, group_id, letters_dir


def test_defaults_send_nothing() -> None:
    cfg = LetterSettings.from_env({})
    assert not cfg.email_enabled
    assert (cfg.smtp_tls, cfg.smtp_port, cfg.attempts) == ("starttls", 587, 3)
    assert cfg.letterhead.name


def test_everything_from_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret!\n")
    cfg = LetterSettings.from_env({
        "DUNNING_LETTERHEAD_NAME": "Stadtwerke", "DUNNING_LETTERHEAD_ADDRESS": "Weg 5|12345 Ort",
        "DUNNING_LETTERHEAD_CONTACT": "Tel. 1", "DUNNING_LETTERHEAD_BANK": "IBAN X",
        "DUNNING_LETTERHEAD_COUNTRY": "de", "DUNNING_SMTP_HOST": "mail.example",
        "DUNNING_SMTP_TLS": "tls", "DUNNING_SMTP_USERNAME": "dunning",
        "DUNNING_SMTP_PASSWORD_FILE": str(secret), "DUNNING_SMTP_FROM": "a@b.example",
        "DUNNING_SMTP_ATTEMPTS": "5", "DUNNING_SMTP_BACKOFF": "0.5",
    })
    assert cfg.letterhead.address == ("Weg 5", "12345 Ort")
    assert cfg.letterhead.country == "DE"
    assert (cfg.smtp_host, cfg.smtp_port, cfg.smtp_tls) == ("mail.example", 465, "tls")
    assert cfg.smtp_password == "s3cret!"
    assert (cfg.attempts, cfg.backoff) == (5, 0.5)
    assert "s3cret" not in repr(cfg) and "'***'" in repr(cfg)


@pytest.mark.parametrize(
    "env",
    [
        {"DUNNING_SMTP_TLS": "ssl"},
        {"DUNNING_SMTP_PORT": "x"},
        {"DUNNING_SMTP_ATTEMPTS": "0"},
        {"DUNNING_SMTP_PASSWORD": "a", "DUNNING_SMTP_PASSWORD_FILE": "/nonexistent"},
        {"DUNNING_SMTP_PASSWORD_FILE": "/nonexistent/pw"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        LetterSettings.from_env(env)


def test_folder_and_group_follow_the_settings(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path, topic_prefix="tabc.")
    assert letters_dir(s) == tmp_path / "letters"
    assert group_id(s) == "tabc.dunning-letters"
    assert group_id(Settings()) == "dunning-letters"
