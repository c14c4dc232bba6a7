"""The poll loop end to end on a bus and chDB: bad input goes to the DLQ with its reason while the good
events of its batch land; a ClickHouse outage commits nothing early and loses nothing; run totals are
derived for many batches at once and their offsets committed only after."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

import msgspec
import pytest
from clickhouse_connect.driver.client import Client

from spanline.bus.interface import ORG_HEADER, Bus, BusMessage, TopicPartition
from spanline.bus.kafka import KafkaBus
from spanline.bus.memory import MemoryBus
from spanline.consumer.dlq import REASON_HEADER, SOURCE_OFFSET_HEADER, DeadLetterPublisher
from spanline.consumer.loop import ConsumerLoop, LoopOptions
from spanline.consumer.metrics import ConsumerMetrics
from spanline.consumer.readback import totals
from spanline.consumer.rows import BatchRows, BucketKey, ExecutionKey
from spanline.consumer.service import run_consumer
from spanline.core.config import Settings
from spanline.store.client import create_clickhouse_client
from spanline.store.store import Store, StoreUnavailableError
from tests.consumer_events import Execution, expected_totals, generate_execution, normalise_totals

T = TypeVar("T")


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def produce(bus: Bus, topic: str, executions: list[Execution], extra: list[tuple[bytes, Any]] = ()) -> None:  # type: ignore[assignment]
    producer = bus.producer()
    await producer.start()
    for execution in executions:
        headers = ((ORG_HEADER, execution.org.encode()),) if execution.org else ()
        for payload in execution.payloads():
            await producer.send(topic, payload, key=execution.execution_id.encode(), headers=headers)
    for payload, headers in extra:
        await producer.send(topic, payload, key=b"bad", headers=headers)
    await producer.flush()
    await producer.stop()


@pytest.fixture(params=["memory", "kafka"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        yield MemoryBus(default_partitions=3)
        return
    kafka = KafkaBus(request.getfixturevalue("kafka_broker").bootstrap, linger_ms=5)
    yield kafka
    await kafka.close()


def isolated(settings: Settings, **changes: Any) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "events_topic": f"events-{suffix}",
            "dlq_topic": f"dlq-{suffix}",
            "consumer_group": f"group-{suffix}",
            "topic_partitions": 3,
            **changes,
        }
    )


def malformed_events() -> dict[str, tuple[bytes, tuple[tuple[str, bytes], ...]]]:
    good = generate_execution(random.Random(7)).events
    node_event = next(event for event in good if event["name"] == "node.execution.initiated")

    def variant(**changes: Any) -> bytes:
        return msgspec.json.encode({**node_event, "id": str(uuid.uuid4()), **changes})

    missing_id = {key: value for key, value in node_event.items() if key != "id"}
    return {
        "not_json": (b'{"id": "oops", ', ()),
        "schema": (variant(body={"node_definition": node_event["body"]["node_definition"]}), ()),
        "unknown_name": (variant(name="node.execution.exploded"), ()),
        "missing_id": (msgspec.json.encode(missing_id), ()),
        "too_large": (variant(body={**node_event["body"], "inputs": {"blob": "x" * 5000}}), ()),
        "no_root": (variant(parent=None), ()),
        "bad_org": (variant(), ((ORG_HEADER, b"\xff\xfe"),)),
    }


EXPECTED_REASONS = {
    "not_json": "not_json",
    "schema": "schema",
    "unknown_name": "unknown_name",
    "missing_id": "schema",
    "too_large": "too_large",
    "no_root": "no_root",
    "bad_org": "bad_org",
}


async def test_bad_input_goes_to_the_dlq_and_the_good_events_of_the_batch_land(
    bus: Bus, store: Store, settings: Settings
) -> None:
    settings = isolated(settings, max_event_bytes=4096)
    await bus.create_topics([settings.events_topic, settings.dlq_topic], 3)
    executions = [generate_execution(random.Random(seed), org="acme") for seed in range(5)]
    bad = malformed_events()
    await produce(bus, settings.events_topic, executions, list(bad.values()))

    metrics = ConsumerMetrics()
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, store=store, bus=bus, metrics=metrics, stop=stop))
    total = sum(len(e.events) for e in executions) + len(bad)

    async def all_done() -> bool:
        assert not task.done(), task.exception()
        return metrics.events + metrics.dlq >= total

    await wait_for(all_done, "every message handled")
    stop.set()
    await asyncio.wait_for(task, 30)
    assert normalise_totals(await totals(store)) == normalise_totals(expected_totals(executions))
    assert metrics.dlq == len(bad)

    reader = bus.consumer([settings.dlq_topic], group_id=None)
    await reader.start()
    dead: list[BusMessage] = []
    deadline = time.monotonic() + 30
    while len(dead) < len(bad):
        assert time.monotonic() < deadline, f"only {len(dead)} DLQ messages"
        dead.extend(await reader.getmany(max_records=100, timeout_ms=200))
    await reader.stop()
    by_value = {message.value: message for message in dead}
    for case, (payload, headers) in bad.items():
        message = by_value[payload]  # the original bytes, unchanged
        assert message.key == b"bad"
        assert message.header(REASON_HEADER) == EXPECTED_REASONS[case].encode(), case
        assert message.header(SOURCE_OFFSET_HEADER) is not None
        for name, value in headers:
            assert message.header(name) == value


class FlakyStore(Store):
    """A store that is unreachable while `down` is set, as ClickHouse during an outage."""

    down = True
    failures = 0

    async def run(self, work: Callable[[Client], T]) -> T:
        if self.down:
            self.failures += 1
            raise StoreUnavailableError("ClickHouse is down (test)")
        return await super().run(work)


class CheckingMemoryBus(MemoryBus):
    """Checks at every commit that each committed offset's event is already in ClickHouse, and its run
    derived."""

    def __init__(self, dsn: str) -> None:
        super().__init__(default_partitions=3)
        self._client = create_clickhouse_client(dsn)
        self.commits: list[dict[TopicPartition, int]] = []

    def commit(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            written = self._client.query(
                "SELECT uniqExact(kafka_offset) FROM events WHERE kafka_partition = {p:UInt32} "
                "AND kafka_offset < {o:UInt64}",
                parameters={"p": tp.partition, "o": offset},
            ).result_rows[0][0]
            assert written == offset, f"committed {tp} up to {offset} with only {written} events written"
            underived = self._client.query(
                "SELECT count() FROM (SELECT DISTINCT org, execution_id FROM events "
                "WHERE kafka_partition = {p:UInt32} AND kafka_offset < {o:UInt64}) "
                "WHERE (org, execution_id) NOT IN (SELECT org, execution_id FROM executions)",
                parameters={"p": tp.partition, "o": offset},
            ).result_rows[0][0]
            assert underived == 0, f"committed {tp} up to {offset} before {underived} runs were derived"
        self.commits.append(dict(offsets))
        super().commit(group_id, offsets)


async def test_clickhouse_outage_commits_nothing_early_and_loses_nothing(
    store: Store, settings: Settings, clickhouse_dsn: str
) -> None:
    settings = isolated(settings, consumer_max_records=500, consumer_derive_interval_ms=0)  # commit per batch
    bus = CheckingMemoryBus(clickhouse_dsn)
    executions = [generate_execution(random.Random(100 + seed)) for seed in range(60)]
    await produce(bus, settings.events_topic, executions)
    flaky = FlakyStore(clickhouse_dsn, threads=2)
    metrics = ConsumerMetrics()
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, store=flaky, bus=bus, metrics=metrics, stop=stop))

    async def retried_a_few_times() -> bool:
        return metrics.write_retries >= 4

    await wait_for(retried_a_few_times, "write retries during the outage")
    assert bus.committed(settings.consumer_group) == {}, "an offset was committed while nothing was written"
    assert (await totals(store))["events"] == 0

    flaky.down = False
    ends = {
        TopicPartition(settings.events_topic, p): end for p, end in enumerate(bus.end_offsets(settings.events_topic))
    }

    async def caught_up() -> bool:
        assert not task.done(), task.exception()
        return bus.committed(settings.consumer_group) == ends

    await wait_for(caught_up, "all offsets committed after the outage")
    stop.set()
    await asyncio.wait_for(task, 30)
    flaky.close()
    assert flaky.failures >= 4
    assert len(bus.commits) > 1
    assert normalise_totals(await totals(store)) == normalise_totals(expected_totals(executions))


async def test_run_totals_are_derived_once_for_many_batches_and_commits_wait_for_them(
    store: Store, settings: Settings, clickhouse_dsn: str
) -> None:
    # An interval longer than the test: the pending derivation happens when the topic is drained.
    settings = isolated(settings, consumer_max_records=100, consumer_derive_interval_ms=60_000)
    bus = CheckingMemoryBus(clickhouse_dsn)
    executions = [generate_execution(random.Random(500 + seed)) for seed in range(20)]
    await produce(bus, settings.events_topic, executions)
    metrics = ConsumerMetrics()
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, store=store, bus=bus, metrics=metrics, stop=stop))
    ends = {
        TopicPartition(settings.events_topic, p): end for p, end in enumerate(bus.end_offsets(settings.events_topic))
    }

    async def caught_up() -> bool:
        assert not task.done(), task.exception()
        return bus.committed(settings.consumer_group) == ends

    await wait_for(caught_up, "all offsets committed")
    stop.set()
    await asyncio.wait_for(task, 30)
    produced = sum(len(execution.events) for execution in executions)
    assert metrics.batches >= produced // 100 > 1  # many batches were written ...
    assert len(bus.commits) < metrics.batches  # ... and derived and committed in fewer, larger steps
    assert set(metrics.stage_seconds) == {"insert", "derive_executions", "derive_rollups"}
    assert normalise_totals(await totals(store)) == normalise_totals(expected_totals(executions))


async def test_sigterm_style_stop_finishes_the_batch_in_hand(store: Store, settings: Settings) -> None:
    settings = isolated(settings, consumer_max_records=200)
    bus = MemoryBus(default_partitions=3)
    executions = [generate_execution(random.Random(300 + seed)) for seed in range(30)]
    await produce(bus, settings.events_topic, executions)
    metrics = ConsumerMetrics()
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, store=store, bus=bus, metrics=metrics, stop=stop))

    async def first_batch() -> bool:
        return metrics.batches >= 1

    await wait_for(first_batch, "a first batch")
    stop.set()
    await asyncio.wait_for(task, 30)
    committed = sum(bus.committed(settings.consumer_group).values())
    written = (await totals(store))["events"]
    assert committed == metrics.events == written > 0


async def test_a_slow_derivation_does_not_hold_back_the_next_write_and_its_commit_waits_for_it() -> None:
    """The loop alone, with a writer whose derivation is held: the next batches are still written, and
    no offset is committed until the derivation covering them is done."""
    bus = MemoryBus(default_partitions=1)
    execution = generate_execution(random.Random(7))
    await produce(bus, "t", [execution])
    derivation_started, release = asyncio.Event(), asyncio.Event()
    written: list[int] = []

    class HeldWriter:
        async def write_events(self, rows: BatchRows) -> None:
            written.append(len(rows.intake))

        async def derive_totals(self, executions: Collection[ExecutionKey], buckets: Collection[BucketKey]) -> None:
            derivation_started.set()
            await release.wait()

    consumer = bus.consumer(["t"], group_id="g")
    await consumer.start()
    options = LoopOptions("acme", 1 << 20, max_records=1, poll_ms=10, derive_interval_s=0)
    loop = ConsumerLoop(consumer, HeldWriter(), DeadLetterPublisher(bus.producer(), "dlq"), options)
    task = asyncio.create_task(loop.run())
    await asyncio.wait_for(derivation_started.wait(), 30)

    async def written_beside_the_derivation() -> bool:
        assert not task.done(), task.exception()
        return len(written) >= 2

    await wait_for(written_beside_the_derivation, "the next batch written while the derivation is held")
    assert bus.committed("g") == {}, "an offset was committed before its derivation finished"
    release.set()
    end = {TopicPartition("t", 0): bus.end_offsets("t")[0]}

    async def all_committed() -> bool:
        assert not task.done(), task.exception()
        return bus.committed("g") == end

    await wait_for(all_committed, "every offset committed once the derivations ran")
    loop.request_stop()
    await asyncio.wait_for(task, 30)
    await consumer.stop()
    assert sum(written) == len(execution.events)
