"""What to commit after a batch: per partition, the offset after the last message of the batch.

A batch is written whole or not at all (the writer retries until it lands), so every message of it is
done once the write returns; the next offset to read is then the highest offset seen plus one.
"""

from __future__ import annotations

from collections.abc import Iterable

from spanline.bus.interface import BusMessage, TopicPartition


def next_offsets(messages: Iterable[BusMessage]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for message in messages:
        tp = TopicPartition(message.topic, message.partition)
        if message.offset + 1 > offsets.get(tp, -1):
            offsets[tp] = message.offset + 1
    return offsets
