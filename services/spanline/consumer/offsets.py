"""What to commit after a batch: per partition, the offset after the last message of the batch.

A batch is written whole or not at all (the writer retries until it lands), so every message of it is
done once the write returns; the next offset to read is then the highest offset seen plus one.
"""

from __future__ import annotations

from collections.abc import Iterable

from spanline.bus.interface import BusMessage, TopicPartition


def next_offsets(messages: Iterable[BusMessage]) -> dict[TopicPartition, int]:
    # One TopicPartition per partition, not per message (it showed in ingest profiles).
    highest: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic, message.partition)
        if message.offset > highest.get(key, -1):
            highest[key] = message.offset
    return {TopicPartition(topic, partition): offset + 1 for (topic, partition), offset in highest.items()}
