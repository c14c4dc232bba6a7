"""Outages answer 503 with a JSON reason, never 500: the broker stopped under a running API (execute
endpoints), ClickHouse unreachable or closed under the app (reads). A failed send answers the request
that sent it, and the next request after the broker is back is served."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from spanline.api.app import create_app
from spanline.bus.kafka import KafkaBus
from spanline.bus.memory import MemoryBus
from spanline.core.config import Settings
from spanline.executor.examples import load_examples
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.kafka.broker import KafkaBroker
from tests.live_server import serve

SUMMARIZE = {"workflow_deployment_name": "summarize", "inputs": [{"name": "text", "value": "outage"}]}
READS = [
    "/v1/workflow-executions",
    f"/v1/workflow-executions/{uuid.uuid4()}/detail",
    f"/v1/workflows/executions/{uuid.uuid4()}/status",
    "/api/v1/workflow/workflows",
    f"/workflows/v1/workflow-runs/{uuid.uuid4()}",
]


def assert_unavailable(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 503, (response.request.url, response.status_code, response.text)
    body = response.json()
    assert body["reason"] == reason and body["detail"]
    assert response.headers["retry-after"]


@pytest.fixture
async def kafka_api(
    settings: Settings, store: Store, kafka_broker: KafkaBroker
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    suffix = uuid.uuid4().hex[:8]
    kafka_settings = settings.model_copy(
        update={
            "kafka_bootstrap": kafka_broker.bootstrap,
            "events_topic": f"events-{suffix}",
            "executions_topic": f"executions-{suffix}",
            "dlq_topic": f"dlq-{suffix}",
            "publish_timeout_s": 3.0,
            "execute_timeout_s": 5.0,
        }
    )
    key = (await create_api_key(store, "acme")).key
    await load_examples(store, "acme")
    app = create_app(kafka_settings, store=store, bus=KafkaBus(kafka_broker.bootstrap))
    async with (
        serve(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": key}, timeout=60) as client,
    ):
        yield client, kafka_settings


async def test_a_stopped_broker_answers_the_execute_endpoints_503_and_the_next_request_after_it_is_served(
    kafka_api: tuple[httpx.AsyncClient, Settings], kafka_broker: KafkaBroker
) -> None:
    client, _ = kafka_api
    assert (await client.post("/v1/execute-workflow-async", json=SUMMARIZE)).status_code == 200
    await asyncio.to_thread(kafka_broker.stop)
    try:
        assert_unavailable(await client.post("/v1/execute-workflow-async", json=SUMMARIZE), "bus_unavailable")
        assert_unavailable(await client.post("/v1/execute-workflow", json=SUMMARIZE), "bus_unavailable")
        stream = await client.post(
            "/v1/workflow-deployments/summarize/execute-stream", json={"inputs": {"text": "outage"}}
        )
        assert_unavailable(stream, "bus_unavailable")
        arcee = await client.post("/api/v1/workflow/workflows/summarize/execute", json={"text": "outage"})
        assert_unavailable(arcee, "bus_unavailable")
    finally:
        await asyncio.to_thread(kafka_broker.start)
    # The failed sends were those requests' own: once the producer reconnects, every request is served.
    deadline = asyncio.get_running_loop().time() + 60
    while (await client.post("/v1/execute-workflow-async", json=SUMMARIZE)).status_code != 200:
        assert asyncio.get_running_loop().time() < deadline, "the API did not recover from the outage"
    for _ in range(5):
        assert (await client.post("/v1/execute-workflow-async", json=SUMMARIZE)).status_code == 200


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_clickhouse_answers_reads_503(settings: Settings) -> None:
    unreachable = Store(f"http://127.0.0.1:{closed_port()}/spanline", threads=1)
    app = create_app(settings, store=unreachable, bus=MemoryBus())
    try:
        async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            for path in [*READS, "/v1/organization"]:  # the key itself cannot be checked
                assert_unavailable(await client.get(path, headers={"X-API-KEY": "any"}), "store_unavailable")
            usage = await client.post("/v1/usage/query", json={}, headers={"X-API-KEY": "any"})
            assert_unavailable(usage, "store_unavailable")
            ready = await client.get("/readyz")
            assert ready.status_code == 503
    finally:
        unreachable.close()


async def test_a_store_closed_under_the_app_answers_reads_503(settings: Settings, store: Store) -> None:
    key = (await create_api_key(store, "acme")).key
    await load_examples(store, "acme")
    app = create_app(settings, store=store, bus=MemoryBus())
    async with (
        serve(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": key}, timeout=60) as client,
    ):
        assert (await client.get("/api/v1/workflow/workflows")).status_code == 200  # the key is cached now
        store.close()
        for path in READS:
            assert_unavailable(await client.get(path), "store_unavailable")
        assert_unavailable(await client.post("/v1/execute-workflow-async", json=SUMMARIZE), "store_unavailable")
