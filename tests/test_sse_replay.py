"""SSE replay of finished executions from the store: out-of-order emitters, a fresh API process (cold
hub), resumes at or past the end, and a stream whose events the hub dropped before the consumer stored
them. Real uvicorn server, chDB store, the real consumer."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import msgspec
import orjson
import pytest

from spanline.api import app as app_module
from spanline.api.app import create_app
from spanline.api.live import LiveHub
from spanline.api.routes import executions as executions_route
from spanline.bus.interface import ORG_HEADER, TopicPartition
from spanline.bus.memory import MemoryBus
from spanline.consumer.service import run_consumer
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.live_server import serve
from tests.test_sse_events import read_sse

ORG = "acme"


def execution_events(execution_id: UUID, nodes: int) -> list[dict[str, Any]]:
    """A finished run: the workflow span and `nodes` node spans, each initiated and fulfilled."""
    trace = str(uuid.uuid4())
    workflow = {"id": str(uuid.uuid4()), "name": "wide", "module": ["wide"]}
    context = {"type": "WORKFLOW", "span_id": str(execution_id), "workflow_definition": workflow, "parent": None}

    def event(name: str, span_id: str, parent: Any, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "timestamp": "2026-11-02T09:30:00.000000Z", "api_version": "2024-10-25",
                "trace_id": trace, "span_id": span_id, "parent": parent, "name": name, "body": body}  # fmt: skip

    root = str(execution_id)
    events = [event("workflow.execution.initiated", root, None, {"workflow_definition": workflow, "inputs": {}})]
    for index in range(nodes):
        span = str(uuid.uuid4())
        node = {"id": str(uuid.uuid4()), "name": f"n{index}", "module": ["wide", f"n{index}"]}
        events.append(event("node.execution.initiated", span, context, {"node_definition": node, "inputs": {}}))
        events.append(event("node.execution.fulfilled", span, context, {"node_definition": node, "outputs": {}}))
    events.append(event("workflow.execution.fulfilled", root, None, {"workflow_definition": workflow, "outputs": {}}))
    return events


async def produce(bus: MemoryBus, settings: Settings, execution_id: UUID, events: list[dict[str, Any]]) -> None:
    producer = bus.producer()
    for event in events:
        await producer.send(
            settings.events_topic,
            msgspec.json.encode(event),
            key=str(execution_id).encode(),
            headers=((ORG_HEADER, ORG.encode()),),
        )


async def until_consumed(bus: MemoryBus, settings: Settings, timeout_s: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        committed = bus.committed(settings.consumer_group)
        ends = bus.end_offsets(settings.events_topic)
        if all(committed.get(tp, 0) >= end for tp, end in zip_partitions(settings, ends)):
            return
        assert asyncio.get_running_loop().time() < deadline, "the consumer did not catch up"
        await asyncio.sleep(0.05)  # the in-process bus has no commit notification


def zip_partitions(settings: Settings, ends: list[int]) -> list[tuple[TopicPartition, int]]:
    return [(TopicPartition(settings.events_topic, index), end) for index, end in enumerate(ends)]


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"consumer_poll_ms": 50, "consumer_derive_interval_ms": 50})


@contextlib.asynccontextmanager
async def api_client(app: Any, key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": key}, timeout=120) as client,
    ):
        yield client


async def test_a_shuffled_finished_execution_replays_every_stored_event_from_a_cold_hub(
    fast: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = MemoryBus(default_partitions=fast.topic_partitions)
    await bus.create_topics([fast.events_topic], fast.topic_partitions)
    execution_id = uuid.uuid4()
    events = execution_events(execution_id, 5_000)
    random.Random(12).shuffle(events)  # the terminal event is not last
    terminal_at = next(i for i, e in enumerate(events) if e["name"] == "workflow.execution.fulfilled")
    assert terminal_at < len(events) - 1000
    await produce(bus, fast, execution_id, events)
    stop = asyncio.Event()
    consumer = asyncio.create_task(run_consumer(fast, store=store, bus=bus, stop=stop))
    await until_consumed(bus, fast)
    stop.set()
    await consumer

    key = (await create_api_key(store, ORG)).key
    url = f"/v1/workflow-executions/{execution_id}/events"
    # A fresh API process: its hub starts at the group's committed offsets, so it holds none of these events.
    async with api_client(create_app(fast, store=store, bus=bus), key) as client:
        started = time.monotonic()
        messages = await asyncio.wait_for(read_sse(client, url), 60)
        replay_s = time.monotonic() - started
        assert len(messages) == 10_002
        assert [orjson.loads(m["data"])["id"] for m in messages] == [e["id"] for e in events]  # stream order
        last_id = messages[-1]["id"]
        for resume_at in (last_id, str(int(last_id) + 1000)):  # at, and past, the last event
            started = time.monotonic()
            resumed = await asyncio.wait_for(read_sse(client, url, headers={"Last-Event-ID": resume_at}), 5)
            resume_close_s = time.monotonic() - started
            assert resumed == [] and resume_close_s < 1.0, resume_close_s
        middle = messages[4_000]["id"]  # a resume in the middle gets exactly the rest, and closes
        rest = await asyncio.wait_for(read_sse(client, url, params={"last_event_id": middle}), 60)
        assert [m["id"] for m in rest] == [m["id"] for m in messages[4_001:]]

        # The detail page of the same execution decodes its events on a worker thread, not on the loop.
        decoded_on: set[int] = set()
        build_span = executions_route._span

        def recording_span(*args: Any) -> Any:
            decoded_on.add(threading.get_ident())
            return build_span(*args)

        monkeypatch.setattr(executions_route, "_span", recording_span)
        detail = await client.get(f"/v1/workflow-executions/{execution_id}/detail", params={"span_limit": 1000})
        assert detail.status_code == 200 and len(detail.json()["spans"]) == 1000
        assert decoded_on and threading.get_ident() not in decoded_on
    print(f"replay of 10,002 events: {replay_s:.2f} s; resume past the end closed in {resume_close_s * 1000:.0f} ms")


async def test_events_the_hub_dropped_before_they_were_stored_are_read_from_the_store(
    fast: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hub that keeps a few events (4 KiB, each held as message and frame): a consumer further behind than
    # that makes it drop ones not yet stored.
    hubs: list[LiveHub] = []

    def small_hub(*args: Any, **kwargs: Any) -> LiveHub:
        hubs.append(LiveHub(*args, **{**kwargs, "buffer_execution_bytes": 4096, "buffer_total_bytes": 4096}))
        return hubs[-1]

    monkeypatch.setattr(app_module, "LiveHub", small_hub)
    bus = MemoryBus(default_partitions=fast.topic_partitions)
    await bus.create_topics([fast.events_topic], fast.topic_partitions)
    key = (await create_api_key(store, ORG)).key
    execution_id = uuid.uuid4()
    events = execution_events(execution_id, 30)
    async with api_client(create_app(fast, store=store, bus=bus), key) as client:
        await produce(bus, fast, execution_id, events)  # the consumer is not running yet
        # The premise: the hub has read them and let the oldest go before the stream subscribes.
        deadline = asyncio.get_running_loop().time() + 30
        partitions = range(fast.topic_partitions)
        while max(hubs[0].evicted_through(execution_id, p, ORG) for p in partitions) < 0:
            assert asyncio.get_running_loop().time() < deadline, "the hub never read the produced events"
            await asyncio.sleep(0.01)
        url = f"/v1/workflow-executions/{execution_id}/events"
        stream = asyncio.create_task(read_sse(client, url))
        # Nothing is stored and the hub holds the last few (the terminal among them): the stream must not
        # close with those; it waits for the store.
        done, _ = await asyncio.wait({stream}, timeout=2)
        assert not done, "the stream closed without the events the hub had dropped"
        stop = asyncio.Event()
        consumer = asyncio.create_task(run_consumer(fast, store=store, bus=bus, stop=stop))
        try:
            messages = await asyncio.wait_for(stream, 60)
        finally:
            stop.set()
            await consumer
        assert [orjson.loads(m["data"])["id"] for m in messages] == [e["id"] for e in events]
