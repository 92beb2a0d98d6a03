"""What every command of the `dunning` console script shares."""

from __future__ import annotations

from config.settings import Settings, SettingsError


def settings() -> Settings:
    """The settings from the environment; a settings error ends the command in one line."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"dunning: {exc}") from exc
