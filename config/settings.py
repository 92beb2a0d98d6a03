"""One settings object, read once at start from the environment.

Nothing else in the project reads the environment: entry points call
`Settings.from_env()` and pass the object on.

Every secret can be given directly (`DUNNING_SASL_PASSWORD`) or as the path of a file
that holds it (`DUNNING_SASL_PASSWORD_FILE`, for Docker and Kubernetes secrets; one
trailing newline is dropped). Secrets are kept in `Secret`, whose `repr` and `str` are
`Secret('***')`, so neither the settings object nor an error message can show them.

A wrong or incomplete combination fails in `from_env` (and in the constructor) with one
`SettingsError` that names the variable to fix.
"""

from __future__ import annotations

import base64
import hmac
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EMBEDDED = "embedded"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A variable is missing, malformed or does not fit with another one."""


class Secret:
    """A secret string that never shows itself: `repr`, `str` and `format` give `***`.

    `reveal()` is the one way to the value; call it only where a client library needs it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


# ------------------------------------------------------------------ reading variables
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


def _str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    return raw or None


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = _str(env, name)
    return Path(raw) if raw else None


def _secret(env: Mapping[str, str], name: str, file_name: str) -> Secret | None:
    """A secret from `name`, or from the file named by `file_name`; never both."""
    direct = env.get(name) or None
    path = _str(env, file_name)
    if direct is not None and path is not None:
        raise SettingsError(f"set {name} or {file_name}, not both")
    if path is None:
        return Secret(direct) if direct is not None else None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SettingsError(f"{file_name}: no file at {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SettingsError(f"{file_name}: cannot read {path} ({reason})") from exc
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise SettingsError(f"{file_name}: {path} is empty")
    return Secret(text)


def _check_broker(broker: str) -> None:
    if broker == EMBEDDED:
        return
    if not broker.startswith("kafka://"):
        shown = "a value with credentials" if "@" in broker else repr(broker)
        raise SettingsError(
            f"DUNNING_BROKER must be kafka://host:port[,host:port] or empty, not {shown}"
        )
    if "@" in broker:
        raise SettingsError(
            "DUNNING_BROKER must not hold credentials; "
            "use DUNNING_SASL_USERNAME and DUNNING_SASL_PASSWORD(_FILE)"
        )
    for address in broker.removeprefix("kafka://").split(","):
        host, sep, port = address.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(
                f"DUNNING_BROKER: {address.strip()!r} is not host:port "
                "(write kafka://host:port[,host:port])"
            )


def _check_registry_url(url: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise SettingsError(
            "DUNNING_SCHEMA_REGISTRY_URL must not hold credentials; use "
            "DUNNING_SCHEMA_REGISTRY_USERNAME and DUNNING_SCHEMA_REGISTRY_PASSWORD(_FILE)"
        )
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise SettingsError(
            f"DUNNING_SCHEMA_REGISTRY_URL must be http(s)://host[:port][/path], not {url!r}"
        )


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
    #: Accounts a run slice or an activity run handles between two waits for the broker.
    run_batch: int = 2000
    #: Days an account keeps what is settled and done (paid or cancelled items, notices no
    #: longer in effect, ids of applied events) after the newest day it has seen; older
    #: facts are compacted away (domain/retention.py; the history topic keeps everything).
    retention_days: int = 730
    #: RocksDB memory of each table partition (Faust opens one database per partition of
    #: each table: 4 tables x the account partitions). Faust's defaults (a 2 GiB block
    #: cache and 3 x 64 MiB write buffers per database) let a worker's memory grow with
    #: the state it reads; these caps keep it bounded. Reads past the cache come from the
    #: operating system's page cache.
    rocksdb_block_cache_mb: int = 4
    rocksdb_write_buffer_mb: int = 4
    # -- security of the Kafka connection --------------------------------------------------
    #: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    security_protocol: str = "PLAINTEXT"
    #: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols only).
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    #: PEM CA bundle that signed the brokers' certificates (default: the system CAs).
    ssl_cafile: Path | None = None
    #: PEM client certificate and key, for brokers that ask for one (mutual TLS).
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: Secret | None = None
    # -- schema registry (wire format `confluent`) -----------------------------------------
    schema_registry_username: str | None = None
    schema_registry_password: Secret | None = None
    #: `strimzi.io/cluster` label of `dunning topics export --format strimzi`.
    strimzi_cluster: str = "dunning"
    #: For tests: a file whose content (epoch seconds) is the run schedule's clock
    #: (`processors.scheduler`); unset, the system clock.
    clock_file: Path | None = None
    # -- the review page (`dunning review serve`) ------------------------------------------
    #: the users file of its login (`dunning review add-user`)
    review_users: Path | None = None
    #: trust this identity header of a proxy in front of the page instead
    review_user_header: str | None = None
    #: signs its session cookies and forms; unset: a new one at every start
    review_secret: Secret | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        broker = env.get("DUNNING_BROKER", "").strip() or EMBEDDED
        _check_broker(broker)
        wire = env.get("DUNNING_WIRE_FORMAT", "single-object")
        if wire not in {"single-object", "confluent"}:
            raise SettingsError(
                f"DUNNING_WIRE_FORMAT must be single-object or confluent, not {wire!r}"
            )
        log_format = env.get("DUNNING_LOG_FORMAT", "console")
        if log_format not in {"console", "json"}:
            raise SettingsError(f"DUNNING_LOG_FORMAT must be console or json, not {log_format!r}")
        log_level = (env.get("DUNNING_LOG_LEVEL", "INFO") or "INFO").strip().upper()
        if log_level not in LOG_LEVELS:
            raise SettingsError(
                f"DUNNING_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}"
            )
        protocol = (_str(env, "DUNNING_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        mechanism = _str(env, "DUNNING_SASL_MECHANISM")
        registry_url = _str(env, "DUNNING_SCHEMA_REGISTRY_URL")
        _check_registry_url(registry_url)
        return cls(
            broker=broker,
            embedded_port=_int(env, "DUNNING_EMBEDDED_PORT", 19092, 1),
            app_id=env.get("DUNNING_APP_ID", "dunning") or "dunning",
            partitions=_int(env, "DUNNING_PARTITIONS", 8, 1),
            replication_factor=_int(env, "DUNNING_REPLICATION_FACTOR", 1, 1),
            wire_format=wire,
            schema_registry_url=registry_url,
            web_port=_int(env, "DUNNING_WEB_PORT", 6066, 0),
            web_host=env.get("DUNNING_WEB_HOST", "127.0.0.1") or "127.0.0.1",
            state_dir=Path(env.get("DUNNING_STATE_DIR", ".state") or ".state"),
            log_format=log_format,
            log_level=log_level,
            auto_approve=_bool(env, "DUNNING_AUTO_APPROVE", False),
            topic_prefix=env.get("DUNNING_TOPIC_PREFIX", ""),
            run_batch=_int(env, "DUNNING_RUN_BATCH", 2000, 1),
            retention_days=_int(env, "DUNNING_RETENTION_DAYS", 730, 1),
            rocksdb_block_cache_mb=_int(env, "DUNNING_ROCKSDB_BLOCK_CACHE_MB", 4, 1),
            rocksdb_write_buffer_mb=_int(env, "DUNNING_ROCKSDB_WRITE_BUFFER_MB", 4, 1),
            security_protocol=protocol,
            sasl_mechanism=mechanism.upper() if mechanism else None,
            sasl_username=_str(env, "DUNNING_SASL_USERNAME"),
            sasl_password=_secret(env, "DUNNING_SASL_PASSWORD", "DUNNING_SASL_PASSWORD_FILE"),
            ssl_cafile=_path(env, "DUNNING_SSL_CAFILE"),
            ssl_certfile=_path(env, "DUNNING_SSL_CERTFILE"),
            ssl_keyfile=_path(env, "DUNNING_SSL_KEYFILE"),
            ssl_key_password=_secret(
                env, "DUNNING_SSL_KEY_PASSWORD", "DUNNING_SSL_KEY_PASSWORD_FILE"
            ),
            schema_registry_username=_str(env, "DUNNING_SCHEMA_REGISTRY_USERNAME"),
            schema_registry_password=_secret(
                env, "DUNNING_SCHEMA_REGISTRY_PASSWORD", "DUNNING_SCHEMA_REGISTRY_PASSWORD_FILE"
            ),
            strimzi_cluster=_str(env, "DUNNING_STRIMZI_CLUSTER") or "dunning",
            clock_file=_path(env, "DUNNING_CLOCK_FILE"),
            review_users=_path(env, "DUNNING_REVIEW_USERS"),
            review_user_header=_str(env, "DUNNING_REVIEW_USER_HEADER"),
            review_secret=_secret(env, "DUNNING_REVIEW_SECRET", "DUNNING_REVIEW_SECRET_FILE"),
        )

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        self._check_security()
        self._check_registry()

    def _check_security(self) -> None:
        protocol = self.security_protocol
        if protocol not in SECURITY_PROTOCOLS:
            raise SettingsError(
                f"DUNNING_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"not {protocol!r}"
            )
        if self.broker == EMBEDDED and protocol != "PLAINTEXT":
            raise SettingsError(
                f"DUNNING_SECURITY_PROTOCOL is {protocol}, but the embedded broker speaks "
                "PLAINTEXT only: set DUNNING_BROKER=kafka://host:port for a secured cluster"
            )
        sasl: dict[str, object] = {
            "DUNNING_SASL_MECHANISM": self.sasl_mechanism,
            "DUNNING_SASL_USERNAME": self.sasl_username,
            "DUNNING_SASL_PASSWORD": self.sasl_password,
        }
        if protocol.startswith("SASL_"):
            if self.sasl_mechanism is None:
                raise SettingsError(
                    f"DUNNING_SASL_MECHANISM is required with DUNNING_SECURITY_PROTOCOL="
                    f"{protocol} (one of {', '.join(SASL_MECHANISMS)})"
                )
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise SettingsError(
                    f"DUNNING_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                    f"not {self.sasl_mechanism!r}"
                )
            if not self.sasl_username:
                raise SettingsError(
                    f"DUNNING_SASL_USERNAME is required with DUNNING_SECURITY_PROTOCOL={protocol}"
                )
            if self.sasl_password is None:
                raise SettingsError(
                    "DUNNING_SASL_PASSWORD (or DUNNING_SASL_PASSWORD_FILE) is required with "
                    f"DUNNING_SECURITY_PROTOCOL={protocol}"
                )
        else:
            for name, value in sasl.items():
                if value is not None:
                    where = (" (the embedded broker speaks PLAINTEXT only)"
                             if self.broker == EMBEDDED else "")
                    raise SettingsError(
                        f"{name} is set, but DUNNING_SECURITY_PROTOCOL is {protocol}: SASL "
                        f"needs SASL_PLAINTEXT or SASL_SSL{where}"
                    )
        tls: dict[str, object] = {
            "DUNNING_SSL_CAFILE": self.ssl_cafile,
            "DUNNING_SSL_CERTFILE": self.ssl_certfile,
            "DUNNING_SSL_KEYFILE": self.ssl_keyfile,
            "DUNNING_SSL_KEY_PASSWORD": self.ssl_key_password,
        }
        if not self.uses_ssl:
            for name, value in tls.items():
                if value is not None:
                    raise SettingsError(
                        f"{name} is set, but DUNNING_SECURITY_PROTOCOL is {protocol}: TLS "
                        "settings need SSL or SASL_SSL"
                    )
            return
        if self.ssl_certfile is not None and self.ssl_keyfile is None:
            raise SettingsError("DUNNING_SSL_KEYFILE is required with DUNNING_SSL_CERTFILE")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise SettingsError("DUNNING_SSL_CERTFILE is required with DUNNING_SSL_KEYFILE")
        if self.ssl_key_password is not None and self.ssl_keyfile is None:
            raise SettingsError(
                "DUNNING_SSL_KEY_PASSWORD is set, but there is no DUNNING_SSL_KEYFILE to open"
            )
        for name, path in (("DUNNING_SSL_CAFILE", self.ssl_cafile),
                           ("DUNNING_SSL_CERTFILE", self.ssl_certfile),
                           ("DUNNING_SSL_KEYFILE", self.ssl_keyfile)):
            if path is not None and not path.is_file():
                raise SettingsError(f"{name}: no file at {path}")
        self._try_tls_files()

    def _try_tls_files(self) -> None:
        """Load the CA and the client key pair once now, so a bad file fails at start."""
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH,
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
            )
        except (ssl.SSLError, ValueError) as exc:
            raise SettingsError(
                f"DUNNING_SSL_CAFILE: {self.ssl_cafile} holds no usable PEM CA certificate "
                f"({_ssl_reason(exc)})"
            ) from None
        if self.ssl_certfile is None:
            return
        try:
            context.load_cert_chain(
                str(self.ssl_certfile), str(self.ssl_keyfile), self._key_password
            )
        except (ssl.SSLError, ValueError) as exc:
            reason = _ssl_reason(exc)
            if "MISMATCH" in reason.upper():
                msg = (f"DUNNING_SSL_KEYFILE: {self.ssl_keyfile} is not the key of the "
                       f"certificate in DUNNING_SSL_CERTFILE ({self.ssl_certfile})")
            elif _looks_encrypted(self.ssl_keyfile) and self.ssl_key_password is None:
                msg = (f"DUNNING_SSL_KEY_PASSWORD (or DUNNING_SSL_KEY_PASSWORD_FILE) is "
                       f"required: {self.ssl_keyfile} is encrypted")
            elif _looks_encrypted(self.ssl_keyfile):
                msg = (f"DUNNING_SSL_KEY_PASSWORD does not open {self.ssl_keyfile} "
                       f"({reason})")
            else:
                msg = (f"DUNNING_SSL_CERTFILE/DUNNING_SSL_KEYFILE: cannot load "
                       f"{self.ssl_certfile} with {self.ssl_keyfile} ({reason})")
            raise SettingsError(msg) from None

    def _check_registry(self) -> None:
        user, password = self.schema_registry_username, self.schema_registry_password
        if user is None and password is None:
            return
        if user is None:
            raise SettingsError(
                "DUNNING_SCHEMA_REGISTRY_USERNAME is required with "
                "DUNNING_SCHEMA_REGISTRY_PASSWORD"
            )
        if password is None:
            raise SettingsError(
                "DUNNING_SCHEMA_REGISTRY_PASSWORD (or DUNNING_SCHEMA_REGISTRY_PASSWORD_FILE) "
                "is required with DUNNING_SCHEMA_REGISTRY_USERNAME"
            )
        if self.schema_registry_url is None:
            raise SettingsError(
                "DUNNING_SCHEMA_REGISTRY_URL is required with DUNNING_SCHEMA_REGISTRY_USERNAME"
            )
        if not self.schema_registry_url.startswith("https://"):
            raise SettingsError(
                "DUNNING_SCHEMA_REGISTRY_URL must be https:// when "
                "DUNNING_SCHEMA_REGISTRY_USERNAME is set (the password would travel in clear)"
            )

    # ------------------------------------------------------------------ derived values
    @property
    def bootstrap_servers(self) -> str:
        """`host:port,host:port` for aiokafka."""
        if self.broker == EMBEDDED:
            return f"127.0.0.1:{self.embedded_port}"
        return self.broker.removeprefix("kafka://")

    @property
    def faust_broker(self) -> str:
        return "kafka://" + self.bootstrap_servers.replace(",", ";kafka://")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def _key_password(self) -> str:
        # Always a callable: with None, OpenSSL would prompt on the terminal for an
        # encrypted key; an empty answer makes it fail instead.
        return self.ssl_key_password.reveal() if self.ssl_key_password else ""

    def ssl_context(self) -> ssl.SSLContext | None:
        """A fresh client TLS context (None without TLS), from the CA and client key pair."""
        if not self.uses_ssl:
            return None
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
            certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
            keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
            password=self._key_password,
        )

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments shared by every aiokafka client (security goes here).

        The result holds the SASL password in clear, as aiokafka needs it: pass it to a
        client, never to a logger.
        """
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.uses_ssl:
            kwargs["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            assert self.sasl_password is not None  # checked in __post_init__
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.reveal()
        return kwargs

    def producer_kwargs(self) -> dict[str, Any]:
        """`kafka_client_kwargs()` for an `AIOKafkaProducer`: on Apache Kafka, acks from
        every in-sync replica and the idempotent producer (no duplicates from retries).
        The embedded broker gets the client defaults."""
        kwargs = self.kafka_client_kwargs()
        if self.broker != EMBEDDED:
            kwargs.update(acks="all", enable_idempotence=True)
        return kwargs

    def rocksdb_options(self) -> dict[str, int]:
        """Faust's `RocksDBOptions` of every table partition (`rocksdb_*_mb`)."""
        mib = 1024 * 1024
        return {"block_cache_size": self.rocksdb_block_cache_mb * mib,
                "block_cache_compressed_size": self.rocksdb_block_cache_mb * mib,
                "write_buffer_size": self.rocksdb_write_buffer_mb * mib,
                "max_write_buffer_number": 2}

    def faust_options(self) -> dict[str, object]:
        """Extra `faust.App` settings (security: `broker_credentials`)."""
        if not self.uses_ssl and not self.uses_sasl:
            return {}
        import faust

        context = self.ssl_context()
        credentials: object
        if self.uses_sasl:
            assert self.sasl_password is not None  # checked in __post_init__
            credentials = faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password.reveal(),
                mechanism=self.sasl_mechanism,
                ssl_context=context,
            )
        else:
            credentials = faust.SSLCredentials(context)
        return {"broker_credentials": credentials}

    def schema_registry_headers(self) -> dict[str, str]:
        """HTTP headers for the schema registry: basic authentication when configured."""
        if self.schema_registry_username is None or self.schema_registry_password is None:
            return {}
        raw = f"{self.schema_registry_username}:{self.schema_registry_password.reveal()}"
        return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode("ascii")}

    @property
    def ingest_group(self) -> str:
        """The consumer group that holds the ingest reader's positions in the input topics
        (`processors.reader`; never joined: the members are in the group `app_id`)."""
        return f"{self.app_id}-ingest"

    def topic(self, name: str) -> str:
        """The physical name of a catalogue topic."""
        return self.topic_prefix + name


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else type(exc).__name__


def _looks_encrypted(path: Path | None) -> bool:
    if path is None:
        return False
    try:
        head = path.read_bytes()[:4096]
    except OSError:
        return False
    return b"ENCRYPTED" in head
