"""SSE event streams against a real uvicorn server on 127.0.0.1, with executor and consumer running:
join mid-run, resume without gap or duplicate, many concurrent clients, filters, waiting (tenancy:
tests/test_tenancy.py)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest

from spanline.api.live import LiveEvent, Subscription
from spanline.bus.interface import ORG_HEADER, BusMessage
from spanline.core.config import Settings
from spanline.store.store import Store
from tests.conftest import EXAMPLES_DIR
from tests.executor_runtime import Runtime, executor_runtime
from tests.gated_provider import GatedProvider
from tests.refusals import assert_refused_naming

LATENCY_MS = 1500


@pytest.fixture
def model() -> GatedProvider:
    return GatedProvider(LATENCY_MS)


@pytest.fixture
async def runtime(settings: Settings, store: Store, model: GatedProvider) -> AsyncIterator[Runtime]:
    fast_commits = settings.model_copy(update={"consumer_poll_ms": 50})
    async with executor_runtime(fast_commits, store, {"local": model}, with_consumer=True) as running:
        yield running
    model.gate.set()


async def read_sse(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    limit: int | None = None,
) -> list[dict[str, str]]:
    """SSE messages until the server closes the stream (or `limit` messages, then hang up)."""
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async with client.stream("GET", url, headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line == "":
                if current:
                    messages.append(current)
                    current = {}
                    if limit is not None and len(messages) >= limit:
                        break
            elif not line.startswith(":"):  # ":" lines are keep-alive comments
                field, _, value = line.partition(":")
                current[field] = value.removeprefix(" ")
    return messages


async def start_run(runtime: Runtime, text: str = "Kafka keeps order per partition.") -> UUID:
    started = await runtime.client.post(
        "/v1/execute-workflow-async",
        json={"workflow_deployment_name": "summarize", "inputs": [{"name": "text", "value": text}]},
    )
    assert started.status_code == 200, started.text
    return UUID(started.json()["execution_id"])


async def wait_until_stored(runtime: Runtime, execution_id: UUID) -> None:
    """Until the consumer has stored the run's first events (so a joining client needs history)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        status = await runtime.client.get(f"/v1/workflows/executions/{execution_id}/status")
        if status.status_code == 200 and status.json()["status"] in ("INITIATED", "STREAMING"):
            return
        assert status.json().get("status") != "FULFILLED", "the run ended before a client could join it"
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)  # poll the status endpoint


def event_ids(messages: list[dict[str, str]]) -> list[str]:
    return [orjson.loads(message["data"])["id"] for message in messages]


async def all_event_ids(runtime: Runtime, execution_id: UUID) -> list[str]:
    return [str(event.id) for _, event in await runtime.events_of(execution_id)]


async def test_a_client_joining_mid_run_gets_history_then_live_then_the_close(
    runtime: Runtime, model: GatedProvider
) -> None:
    model.gate.clear()  # the run stops after the model's first chunk until the client has joined
    execution_id = await start_run(runtime)
    await asyncio.wait_for(model.answering.wait(), 30)
    await wait_until_stored(runtime, execution_id)
    reader = asyncio.create_task(read_sse(runtime.client, f"/v1/workflow-executions/{execution_id}/events"))
    await wait_for_subscribers(runtime, 1)
    before_joining = len(await runtime.events_of(execution_id))
    model.gate.set()
    messages = await asyncio.wait_for(reader, 60)

    everything = await all_event_ids(runtime, execution_id)
    assert event_ids(messages) == everything
    ids = [int(message["id"]) for message in messages]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [message["event"] for message in messages][-1] == "workflow.execution.fulfilled"
    # produced before the client subscribed (history was needed) and after it (live was needed)
    assert 0 < before_joining < len(everything)


@pytest.mark.parametrize("resume_by", ["header", "query"])
async def test_a_dropped_client_resumes_without_gap_or_duplicate(runtime: Runtime, resume_by: str) -> None:
    execution_id = await start_run(runtime)
    url = f"/v1/workflow-executions/{execution_id}/events"
    before = await read_sse(runtime.client, url, limit=3)
    last_id = before[-1]["id"]
    resume: dict[str, Any] = (
        {"headers": {"Last-Event-ID": last_id}} if resume_by == "header" else {"params": {"last_event_id": last_id}}
    )
    after = await read_sse(runtime.client, url, **resume)
    assert event_ids(before) + event_ids(after) == await all_event_ids(runtime, execution_id)


async def test_two_hundred_concurrent_clients_each_receive_every_event(runtime: Runtime) -> None:
    execution_id = await start_run(runtime)
    url = f"/v1/workflow-executions/{execution_id}/events"
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
    async with httpx.AsyncClient(
        base_url=runtime.base_url, headers={"X-API-KEY": runtime.key}, limits=limits, timeout=120
    ) as client:
        streams = await asyncio.gather(*(read_sse(client, url) for _ in range(200)))
    expected = await all_event_ids(runtime, execution_id)
    assert len(expected) > 5
    assert all(event_ids(messages) == expected for messages in streams)


async def test_event_type_filters(runtime: Runtime) -> None:
    execution_id = await start_run(runtime)
    url = f"/v1/workflow-executions/{execution_id}/events"
    nodes = await read_sse(runtime.client, url, params={"event_types": "NODE"})
    assert nodes and all(message["event"].startswith("node.") for message in nodes)
    workflows = await read_sse(runtime.client, url, params={"event_types": "WORKFLOW"})
    assert [m["event"] for m in workflows][-1] == "workflow.execution.fulfilled"
    assert all(message["event"].startswith("workflow.") for message in workflows)
    everything = await all_event_ids(runtime, execution_id)
    assert sorted(event_ids(nodes) + event_ids(workflows)) == sorted(everything)
    refused = await runtime.client.get(url, params={"event_types": "SPANS"})
    assert_refused_naming(refused, "event_types", "SPANS")


async def test_a_stream_waits_for_an_execution_that_has_not_started(runtime: Runtime) -> None:
    execution_id = uuid.uuid4()
    lines = (
        (EXAMPLES_DIR / "failing.ndjson").read_text().replace("5c6e4337-15ba-4bdd-9772-19d30e7a269f", str(execution_id))
    )
    payloads = [line.encode() for line in lines.splitlines()]
    reader = asyncio.create_task(read_sse(runtime.client, f"/v1/workflow-executions/{execution_id}/events"))
    await wait_for_subscribers(runtime, 1)
    producer = runtime.bus.producer()
    for payload in payloads:
        await producer.send(
            runtime.settings.events_topic, payload, key=str(execution_id).encode(), headers=((ORG_HEADER, b"acme"),)
        )
    messages = await asyncio.wait_for(reader, 30)
    assert event_ids(messages) == [orjson.loads(p)["id"] for p in payloads]
    assert messages[-1]["event"] == "workflow.execution.rejected"


async def wait_for_subscribers(runtime: Runtime, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while (await runtime.client.get("/metrics")).json()["live_subscribers"] < count:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)  # poll until the stream has subscribed


async def test_a_client_that_hangs_up_is_unsubscribed(runtime: Runtime) -> None:
    execution_id = uuid.uuid4()  # never starts: only the client's leaving can end this stream
    reader = asyncio.create_task(read_sse(runtime.client, f"/v1/workflow-executions/{execution_id}/events"))
    await wait_for_subscribers(runtime, 1)
    reader.cancel()  # the client closes its connection
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    deadline = asyncio.get_running_loop().time() + 10
    while (await runtime.client.get("/metrics")).json()["live_subscribers"] > 0:
        assert asyncio.get_running_loop().time() < deadline, "the stream outlived its client"
        await asyncio.sleep(0.02)  # poll until the server has noticed


async def test_a_stream_needs_a_key(runtime: Runtime) -> None:
    # Another organization's execution waits like an unknown one: tests/test_tenancy.py.
    refused = await runtime.client.get(f"/v1/workflow-executions/{uuid.uuid4()}/events", headers={"X-API-KEY": ""})
    assert refused.status_code == 401


async def test_a_slow_subscriber_is_dropped_not_buffered_without_bound() -> None:
    subscription = Subscription(uuid.uuid4(), "acme", limit=3)
    line = (EXAMPLES_DIR / "failing.ndjson").read_bytes().splitlines()[0]
    item = LiveEvent.route(BusMessage("t", 0, 0, None, line, (), 0), "acme")
    assert item is not None and item.prepare()
    for _ in range(3):
        subscription.offer(item)
    assert not subscription.overflowed and subscription.pending() == 3
    subscription.offer(item)
    assert subscription.overflowed and subscription.closed
    subscription.offer(item)
    assert subscription.pending() == 0  # its queue is freed at once, nothing more is buffered
    assert await subscription.batch(500, 65536) is None  # and its stream ends without waiting


def test_the_joiner_sends_each_event_once_and_remembers_a_bounded_window() -> None:
    from spanline.api.routes.stream import _Joiner, _RecentIds

    execution_id = uuid.uuid4()
    joiner = _Joiner(execution_id, -1, ("workflow.", "node."))
    assert joiner.take(5, "node.execution.initiated", "e1", False)
    assert not joiner.take(5, "node.execution.initiated", "e1", False)  # same offset again
    assert not joiner.take(9, "node.execution.initiated", "e1", False, duplicate=True)  # produced twice (hub-marked)
    assert not joiner.take(3, "node.execution.fulfilled", "e2", False)  # behind the last offset sent
    assert not joiner.finished
    assert joiner.take(12, "workflow.execution.fulfilled", "e3", True) and joiner.finished
    window = _RecentIds(capacity=3)
    for event_id in ("a", "b", "c", "d"):
        window.add(event_id)
    assert "a" not in window and all(event_id in window for event_id in ("b", "c", "d"))
