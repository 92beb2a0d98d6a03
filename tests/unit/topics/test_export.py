"""`dunning topics export --format strimzi` equals the topic catalogue, and the committed
deploy/kubernetes/topics.yaml equals a fresh export."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from config.settings import Settings
from topics.catalogue import CATALOGUE
from topics.export import STRIMZI_API, export, resource_name

ROOT = Path(__file__).resolve().parents[3]
TOPICS_YAML = ROOT / "deploy" / "kubernetes" / "topics.yaml"
#: The settings deploy/kubernetes/topics.yaml is exported with (as its header says).
K8S_ENV = {"DUNNING_PARTITIONS": "12", "DUNNING_REPLICATION_FACTOR": "3"}
DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


@pytest.mark.parametrize("env", [
    {},
    K8S_ENV,
    {"DUNNING_PARTITIONS": "3", "DUNNING_TOPIC_PREFIX": "Staging_Env.",
     "DUNNING_STRIMZI_CLUSTER": "billing-kafka"},
])
def test_export_equals_the_catalogue(env: dict[str, str]) -> None:
    settings = Settings.from_env(env)
    docs = _docs(export(settings, "strimzi"))
    assert len(docs) == len(CATALOGUE)
    names = set()
    for spec, doc in zip(CATALOGUE, docs, strict=True):
        assert doc["apiVersion"] == STRIMZI_API == "kafka.strimzi.io/v1beta2"
        assert doc["kind"] == "KafkaTopic"
        meta, body = doc["metadata"], doc["spec"]
        assert meta["labels"]["strimzi.io/cluster"] == settings.strimzi_cluster
        assert body["topicName"] == settings.topic(spec.name)
        assert body["partitions"] == spec.partition_count(settings.partitions)
        assert body["replicas"] == settings.replication_factor
        config = {k: str(v) for k, v in body["config"].items()}
        assert config == spec.configs()
        assert config["cleanup.policy"] == spec.cleanup_policy
        assert int(config["retention.ms"]) == spec.retention_ms
        assert DNS_1123_SUBDOMAIN.fullmatch(meta["name"]) and len(meta["name"]) <= 253
        names.add(meta["name"])
    assert len(names) == len(CATALOGUE)


def test_account_topics_share_the_partition_count() -> None:
    docs = _docs(export(Settings.from_env({"DUNNING_PARTITIONS": "24"}), "strimzi"))
    by_topic = {d["spec"]["topicName"]: d["spec"]["partitions"] for d in docs}
    assert by_topic["billing.accounts"] == by_topic["dunning.history"] == 24
    assert by_topic["dunning.internal.partition-work"] == 24
    assert by_topic["billing.payment-runs"] == by_topic["dunning.procedures"] == 1


@pytest.mark.parametrize("topic", [
    "billing.accounts", "dunning.internal.run-progress", "Staging_Env.billing.accounts",
    "_private", "a..b", "UPPER", "x" * 300, "-lead.trail-", "___",
])
def test_resource_names_are_dns_1123(topic: str) -> None:
    name = resource_name(topic)
    assert DNS_1123_SUBDOMAIN.fullmatch(name), name
    assert len(name) <= 253


def test_resource_names_keep_valid_names_and_never_collide() -> None:
    assert resource_name("billing.accounts") == "billing.accounts"
    assert resource_name("billing_accounts") != resource_name("billing-accounts")
    assert resource_name("Billing.accounts") != resource_name("billing.accounts")


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown export format 'helm'"):
        export(Settings(), "helm")


def test_committed_topics_yaml_equals_a_fresh_export() -> None:
    fresh = export(Settings.from_env(K8S_ENV), "strimzi")
    assert TOPICS_YAML.read_text() == fresh, (
        "deploy/kubernetes/topics.yaml is stale: regenerate it with\n"
        "  DUNNING_PARTITIONS=12 DUNNING_REPLICATION_FACTOR=3 "
        "dunning topics export --format strimzi > deploy/kubernetes/topics.yaml"
    )


def test_cli_export_prints_the_same(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from dunning.cli import main

    for key in list(__import__("os").environ):
        if key.startswith("DUNNING_"):
            monkeypatch.delenv(key)
    for key, value in K8S_ENV.items():
        monkeypatch.setenv(key, value)
    assert main(["topics", "export", "--format", "strimzi"]) == 0
    assert capsys.readouterr().out == TOPICS_YAML.read_text()
