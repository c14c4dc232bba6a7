"""The detail page's body is written by hand for speed (the header by its model, the spans spliced in as
msgspec writes them): it must be byte for byte what its response model writes, events' values included."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from spanline.api.app import create_app
from spanline.api.routes.executions import ExecutionDetail
from spanline.bus.memory import MemoryBus
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.big_run import big_run
from tests.store_ingest import ingest

BIG = 123_456_789_012_345_678_901_234_567_890  # past 64 bits: a JSON number msgspec and pydantic both keep


@pytest.fixture
async def client(settings: Settings, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store=store, bus=MemoryBus())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://spanline.test", timeout=60) as http:
            yield http


def odd_node(execution_id: str) -> list[bytes]:
    """A node whose events carry what a generic writer could get wrong: a big integer, floats, non-ASCII
    and escaped text, nesting, a timestamp with an offset and no fraction, and spaces in the payload."""
    span_id = str(uuid.uuid4())
    parent = {"type": "WORKFLOW", "span_id": execution_id, "workflow_definition": None, "parent": None}
    node = {"id": str(uuid.uuid4()), "name": "Odd", "module": ["odd"]}

    def event(name: str, timestamp: str, body: dict[str, Any]) -> bytes:
        payload = {
            "id": str(uuid.uuid4()),
            "timestamp": timestamp,
            "api_version": "2024-10-25",
            "trace_id": str(uuid.uuid4()),
            "span_id": span_id,
            "parent": parent,
            "links": None,
            "name": name,
            "body": body,
        }
        return json.dumps(payload, indent=1).encode()

    return [
        event("node.execution.initiated", "2026-11-02T10:00:00+00:00", {"node_definition": node, "inputs": {}}),
        event(
            "node.execution.fulfilled",
            "2026-11-02T11:00:00.25+01:00",
            {
                "node_definition": node,
                "outputs": {"big": BIG, "floats": [0.1, 1.5, -2.0, 1e-7], "text": 'é ✓ "q" \\ \n', "deep": {"a": [{}]}},
            },
        ),
    ]


async def test_the_body_is_what_the_response_model_writes(client: httpx.AsyncClient, store: Store) -> None:
    execution_id = str(uuid.uuid4())
    payloads, order = big_run(execution_id, batches=2, steps=5)
    payloads[-1:-1] = odd_node(execution_id)  # before the workflow's end: it starts last
    await ingest(store, payloads, org="acme", key=execution_id.encode())
    headers = {"X-API-KEY": (await create_api_key(store, "acme")).key}
    url = f"/v1/workflow-executions/{execution_id}/detail"

    pages = [{"span_limit": 5}, {"span_limit": 5, "prev_span_id": order[4]}, {"span_limit": 1000}]
    bodies = []
    for params in pages:
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        model = ExecutionDetail.model_validate_json(response.content)
        assert response.content == model.model_dump_json(by_alias=True).encode()
        bodies.append(response.json())

    assert [len(body["spans"]) for body in bodies] == [5, 5, len(order) + 1]
    assert [span["span_id"] for span in bodies[1]["spans"]] == order[5:10]
    odd = bodies[2]["spans"][-1]
    assert odd["attributes"]["label"] == "Odd"
    assert [event["timestamp"] for event in odd["events"]] == [
        "2026-11-02T10:00:00.000000Z",
        "2026-11-02T10:00:00.250000Z",
    ]
    assert odd["events"][1]["body"]["outputs"]["big"] == BIG
    assert odd["events"][1]["body"]["outputs"]["text"] == 'é ✓ "q" \\ \n'
    assert odd["end_ts"] == "2026-11-02T10:00:00.250000Z"
    usage = [span["usage_result"] for span in bodies[2]["spans"] if span["usage_result"]]
    assert len(usage) == 2 and usage[0]["usage"][0]["ml_model_name"] == "gpt-4o-mini"  # steps 0 of each batch
    assert bodies[0]["usage_results"] is not None  # the header's part of the body, beside the spliced spans
