"""`dunning topics apply`: create what is missing, report what differs. Idempotent."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from config.settings import Settings
from topics.catalogue import CATALOGUE, TopicSpec


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"created  {name}" for name in self.created]
        out += [f"ok       {name}" for name in self.existing]
        out += [f"DIFFERS  {d}" for d in self.differences]
        return out


def desired(settings: Settings) -> list[tuple[str, TopicSpec, int]]:
    return [
        (settings.topic(t.name), t, t.partition_count(settings.partitions)) for t in CATALOGUE
    ]


async def apply_topics(settings: Settings) -> ApplyReport:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        report = ApplyReport()
        existing = set(await admin.list_topics())
        want = desired(settings)
        missing = [
            NewTopic(
                name=name,
                num_partitions=count,
                replication_factor=settings.replication_factor,
                topic_configs=spec.configs(),
            )
            for name, spec, count in want
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
            report.created = [t.name for t in missing]
        present = [(n, s, c) for n, s, c in want if n in existing]
        report.existing = [n for n, _, _ in present]
        if present:
            meta = await admin.describe_topics([n for n, _, _ in present])
            counts = {m["topic"]: len(m.get("partitions", [])) for m in meta}
            for name, _spec, count in present:
                if counts.get(name, count) != count:
                    report.differences.append(
                        f"{name}: {counts[name]} partitions, catalogue says {count}"
                    )
            report.differences += await _config_differences(admin, present)
        return report
    finally:
        await admin.close()


async def _config_differences(
    admin: AIOKafkaAdminClient, present: list[tuple[str, TopicSpec, int]]
) -> list[str]:
    try:
        results = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name, _, _ in present]
        )
    except Exception as exc:  # a broker without DescribeConfigs: say so, do not guess
        return [f"(configs not compared: {type(exc).__name__}: {exc})"]
    found: dict[str, dict[str, str]] = {}
    for response in results:
        for resource in getattr(response, "resources", []):
            _code, _msg, _rtype, name, entries = resource[:5]
            found[name] = {e[0]: e[1] for e in entries}
    out = []
    for name, spec, _ in present:
        have = found.get(name)
        if have is None:
            continue
        for key, value in spec.configs().items():
            if key in have and have[key] is not None and have[key] != value:
                out.append(f"{name}: {key}={have[key]}, catalogue says {value}")
    return out
