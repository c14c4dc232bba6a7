"""Builds the bus the settings ask for: Kafka when a bootstrap is set, the in-process bus otherwise."""

from __future__ import annotations

from spanline.bus.interface import Bus
from spanline.bus.kafka import KafkaBus
from spanline.bus.memory import MemoryBus
from spanline.core.config import Settings

# Above the largest event (SPANLINE_MAX_EVENT_BYTES): a record's key, headers and framing on the events topics,
# and on the DLQ further the reason headers (consumer/dlq.py caps the error text at 2 KiB) on top of a record
# the events topic accepted; so the DLQ takes every message the events topic took.
EVENTS_TOPIC_HEADROOM = 64 * 1024
DLQ_TOPIC_HEADROOM = 128 * 1024


def topic_message_limits(settings: Settings) -> tuple[int, int]:
    """(max.message.bytes of the events and executions topics, of the DLQ topic); producers may send the latter."""
    return settings.max_event_bytes + EVENTS_TOPIC_HEADROOM, settings.max_event_bytes + DLQ_TOPIC_HEADROOM


def create_bus(settings: Settings) -> Bus:
    if settings.kafka_bootstrap:
        return KafkaBus(
            settings.kafka_bootstrap,
            compression=settings.kafka_compression,
            linger_ms=settings.kafka_linger_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            fetch_min_bytes=settings.kafka_fetch_min_bytes,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            max_request_bytes=topic_message_limits(settings)[1],
        )
    return MemoryBus(
        default_partitions=settings.topic_partitions,
        retention_bytes=settings.memory_bus_partition_bytes,
        lossy_topics=frozenset({settings.dlq_topic}),
    )


async def ensure_topics(bus: Bus, settings: Settings) -> None:
    events_limit, dlq_limit = topic_message_limits(settings)
    await bus.create_topics(
        [settings.events_topic, settings.executions_topic], settings.topic_partitions, max_message_bytes=events_limit
    )
    await bus.create_topics([settings.dlq_topic], settings.topic_partitions, max_message_bytes=dlq_limit)
