"""One settings object, read once at start from the environment.

Nothing else in the project reads the environment: entry points call
`Settings.from_env()` and pass the object on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

EMBEDDED = "embedded"


class SettingsError(ValueError):
    """A variable is missing, malformed or does not fit with another one."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


@dataclass(frozen=True)
class Settings:
    #: `kafka://host:port[,host:port]`, or `embedded` for the local Tansu broker.
    broker: str = EMBEDDED
    embedded_port: int = 19092
    app_id: str = "dunning"
    partitions: int = 8
    replication_factor: int = 1
    wire_format: str = "single-object"
    schema_registry_url: str | None = None
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    state_dir: Path = field(default_factory=lambda: Path(".state"))
    log_format: str = "console"
    log_level: str = "INFO"
    auto_approve: bool = False
    #: Prefix for every topic name (tests use it for isolation); empty in production.
    topic_prefix: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        broker = env.get("DUNNING_BROKER", "").strip() or EMBEDDED
        if broker != EMBEDDED and not broker.startswith("kafka://"):
            raise SettingsError(
                f"DUNNING_BROKER must be kafka://host:port[,host:port] or empty, not {broker!r}"
            )
        wire = env.get("DUNNING_WIRE_FORMAT", "single-object")
        if wire not in {"single-object", "confluent"}:
            raise SettingsError(
                f"DUNNING_WIRE_FORMAT must be single-object or confluent, not {wire!r}"
            )
        log_format = env.get("DUNNING_LOG_FORMAT", "console")
        if log_format not in {"console", "json"}:
            raise SettingsError(f"DUNNING_LOG_FORMAT must be console or json, not {log_format!r}")
        return cls(
            broker=broker,
            embedded_port=_int(env, "DUNNING_EMBEDDED_PORT", 19092, 1),
            app_id=env.get("DUNNING_APP_ID", "dunning") or "dunning",
            partitions=_int(env, "DUNNING_PARTITIONS", 8, 1),
            replication_factor=_int(env, "DUNNING_REPLICATION_FACTOR", 1, 1),
            wire_format=wire,
            schema_registry_url=env.get("DUNNING_SCHEMA_REGISTRY_URL") or None,
            web_port=_int(env, "DUNNING_WEB_PORT", 6066, 0),
            web_host=env.get("DUNNING_WEB_HOST", "127.0.0.1") or "127.0.0.1",
            state_dir=Path(env.get("DUNNING_STATE_DIR", ".state") or ".state"),
            log_format=log_format,
            log_level=(env.get("DUNNING_LOG_LEVEL", "INFO") or "INFO").upper(),
            auto_approve=_bool(env, "DUNNING_AUTO_APPROVE", False),
            topic_prefix=env.get("DUNNING_TOPIC_PREFIX", ""),
        )

    @property
    def bootstrap_servers(self) -> str:
        """`host:port,host:port` for aiokafka."""
        if self.broker == EMBEDDED:
            return f"127.0.0.1:{self.embedded_port}"
        return self.broker.removeprefix("kafka://")

    @property
    def faust_broker(self) -> str:
        return "kafka://" + self.bootstrap_servers.replace(",", ";kafka://")

    def kafka_client_kwargs(self) -> dict[str, object]:
        """Keyword arguments shared by every aiokafka client (security goes here)."""
        return {"bootstrap_servers": self.bootstrap_servers}

    def faust_options(self) -> dict[str, object]:
        """Extra `faust.App` settings (security: `broker_credentials`)."""
        return {}

    def topic(self, name: str) -> str:
        """The physical name of a catalogue topic."""
        return self.topic_prefix + name
