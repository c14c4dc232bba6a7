"""The detail API's keyset span pagination on a big execution, and its refusals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from spanline.api.app import create_app
from spanline.bus.memory import MemoryBus
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.big_execution import SPANS, StoredExecution, big_execution
from tests.refusals import assert_refused_naming
from tests.store_ingest import ingest


@pytest.fixture
async def api(settings: Settings, store: Store) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    app = create_app(settings, store=store, bus=MemoryBus())
    keys = {org: (await create_api_key(store, org)).key for org in ("acme", "globex")}
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://spanline.test", timeout=120) as client:
            yield client, keys["acme"], keys["globex"]


@pytest.fixture
async def big_api(big_execution_100k: StoredExecution) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The API over the session's 100,000-span execution, with a key of its organization."""
    store = Store(big_execution_100k.dsn, threads=2)
    try:
        key = (await create_api_key(store, big_execution_100k.org)).key
        app = create_app(Settings(clickhouse_dsn=store.dsn, kafka_bootstrap=None), store=store, bus=MemoryBus())
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://spanline.test", timeout=120) as client:
                yield client, key
    finally:
        store.close()


async def test_paging_100k_spans_returns_every_span_once_in_order(
    big_api: tuple[httpx.AsyncClient, str], big_execution_100k: StoredExecution
) -> None:
    client, key = big_api
    execution_id, expected = big_execution_100k.execution_id, big_execution_100k.order

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"span_limit": 1000}
        if cursor:
            params["prev_span_id"] = cursor
        page = await client.get(
            f"/v1/workflow-executions/{execution_id}/detail", params=params, headers={"X-API-KEY": key}
        )
        assert page.status_code == 200, page.text
        spans = page.json()["spans"]
        if not spans:
            break
        seen += [span["span_id"] for span in spans]
        cursor = spans[-1]["span_id"]
        if len(spans) < 1000:
            break
    assert len(seen) == SPANS
    assert seen == [span_id for _, span_id in expected]

    first = (await client.get(f"/v1/workflow-executions/{execution_id}/detail", headers={"X-API-KEY": key})).json()
    assert len(first["spans"]) == 100  # the default span_limit
    assert first["span_id"] == str(execution_id)
    assert first["inputs"] == [
        {"id": str(uuid.uuid5(execution_id, "question")), "name": "question", "type": "STRING", "value": "big?"}
    ]
    root = first["spans"][0]
    assert root["name"] == "workflow.execution" and root["parent_span_id"] is None
    assert [e["name"] for e in root["events"]] == ["workflow.execution.initiated"]
    node = first["spans"][1]
    assert node["name"] == "node.execution" and node["parent_span_id"] == str(execution_id)
    assert node["attributes"]["label"].startswith("Node")


async def test_detail_refusals(api: tuple[httpx.AsyncClient, str, str], store: Store) -> None:
    client, key, other_key = api
    execution_id = uuid.uuid4()
    payloads, _ = big_execution(execution_id, 10)
    await ingest(store, payloads, org="acme", key=str(execution_id).encode())
    url = f"/v1/workflow-executions/{execution_id}/detail"
    mine = {"X-API-KEY": key}
    assert (await client.get(url, headers=mine)).status_code == 200
    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers={"X-API-KEY": other_key})).status_code == 404
    assert (await client.get(url, params={"prev_span_id": str(uuid.uuid4())}, headers=mine)).status_code == 404
    for bad_limit in (0, 1001):
        refused = await client.get(url, params={"span_limit": bad_limit}, headers=mine)
        assert_refused_naming(refused, "span_limit")
    assert_refused_naming(await client.get(url, params={"prev_span_id": "nope"}, headers=mine), "prev_span_id")
    assert (await client.get(f"/v1/workflow-executions/{uuid.uuid4()}/detail", headers=mine)).status_code == 404
    status = await client.get(f"/v1/workflows/executions/{execution_id}/status", headers=mine)
    assert status.json()["status"] == "INITIATED" and status.json()["execution_detail_url"].endswith("/detail")
    assert (
        await client.get(f"/v1/workflows/executions/{execution_id}/status", headers={"X-API-KEY": other_key})
    ).status_code == 404
