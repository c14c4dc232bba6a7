"""Rejected messages go to the dead-letter topic as they came (key, bytes, headers), plus why."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from spanline.bus.interface import BusProducer
from spanline.consumer.decode import RejectedMessage

REASON_HEADER: Final = "spanline-dlq-reason"
ERROR_HEADER: Final = "spanline-dlq-error"
SOURCE_TOPIC_HEADER: Final = "spanline-dlq-topic"
SOURCE_PARTITION_HEADER: Final = "spanline-dlq-partition"
SOURCE_OFFSET_HEADER: Final = "spanline-dlq-offset"
_MAX_ERROR_BYTES: Final = 2048


class DeadLetterPublisher:
    def __init__(self, producer: BusProducer, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    async def publish(self, rejected: Sequence[RejectedMessage]) -> None:
        """Send and flush: once this returns the messages are durable, so their offsets may be committed."""
        if not rejected:
            return
        for item in rejected:
            message = item.message
            headers = (
                *message.headers,
                (REASON_HEADER, item.reason.encode()),
                (ERROR_HEADER, item.error.encode()[:_MAX_ERROR_BYTES]),
                (SOURCE_TOPIC_HEADER, message.topic.encode()),
                (SOURCE_PARTITION_HEADER, str(message.partition).encode()),
                (SOURCE_OFFSET_HEADER, str(message.offset).encode()),
            )
            await self._producer.send(self.topic, message.value, key=message.key, headers=headers)
        await self._producer.flush()
