"""The bus semantics, on the real Kafka broker and on the in-process bus alike."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import orjson
import pytest

from spanline.bus.interface import ORG_HEADER, Bus, BusConsumer, BusMessage, TopicPartition
from spanline.bus.kafka import KafkaBus
from spanline.bus.memory import MemoryBus
from spanline.bus.partitioning import partition_for_key

EVENTS = 10_000
KEYS = 100
PARTITIONS = 4


@pytest.fixture(params=["memory", "kafka"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        yield MemoryBus(default_partitions=PARTITIONS)
        return
    broker = request.getfixturevalue("kafka_broker")
    kafka = KafkaBus(broker.bootstrap, linger_ms=5)
    yield kafka
    await kafka.close()


async def read_at_least(consumer: BusConsumer, count: int, deadline_s: float = 90) -> list[BusMessage]:
    received: list[BusMessage] = []
    deadline = time.monotonic() + deadline_s
    while len(received) < count:
        assert time.monotonic() < deadline, f"only {len(received)} of {count} messages arrived"
        received.extend(await consumer.getmany(max_records=1000, timeout_ms=500))
    return received


def assert_per_key_order(messages: list[BusMessage]) -> None:
    last_seq: dict[bytes, int] = {}
    partition_of_key: dict[bytes, int] = {}
    for message in messages:
        assert message.key is not None
        seq = orjson.loads(message.value)["seq"]
        assert seq > last_seq.get(message.key, -1), f"{message.key!r} out of order"
        last_seq[message.key] = seq
        assert partition_of_key.setdefault(message.key, message.partition) == message.partition


async def test_delivery_order_and_committed_offsets_survive_restart(bus: Bus) -> None:
    topic = f"bus-test-{uuid.uuid4().hex[:8]}"
    group = f"group-{uuid.uuid4().hex[:8]}"
    await bus.create_topics([topic], PARTITIONS)
    producer = bus.producer()
    await producer.start()
    sequence: dict[str, int] = defaultdict(int)
    for index in range(EVENTS):
        key = f"execution-{index % KEYS}"
        value = orjson.dumps({"key": key, "seq": sequence[key], "index": index})
        sequence[key] += 1
        await producer.send(topic, value, key=key.encode(), headers=((ORG_HEADER, b"acme"),))
    await producer.flush()
    await producer.stop()

    # First member: read part of the stream, commit only half of what it read in each partition.
    first = bus.consumer([topic], group_id=group)
    await first.start()
    first_read = await read_at_least(first, 4_000)
    assert_per_key_order(first_read)
    read_per_partition: dict[TopicPartition, list[int]] = defaultdict(list)
    for message in first_read:
        read_per_partition[TopicPartition(message.topic, message.partition)].append(message.offset)
    committed = {tp: offsets[len(offsets) // 2] for tp, offsets in read_per_partition.items()}
    await first.commit(committed)
    await first.stop()

    # Second member of the same group: resumes exactly at the committed offsets.
    second = bus.consumer([topic], group_id=group)
    await second.start()
    expected_rest = EVENTS - sum(committed.values())
    rest = await read_at_least(second, expected_rest)
    rest.extend(await second.getmany(max_records=1000, timeout_ms=1000))  # anything beyond is a duplicate
    await second.stop()

    assert len(rest) == expected_rest
    assert_per_key_order(rest)
    first_offset: dict[TopicPartition, int] = {}
    for message in rest:
        first_offset.setdefault(TopicPartition(message.topic, message.partition), message.offset)
    for tp, offset in committed.items():
        assert first_offset[tp] == offset, "resumed somewhere other than the committed offset"

    # Nothing lost, nothing twice: the committed prefixes plus the rest are every message once.
    delivered = [m for m in first_read if m.offset < committed[TopicPartition(m.topic, m.partition)]]
    delivered += rest
    indexes = sorted(orjson.loads(message.value)["index"] for message in delivered)
    assert indexes == list(range(EVENTS))
    assert {message.header(ORG_HEADER) for message in delivered} == {b"acme"}
    for message in delivered:
        assert message.key is not None
        assert message.partition == partition_for_key(message.key, PARTITIONS)


async def test_live_tail_reader_sees_only_new_messages(bus: Bus) -> None:
    topic = f"tail-test-{uuid.uuid4().hex[:8]}"
    await bus.create_topics([topic], PARTITIONS)
    producer = bus.producer()
    await producer.start()
    await producer.send(topic, b"old", key=b"k")
    await producer.flush()
    tail = bus.consumer([topic], group_id=None, from_beginning=False)
    await tail.start()  # returns once the reader holds its position at the end of every partition
    assert len(tail.assignment()) == PARTITIONS
    await producer.send(topic, b"new", key=b"k")
    await producer.flush()
    received = await read_at_least(tail, 1, deadline_s=30)
    await tail.stop()
    await producer.stop()
    assert [message.value for message in received] == [b"new"]
