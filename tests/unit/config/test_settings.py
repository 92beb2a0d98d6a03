"""Settings: every security combination builds the right client configuration, every
wrong one fails with one clear error naming the variable, and no secret ever shows."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from config.settings import SASL_MECHANISMS, Secret, Settings, SettingsError

SASL_PASSWORD = "sasl-pw-7f3Q!x9"
KEY_PASSWORD = "key-pw-K2m#v8"
REGISTRY_PASSWORD = "registry-pw-Zq4$w1"
SECRETS = (SASL_PASSWORD, KEY_PASSWORD, REGISTRY_PASSWORD)
KAFKA = "kafka://kafka-1:9092,kafka-2:9092"


# ------------------------------------------------------------------ a small PKI, made here
@dataclass
class Pki:
    ca: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path
    other_key: Path
    server_cert: Path
    server_key: Path
    not_pem: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
          dns: str | None = None, usage: x509.ObjectIdentifier | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False)
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                  else serialization.NoEncryption())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8, encryption))
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("dunning test CA", ca_key, "dunning test CA", ca_key, ca=True)
    client_key = _key()
    client = _cert("dunning-worker", client_key, "dunning test CA", ca_key,
                   usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    server_key = _key()
    server = _cert("localhost", server_key, "dunning test CA", ca_key, dns="localhost",
                   usage=ExtendedKeyUsageOID.SERVER_AUTH)
    (d / "junk.pem").write_text("this is not a certificate\n")
    return Pki(
        ca=_write_cert(d / "ca.crt", ca),
        client_cert=_write_cert(d / "client.crt", client),
        client_key=_write_key(d / "client.key", client_key),
        client_key_encrypted=_write_key(d / "client-enc.key", client_key, KEY_PASSWORD),
        other_key=_write_key(d / "other.key", _key()),
        server_cert=_write_cert(d / "server.crt", server),
        server_key=_write_key(d / "server.key", server_key),
        not_pem=d / "junk.pem",
    )


def _handshake(client_ctx: ssl.SSLContext, pki: Pki, *, require_client_cert: bool) -> str:
    """A real TLS handshake over a socket pair: our client context against a server that
    presents a certificate for `localhost` signed by the test CA. Returns the peer CN the
    server saw ("" without a client certificate)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.load_verify_locations(pki.ca)
    a, b = socket.socketpair()
    seen: dict[str, object] = {}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(b, server_side=True) as s:
                peer = s.getpeercert() or {}
                subject = dict(x[0] for x in peer.get("subject", ()))
                seen["cn"] = subject.get("commonName", "")
                s.recv(1)
        except Exception as exc:  # reported to the test thread
            seen["error"] = exc

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(a, server_hostname="localhost") as c:
            c.sendall(b"x")
    finally:
        t.join(5)
    if "error" in seen:
        raise seen["error"]  # type: ignore[misc]
    return str(seen.get("cn", ""))


def _sasl_env(protocol: str = "SASL_SSL", mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    return {"DUNNING_BROKER": KAFKA, "DUNNING_SECURITY_PROTOCOL": protocol,
            "DUNNING_SASL_MECHANISM": mechanism, "DUNNING_SASL_USERNAME": "dunning-worker",
            "DUNNING_SASL_PASSWORD": SASL_PASSWORD}


async def _construct_clients(kwargs: dict[str, object]) -> None:
    """aiokafka checks its security arguments in the constructors; nothing connects."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    AIOKafkaConsumer(**kwargs)  # type: ignore[arg-type]
    producer = AIOKafkaProducer(**kwargs)  # type: ignore[arg-type]
    AIOKafkaAdminClient(**kwargs)  # type: ignore[arg-type]
    await producer.stop()


# ------------------------------------------------------------------ right combinations
def test_defaults_are_the_embedded_broker_in_plaintext() -> None:
    s = Settings.from_env({})
    assert s.kafka_client_kwargs() == {
        "bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    assert s.faust_options() == {}
    assert s.producer_kwargs() == s.kafka_client_kwargs()
    assert s.ssl_context() is None


def test_plaintext_kafka_cluster() -> None:
    s = Settings.from_env({"DUNNING_BROKER": KAFKA, "DUNNING_PARTITIONS": "12",
                           "DUNNING_REPLICATION_FACTOR": "3"})
    assert s.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert s.faust_broker == "kafka://kafka-1:9092;kafka://kafka-2:9092"
    assert s.kafka_client_kwargs() == {
        "bootstrap_servers": "kafka-1:9092,kafka-2:9092", "security_protocol": "PLAINTEXT"}
    assert s.producer_kwargs()["enable_idempotence"] is True
    assert s.producer_kwargs()["acks"] == "all"
    assert (s.partitions, s.replication_factor) == (12, 3)
    asyncio.run(_construct_clients(s.kafka_client_kwargs()))


def test_ssl_with_a_ca_made_here_verifies_the_broker(pki: Pki) -> None:
    s = Settings.from_env({"DUNNING_BROKER": KAFKA, "DUNNING_SECURITY_PROTOCOL": "SSL",
                           "DUNNING_SSL_CAFILE": str(pki.ca)})
    kwargs = s.kafka_client_kwargs()
    assert kwargs["security_protocol"] == "SSL"
    assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & set(kwargs)
    ctx = kwargs["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [dict(x[0] for x in c["subject"])["commonName"] for c in ctx.get_ca_certs()] == [
        "dunning test CA"]
    assert _handshake(ctx, pki, require_client_cert=False) == ""
    asyncio.run(_construct_clients(kwargs))


def test_ssl_context_refuses_a_broker_it_does_not_trust(pki: Pki) -> None:
    other_ca = pki.ca.parent / "other-ca.crt"
    key = _key()
    _write_cert(other_ca, _cert("another CA", key, "another CA", key, ca=True))
    s = Settings.from_env({"DUNNING_BROKER": KAFKA, "DUNNING_SECURITY_PROTOCOL": "SSL",
                           "DUNNING_SSL_CAFILE": str(other_ca)})
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(s.kafka_client_kwargs()["ssl_context"], pki,  # type: ignore[arg-type]
                   require_client_cert=False)


@pytest.mark.parametrize("encrypted", [False, True])
def test_ssl_with_client_certificate_mutual_tls(pki: Pki, encrypted: bool) -> None:
    env = {"DUNNING_BROKER": KAFKA, "DUNNING_SECURITY_PROTOCOL": "SSL",
           "DUNNING_SSL_CAFILE": str(pki.ca), "DUNNING_SSL_CERTFILE": str(pki.client_cert),
           "DUNNING_SSL_KEYFILE": str(pki.client_key)}
    if encrypted:
        env["DUNNING_SSL_KEYFILE"] = str(pki.client_key_encrypted)
        env["DUNNING_SSL_KEY_PASSWORD"] = KEY_PASSWORD
    s = Settings.from_env(env)
    ctx = s.kafka_client_kwargs()["ssl_context"]
    assert _handshake(ctx, pki, require_client_cert=True) == "dunning-worker"  # type: ignore[arg-type]


def test_ssl_faust_credentials(pki: Pki) -> None:
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    s = Settings.from_env({"DUNNING_BROKER": KAFKA, "DUNNING_SECURITY_PROTOCOL": "SSL",
                           "DUNNING_SSL_CAFILE": str(pki.ca)})
    creds = s.faust_options()["broker_credentials"]
    assert isinstance(creds, faust.SSLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SSL"
    assert _handshake(auth["ssl_context"], pki, require_client_cert=False) == ""


@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
def test_sasl_plaintext(mechanism: str) -> None:
    s = Settings.from_env(_sasl_env("SASL_PLAINTEXT", mechanism.lower()))
    kwargs = s.kafka_client_kwargs()
    assert kwargs == {
        "bootstrap_servers": "kafka-1:9092,kafka-2:9092",
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
        "sasl_plain_username": "dunning-worker", "sasl_plain_password": SASL_PASSWORD,
    }
    asyncio.run(_construct_clients(kwargs))


@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
def test_sasl_ssl(pki: Pki, mechanism: str) -> None:
    env = _sasl_env("SASL_SSL", mechanism) | {"DUNNING_SSL_CAFILE": str(pki.ca)}
    kwargs = Settings.from_env(env).kafka_client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == mechanism
    assert kwargs["sasl_plain_username"] == "dunning-worker"
    assert kwargs["sasl_plain_password"] == SASL_PASSWORD
    assert _handshake(kwargs["ssl_context"], pki, require_client_cert=False) == ""  # type: ignore[arg-type]
    asyncio.run(_construct_clients(kwargs))


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_faust_credentials_match_the_client_kwargs(pki: Pki, protocol: str) -> None:
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    env = _sasl_env(protocol, "SCRAM-SHA-256")
    if protocol == "SASL_SSL":
        env["DUNNING_SSL_CAFILE"] = str(pki.ca)
    s = Settings.from_env(env)
    creds = s.faust_options()["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    auth = dict(credentials_to_aiokafka_auth(creds))
    ours = s.kafka_client_kwargs()
    for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username",
                "sasl_plain_password"):
        assert auth[key] == ours[key], key
    assert (auth["ssl_context"] is None) == (protocol == "SASL_PLAINTEXT")
    assert SASL_PASSWORD not in repr(creds)


def test_sasl_ssl_without_ca_uses_the_system_store() -> None:
    ctx = Settings.from_env(_sasl_env()).kafka_client_kwargs()["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED


def test_security_protocol_is_case_insensitive() -> None:
    env = _sasl_env() | {"DUNNING_SECURITY_PROTOCOL": "sasl_ssl"}
    assert Settings.from_env(env).security_protocol == "SASL_SSL"


# ------------------------------------------------------------------ *_FILE variants
@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_password_file_variants(tmp_path: Path, pki: Pki, ending: str) -> None:
    (tmp_path / "sasl").write_text(SASL_PASSWORD + ending)
    (tmp_path / "key").write_text(KEY_PASSWORD + ending)
    (tmp_path / "registry").write_text(REGISTRY_PASSWORD + ending)
    env = _sasl_env() | {
        "DUNNING_SASL_PASSWORD": "",
        "DUNNING_SASL_PASSWORD_FILE": str(tmp_path / "sasl"),
        "DUNNING_SSL_CAFILE": str(pki.ca),
        "DUNNING_SSL_CERTFILE": str(pki.client_cert),
        "DUNNING_SSL_KEYFILE": str(pki.client_key_encrypted),
        "DUNNING_SSL_KEY_PASSWORD_FILE": str(tmp_path / "key"),
        "DUNNING_SCHEMA_REGISTRY_URL": "https://registry:8081",
        "DUNNING_SCHEMA_REGISTRY_USERNAME": "dunning",
        "DUNNING_SCHEMA_REGISTRY_PASSWORD_FILE": str(tmp_path / "registry"),
    }
    s = Settings.from_env(env)
    assert s.sasl_password == Secret(SASL_PASSWORD)
    assert s.ssl_key_password == Secret(KEY_PASSWORD)
    assert s.schema_registry_password == Secret(REGISTRY_PASSWORD)
    assert s.kafka_client_kwargs()["sasl_plain_password"] == SASL_PASSWORD
    ctx = s.kafka_client_kwargs()["ssl_context"]
    assert _handshake(ctx, pki, require_client_cert=True) == "dunning-worker"  # type: ignore[arg-type]


def test_a_password_keeps_inner_and_leading_whitespace(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("  two words \n")
    env = _sasl_env() | {"DUNNING_SASL_PASSWORD": "",
                         "DUNNING_SASL_PASSWORD_FILE": str(tmp_path / "pw")}
    assert Settings.from_env(env).kafka_client_kwargs()["sasl_plain_password"] == "  two words "


def test_schema_registry_credentials() -> None:
    s = Settings.from_env({"DUNNING_WIRE_FORMAT": "confluent",
                           "DUNNING_SCHEMA_REGISTRY_URL": "https://registry.example:8081",
                           "DUNNING_SCHEMA_REGISTRY_USERNAME": "dunning",
                           "DUNNING_SCHEMA_REGISTRY_PASSWORD": REGISTRY_PASSWORD})
    import base64

    header = s.schema_registry_headers()["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == (
        f"dunning:{REGISTRY_PASSWORD}")
    assert Settings.from_env({}).schema_registry_headers() == {}


# ------------------------------------------------------------------ wrong combinations
def _errors(pki: Pki, tmp_path: Path) -> list[tuple[dict[str, str], str]]:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    sasl = _sasl_env()
    ssl_env = {"DUNNING_BROKER": KAFKA, "DUNNING_SECURITY_PROTOCOL": "SSL",
               "DUNNING_SSL_CAFILE": str(pki.ca)}
    return [
        ({"DUNNING_SECURITY_PROTOCOL": "TLS", "DUNNING_BROKER": KAFKA},
         "DUNNING_SECURITY_PROTOCOL must be one of"),
        ({"DUNNING_SECURITY_PROTOCOL": "SASL_SSL"}, "DUNNING_SECURITY_PROTOCOL is SASL_SSL, but "
         "the embedded broker"),
        ({"DUNNING_SECURITY_PROTOCOL": "SSL"}, "the embedded broker speaks PLAINTEXT only"),
        ({"DUNNING_SASL_USERNAME": "u", "DUNNING_SASL_PASSWORD": SASL_PASSWORD},
         "DUNNING_SASL_USERNAME is set, but DUNNING_SECURITY_PROTOCOL is PLAINTEXT"),
        ({k: v for k, v in sasl.items() if k != "DUNNING_SASL_MECHANISM"},
         "DUNNING_SASL_MECHANISM is required with DUNNING_SECURITY_PROTOCOL=SASL_SSL"),
        (sasl | {"DUNNING_SASL_MECHANISM": "GSSAPI"}, "DUNNING_SASL_MECHANISM must be one of"),
        ({k: v for k, v in sasl.items() if k != "DUNNING_SASL_USERNAME"},
         "DUNNING_SASL_USERNAME is required"),
        ({k: v for k, v in sasl.items() if k != "DUNNING_SASL_PASSWORD"},
         "DUNNING_SASL_PASSWORD (or DUNNING_SASL_PASSWORD_FILE) is required"),
        (sasl | {"DUNNING_SASL_PASSWORD_FILE": str(tmp_path / "pw")},
         "set DUNNING_SASL_PASSWORD or DUNNING_SASL_PASSWORD_FILE, not both"),
        (sasl | {"DUNNING_SASL_PASSWORD": "", "DUNNING_SASL_PASSWORD_FILE": str(tmp_path / "no")},
         "DUNNING_SASL_PASSWORD_FILE: no file at"),
        (sasl | {"DUNNING_SASL_PASSWORD": "", "DUNNING_SASL_PASSWORD_FILE": str(empty)},
         "DUNNING_SASL_PASSWORD_FILE: " + str(empty) + " is empty"),
        (ssl_env | {"DUNNING_SASL_MECHANISM": "PLAIN"},
         "DUNNING_SASL_MECHANISM is set, but DUNNING_SECURITY_PROTOCOL is SSL"),
        (sasl | {"DUNNING_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "DUNNING_SSL_CAFILE": str(pki.ca)},
         "DUNNING_SSL_CAFILE is set, but DUNNING_SECURITY_PROTOCOL is SASL_PLAINTEXT"),
        ({"DUNNING_BROKER": KAFKA, "DUNNING_SSL_KEY_PASSWORD": KEY_PASSWORD},
         "DUNNING_SSL_KEY_PASSWORD is set, but DUNNING_SECURITY_PROTOCOL is PLAINTEXT"),
        (ssl_env | {"DUNNING_SSL_CERTFILE": str(pki.client_cert)},
         "DUNNING_SSL_KEYFILE is required with DUNNING_SSL_CERTFILE"),
        (ssl_env | {"DUNNING_SSL_KEYFILE": str(pki.client_key)},
         "DUNNING_SSL_CERTFILE is required with DUNNING_SSL_KEYFILE"),
        (ssl_env | {"DUNNING_SSL_KEY_PASSWORD": KEY_PASSWORD},
         "DUNNING_SSL_KEY_PASSWORD is set, but there is no DUNNING_SSL_KEYFILE"),
        (ssl_env | {"DUNNING_SSL_CAFILE": str(tmp_path / "missing.crt")},
         "DUNNING_SSL_CAFILE: no file at"),
        (ssl_env | {"DUNNING_SSL_CAFILE": str(pki.not_pem)},
         "DUNNING_SSL_CAFILE: " + str(pki.not_pem) + " holds no usable PEM CA certificate"),
        (ssl_env | {"DUNNING_SSL_CERTFILE": str(pki.client_cert),
                    "DUNNING_SSL_KEYFILE": str(pki.other_key)},
         "DUNNING_SSL_KEYFILE: " + str(pki.other_key) + " is not the key of the certificate"),
        (ssl_env | {"DUNNING_SSL_CERTFILE": str(pki.client_cert),
                    "DUNNING_SSL_KEYFILE": str(pki.client_key_encrypted)},
         "DUNNING_SSL_KEY_PASSWORD (or DUNNING_SSL_KEY_PASSWORD_FILE) is required"),
        (ssl_env | {"DUNNING_SSL_CERTFILE": str(pki.client_cert),
                    "DUNNING_SSL_KEYFILE": str(pki.client_key_encrypted),
                    "DUNNING_SSL_KEY_PASSWORD": "wrong-" + KEY_PASSWORD},
         "DUNNING_SSL_KEY_PASSWORD does not open"),
        (ssl_env | {"DUNNING_SSL_CERTFILE": str(pki.not_pem),
                    "DUNNING_SSL_KEYFILE": str(pki.client_key)},
         "DUNNING_SSL_CERTFILE/DUNNING_SSL_KEYFILE: cannot load"),
        ({"DUNNING_BROKER": "localhost:9092"}, "DUNNING_BROKER must be kafka://"),
        ({"DUNNING_BROKER": "kafka://kafka-1"}, "DUNNING_BROKER: 'kafka-1' is not host:port"),
        ({"DUNNING_BROKER": f"kafka://u:{SASL_PASSWORD}@kafka-1:9092"},
         "DUNNING_BROKER must not hold credentials"),
        ({"DUNNING_BROKER": f"u:{SASL_PASSWORD}@kafka-1:9092"},
         "DUNNING_BROKER must be kafka://host:port[,host:port] or empty, not a value with"),
        ({"DUNNING_SCHEMA_REGISTRY_URL": f"https://u:{REGISTRY_PASSWORD}@registry:8081"},
         "DUNNING_SCHEMA_REGISTRY_URL must not hold credentials"),
        ({"DUNNING_SCHEMA_REGISTRY_URL": "registry:8081"},
         "DUNNING_SCHEMA_REGISTRY_URL must be http(s)://"),
        ({"DUNNING_SCHEMA_REGISTRY_URL": "https://registry:8081",
          "DUNNING_SCHEMA_REGISTRY_PASSWORD": REGISTRY_PASSWORD},
         "DUNNING_SCHEMA_REGISTRY_USERNAME is required"),
        ({"DUNNING_SCHEMA_REGISTRY_URL": "https://registry:8081",
          "DUNNING_SCHEMA_REGISTRY_USERNAME": "dunning"},
         "DUNNING_SCHEMA_REGISTRY_PASSWORD (or DUNNING_SCHEMA_REGISTRY_PASSWORD_FILE) is"),
        ({"DUNNING_SCHEMA_REGISTRY_USERNAME": "dunning",
          "DUNNING_SCHEMA_REGISTRY_PASSWORD": REGISTRY_PASSWORD},
         "DUNNING_SCHEMA_REGISTRY_URL is required"),
        ({"DUNNING_SCHEMA_REGISTRY_URL": "http://registry:8081",
          "DUNNING_SCHEMA_REGISTRY_USERNAME": "dunning",
          "DUNNING_SCHEMA_REGISTRY_PASSWORD": REGISTRY_PASSWORD},
         "DUNNING_SCHEMA_REGISTRY_URL must be https://"),
        ({"DUNNING_PARTITIONS": "0"}, "DUNNING_PARTITIONS must be at least 1"),
        ({"DUNNING_REPLICATION_FACTOR": "three"}, "DUNNING_REPLICATION_FACTOR must be a whole"),
        ({"DUNNING_WIRE_FORMAT": "json"}, "DUNNING_WIRE_FORMAT must be"),
        ({"DUNNING_LOG_FORMAT": "xml"}, "DUNNING_LOG_FORMAT must be"),
        ({"DUNNING_LOG_LEVEL": "LOUD"}, "DUNNING_LOG_LEVEL must be one of"),
        ({"DUNNING_AUTO_APPROVE": "maybe"}, "DUNNING_AUTO_APPROVE must be true or false"),
    ]


def test_every_wrong_combination_names_its_variable(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SASL_PASSWORD)
    for env, expected in _errors(pki, tmp_path):
        with pytest.raises(SettingsError) as info:
            Settings.from_env(env)
        message = str(info.value)
        assert expected in message, (env, message)
        assert message.count("\n") == 0
        for secret in SECRETS:
            assert secret not in message, (env, message)
            assert secret not in repr(info.value)


def test_the_constructor_checks_combinations_too() -> None:
    with pytest.raises(SettingsError, match="DUNNING_SASL_MECHANISM is required"):
        Settings(broker=KAFKA, security_protocol="SASL_SSL", sasl_username="u",
                 sasl_password=Secret(SASL_PASSWORD))


def test_cli_turns_a_settings_error_into_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from dunning import cli

    monkeypatch.setenv("DUNNING_BROKER", KAFKA)
    monkeypatch.setenv("DUNNING_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DUNNING_SASL_PASSWORD", SASL_PASSWORD)
    monkeypatch.delenv("DUNNING_SASL_MECHANISM", raising=False)
    with pytest.raises(SystemExit) as info:
        cli._settings()
    assert str(info.value).startswith("dunning: DUNNING_SASL_MECHANISM is required")
    assert SASL_PASSWORD not in str(info.value)


# ------------------------------------------------------------------ secrets never show
def _full(pki: Pki) -> Settings:
    return Settings.from_env(_sasl_env() | {
        "DUNNING_SSL_CAFILE": str(pki.ca), "DUNNING_SSL_CERTFILE": str(pki.client_cert),
        "DUNNING_SSL_KEYFILE": str(pki.client_key_encrypted),
        "DUNNING_SSL_KEY_PASSWORD": KEY_PASSWORD, "DUNNING_WIRE_FORMAT": "confluent",
        "DUNNING_SCHEMA_REGISTRY_URL": "https://registry:8081",
        "DUNNING_SCHEMA_REGISTRY_USERNAME": "dunning",
        "DUNNING_SCHEMA_REGISTRY_PASSWORD": REGISTRY_PASSWORD,
    })


def test_secret_type() -> None:
    s = Secret(SASL_PASSWORD)
    assert repr(s) == str(s) == f"{s}" == f"{s!r}" == "Secret('***')"
    assert "%s" % s == "Secret('***')"  # noqa: UP031
    assert s.reveal() == SASL_PASSWORD
    assert s == Secret(SASL_PASSWORD) and s != Secret("other")
    assert hash(s) == hash(Secret(SASL_PASSWORD))


def test_no_secret_in_repr_or_str(pki: Pki) -> None:
    s = _full(pki)
    for text in (repr(s), str(s), f"{s}", repr(s.faust_options())):
        for secret in SECRETS:
            assert secret not in text
    assert "Secret('***')" in repr(s)
    assert "dunning-worker" in repr(s)  # a user name is not a secret


@pytest.fixture
def restore_logging() -> Iterator[None]:
    import structlog

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.reset_defaults()


def test_no_secret_reaches_log_output(
    pki: Pki, restore_logging: None, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json

    import structlog

    from config.logs import configure

    # Configured here, in the test body, so the handler writes to the stderr capsys reads.
    configure("json", "DEBUG")
    caplog.set_level(logging.DEBUG)
    log = structlog.get_logger("dunning.test")
    s = _full(pki)
    log.info("settings loaded", settings=s, password=s.sasl_password,
             key_password=s.ssl_key_password, faust=s.faust_options())
    logging.getLogger("dunning.stdlib").warning("settings %s / %r", s, s)
    try:
        Settings.from_env(_sasl_env() | {"DUNNING_SASL_MECHANISM": "",
                                         "DUNNING_SSL_KEY_PASSWORD": KEY_PASSWORD})
    except SettingsError:
        log.exception("settings refused")
    try:
        Settings.from_env({"DUNNING_BROKER": f"kafka://u:{SASL_PASSWORD}@h:1"})
    except SettingsError as exc:
        log.error("settings refused", error=str(exc), exc_info=exc)
    out = capsys.readouterr()
    text = out.out + out.err + caplog.text
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert len(lines) >= 4 and all(json.loads(line) for line in lines)  # really JSON
    assert "Secret('***')" in text and "settings refused" in text
    for secret in SECRETS:
        assert secret not in text


def test_rocksdb_memory_of_each_table_partition_is_capped_and_configurable() -> None:
    mib = 1024 * 1024
    assert Settings.from_env({}).rocksdb_options() == {
        "block_cache_size": 4 * mib, "block_cache_compressed_size": 4 * mib,
        "write_buffer_size": 4 * mib, "max_write_buffer_number": 2}
    env = {"DUNNING_ROCKSDB_BLOCK_CACHE_MB": "16", "DUNNING_ROCKSDB_WRITE_BUFFER_MB": "8"}
    options = Settings.from_env(env).rocksdb_options()
    assert (options["block_cache_size"], options["write_buffer_size"]) == (16 * mib, 8 * mib)
    with pytest.raises(SettingsError, match="DUNNING_ROCKSDB_BLOCK_CACHE_MB"):
        Settings.from_env({"DUNNING_ROCKSDB_BLOCK_CACHE_MB": "0"})


def test_every_table_of_the_worker_opens_with_the_caps(tmp_path: Path) -> None:
    from processors.app import create_app

    settings = Settings(state_dir=tmp_path, rocksdb_block_cache_mb=2, rocksdb_write_buffer_mb=3)
    app = create_app(settings)
    for name in ("accounts", "due_index", "work_index", "runs"):
        options = app.tables[name].data.rocksdb_options
        assert (options.block_cache_size, options.write_buffer_size,
                options.max_write_buffer_number) == (2 * 1024 * 1024, 3 * 1024 * 1024, 2)
