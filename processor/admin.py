"""Topics on the broker from the contract, idempotently (confluent-kafka admin)."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from processor.errors import ConfigError, Unavailable
from processor.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicResult:
    name: str
    action: str  # created | updated | unchanged


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def ensure_topics(settings: Settings, *, timeout: float = 30.0) -> list[TopicResult]:
    """Create missing topics, bring configs in line, refuse a partition mismatch.

    Partitions are never changed on an existing topic: more partitions would move existing
    orders to other partitions than their table state, so a mismatch is an operator decision.
    """
    admin = admin_client(settings.kafka_bootstrap_servers)
    specs = list(settings.topics().values())
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise Unavailable(
            f"Kafka at {settings.kafka_bootstrap_servers} does not answer: {exc}"
        ) from None

    results: list[TopicResult] = []
    missing = [s for s in specs if s.name not in metadata.topics]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=s.replication_factor,
                    config=dict(s.config),
                )
                for s in missing
            ],
            operation_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a racing worker made it
                    raise ConfigError(f"cannot create topic {name}: {exc}") from None
            results.append(TopicResult(name, "created"))

    for spec in specs:
        if spec in missing:
            continue
        existing = len(metadata.topics[spec.name].partitions)
        if existing != spec.partitions:
            raise ConfigError(
                f"topic {spec.name} has {existing} partitions, the contract says "
                f"{spec.partitions}; set PROCESSOR_PARTITIONS={existing} or recreate the topic"
            )
        resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name)
        current = admin.describe_configs([resource])[resource].result(timeout=timeout)
        changes = [
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in spec.config.items()
            if current.get(k) is None or current[k].value != v
        ]
        if changes:
            resource = ConfigResource(
                ConfigResource.Type.TOPIC, spec.name, incremental_configs=changes
            )
            admin.incremental_alter_configs([resource])[resource].result(timeout=timeout)
        results.append(TopicResult(spec.name, "updated" if changes else "unchanged"))
    return results
