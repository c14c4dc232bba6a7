"""`POST /monitoring/v1/events` on a live server, on the in-process bus and on a real Kafka broker: one
event and lists reach the events topic keyed by root execution id with the organization header and are
stored by the consumer; an invalid event → 400 naming its index and nothing of that request published;
limits → 413; a re-post changes nothing; a failed send → 503."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from spanline.api.app import create_app
from spanline.bus.interface import ORG_HEADER, BusUnavailableError
from spanline.bus.memory import MemoryBus, MemoryProducer
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.conftest import EXAMPLES_DIR
from tests.intake_runtime import IntakeRuntime, intake_runtime, intake_settings
from tests.live_server import serve

URL = "/monitoring/v1/events"


def example(name: str) -> list[dict[str, Any]]:
    lines = (EXAMPLES_DIR / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def root_of(events: list[dict[str, Any]]) -> str:
    return next(e["span_id"] for e in events if e["name"] == "workflow.execution.initiated" and e["parent"] is None)


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
async def runtime(request: pytest.FixtureRequest, settings: Settings, store: Store) -> AsyncIterator[IntakeRuntime]:
    bootstrap = request.getfixturevalue("kafka_broker").bootstrap if request.param == "kafka" else None
    async with intake_runtime(
        intake_settings(settings, bootstrap, max_event_bytes=4096, max_request_bytes=65536), store
    ) as running:
        yield running


async def detail(runtime: IntakeRuntime, execution_id: str) -> Any:
    return await runtime.json("GET", f"/v1/workflow-executions/{execution_id}/detail", params={"span_limit": 1000})


async def test_a_list_and_a_single_event_are_published_and_stored(runtime: IntakeRuntime) -> None:
    research, failing = example("research-nested.ndjson"), example("failing.ndjson")
    answer = await runtime.json("POST", URL, json=research)
    assert answer == {"success": True, "count": len(research)}
    for event in failing:  # one event per request, as a plain emitter may send them
        assert await runtime.json("POST", URL, json=event) == {"success": True, "count": 1}
    messages = await runtime.topic_messages(len(research) + len(failing))
    assert len(messages) == len(research) + len(failing)
    by_id = {json.loads(m.value)["id"]: m for m in messages}
    for events in (research, failing):
        root = root_of(events)
        for event in events:
            message = by_id[event["id"]]
            assert message.key == root.encode() and message.header(ORG_HEADER) == b"acme"
            assert json.loads(message.value) == event
    await runtime.consumed(len(messages))
    stored = await detail(runtime, root_of(research))
    assert {span["span_id"] for span in stored["spans"]} == {e["span_id"] for e in research}
    assert sorted(e["id"] for span in stored["spans"] for e in span["events"]) == sorted(e["id"] for e in research)
    rejected = await detail(runtime, root_of(failing))
    terminal = next(e for e in failing if e["name"] == "workflow.execution.rejected")
    assert rejected["error"]["code"] == terminal["body"]["error"]["code"]


async def test_an_invalid_event_is_named_and_nothing_of_its_request_is_published(runtime: IntakeRuntime) -> None:
    events = example("research-nested.ndjson")[:5]
    broken = [dict(e) for e in events]
    broken[2] = {**broken[2], "span_id": "not-a-uuid"}
    response = await runtime.client.post(URL, json=broken)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("event 2: schema")
    assert "span_id" in response.json()["detail"]
    orphan = [dict(events[1], parent=None)]  # a node event with no workflow above it
    response = await runtime.client.post(URL, json=orphan)
    assert response.status_code == 400 and response.json()["detail"].startswith("event 0: no_root")
    for body in (b"{not json", b'{"a": 1}', b"[1, 2]", b"17"):
        response = await runtime.client.post(URL, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, body
        assert isinstance(response.json()["detail"], str)
    sentinel = example("failing.ndjson")
    assert (await runtime.json("POST", URL, json=sentinel))["count"] == len(sentinel)
    messages = await runtime.topic_messages(len(sentinel))
    # only the sentinel arrived: had anything of the refused requests been published it would be first
    assert [json.loads(m.value)["id"] for m in messages] == [e["id"] for e in sentinel]


async def test_limits_answer_413(runtime: IntakeRuntime) -> None:
    events = example("failing.ndjson")
    big = dict(events[0], body={**events[0]["body"], "inputs": {"topic": "x" * 5000}})  # over 4096 bytes
    response = await runtime.client.post(URL, json=[events[0], big])
    assert response.status_code == 413 and response.json()["detail"].startswith("event 1: too_large")
    many = [events[0]] * (2 * runtime.settings.max_request_bytes // len(json.dumps(events[0])))
    response = await runtime.client.post(URL, json=many)
    assert response.status_code == 413 and "request body" in response.json()["detail"]
    response = await runtime.client.post(URL, json=events)
    assert response.status_code == 200
    messages = await runtime.topic_messages(len(events))
    assert [json.loads(m.value)["id"] for m in messages] == [e["id"] for e in events]


def without_event_order(detail: Any) -> Any:
    """The detail with each span's events as a set (their order: the test below)."""
    spans = [{**span, "events": sorted(span["events"], key=lambda e: e["id"])} for span in detail["spans"]]
    return {**detail, "spans": spans}


async def repost(runtime: IntakeRuntime) -> tuple[Any, Any]:
    """The detail of the research run once stored, and again after four re-posts (two in reverse)."""
    events = example("research-nested.ndjson")
    root = root_of(events)
    await runtime.json("POST", URL, json=events)
    await runtime.consumed(len(events))
    first = await detail(runtime, root)
    for _ in range(2):
        await runtime.json("POST", URL, json=events)
        await runtime.json("POST", URL, json=events[::-1])
    await runtime.consumed(5 * len(events))
    return first, await detail(runtime, root)


async def test_a_repost_changes_no_count_total_or_span(runtime: IntakeRuntime) -> None:
    events = example("research-nested.ndjson")
    root = root_of(events)
    await runtime.json("POST", URL, json=events)
    await runtime.consumed(len(events))
    first = await detail(runtime, root)
    run = await runtime.json("GET", f"/workflows/v1/workflow-runs/{root}")
    steps = await runtime.json(
        "GET", f"/api/v1/workflow/workflows/{first['spans'][0]['attributes']['workflow_id']}/runs/{root}/steps"
    )
    usage_query = {"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "dimensions": ["model"],
                   "measures": ["input_tokens", "output_tokens", "calls", "executions", "cost_usd"]}  # fmt: skip
    usage = await runtime.json("POST", "/v1/usage/query", json=usage_query)
    assert run["workflow_run"]["workflow_run"]["llm_token_usage"]["call_count"] > 0 and usage["rows"]
    for _ in range(2):
        await runtime.json("POST", URL, json=events)
        await runtime.json("POST", URL, json=events[::-1])
    await runtime.consumed(5 * len(events))
    assert without_event_order(await detail(runtime, root)) == without_event_order(first)
    assert await runtime.json("GET", f"/workflows/v1/workflow-runs/{root}") == run
    assert (
        await runtime.json(
            "GET", f"/api/v1/workflow/workflows/{first['spans'][0]['attributes']['workflow_id']}/runs/{root}/steps"
        )
        == steps
    )
    assert await runtime.json("POST", "/v1/usage/query", json=usage_query) == usage


async def test_a_repost_keeps_each_spans_event_order(runtime: IntakeRuntime) -> None:
    first, again = await repost(runtime)
    assert again == first


async def test_the_key_decides_the_organization(runtime: IntakeRuntime) -> None:
    events = example("failing.ndjson")
    globex = (await create_api_key(runtime.store, "globex")).key
    response = await runtime.client.post(
        URL, json=events, headers={"X-API-KEY": "", "Authorization": f"Bearer {globex}"}
    )
    assert response.status_code == 200
    messages = await runtime.topic_messages(len(events))
    assert {m.header(ORG_HEADER) for m in messages} == {b"globex"}
    await runtime.consumed(len(events))
    url = f"/v1/workflow-executions/{root_of(events)}/detail"
    assert (await runtime.client.get(url)).status_code == 404  # acme's key
    assert (await runtime.client.get(url, headers={"X-API-KEY": globex})).status_code == 200
    assert (await runtime.client.post(URL, json=events, headers={"X-API-KEY": ""})).status_code == 401


class _RefusingProducer(MemoryProducer):
    async def send_acked(self, topic: str, messages: Any) -> None:
        raise BusUnavailableError("broker gone")


class _RefusingBus(MemoryBus):
    def producer(self) -> MemoryProducer:
        return _RefusingProducer(self)


async def test_a_failed_send_answers_503(settings: Settings, store: Store) -> None:
    """Unit test of the route with a producer that cannot deliver (the real failure is a broker outage)."""
    key = (await create_api_key(store, "acme")).key
    async with (
        serve(create_app(settings, store=store, bus=_RefusingBus())) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        response = await client.post(URL, json=example("failing.ndjson"), headers={"X-API-KEY": key})
    assert response.status_code == 503
    assert "broker gone" in response.json()["detail"]
