"""Buffers that grow with input are bounded by bytes: the in-process bus per partition (trimming only what
every reading group committed past; a send waits for room, then fails), the live hub's recent events per
execution and in total (with the eviction signal streams fall back on), and a live subscriber's queue."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from uuid import UUID

import msgspec
import pytest

from spanline.api.live.buffer import held_bytes
from spanline.api.live.hub import LiveHub
from spanline.bus.interface import ORG_HEADER, BusUnavailableError, TopicPartition
from spanline.bus.memory import MemoryBus, message_bytes
from spanline.consumer.metrics import ConsumerMetrics
from spanline.consumer.readback import totals
from spanline.consumer.service import run_consumer
from spanline.core.config import Settings
from spanline.store.store import Store
from tests.consumer_events import expected_totals, generate_execution, normalise_totals

TOPIC = "spanline.events"
MIB = 1024 * 1024


async def test_a_partition_keeps_its_bound_once_the_group_commits_and_loses_nothing() -> None:
    bus = MemoryBus(default_partitions=1, retention_bytes=64 * 1024, max_block_s=5)
    reader = bus.consumer([TOPIC], group_id="g")
    await reader.start()
    producer = bus.producer()
    received: list[bytes] = []
    peak = 0
    for index in range(2000):  # ~2 MB through a 64 KiB partition
        await producer.send(TOPIC, b"%06d" % index + b"x" * 1000, key=b"k")
        peak = max(peak, bus.retained_bytes(TOPIC)[0])
        if index % 10 == 9:
            batch = await reader.getmany(max_records=100, timeout_ms=0)
            received += [message.value[:6] for message in batch]
            await reader.commit({TopicPartition(TOPIC, 0): batch[-1].offset + 1})
    received += [message.value[:6] for message in await reader.getmany(max_records=100, timeout_ms=0)]
    assert received == [b"%06d" % index for index in range(2000)]  # every message, in order, once
    assert peak <= 64 * 1024
    assert bus.start_offsets(TOPIC)[0] > 1900  # the old messages are gone


async def test_uncommitted_messages_are_never_trimmed_a_send_waits_then_fails() -> None:
    bus = MemoryBus(default_partitions=1, retention_bytes=10_000, max_block_s=0.3)
    reader = bus.consumer([TOPIC], group_id="g")
    await reader.start()
    producer = bus.producer()
    for _ in range(9):
        await producer.send(TOPIC, b"x" * 1000, key=b"k")
    began = time.monotonic()
    with pytest.raises(BusUnavailableError, match="SPANLINE_MEMORY_BUS_PARTITION_BYTES"):
        await producer.send(TOPIC, b"y" * 2000, key=b"k")  # no room, and the group committed nothing
    assert time.monotonic() - began >= 0.3
    assert bus.start_offsets(TOPIC) == [0] and bus.end_offsets(TOPIC) == [9]

    bus = MemoryBus(default_partitions=1, retention_bytes=10_000, max_block_s=30)
    reader = bus.consumer([TOPIC], group_id="g")
    await reader.start()
    producer = bus.producer()
    for _ in range(9):
        await producer.send(TOPIC, b"x" * 1000, key=b"k")
    blocked = asyncio.create_task(producer.send(TOPIC, b"y" * 2000, key=b"k"))
    await asyncio.sleep(0)  # let it reach its wait
    assert not blocked.done()
    batch = await reader.getmany(max_records=5, timeout_ms=0)
    await reader.commit({TopicPartition(TOPIC, 0): batch[-1].offset + 1})  # room: the send goes through
    await asyncio.wait_for(blocked, 5)
    assert bus.start_offsets(TOPIC)[0] >= 1 and bus.end_offsets(TOPIC) == [10]
    rest = await reader.getmany(max_records=100, timeout_ms=0)
    assert [message.offset for message in rest] == list(range(5, 10))  # nothing uncommitted was lost


async def test_a_lossy_topic_keeps_its_newest_bytes_and_an_unread_one_keeps_everything() -> None:
    bus = MemoryBus(
        default_partitions=1, retention_bytes=10_000, max_block_s=0.1, lossy_topics=frozenset({"spanline.events.dlq"})
    )
    producer = bus.producer()
    for index in range(100):
        await producer.send("spanline.events.dlq", b"%03d" % index + b"x" * 997)
    assert bus.retained_bytes("spanline.events.dlq")[0] <= 10_000
    assert bus.end_offsets("spanline.events.dlq") == [100]
    assert [m.value[:3] for m in bus.read(TopicPartition("spanline.events.dlq", 0), 0, 100)][-1] == b"099"
    for _ in range(10):  # no group has joined yet: a consumer starting later must still find all of it
        await producer.send(TOPIC, b"x" * 1000)
    with pytest.raises(BusUnavailableError):
        await producer.send(TOPIC, b"x" * 1000)
    assert bus.start_offsets(TOPIC)[0] == 0


def test_a_message_counts_its_key_value_and_headers() -> None:
    from spanline.bus.interface import BusMessage

    assert message_bytes(BusMessage("t", 0, 0, b"key", b"value", (("h", b"vv"),), 0)) == 3 + 5 + 1 + 2


async def test_the_consumer_on_a_small_bounded_bus_writes_everything_exactly(store: Store, settings: Settings) -> None:
    """Trimming only behind the group's commits: a full pipeline through a bus that holds ~1/20 of the data."""
    executions = [generate_execution(random.Random(900 + seed), org="acme") for seed in range(60)]
    payloads = [(e, p) for e in executions for p in e.payloads()]
    volume = sum(len(p) for _, p in payloads)
    bus = MemoryBus(default_partitions=2, retention_bytes=volume // 40, max_block_s=60)
    settings = settings.model_copy(update={"consumer_max_records": 50, "consumer_derive_interval_ms": 0})
    stop = asyncio.Event()
    metrics = ConsumerMetrics()
    task = asyncio.create_task(run_consumer(settings, store=store, bus=bus, metrics=metrics, stop=stop))
    producer = bus.producer()
    peak = 0
    for execution, payload in payloads:  # the sends wait whenever the consumer has not committed enough yet
        await producer.send(settings.events_topic, payload, key=execution.execution_id.encode(),
                            headers=((ORG_HEADER, b"acme"),))  # fmt: skip
        peak = max(peak, *bus.retained_bytes(settings.events_topic))
    ends = {TopicPartition(settings.events_topic, p): e for p, e in enumerate(bus.end_offsets(settings.events_topic))}
    deadline = time.monotonic() + 120
    while bus.committed(settings.consumer_group) != ends:
        assert not task.done(), task.exception()
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert peak <= volume // 40
    assert max(bus.start_offsets(settings.events_topic)) > 0  # it did trim
    assert normalise_totals(await totals(store)) == normalise_totals(expected_totals(executions))


def big_event(root: UUID, name: str, size: int) -> bytes:
    workflow = {"id": str(uuid.uuid4()), "name": "W", "module": ["w"]}
    event = {
        "id": str(uuid.uuid4()), "name": name, "timestamp": "2026-11-02T09:30:00Z", "trace_id": str(uuid.uuid4()),
        "span_id": str(uuid.uuid4()),
        "parent": {"type": "WORKFLOW", "span_id": str(root), "parent": None, "workflow_definition": workflow},
        "body": {"node_definition": workflow, "message": "x" * size, "severity": "INFO"},
    }  # fmt: skip
    return msgspec.json.encode(event)


async def wait_buffered(hub: LiveHub, bus: MemoryBus) -> None:
    """Until the hub has read everything produced."""
    deadline = time.monotonic() + 20
    while sum(hub.end_offsets().values()) < sum(bus.end_offsets(TOPIC)) or any(
        hub._consumer is not None and hub._consumer._positions.get(tp, 0) < end  # type: ignore[attr-defined]
        for tp, end in hub.end_offsets().items()
    ):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_the_live_hub_buffers_by_bytes_and_says_what_it_evicted() -> None:
    bus = MemoryBus(default_partitions=1)
    await bus.create_topics([TOPIC], 1)
    hub = LiveHub(bus, TOPIC, "acme", buffer_execution_bytes=5 * MIB, buffer_total_bytes=8 * MIB)
    await hub.start()
    try:
        producer = bus.producer()
        first, second = uuid.uuid4(), uuid.uuid4()
        for _ in range(6):  # 6 events of 1 MiB, each holding ~2 MiB (message and frame); the execution's bound is 5 MiB
            await producer.send(TOPIC, big_event(first, "node.execution.log", MIB), key=str(first).encode())
        await wait_buffered(hub, bus)
        assert hub.buffered_bytes() <= 5 * MIB
        assert hub.evicted_through(first, 0, "acme") == 3  # offsets 0-3 went; 4 and 5 are buffered
        with hub.subscribe(first, "acme") as late:
            assert [item.offset for item in await late.batch(100, 64 * MIB) or []] == [4, 5]

        for _ in range(2):  # another execution, ~4 MiB: over the total bound (8 MiB), the least recent one goes
            await producer.send(TOPIC, big_event(second, "node.execution.log", MIB), key=str(second).encode())
        await wait_buffered(hub, bus)
        assert hub.buffered_bytes() <= 8 * MIB
        assert hub.evicted_through(second, 0, "acme") < 6  # the newest execution (offsets 6, 7) kept everything
        assert hub.evicted_through(first, 0, "acme") == 5  # its whole buffer went: up to its last offset
        with hub.subscribe(first, "acme") as late:
            assert late.pending() == 0
    finally:
        await hub.stop()


async def test_a_subscriber_queue_is_bounded_by_bytes() -> None:
    bus = MemoryBus(default_partitions=1)
    await bus.create_topics([TOPIC], 1)
    hub = LiveHub(bus, TOPIC, "acme", queue_bytes=3 * MIB)
    await hub.start()
    try:
        root = uuid.uuid4()
        with hub.subscribe(root, "acme") as slow:
            producer = bus.producer()
            for _ in range(2):
                await producer.send(TOPIC, big_event(root, "node.execution.log", MIB), key=str(root).encode())
            await wait_buffered(hub, bus)
            assert not slow.overflowed and slow.pending() == 2
            for _ in range(2):
                await producer.send(TOPIC, big_event(root, "node.execution.log", MIB), key=str(root).encode())
            await wait_buffered(hub, bus)
            assert slow.overflowed and slow.pending() == 0  # dropped: nothing more held for it
    finally:
        await hub.stop()


def test_a_buffered_event_counts_its_message_and_frame() -> None:
    from spanline.api.live.frames import LiveEvent
    from spanline.bus.interface import BusMessage

    payload = big_event(uuid.uuid4(), "node.execution.log", 1000)
    item = LiveEvent.route(BusMessage(TOPIC, 0, 0, None, payload, (), 0), "acme")
    assert item is not None and item.prepare()
    assert held_bytes(item) >= len(item.message.value) + len(item.frame)
