"""Two consumer group members on the real broker: a second member joins while the first is in the middle
of a batch (written, not yet derived or committed), so the group rebalances under it; later the second is
stopped abruptly in the middle of its own batch (its loop dies: no derivation, no commit) and leaves. The
first ends with every partition, and the store is exact: totals as generated, one rollup row per key."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from spanline.bus.interface import ORG_HEADER, TopicPartition
from spanline.bus.kafka import KafkaBus, KafkaConsumer
from spanline.consumer.dlq import DeadLetterPublisher
from spanline.consumer.loop import ConsumerLoop, LoopOptions
from spanline.consumer.readback import totals
from spanline.consumer.rows import BatchRows, BucketKey, ExecutionKey
from spanline.consumer.writer import EventBatchWriter
from spanline.store.store import Store
from tests.consumer_events import expected_totals, generate_execution, normalise_totals
from tests.kafka.broker import KafkaBroker
from tests.test_consumer_crash import PARTITIONS, end_offsets

DEADLINE_S = 120.0
ORGS = [None, "acme", "globex"]


@dataclass
class GatedWriter:
    """The real writer; when closed, a batch stops after its events are written (before its totals are
    derived and its offsets committed) until the gate opens."""

    inner: EventBatchWriter
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    batches: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    async def write_events(self, rows: BatchRows) -> None:
        await self.inner.write_events(rows)
        self.batches += 1
        if not self.gate.is_set():
            self.held.set()
            await self.gate.wait()

    async def derive_totals(self, executions: Collection[ExecutionKey], buckets: Collection[BucketKey]) -> None:
        await self.inner.derive_totals(executions, buckets)


@dataclass
class Member:
    consumer: KafkaConsumer
    writer: GatedWriter
    loop: ConsumerLoop
    task: asyncio.Task[None] | None = None


async def until(condition: Callable[[], bool], what: str, deadline: float) -> None:
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline


@pytest.mark.kafka
async def test_rebalance_mid_batch_and_an_abrupt_stop_keep_totals_exact(
    kafka_broker: KafkaBroker, store: Store
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"rebalance-events-{suffix}", f"rebalance-group-{suffix}"
    bus = KafkaBus(kafka_broker.bootstrap, session_timeout_ms=6000, linger_ms=5)
    await bus.create_topics([topic], PARTITIONS)
    rng = random.Random(20261201)
    start = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    executions = [
        generate_execution(rng, start=start + timedelta(seconds=rng.randint(0, 900)), org=rng.choice(ORGS))
        for _ in range(120)
    ]
    messages = [
        (e.execution_id.encode(), payload, ((ORG_HEADER, e.org.encode()),) if e.org else ())
        for e in executions
        for payload in e.payloads()
    ]
    messages += [rng.choice(messages) for _ in range(len(messages) // 20)]  # produced twice
    producer = bus.producer()
    await producer.start()
    for key, payload, headers in messages:
        await producer.send(topic, payload, key=key, headers=headers)
    await producer.flush()
    await producer.stop()

    options = LoopOptions(default_org="default", max_event_bytes=1 << 20, max_records=100, poll_ms=100)

    def member() -> Member:
        consumer = bus.consumer([topic], group_id=group)
        writer = GatedWriter(EventBatchWriter(store))
        dead_letters = DeadLetterPublisher(bus.producer(), f"rebalance-dlq-{suffix}")
        return Member(consumer, writer, ConsumerLoop(consumer, writer, dead_letters, options))

    async def start(m: Member) -> None:
        await m.consumer.start()
        m.task = asyncio.create_task(m.loop.run())

    deadline = time.monotonic() + DEADLINE_S
    first, second = member(), member()
    first.writer.gate.clear()  # its first batch stops half done
    await start(first)
    await asyncio.wait_for(first.writer.held.wait(), DEADLINE_S)
    everything = {TopicPartition(topic, p) for p in range(PARTITIONS)}
    assert first.consumer.assignment() == everything

    await start(second)  # joins while the first is mid-batch: the group rebalances under it
    await until(
        lambda: bool(second.consumer.assignment()) and not (second.consumer.assignment() & first.consumer.assignment()),
        "the second member's share",
        deadline,
    )
    assert first.consumer.assignment() | second.consumer.assignment() == everything
    first.writer.gate.set()

    held_at = second.writer.batches
    second.writer.held.clear()
    second.writer.gate.clear()  # and is stopped abruptly in the middle of a later batch
    await asyncio.wait_for(second.writer.held.wait(), DEADLINE_S)
    assert second.writer.batches > held_at
    assert second.task is not None
    second.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second.task
    await second.consumer.stop()

    ends = {TopicPartition(topic, p): n for p, n in (await end_offsets(kafka_broker.bootstrap, topic)).items() if n}
    await until(lambda: first.consumer.assignment() == everything, "the first member taking every partition", deadline)
    while await bus.committed_offsets(group, topic) != ends:
        assert first.task is not None and not first.task.done(), "the first member's loop ended"
        assert time.monotonic() < deadline, "the group did not commit every partition's end"
        await asyncio.sleep(0.2)  # polling the broker for the group's commits
    first.loop.request_stop()
    assert first.task is not None
    await first.task
    await first.consumer.stop()
    await bus.close()

    assert normalise_totals(await totals(store)) == normalise_totals(expected_totals(executions))
    # Bucket by bucket, each rollup row counts its calls once: the minute rows sum what the usage rows hold.
    from_usage = await store.query(
        "SELECT org, toDateTime(toStartOfMinute(timestamp)) AS m, model, count(), sum(input_tokens), sum(cost_usd) "
        "FROM usage FINAL GROUP BY org, m, model ORDER BY org, m, model"
    )
    from_rollup = await store.query(
        "SELECT org, toDateTime(minute) AS m, model, sum(calls), sum(input_tokens), sum(cost_usd) "
        "FROM usage_rollup_minute FINAL GROUP BY org, m, model ORDER BY org, m, model"
    )
    assert from_rollup == from_usage and len(from_usage) > 10
    minute = await store.query("SELECT sum(calls), sum(input_tokens), sum(cost_usd) FROM usage_rollup_minute FINAL")
    hour = await store.query("SELECT sum(calls), sum(input_tokens), sum(cost_usd) FROM usage_rollup_hour FINAL")
    assert minute == hour
