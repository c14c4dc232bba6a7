"""Each kind of value the store cannot hold, through the real consumer (in-process bus, chDB): the event goes
to the DLQ with its reason (or is stored with the documented clamp), and a normal run produced right after
it, in the same partition, is visible within 5 s. docs/consumer.md, "What the store can hold"."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from spanline.api.live.frames import LiveEvent
from spanline.bus.factory import create_bus, ensure_topics
from spanline.bus.interface import ORG_HEADER, BusMessage, TopicPartition
from spanline.bus.memory import MemoryBus
from spanline.consumer import decode as decode_module
from spanline.consumer.dlq import ERROR_HEADER, REASON_HEADER
from spanline.consumer.metrics import ConsumerMetrics
from spanline.consumer.service import run_consumer
from spanline.consumer.storable import MAX_CALLS, MAX_COMPUTE_NANOS
from spanline.core.config import Settings
from spanline.store.store import Store
from tests.consumer_events import generate_execution
from tests.kafka.broker import KafkaBroker
from tests.odd_events import COUNTS, fulfilled

VISIBLE_WITHIN_S = 5.0
ORG = "acme"


def odd(root: str, **changes: Any) -> bytes:
    return msgspec.json.encode(fulfilled(root, **changes))


def placeholder(root: str, raw: bytes) -> bytes:
    return odd(root, body__outputs={"s": "PLACEHOLDER"}).replace(b"PLACEHOLDER", raw)


def many_calls(root: str) -> bytes:
    calls = [{"ml_model_name": "", "ml_model_usage": {}}] * (MAX_CALLS + 1)
    return odd(root, body__usage_result={"usage": calls})


def deep(root: str) -> bytes:
    event = fulfilled(root, body__outputs={"x": "PLACEHOLDER"})
    return msgspec.json.encode(event).replace(b'"PLACEHOLDER"', b"[" * 5000 + b"]" * 5000)


# kind -> (the event, given the root execution id it belongs to; the DLQ reason)
REFUSED: dict[str, tuple[Callable[[str], bytes], str]] = {
    "cost 1e30 (beyond Decimal(38, 12))": (
        lambda r: odd(r, body__usage_result__cost__0__value=1e30),
        "cost_out_of_range",
    ),
    "cost -1e30": (lambda r: odd(r, body__usage_result__cost__0__value=-1e30), "cost_out_of_range"),
    "timestamp before 1900 (DateTime64)": (
        lambda r: odd(r, timestamp="1899-01-01T00:00:00Z"),
        "timestamp_out_of_range",
    ),
    "timestamp after 2299 (DateTime64)": (lambda r: odd(r, timestamp="2300-01-01T00:00:00Z"), "timestamp_out_of_range"),
    "usage before 1970 (DateTime minute)": (
        lambda r: odd(r, timestamp="1969-07-20T20:17:00Z"),
        "timestamp_out_of_range",
    ),
    "usage after 2106 (DateTime minute)": (
        lambda r: odd(r, timestamp="2107-01-01T00:00:00Z"),
        "timestamp_out_of_range",
    ),
    "tokens beyond UInt64": (lambda r: odd(r, **{f"{COUNTS}__input_token_count": 2**64}), "count_out_of_range"),
    "compute_nanos above the limit": (
        lambda r: odd(r, **{f"{COUNTS}__compute_nanos": MAX_COMPUTE_NANOS + 1}),
        "count_out_of_range",
    ),
    "negative tokens": (lambda r: odd(r, **{f"{COUNTS}__output_token_count": -5}), "schema"),
    "more calls than call_index (UInt16)": (many_calls, "too_many_calls"),
    "nesting 5000 deep": (deep, "too_deep"),
    "invalid UTF-8": (lambda r: placeholder(r, b"\xc3\x28"), "not_json"),
    "lone surrogate escape": (lambda r: placeholder(r, b"\\udc00"), "not_json"),
}


@dataclass
class Consumer:
    bus: MemoryBus
    store: Store
    settings: Settings
    metrics: ConsumerMetrics
    task: asyncio.Task[ConsumerMetrics]

    async def produce(self, payload: bytes, key: str) -> None:
        await self.bus.producer().send(
            self.settings.events_topic, payload, key=key.encode(), headers=((ORG_HEADER, ORG.encode()),)
        )

    async def produce_run_after(self, key: str) -> tuple[str, str, float]:
        """A normal run produced to `key`'s partition; (its id, its status, when it was produced)."""
        execution = generate_execution(random.Random(key), org=ORG)
        produced_at = time.monotonic()
        for payload in execution.payloads():
            await self.produce(payload, key)
        return execution.execution_id, execution.status, produced_at

    def dead_letters(self) -> list[tuple[bytes, dict[str, bytes]]]:
        topic = self.settings.dlq_topic
        found = []
        for partition, end in enumerate(self.bus.end_offsets(topic)):
            for message in self.bus.read(TopicPartition(topic, partition), 0, end):
                found.append((message.value, dict(message.headers)))
        return found


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str, deadline: float) -> None:
    while not await condition():
        assert time.monotonic() < deadline, f"not within the deadline: {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def consumer(store: Store, settings: Settings) -> AsyncIterator[Consumer]:
    settings = settings.model_copy(update={"max_event_bytes": 8 << 20, "consumer_poll_ms": 50})
    bus = MemoryBus(default_partitions=3)
    metrics = ConsumerMetrics()
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, store=store, bus=bus, metrics=metrics, stop=stop))
    yield Consumer(bus, store, settings, metrics, task)
    stop.set()
    await asyncio.wait_for(task, 30)


async def assert_run_visible(consumer: Consumer, execution_id: str, status: str, produced_at: float) -> None:
    async def visible() -> bool:
        assert not consumer.task.done(), consumer.task.exception()
        rows = await consumer.store.query(
            "SELECT status FROM executions FINAL WHERE org = {o:String} AND execution_id = {e:UUID}",
            {"o": ORG, "e": execution_id},
        )
        return rows == [(status,)]

    await wait_until(visible, f"run {execution_id} {status}", produced_at + VISIBLE_WITHIN_S)


@pytest.mark.parametrize("kind", list(REFUSED))
async def test_an_unstorable_value_is_dead_lettered_and_the_next_run_is_visible(consumer: Consumer, kind: str) -> None:
    build, reason = REFUSED[kind]
    root = generate_execution(random.Random(kind), org=ORG).execution_id  # the run the next one is produced to
    bad = build(root)
    await consumer.produce(bad, root)
    execution_id, status, produced_at = await consumer.produce_run_after(root)
    await assert_run_visible(consumer, execution_id, status, produced_at)

    dead = [headers for value, headers in consumer.dead_letters() if value == bad]
    assert len(dead) == 1, kind
    assert dead[0][REASON_HEADER] == reason.encode()
    assert dead[0][ERROR_HEADER]  # says what exactly
    stored = await consumer.store.query(
        "SELECT count() FROM events WHERE kafka_offset = 0 AND org = {o:String}", {"o": ORG}
    )
    assert stored == [(0,)], "the refused event was stored too"


async def test_a_value_the_insert_refuses_is_isolated_and_dead_lettered(
    consumer: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net behind the checks: with the decode-time check switched off, the measured case (cost 1e30,
    OverflowError in the insert, retried forever on main) is bisected out of its batch by the real write path."""
    monkeypatch.setattr(decode_module, "unstorable", lambda event: None)
    root = generate_execution(random.Random("net"), org=ORG).execution_id
    bad = odd(root, body__usage_result__cost__0__value=1e30)
    neighbours = [odd(root) for _ in range(6)]
    for payload in [*neighbours[:3], bad, *neighbours[3:]]:  # one batch: the refused event among good ones
        await consumer.produce(payload, root)
    execution_id, status, produced_at = await consumer.produce_run_after(root)
    await assert_run_visible(consumer, execution_id, status, produced_at)

    dead = [headers for value, headers in consumer.dead_letters() if value == bad]
    assert len(dead) == 1
    assert dead[0][REASON_HEADER] == b"write_refused"
    assert b"OverflowError" in dead[0][ERROR_HEADER]
    stored = await consumer.store.query(
        "SELECT toString(event_id) FROM usage FINAL WHERE execution_id = {e:UUID}", {"e": root}
    )
    # Every neighbour written whole; the refused event has no usage row (its insert failed). Its raw `events` row
    # may have landed in the same attempt (docs/consumer.md: the bisection is a safety net, not atomic).
    assert {row[0] for row in stored} == {msgspec.json.decode(n)["id"] for n in neighbours}
    assert consumer.metrics.dlq == 1


async def test_clamped_values_are_stored_as_documented(consumer: Consumer) -> None:
    """Stored, not dead-lettered: NUL characters as sent; a cost beyond 12 decimals truncated to the column's
    scale; a timestamp beyond microseconds rounded to the microsecond (the raw payload keeps both as sent)."""
    root = generate_execution(random.Random("clamps"), org=ORG).execution_id
    event = fulfilled(
        root,
        timestamp="2026-11-02T09:30:00.1234567Z",
        body__node_definition__name="nul\x00name",
        body__usage_result__cost__0__value=0.12345678901234567,
    )
    payload = msgspec.json.encode(event)
    await consumer.produce(payload, root)
    execution_id, status, produced_at = await consumer.produce_run_after(root)
    await assert_run_visible(consumer, execution_id, status, produced_at)

    (row,) = await consumer.store.query(
        "SELECT node_name, cost_usd, toString(timestamp) FROM usage FINAL WHERE event_id = {e:UUID}", {"e": event["id"]}
    )
    assert row == ("nul\x00name", Decimal("0.123456789012"), "2026-11-02 09:30:00.123457")
    (stored,) = await consumer.store.query(
        "SELECT payload FROM events FINAL WHERE event_id = {e:UUID}", {"e": event["id"]}
    )
    assert stored[0].encode() == payload
    assert consumer.dead_letters() == []


@pytest.mark.kafka
async def test_the_dlq_on_kafka_takes_every_message_up_to_the_event_limit(
    store: Store, settings: Settings, kafka_broker: KafkaBroker
) -> None:
    """A refused message of exactly SPANLINE_MAX_EVENT_BYTES, and one just above it (too_large), reach the DLQ on
    topics made by `ensure_topics` (the broker's own default limit is 1 MiB + 12 bytes, below a 1 MiB event and
    its DLQ headers), and a normal run after them is visible."""
    suffix = uuid.uuid4().hex[:8]
    settings = settings.model_copy(
        update={
            "kafka_bootstrap": kafka_broker.bootstrap,
            "events_topic": f"events-{suffix}",
            "dlq_topic": f"dlq-{suffix}",
            "executions_topic": f"executions-{suffix}",
            "consumer_group": f"group-{suffix}",
            "topic_partitions": 1,
            "max_event_bytes": 1_048_576,
        }
    )
    bus = create_bus(settings)
    await ensure_topics(bus, settings)
    root = generate_execution(random.Random("big"), org=ORG).execution_id
    old = "1800-01-01T00:00:00Z"
    small = odd(root, body__outputs={"blob": ""})
    small_old = odd(root, body__outputs={"blob": ""}, timestamp=old)
    refused = [  # schema-valid JSON, refused by the checks, at the limit; and one byte over it
        odd(root, body__outputs={"blob": "x" * (settings.max_event_bytes - len(small_old))}, timestamp=old),
        odd(root, body__outputs={"blob": "x" * (settings.max_event_bytes - len(small) + 1)}),
    ]
    assert [len(payload) for payload in refused] == [settings.max_event_bytes, settings.max_event_bytes + 1]
    producer = bus.producer()
    await producer.start()
    headers = ((ORG_HEADER, ORG.encode()),)
    for payload in refused:
        await producer.send(settings.events_topic, payload, key=root.encode(), headers=headers)
    execution = generate_execution(random.Random("after-big"), org=ORG)
    for payload in execution.payloads():
        await producer.send(settings.events_topic, payload, key=root.encode(), headers=headers)
    await producer.flush()
    produced_at = time.monotonic()
    await producer.stop()

    metrics = ConsumerMetrics()
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, store=store, bus=bus, metrics=metrics, stop=stop))
    running = Consumer(MemoryBus(), store, settings, metrics, task)  # only the store and task are used here
    await assert_run_visible(running, execution.execution_id, execution.status, produced_at + 25)  # broker start-up
    reader = bus.consumer([settings.dlq_topic], group_id=None)
    await reader.start()
    dead: dict[bytes, dict[str, bytes]] = {}
    deadline = time.monotonic() + 30
    while len(dead) < len(refused):
        assert time.monotonic() < deadline, f"{len(dead)} of {len(refused)} in the DLQ"
        for message in await reader.getmany(max_records=10, timeout_ms=500):
            dead[message.value] = dict(message.headers)
    await reader.stop()
    stop.set()
    await asyncio.wait_for(task, 30)
    assert [dead[payload][REASON_HEADER] for payload in refused] == [b"timestamp_out_of_range", b"too_large"]


@pytest.mark.parametrize("kind", list(REFUSED))
def test_the_live_feed_never_delivers_what_the_consumer_dead_letters(kind: str) -> None:
    build, _ = REFUSED[kind]
    root = generate_execution(random.Random(kind), org=ORG).execution_id
    item = LiveEvent.route(BusMessage("spanline.events", 0, 0, root.encode(), build(root), (), 0), ORG)
    assert item is None or not item.prepare()
    good = LiveEvent.route(BusMessage("spanline.events", 0, 1, root.encode(), odd(root), (), 0), ORG)
    assert good is not None and good.prepare()
