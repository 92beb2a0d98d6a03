"""The Compose and Kubernetes files parse, and name only images, variables and commands
that exist in the project; the pieces that must agree with each other do."""

from __future__ import annotations

import argparse
import functools
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import Settings
from dunning.cli import build_parser
from topics.catalogue import CATALOGUE, INPUTS

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_FILES = sorted((DEPLOY / "compose").glob("*.yaml"))
K8S_FILES = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
#: Every file of deploy/ that can name a variable (the runbook included).
TEXT_FILES = [DOCKERFILE, *COMPOSE_FILES, *K8S_FILES, DEPLOY / "README.md",
              DEPLOY / "compose" / "make-secrets.sh"]
#: The image built from deploy/Dockerfile (Compose tags it :local, Kubernetes :<version>).
OUR_IMAGE = "dunning-engine"
OTHER_IMAGES = (re.compile(r"apache/kafka:\d+\.\d+\.\d+"), re.compile(r"quay\.io/strimzi/.+"))
VARIABLE = re.compile(r"\bDUNNING_[A-Z0-9_]*[A-Z0-9]\b")


@functools.cache
def _load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _settings_variables() -> set[str]:
    """The DUNNING_* names config/settings.py and the letter service's settings
    (letters/config.py) read, parsed out of their source."""
    source = "".join((ROOT / f).read_text() for f in ("config/settings.py",
                                                       "letters/config.py"))
    return set(re.findall(r'"(DUNNING_[A-Z0-9_]+)"', source))


def _k8s_docs() -> list[dict[str, Any]]:
    return [d for path in K8S_FILES for d in _load_all(path)]


def _pod_specs() -> list[dict[str, Any]]:
    specs = []
    for doc in _k8s_docs():
        if doc["kind"] in {"StatefulSet", "Deployment", "Job", "DaemonSet"}:
            specs.append(doc["spec"]["template"]["spec"])
    return specs


def _containers() -> list[dict[str, Any]]:
    return [c for spec in _pod_specs()
            for c in spec.get("initContainers", []) + spec["containers"]]


def _compose(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose" / name).read_text())


def _is_ours(image: str) -> bool:
    return image.rsplit("/", 1)[-1].split(":")[0] == OUR_IMAGE


def _parses(argv: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse refuses unknown commands this way
        raise AssertionError(f"`dunning {' '.join(argv)}` is not a dunning command") from exc


def _dockerfile() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.setdefault(word.upper(), []).append(rest.strip())
    return out


# ------------------------------------------------------------------ everything parses
@pytest.mark.parametrize("path", COMPOSE_FILES + K8S_FILES, ids=lambda p: p.name)
def test_files_parse(path: Path) -> None:
    assert _load_all(path)


def test_the_files_exist() -> None:
    names = {p.name for p in COMPOSE_FILES} | {p.name for p in K8S_FILES}
    assert {"compose.yaml", "compose.sasl-ssl.yaml", "kafka-cluster.yaml", "kafka-users.yaml",
            "topics.yaml", "worker.yaml", "kustomization.yaml"} <= names
    kustomization = _load_all(DEPLOY / "kubernetes" / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S_FILES} - {"kustomization.yaml"}


# ------------------------------------------------------------------ variables
def test_settings_variables_are_found() -> None:
    found = _settings_variables()
    assert {"DUNNING_BROKER", "DUNNING_SECURITY_PROTOCOL", "DUNNING_SASL_PASSWORD_FILE",
            "DUNNING_SSL_KEY_PASSWORD_FILE", "DUNNING_STATE_DIR"} <= found


@pytest.mark.parametrize("path", TEXT_FILES, ids=lambda p: p.name)
def test_only_variables_that_settings_reads(path: Path) -> None:
    unknown = set(VARIABLE.findall(path.read_text())) - _settings_variables()
    assert not unknown, f"{path.name} names variables config/settings.py does not read"


def test_no_secret_is_an_environment_value() -> None:
    secret_names = {"DUNNING_SASL_PASSWORD", "DUNNING_SSL_KEY_PASSWORD",
                    "DUNNING_SCHEMA_REGISTRY_PASSWORD"}
    for name in ("compose.yaml", "compose.sasl-ssl.yaml"):
        for service in _compose(name)["services"].values():
            assert not secret_names & set(service.get("environment") or {})
    for container in _containers():
        assert not secret_names & {e["name"] for e in container.get("env", [])}
    for doc in _k8s_docs():
        if doc["kind"] == "ConfigMap":
            assert not secret_names & set(doc["data"])


# ------------------------------------------------------------------ images
def test_compose_images_are_built_here_or_apache_kafka() -> None:
    for name in ("compose.yaml", "compose.sasl-ssl.yaml"):
        services = _compose(name)["services"]
        built = {s["image"] for s in services.values() if "build" in s}
        for service_name, service in services.items():
            image = service["image"]
            if "build" in service:
                build = service["build"]
                assert build["dockerfile"] == "deploy/Dockerfile", service_name
                assert (DEPLOY / "compose" / build["context"]).resolve() == ROOT
                assert _is_ours(image), service_name
            else:
                assert image in built or any(p.fullmatch(image) for p in OTHER_IMAGES), (
                    f"{name}: {service_name} uses {image}")


def test_kubernetes_images_are_ours() -> None:
    images = [c["image"] for c in _containers()]
    assert images
    for image in images:
        assert _is_ours(image) or any(p.fullmatch(image) for p in OTHER_IMAGES), image
    kustomization = _load_all(DEPLOY / "kubernetes" / "kustomization.yaml")[0]
    assert [i["name"] for i in kustomization["images"]] == [OUR_IMAGE]


def test_dockerfile() -> None:
    d = _dockerfile()
    assert d["FROM"][-1] == "python:3.11-slim"
    user = d["USER"][-1]
    assert user.split(":")[0] not in {"0", "root"}
    assert d["ENTRYPOINT"] == ['["dunning"]']
    assert d["CMD"] == ['["worker"]']
    assert any("/var/lib/dunning" in v for v in d["VOLUME"])
    assert any("pip install" in r and "dunning-engine" in r for r in d["RUN"])
    env = " ".join(d["ENV"])
    assert "DUNNING_STATE_DIR=/var/lib/dunning" in env
    assert (DEPLOY / "Dockerfile.dockerignore").exists()


# ------------------------------------------------------------------ commands
def test_compose_commands_exist() -> None:
    for name in ("compose.yaml", "compose.sasl-ssl.yaml"):
        services = _compose(name)["services"]
        ours = {n: s for n, s in services.items() if _is_ours(s["image"])}
        commands = {n: s.get("command", ["worker"]) for n, s in ours.items()}
        for argv in commands.values():
            argv = shlex.split(argv) if isinstance(argv, str) else argv
            _parses(argv)
        got = sorted(" ".join(c[:2]) for c in commands.values())
        assert got == ["procedures apply", "topics apply", "worker", "worker"], name


def test_kubernetes_commands_exist() -> None:
    seen = []
    for container in _containers():
        if _is_ours(container["image"]):
            assert "command" not in container  # the image's ENTRYPOINT is `dunning`
            argv = container.get("args", ["worker"])
            _parses(argv)
            seen.append(argv[0])
    assert sorted(seen) == ["letters", "procedures", "review", "worker"]


def test_dockerfile_command_exists() -> None:
    _parses(["worker"])


# ------------------------------------------------------------------ Compose specifics
@pytest.mark.parametrize("name", ["compose.yaml", "compose.sasl-ssl.yaml"])
def test_compose_cluster_and_workers(name: str) -> None:
    services = _compose(name)["services"]
    brokers = {n: s for n, s in services.items() if s["image"].startswith("apache/kafka:")}
    assert len(brokers) == 3
    ids = sorted(int(s["environment"]["KAFKA_NODE_ID"]) for s in brokers.values())
    assert ids == [1, 2, 3]
    for broker in brokers.values():
        env = broker["environment"]
        assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
        assert "ZOOKEEPER" not in " ".join(env)  # KRaft
        assert len({b["environment"]["CLUSTER_ID"] for b in brokers.values()}) == 1
    topics = services["topics"]
    assert topics["environment"]["DUNNING_REPLICATION_FACTOR"] == "3"
    workers = {n: s for n, s in services.items() if s.get("command") == ["worker"]}
    assert len(workers) == 2
    state_volumes = []
    for worker in workers.values():
        env = worker["environment"]
        assert env["DUNNING_PARTITIONS"] == topics["environment"]["DUNNING_PARTITIONS"]
        assert env["DUNNING_STATE_DIR"] == "/var/lib/dunning"
        mounts = [v for v in worker["volumes"] if v.split(":")[1] == "/var/lib/dunning"]
        assert len(mounts) == 1
        state_volumes.append(mounts[0].split(":")[0])
        assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert len(set(state_volumes)) == 2, "each worker needs its own state volume"
    for service in services.values():
        for key, value in (service.get("environment") or {}).items():
            assert not str(value).startswith("$"), key


def test_compose_sasl_ssl_secrets_are_files() -> None:
    doc = _compose("compose.sasl-ssl.yaml")
    secrets = doc["secrets"]
    for service in doc["services"].values():
        env = service.get("environment") or {}
        if env.get("DUNNING_SECURITY_PROTOCOL"):
            assert env["DUNNING_SECURITY_PROTOCOL"] == "SASL_SSL"
            mounted = {f"/run/secrets/{s}" for s in service["secrets"]}
            assert env["DUNNING_SASL_PASSWORD_FILE"] in mounted
            assert env["DUNNING_SSL_CAFILE"] in mounted
    made = (DEPLOY / "compose" / "make-secrets.sh").read_text()
    for secret in secrets.values():
        assert secret["file"].startswith("./secrets/client/")
        assert Path(secret["file"]).name in made


# ------------------------------------------------------------------ Kubernetes specifics
def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _k8s_docs() if d["kind"] == kind]


def _config() -> dict[str, str]:
    (config,) = [d for d in _kind("ConfigMap") if d["metadata"]["name"] == "dunning-config"]
    return config["data"]


def test_config_matches_the_exported_topics() -> None:
    from config.settings import Settings
    from topics.export import export

    data = _config()
    env = {k: data[k] for k in ("DUNNING_PARTITIONS", "DUNNING_REPLICATION_FACTOR")}
    assert (DEPLOY / "kubernetes" / "topics.yaml").read_text() == export(
        Settings.from_env(env), "strimzi")


def test_config_is_valid_settings(tmp_path: Path) -> None:
    """The ConfigMap plus the pod's own variables make settings that load (with the
    mounted files replaced by files made here)."""
    from config.settings import Settings

    ca = tmp_path / "ca.crt"
    ca.write_text(_a_ca_pem())
    password = tmp_path / "password"
    password.write_text("x\n")
    env = dict(_config()) | {"DUNNING_SSL_CAFILE": str(ca),
                             "DUNNING_SASL_USERNAME": "dunning-worker",
                             "DUNNING_SASL_PASSWORD_FILE": str(password)}
    s = Settings.from_env(env)
    assert s.security_protocol == "SASL_SSL" and s.sasl_mechanism == "SCRAM-SHA-512"
    assert s.bootstrap_servers == "dunning-kafka-bootstrap:9093"


def _a_ca_pem() -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_strimzi_cluster_is_kraft_with_node_pools() -> None:
    (kafka,) = _kind("Kafka")
    (pool,) = _kind("KafkaNodePool")
    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert "zookeeper" not in kafka["spec"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["spec"]["replicas"] == 3
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] and listener["authentication"]["type"] == "scram-sha-512"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    cluster = kafka["metadata"]["name"]
    assert _config()["DUNNING_BROKER"] == f"kafka://{cluster}-kafka-bootstrap:{listener['port']}"
    for doc in _kind("KafkaTopic") + _kind("KafkaUser"):
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == cluster


def _acls(user: str) -> dict[tuple[str, str, str], set[str]]:
    (doc,) = [u for u in _kind("KafkaUser") if u["metadata"]["name"] == user]
    assert doc["spec"]["authentication"]["type"] == "scram-sha-512"
    out: dict[tuple[str, str, str], set[str]] = {}
    for acl in doc["spec"]["authorization"]["acls"]:
        r = acl["resource"]
        out[(r["type"], r["name"], r.get("patternType", "literal"))] = set(acl["operations"])
    return out


def test_worker_acls_are_limited_to_the_project() -> None:
    acls = _acls("dunning-worker")
    app_id = "dunning"
    topics = {name for (kind, name, pattern) in acls if kind == "topic" and pattern == "literal"}
    assert topics == {t.name for t in CATALOGUE}
    for spec in CATALOGUE:
        ops = acls[("topic", spec.name, "literal")]
        if spec.name in INPUTS:
            assert ops == {"Read", "Describe"}, spec.name  # billing's topics: read only
        else:
            assert ops == {"Read", "Write", "Describe"}, spec.name
    # Faust's own topics (<app id>-<table>-changelog, <app id>-__assignor-__leader).
    assert acls[("topic", f"{app_id}-", "prefix")] >= {"Create", "Read", "Write", "Describe"}
    # Faust's group, and the one of the ingest reader's positions (Settings.ingest_group)
    groups = {("group", app_id, "literal"), ("group", Settings(app_id=app_id).ingest_group,
                                             "literal")}
    for group in groups:
        assert acls[group] == {"Read", "Describe"}
    assert set(acls) == {("topic", t, "literal") for t in topics} | {
        ("topic", f"{app_id}-", "prefix")} | groups
    assert not any("All" in ops or "Alter" in ops or "Delete" in ops for ops in acls.values())
    assert not any(kind == "cluster" for (kind, _, _) in acls)


def test_ops_acls_are_limited_to_the_catalogue() -> None:
    acls = _acls("dunning-ops")
    groups = {("group", "dunning", "literal"), ("group", "dunning-ingest", "literal")}
    # to reset the workers' offsets
    assert set(acls) == {("topic", t.name, "literal") for t in CATALOGUE} | groups
    for group in groups:
        assert acls[group] == {"Read", "Describe"}
    assert not any({"Create", "Delete", "Alter", "All"} & ops for ops in acls.values())


def test_worker_statefulset() -> None:
    (sts,) = [d for d in _kind("StatefulSet") if d["metadata"]["name"] == "dunning-worker"]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    config = _config()
    # State folder on a persistent volume claim.
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == config["DUNNING_STATE_DIR"] == "/var/lib/dunning"
    # Probes: ready on /health/, alive on a page that answers during recovery.
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/"
    assert container["livenessProbe"]["httpGet"]["path"] != "/health/"
    port = int(config["DUNNING_WEB_PORT"])
    assert container["ports"][0]["containerPort"] == port
    # The user's password and the cluster CA are files from the operators' secrets.
    volumes = {v["name"]: v for v in pod["volumes"]}
    password_dir = str(Path(env["DUNNING_SASL_PASSWORD_FILE"]["value"]).parent)
    (user_volume,) = [n for n, p in mounts.items() if p == password_dir]
    assert volumes[user_volume]["secret"]["secretName"] == env["DUNNING_SASL_USERNAME"]["value"]
    ca_dir = str(Path(config["DUNNING_SSL_CAFILE"]).parent)
    (ca_volume,) = [n for n, p in mounts.items() if p == ca_dir]
    (kafka,) = _kind("Kafka")
    assert volumes[ca_volume]["secret"]["secretName"] == (
        f"{kafka['metadata']['name']}-cluster-ca-cert")
    assert env["DUNNING_SASL_USERNAME"]["value"] in {u["metadata"]["name"]
                                                     for u in _kind("KafkaUser")}
    # Resources and disruption budget.
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    (pdb,) = _kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert spec["replicas"] <= int(config["DUNNING_PARTITIONS"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["enableServiceLinks"] is False


def test_every_pod_keeps_service_links_out_of_its_environment() -> None:
    for pod in _pod_specs():
        assert pod["enableServiceLinks"] is False


def test_procedures_configmap_is_a_procedures_file() -> None:
    from domain import procedures  # imported, never skipped: a broken import fails
    (doc,) = [d for d in _kind("ConfigMap") if d["metadata"]["name"] == "dunning-procedures"]
    parsed = procedures.parse_procedures(yaml.safe_load(doc["data"]["procedures.yaml"]))
    assert [p.id for p in parsed] == ["STANDARD"]


def test_review_acls_read_what_the_page_shows_and_write_only_decisions() -> None:
    acls = _acls("dunning-review")
    shown = {"billing.accounts", "dunning.procedures", "dunning.runs", "dunning.proposals",
             "dunning.history", "dunning-accounts-changelog"}
    assert set(acls) == {("topic", t, "literal") for t in shown | {"dunning.decisions"}}
    for topic in shown:
        assert acls[("topic", topic, "literal")] == {"Read", "Describe"}, topic
    assert acls[("topic", "dunning.decisions", "literal")] == {"Read", "Write", "Describe"}
    from review.store import TOPICS

    assert set(TOPICS) <= shown | {"dunning.decisions"}  # the feed reads no other topic


def test_letter_service_acls_read_its_commands_and_write_only_the_outcomes() -> None:
    from letters.config import GROUP_ID
    from letters.service import HISTORY_TOPIC, LETTERS_TOPIC
    from topics.catalogue import LETTER_DELIVERIES, PROCEDURES

    acls = _acls("dunning-letters")
    read = {LETTERS_TOPIC, HISTORY_TOPIC, PROCEDURES}
    assert acls == {
        **{("topic", t, "literal"): {"Read", "Describe"} for t in read},
        ("topic", LETTER_DELIVERIES, "literal"): {"Write", "Describe"},
        ("group", GROUP_ID, "literal"): {"Read"},
    }


def test_letter_service_statefulset_keeps_its_documents_and_uses_its_kafka_user() -> None:
    (sts,) = [d for d in _kind("StatefulSet") if d["metadata"]["name"] == "dunning-letters"]
    assert sts["spec"]["replicas"] == 1
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DUNNING_SASL_USERNAME"] == "dunning-letters"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["state"] == env["DUNNING_STATE_DIR"]
    assert [c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]] == ["state"]
    assert env["DUNNING_SMTP_PASSWORD_FILE"].startswith(mounts["smtp"] + "/")
