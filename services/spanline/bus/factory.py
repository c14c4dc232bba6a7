"""Builds the bus the settings ask for: Kafka when a bootstrap is set, the in-process bus otherwise."""

from __future__ import annotations

from spanline.bus.interface import Bus
from spanline.bus.kafka import KafkaBus
from spanline.bus.memory import MemoryBus
from spanline.core.config import Settings


def create_bus(settings: Settings) -> Bus:
    if settings.kafka_bootstrap:
        return KafkaBus(
            settings.kafka_bootstrap,
            compression=settings.kafka_compression,
            linger_ms=settings.kafka_linger_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            fetch_min_bytes=settings.kafka_fetch_min_bytes,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        )
    return MemoryBus(default_partitions=settings.topic_partitions)


async def ensure_topics(bus: Bus, settings: Settings) -> None:
    await bus.create_topics(
        [settings.events_topic, settings.dlq_topic, settings.executions_topic], settings.topic_partitions
    )
