"""Workflows run through the execute endpoints on the in-process bus, with real uvicorn and chDB."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest

from spanline.bus.memory import MemoryBus
from spanline.core.config import Settings
from spanline.events.codec import decode_event
from spanline.events.execution_request import ExecutionRequest, encode_request
from spanline.events.lineage import root_execution_id
from spanline.events.models import (
    TERMINAL_NODE_EVENT_NAMES,
    TERMINAL_WORKFLOW_EVENT_NAMES,
    Event,
    NodeExecutionFulfilledEvent,
    NodeExecutionRejectedEvent,
    NodeExecutionStreamingEvent,
    WorkflowExecutionRejectedEvent,
    event_name,
)
from spanline.executor.examples import load_examples
from spanline.executor.pricing import PriceTable
from spanline.executor.providers.base import TokenUsage
from spanline.executor.providers.local import LocalProvider, local_usage
from spanline.executor.providers.openai_compat import OpenAICompatibleProvider
from spanline.executor.worker import ExecutorWorker
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from spanline.store.workflows import find_workflow
from tests.executor_runtime import Runtime, executor_runtime
from tests.gated_provider import GatedProvider
from tests.openai_stub import StubServer
from tests.refusals import assert_refused_naming
from tests.test_event_schemas import ENVELOPE, PER_EVENT

TERMINAL = TERMINAL_WORKFLOW_EVENT_NAMES | TERMINAL_NODE_EVENT_NAMES
LATENCY_MS = 300


@pytest.fixture
def model() -> GatedProvider:
    return GatedProvider(LATENCY_MS)


@pytest.fixture
async def runtime(
    settings: Settings, store: Store, stub_server: StubServer, model: GatedProvider
) -> AsyncIterator[Runtime]:
    tuned = settings.model_copy(update={"execute_timeout_s": 60.0})
    async with httpx.AsyncClient() as http:
        providers = {
            "local": model,
            "openai": OpenAICompatibleProvider(stub_server.base_url, "sk-test", client=http, timeout_s=5),
        }
        async with executor_runtime(tuned, store, providers) as running:
            yield running


async def execute(runtime: Runtime, workflow: str, **inputs: Any) -> dict[str, Any]:
    response = await runtime.client.post(
        "/v1/execute-workflow",
        json={
            "workflow_deployment_name": workflow,
            "inputs": [{"name": name, "type": "STRING", "value": value} for name, value in inputs.items()],
        },
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def by_span(events: list[Event]) -> dict[UUID, list[Event]]:
    spans: dict[UUID, list[Event]] = {}
    for event in events:
        spans.setdefault(event.span_id, []).append(event)
    return spans


async def test_research_workflow_events_are_complete_nested_and_schema_valid(runtime: Runtime) -> None:
    answer = await execute(runtime, "research", question="why keys?")
    execution_id = UUID(answer["execution_id"])
    assert answer["data"]["state"] == "FULFILLED"
    assert {output["name"] for output in answer["data"]["outputs"]} == {"answer", "plan"}

    raw_and_events = await runtime.events_of(execution_id)
    events = [event for _, event in raw_and_events]
    for raw, event in raw_and_events:
        document = orjson.loads(raw)
        ENVELOPE.validate(document)
        PER_EVENT[event_name(event)].validate(document)
        assert root_execution_id(event) == execution_id
    assert len({event.trace_id for event in events}) == 1

    spans = by_span(events)
    for span_events in spans.values():
        names = [event_name(event) for event in span_events]
        assert sum(name.endswith(".initiated") for name in names) == 1, names
        assert sum(name in TERMINAL for name in names) == 1, names
        assert names[0].endswith(".initiated") and names[-1] in TERMINAL, names

    top = spans[execution_id]
    assert top[0].parent is None
    workflow_spans = {sid for sid, evs in spans.items() if event_name(evs[0]).startswith("workflow.")}
    node_spans = set(spans) - workflow_spans
    for span_id in node_spans:
        parent = spans[span_id][0].parent
        assert parent is not None and parent.type == "WORKFLOW" and parent.span_id in workflow_spans
    (sub_span,) = workflow_spans - {execution_id}
    sub_parent = spans[sub_span][0].parent
    assert sub_parent is not None and sub_parent.type == "WORKFLOW_NODE" and sub_parent.span_id in node_spans
    assert sub_parent.parent is not None and sub_parent.parent.span_id == execution_id
    calling_node = spans[sub_parent.span_id][0]
    assert calling_node.parent is not None and calling_node.parent.span_id == execution_id

    top_level_nodes = Counter(
        event.body.node_definition.name  # type: ignore[union-attr]
        for sid in node_spans
        for event in spans[sid][:1]
        if event.parent is not None and event.parent.span_id == execution_id
    )
    # the conditional routed to exactly one of its two branches; the other branch never ran
    assert set(top_level_nodes) in (
        {"plan", "search_docs", "search_web", "route", "deep", "answer"},
        {"plan", "search_docs", "search_web", "route", "brief", "answer"},
    )
    assert len(node_spans) >= 6

    # the fan-out ran concurrently: both searches had started before either had finished
    searches = [
        spans[sid] for sid in node_spans if spans[sid][0].body.node_definition.name in ("search_docs", "search_web")
    ]  # type: ignore[union-attr]
    assert len(searches) == 2
    assert max(span[0].timestamp for span in searches) < min(span[-1].timestamp for span in searches)

    # model nodes stream their answer: the deltas add up to the node's output
    for span_id in node_spans:
        deltas = [e.body.output.delta for e in spans[span_id] if isinstance(e, NodeExecutionStreamingEvent)]
        end = spans[span_id][-1]
        if deltas:
            assert isinstance(end, NodeExecutionFulfilledEvent) and end.body.usage_result is not None
            assert "".join(str(d) for d in deltas) == end.body.outputs["output"]


async def read_stream(response: httpx.Response, sse: bool, on_first: Callable[[], None]) -> list[dict[str, Any]]:
    """The events of a streamed run; `on_first` runs when the first one reaches this client."""
    events: list[dict[str, Any]] = []
    async for line in response.aiter_lines():
        if sse:
            if not line.startswith("data: "):
                continue
            line = line.removeprefix("data: ")
        if not line.strip():
            continue
        if not events:
            on_first()
        events.append(json.loads(line))
    return events


@pytest.mark.parametrize("sse", [False, True], ids=["ndjson", "sse"])
async def test_execute_stream_delivers_events_in_order_before_the_run_ends(
    runtime: Runtime, model: GatedProvider, sse: bool
) -> None:
    headers = {"Accept": "text/event-stream"} if sse else {}
    model.gate.clear()  # the run cannot end until the first event has reached this client
    async with runtime.client.stream(
        "POST",
        "/v1/workflow-deployments/summarize/execute-stream",
        json={"inputs": {"text": "Kafka keeps order per partition."}},
        headers=headers,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream" if sse else "application/x-ndjson")
        # A response held back until the run ends would never deliver a first event: the wait times out.
        events = await asyncio.wait_for(read_stream(response, sse, model.gate.set), 60)
    names = [event["name"] for event in events]
    assert names[0] == "workflow.execution.initiated" and names[-1] == "workflow.execution.fulfilled"
    model_span = next(e["span_id"] for e in events if e["name"] == "node.execution.streaming")
    model_names = [e["name"] for e in events if e["span_id"] == model_span]
    assert model_names[0] == "node.execution.initiated" and model_names[-1] == "node.execution.fulfilled"
    assert set(model_names[1:-1]) == {"node.execution.streaming"} and len(model_names) > 3


@pytest.mark.parametrize(
    ("workflow", "inputs", "code", "message"),
    [
        ("research", {}, "INVALID_INPUTS", "missing required input 'question'"),
        ("failing", {"topic": "x"}, "NODE_EXECUTION", "draft is too short"),
    ],
)
async def test_rejections_carry_their_code(
    runtime: Runtime, workflow: str, inputs: dict[str, str], code: str, message: str
) -> None:
    answer = await execute(runtime, workflow, **inputs)
    assert answer["data"]["state"] == "REJECTED"
    assert answer["data"]["error"] == {"code": code, "message": message}
    events = [event for _, event in await runtime.events_of(UUID(answer["execution_id"]))]
    assert event_name(events[0]) == "workflow.execution.initiated"
    assert event_name(events[-1]) == "workflow.execution.rejected"


async def upload(runtime: Runtime, definition: dict[str, Any]) -> httpx.Response:
    return await runtime.client.post("/api/v1/workflow/workflows", json=definition)


async def test_a_node_over_its_timeout_is_rejected_with_node_timeout(runtime: Runtime) -> None:
    slow = {
        "name": "slow",
        "nodes": [
            {
                "id": "nap",
                "kind": "code",
                "timeout_s": 0.5,
                "config": {"code": "import time\ndef main():\n    time.sleep(30)\n    return 1"},
            }
        ],
    }
    assert (await upload(runtime, slow)).status_code == 201
    answer = await execute(runtime, "slow")
    assert answer["data"]["error"]["code"] == "NODE_TIMEOUT"


@pytest.mark.parametrize(
    ("node", "workflow_timeout", "code", "message"),
    [
        (
            {
                "id": "nap",
                "kind": "code",
                "timeout_s": 30,
                "config": {"code": "import time\ndef main():\n    time.sleep(30)"},
            },
            0.5,
            "WORKFLOW_TIMEOUT",
            "timed out",
        ),
        (
            {"id": "check", "kind": "code", "config": {"code": "def main():\n    raise NodeError('no budget left')"}},
            None,
            "USER_DEFINED_ERROR",
            "no budget left",
        ),
        (
            {
                "id": "check",
                "kind": "code",
                "config": {"code": "def main():\n    raise NodeError('quota', code='PROVIDER_QUOTA_EXCEEDED')"},
            },
            None,
            "PROVIDER_QUOTA_EXCEEDED",
            "quota",
        ),
    ],
    ids=["workflow-timeout", "user-defined", "own-code"],
)
async def test_more_rejection_codes(
    runtime: Runtime, node: dict[str, Any], workflow_timeout: float | None, code: str, message: str
) -> None:
    name = f"w_{uuid.uuid4().hex[:8]}"
    definition: dict[str, Any] = {"name": name, "nodes": [node]}
    if workflow_timeout is not None:
        definition["timeout_s"] = workflow_timeout
    assert (await upload(runtime, definition)).status_code == 201
    answer = await execute(runtime, name)
    assert answer["data"]["error"]["code"] == code and message in answer["data"]["error"]["message"]


async def test_a_provider_answering_5xx_is_llm_provider(runtime: Runtime) -> None:
    remote = {
        "name": "remote",
        "nodes": [
            {"id": "ask", "kind": "model", "config": {"model": "stub-500", "provider": "openai", "prompt": "hi"}}
        ],
    }
    assert (await upload(runtime, remote)).status_code == 201
    answer = await execute(runtime, "remote")
    assert answer["data"]["state"] == "REJECTED"
    assert answer["data"]["error"]["code"] == "LLM_PROVIDER"
    assert "500" in answer["data"]["error"]["message"]


async def test_usage_and_cost_are_the_price_table_applied_to_the_token_counts(runtime: Runtime) -> None:
    text = "Kafka keeps order per partition and consumers commit offsets."
    answer = await execute(runtime, "summarize", text=text)
    events = [event for _, event in await runtime.events_of(UUID(answer["execution_id"]))]
    model_end = next(e for e in events if isinstance(e, NodeExecutionFulfilledEvent) and e.body.usage_result)
    assert model_end.body.usage_result is not None
    (usage,) = model_end.body.usage_result.usage
    prompt = f"Summarize in two sentences:\n{text}"
    expected = local_usage([{"role": "user", "content": prompt}], model_end.body.outputs["output"])
    counts = usage.ml_model_usage
    assert (counts.input_token_count, counts.output_token_count) == (expected.input_tokens, expected.output_tokens)
    assert (usage.ml_model_name, usage.provider) == ("gpt-4o-mini", "local")
    price = PriceTable.load().price("gpt-4o-mini")
    assert price is not None
    uncached = expected.input_tokens - expected.cache_read_tokens - expected.cache_write_tokens
    by_hand = (
        uncached * price.input
        + expected.cache_read_tokens * price.cache_read
        + expected.cache_write_tokens * price.cache_write
        + expected.output_tokens * price.output
    ) / 1e6
    assert model_end.body.usage_result.cost is not None
    assert model_end.body.usage_result.cost[0].value == pytest.approx(by_hand, rel=1e-12)
    assert by_hand > 0 and PriceTable.load().cost_usd("gpt-4o-mini", TokenUsage(10, 0)) == pytest.approx(
        10 * price.input / 1e6
    )


async def test_unknown_workflows_are_404_and_bad_definitions_422(runtime: Runtime) -> None:
    missing = await runtime.client.post("/v1/execute-workflow", json={"workflow_deployment_name": "nope", "inputs": []})
    assert missing.status_code == 404
    assert (await runtime.client.post("/api/v1/workflow/workflows/nope/execute", json={})).status_code == 404
    stream = await runtime.client.post("/v1/workflow-deployments/nope/execute-stream", json={"inputs": {}})
    assert stream.status_code == 404
    cyclic = {
        "name": "loop",
        "nodes": [
            {"id": "a", "kind": "template", "config": {"template": "x"}, "after": [{"node": "b"}]},
            {"id": "b", "kind": "template", "config": {"template": "y"}, "after": [{"node": "a"}]},
        ],
    }
    refused = await upload(runtime, cyclic)
    assert_refused_naming(refused, "cycle")
    calls_missing = {"name": "caller", "nodes": [{"id": "s", "kind": "subworkflow", "config": {"workflow": "ghost"}}]}
    refused = await upload(runtime, calls_missing)
    assert_refused_naming(refused, "ghost")
    no_name = await runtime.client.post("/v1/execute-workflow", json={"inputs": []})
    assert_refused_naming(no_name, "workflow_deployment_name")


async def test_arcee_list_upload_versions_and_execute(runtime: Runtime) -> None:
    listed = (await runtime.client.get("/api/v1/workflow/workflows")).json()
    assert {item["name"] for item in listed} >= {"research", "summarize", "failing"}
    summarize = next(item for item in listed if item["name"] == "summarize")
    definition = json.loads((runtime.settings.schemas_dir.parent / "examples/workflows/summarize.json").read_text())
    definition["description"] = "second version"
    second = (await upload(runtime, definition)).json()
    assert (second["workflow_id"], second["version"]) == (summarize["workflow_id"], summarize["version"] + 1)
    started = await runtime.client.post(
        f"/api/v1/workflow/workflows/{summarize['workflow_id']}/execute", json={"text": "hello there"}
    )
    assert started.status_code == 200
    assert started.json()["message"] == "Workflow execution started"
    run_id = UUID(started.json()["run_id"])
    deadline = asyncio.get_running_loop().time() + 30
    while not any(event_name(e) == "workflow.execution.fulfilled" for _, e in await runtime.events_of(run_id)):
        assert asyncio.get_running_loop().time() < deadline, "the Arcee-started run did not finish"
        await asyncio.sleep(0.05)  # poll the bus for the run's end


async def test_other_organizations_cannot_see_or_run_the_workflows(runtime: Runtime) -> None:
    other = (await create_api_key(runtime.store, "globex")).key
    headers = {"X-API-KEY": other}
    listed = await runtime.client.get("/api/v1/workflow/workflows", headers=headers)
    assert listed.json() == []
    refused = await runtime.client.post(
        "/v1/execute-workflow", json={"workflow_deployment_name": "research", "inputs": []}, headers=headers
    )
    assert refused.status_code == 404


async def test_a_stopped_worker_leaves_its_runs_rejected_not_running(settings: Settings, store: Store) -> None:
    bus = MemoryBus()
    stopping = asyncio.Event()
    worker = asyncio.create_task(ExecutorWorker(bus, settings, providers={"local": LocalProvider(5_000)}).run(stopping))
    await load_examples(store, "acme")
    summarize = await find_workflow(store, "acme", "summarize")
    request = ExecutionRequest(
        execution_id=UUID("00000000-0000-4000-8000-00000000beef"),
        org="acme",
        workflow=summarize.snapshot(),
        inputs={"text": "a long wait"},
        requested_at=datetime.now(UTC),
    )
    producer = bus.producer()
    await producer.send(settings.executions_topic, encode_request(request), key=b"beef")
    reader = bus.consumer([settings.events_topic], group_id=None, from_beginning=True)
    await reader.start()
    seen: list[Event] = []
    deadline = asyncio.get_running_loop().time() + 30
    while not any(isinstance(e, NodeExecutionStreamingEvent) for e in seen):  # the model is mid-answer
        assert asyncio.get_running_loop().time() < deadline
        seen += [decode_event(m.value) for m in await reader.getmany(max_records=100, timeout_ms=200)]
    stopping.set()
    await worker  # stopped: whatever it publishes is on the bus now; read up to the end
    produced = sum(bus.end_offsets(settings.events_topic))
    while len(seen) < produced:
        assert asyncio.get_running_loop().time() < deadline
        seen += [decode_event(m.value) for m in await reader.getmany(max_records=100, timeout_ms=1000)]
    assert len(seen) == produced
    await reader.stop()
    spans = by_span(seen)
    assert all(sum(event_name(e) in TERMINAL for e in span) == 1 for span in spans.values())
    model_span = next(s for s in spans.values() if any(isinstance(e, NodeExecutionStreamingEvent) for e in s))
    assert isinstance(model_span[-1], NodeExecutionRejectedEvent)
    assert model_span[-1].body.error.code == "NODE_CANCELLED"
    workflow_end = spans[request.execution_id][-1]
    assert isinstance(workflow_end, WorkflowExecutionRejectedEvent)
    assert workflow_end.body.error.code == "WORKFLOW_CANCELLED"
