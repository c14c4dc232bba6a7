"""What the consumer commits after a batch: per partition, one past the highest offset it holds."""

from __future__ import annotations

from spanline.bus.interface import BusMessage, TopicPartition
from spanline.consumer.offsets import next_offsets


def message(topic: str, partition: int, offset: int) -> BusMessage:
    return BusMessage(topic, partition, offset, None, b"{}", (), 0)


def test_next_offsets_take_the_highest_offset_of_each_partition_whatever_the_order() -> None:
    batch = [message("a", 0, 7), message("a", 1, 3), message("a", 0, 9), message("b", 0, 2), message("a", 0, 8)]
    assert next_offsets(batch) == {TopicPartition("a", 0): 10, TopicPartition("a", 1): 4, TopicPartition("b", 0): 3}
    assert next_offsets([]) == {}
