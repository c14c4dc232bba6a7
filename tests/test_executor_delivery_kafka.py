"""Executor delivery on the real broker with workers as separate processes: SIGKILLed workers leave no
run without an end and double nothing; a broker away for 10 s mid-run loses no event."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from uuid import UUID

import pytest

from spanline.bus.kafka import KafkaBus
from spanline.core.config import Settings
from spanline.events.models import Event
from spanline.executor.pricing import PriceTable
from spanline.executor.providers.local import LocalProvider
from spanline.executor.runner import WorkflowRunner
from spanline.executor.tracing import build_tracer_provider, executor_tracer
from tests.executor_fleet import ExecutorFleet, RunLog, RunShape, fan_out_request, publish_requests, run_shape
from tests.kafka.broker import KafkaBroker

TOPIC_TEXT = "partitions"


@pytest.fixture
def fleet_settings(settings: Settings, kafka_broker: KafkaBroker) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "kafka_bootstrap": kafka_broker.bootstrap,
            "events_topic": f"events-{suffix}",
            "executions_topic": f"executions-{suffix}",
            "executor_group": f"executor-{suffix}",
            "topic_partitions": 6,
        }
    )


def start_fleet(settings: Settings, *, latency_ms: int, concurrency: int, workers: int) -> ExecutorFleet:
    fleet = ExecutorFleet(
        settings,
        {
            "SPANLINE_LOCAL_PROVIDER_LATENCY_MS": str(latency_ms),
            "SPANLINE_EXECUTOR_CONCURRENCY": str(concurrency),
            "SPANLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",  # the broker's minimum: a dead worker is noticed in 6 s
        },
    )
    for _ in range(workers):
        fleet.spawn()
    return fleet


@pytest.fixture
def fleets() -> Iterator[list[ExecutorFleet]]:
    started: list[ExecutorFleet] = []
    yield started
    for fleet in started:
        fleet.close()


async def clean_run_shape() -> RunShape:
    """The same request run once in-process, with nothing in the way."""
    events: list[Event] = []

    def sink(org: str, root: UUID, event: Event) -> None:
        events.append(event)

    provider = build_tracer_provider(sink)
    runner = WorkflowRunner(executor_tracer(provider), sink, {"local": LocalProvider(0)}, PriceTable.load())
    await runner.run(fan_out_request(uuid.uuid4(), TOPIC_TEXT))
    provider.shutdown()
    return run_shape(events)


async def prepare(settings: Settings, count: int) -> tuple[KafkaBus, set[UUID]]:
    bus = KafkaBus(str(settings.kafka_bootstrap))
    await bus.create_topics([settings.events_topic, settings.executions_topic], settings.topic_partitions)
    ids = {uuid.uuid4() for _ in range(count)}
    return bus, ids


def assert_each_run_once(log: RunLog, ids: set[UUID], clean: RunShape) -> None:
    assert log.ended >= ids
    for execution_id in ids:
        shape = run_shape(log.events[execution_id].values())
        # one initiated and one terminal event per span, the clean run's spans, events and tokens
        assert shape == clean, (execution_id, shape, clean)


async def test_sigkilled_workers_leave_every_run_ended_exactly_once(
    fleet_settings: Settings, fleets: list[ExecutorFleet]
) -> None:
    clean = await clean_run_shape()
    assert set(clean.spans.values()) == {(1, 1)} and clean.tokens > 0
    bus, ids = await prepare(fleet_settings, 200)
    fleet = start_fleet(fleet_settings, latency_ms=1500, concurrency=8, workers=3)
    fleets.append(fleet)
    await publish_requests(bus, fleet_settings.executions_topic, (fan_out_request(i, TOPIC_TEXT) for i in ids))

    reader = bus.consumer([fleet_settings.events_topic], group_id=None)
    await reader.start()
    log = RunLog()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 240
    ended_at_last_kill = 0
    try:
        while not log.ended >= ids:
            assert loop.time() < deadline, f"{len(ids - log.ended)} runs without an end"
            await log.read(reader)
            started = {root for root in log.events if root in ids}
            # kill while runs are in flight, each time after the fleet made progress since the last kill
            if fleet.killed < 5 and len(log.ended) >= ended_at_last_kill + 15 and started - log.ended:
                fleet.kill_one()
                ended_at_last_kill = len(log.ended)
        # whatever a dead worker had sent before its run was re-run elsewhere is in the topic by now
        while await log.read(reader, timeout_ms=1000):
            pass
    finally:
        await reader.stop()
    assert fleet.killed == 5
    assert log.copies > 0  # some runs were re-run after a kill: the scenario happened
    assert_each_run_once(log, ids, clean)


async def test_a_broker_away_for_ten_seconds_mid_run_loses_no_event(
    fleet_settings: Settings, fleets: list[ExecutorFleet], kafka_broker: KafkaBroker
) -> None:
    clean = await clean_run_shape()
    bus, ids = await prepare(fleet_settings, 40)
    fleet = start_fleet(fleet_settings, latency_ms=3000, concurrency=20, workers=1)
    fleets.append(fleet)
    await publish_requests(bus, fleet_settings.executions_topic, (fan_out_request(i, TOPIC_TEXT) for i in ids))

    log = RunLog()
    reader = bus.consumer([fleet_settings.events_topic], group_id=None)
    await reader.start()
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + 60
        while not any(root in ids for root in log.events):  # runs are under way
            assert loop.time() < deadline
            await log.read(reader)
    finally:
        await reader.stop()
    await asyncio.to_thread(kafka_broker.stop)
    await asyncio.sleep(10)  # the outage itself, not a synchronisation
    await asyncio.to_thread(kafka_broker.start)

    reader = bus.consumer([fleet_settings.events_topic], group_id=None)
    await reader.start()
    log = RunLog()  # everything again from the beginning, as the store would have it
    try:
        deadline = loop.time() + 120
        while not log.ended >= ids:
            assert loop.time() < deadline, f"{len(ids - log.ended)} runs without an end"
            await log.read(reader)
    finally:
        await reader.stop()
    assert all(process.poll() is None for process in fleet.processes)  # the worker rode it out
    assert_each_run_once(log, ids, clean)
