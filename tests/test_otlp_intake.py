"""`POST /v1/traces` on a live server: traces from the real opentelemetry-sdk with the real OTLP/HTTP
exporter (protobuf, gzip) and OTLP JSON become one execution per trace, with node spans in the trace's
shape, GenAI and OpenInference usage priced by the price table, a failing span rejected with its message
and its exception as a log event; out-of-order and repeated exports change nothing; bad bodies are 400,
other media types 415, no key 401."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanline.core.config import Settings
from spanline.executor.pricing import PriceTable
from spanline.executor.providers.base import TokenUsage
from spanline.store.store import Store
from tests.intake_runtime import IntakeRuntime, intake_runtime, intake_settings
from tests.otlp_app import GENAI, OPENINFERENCE, TREE, export_request, recorded_spans, run_app

PROTOBUF = {"content-type": "application/x-protobuf"}


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
async def runtime(request: pytest.FixtureRequest, settings: Settings, store: Store) -> AsyncIterator[IntakeRuntime]:
    bootstrap = request.getfixturevalue("kafka_broker").bootstrap if request.param == "kafka" else None
    async with intake_runtime(intake_settings(settings, bootstrap), store) as running:
        yield running


@pytest.fixture
async def memory_runtime(settings: Settings, store: Store) -> AsyncIterator[IntakeRuntime]:
    async with intake_runtime(intake_settings(settings, None), store) as running:
        yield running


def execution_of(spans: Sequence[ReadableSpan]) -> str:
    context = spans[0].get_span_context()
    assert context is not None
    return str(UUID(int=context.trace_id))


async def stored_detail(runtime: IntakeRuntime, execution_id: str, spans: int, state: str) -> Any:
    """The detail once the consumer stored every span and the run's end (polled with a deadline)."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        response = await runtime.client.get(f"/v1/workflow-executions/{execution_id}/detail")
        if response.status_code == 200:
            detail = response.json()
            ended = detail["end"] is not None and (detail["error"] is not None) == (state == "REJECTED")
            if len(detail["spans"]) == spans and ended:
                return detail
        assert asyncio.get_running_loop().time() < deadline, response.text
        await asyncio.sleep(0.05)  # poll until the consumer has stored the trace


def assert_trace_shape(detail: Any) -> dict[str, Any]:
    """One workflow span, one node span per OTel span, parents as in the trace; the spans by label."""
    workflow = [s for s in detail["spans"] if s["name"] == "workflow.execution"]
    assert len(workflow) == 1 and workflow[0]["span_id"] == detail["span_id"]
    assert workflow[0]["attributes"]["label"] == "answer-question"
    nodes = {s["attributes"]["label"]: s for s in detail["spans"] if s["name"] == "node.execution"}
    assert set(nodes) == set(TREE)
    for name, parent in TREE.items():
        want = nodes[parent]["span_id"] if parent else detail["span_id"]
        assert nodes[name]["parent_span_id"] == want, name
    return nodes


def expected_cost(model: str, usage: TokenUsage) -> float:
    cost = PriceTable.load().cost_usd(model, usage)
    assert cost is not None, f"{model} is in the shipped price table"
    return cost


async def test_a_trace_from_the_otlp_exporter_is_one_execution_with_usage_by_model(runtime: IntakeRuntime) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"{runtime.base_url}/v1/traces", headers={"X-API-KEY": runtime.key}, compression=Compression.Gzip
    )
    results: list[SpanExportResult] = []
    exported: list[ReadableSpan] = []

    class Recording(InMemorySpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            exported.extend(spans)
            results.append(exporter.export(spans))
            return results[-1]

    await asyncio.to_thread(run_app, Recording())  # the exporter is synchronous: off the server's loop
    assert len(results) == len(TREE) and set(results) == {SpanExportResult.SUCCESS}
    detail = await stored_detail(runtime, execution_of(exported), len(TREE) + 1, "FULFILLED")
    nodes = assert_trace_shape(detail)
    assert detail["outputs"][0]["value"] == "because order matters"
    chat, llm, tool = nodes["chat gpt-4o-mini"], nodes["llm"], nodes["search-tool"]
    chat_usage = chat["usage_result"]["usage"][0]
    assert chat_usage["ml_model_name"] == GENAI["gen_ai.response.model"]
    assert chat_usage["ml_model_usage"]["input_token_count"] == GENAI["gen_ai.usage.input_tokens"]
    assert chat_usage["ml_model_usage"]["output_token_count"] == GENAI["gen_ai.usage.output_tokens"]
    assert chat_usage["ml_model_usage"]["cache_read_input_tokens"] == GENAI["gen_ai.usage.cache_read.input_tokens"]
    chat_cost = expected_cost("gpt-4o-mini-2024-07-18", TokenUsage(812, 96, 512, 0))
    assert chat["usage_result"]["cost"][0]["value"] == pytest.approx(chat_cost)
    llm_usage = llm["usage_result"]["usage"][0]
    assert llm_usage["ml_model_name"] == OPENINFERENCE["llm.model_name"]
    assert llm_usage["ml_model_usage"]["input_token_count"] == 300
    llm_cost = expected_cost("claude-3-5-haiku-20241022", TokenUsage(300, 40))
    rejected = [e for e in tool["events"] if e["name"] == "node.execution.rejected"]
    assert rejected and rejected[0]["body"]["error"]["message"] == "tool timed out"
    logs = [e for e in tool["events"] if e["name"] == "node.execution.log"]
    assert [(e["body"]["severity"], e["body"]["message"]) for e in logs] == [("ERROR", "search backend did not answer")]
    retrieve_logs = [e["body"]["message"] for e in nodes["retrieve"]["events"] if e["name"] == "node.execution.log"]
    assert retrieve_logs == ["cache miss"]
    assert nodes["retrieve"]["usage_result"] is None
    query = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "dimensions": ["model", "provider"],
             "measures": ["input_tokens", "output_tokens", "cache_read_tokens", "calls", "cost_usd"]}  # fmt: skip
    rows = (await runtime.json("POST", "/v1/usage/query", json=query))["rows"]
    by_model = {(r["model"], r["provider"]): r for r in rows}
    assert set(by_model) == {("gpt-4o-mini-2024-07-18", "openai"), ("claude-3-5-haiku-20241022", "anthropic")}
    gpt, claude = by_model[("gpt-4o-mini-2024-07-18", "openai")], by_model[("claude-3-5-haiku-20241022", "anthropic")]
    assert (gpt["input_tokens"], gpt["output_tokens"], gpt["cache_read_tokens"], gpt["calls"]) == (812, 96, 512, 1)
    assert (claude["input_tokens"], claude["output_tokens"], claude["calls"]) == (300, 40, 1)
    assert float(gpt["cost_usd"]) == pytest.approx(chat_cost) and float(claude["cost_usd"]) == pytest.approx(llm_cost)
    totals = detail["usage_results"]
    assert sum(u["ml_model_usage"]["input_token_count"] for r in totals for u in r["usage"]) == 1112


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The OTLP/JSON encoding of the exporter's request: protobuf JSON with hex trace and span ids."""
    document = json_format.MessageToDict(export_request(spans))
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return document


async def test_out_of_order_and_repeated_exports_in_both_encodings_make_one_execution(
    memory_runtime: IntakeRuntime,
) -> None:
    runtime = memory_runtime
    spans = recorded_spans(fail_root=True)
    execution_id = execution_of(spans)
    children = [s for s in spans if s.parent is not None]
    root = [s for s in spans if s.parent is None]
    first = await runtime.client.post(
        "/v1/traces", content=export_request(children[::-1]).SerializeToString(), headers=PROTOBUF
    )
    assert first.status_code == 200 and first.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(first.content)
    assert not answer.HasField("partial_success")
    body = gzip.compress(json.dumps(otlp_json(root)).encode())
    second = await runtime.client.post(
        "/v1/traces", content=body, headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert second.status_code == 200 and second.json() == {}
    detail = await stored_detail(runtime, execution_id, len(TREE) + 1, "REJECTED")
    assert_trace_shape(detail)
    assert detail["error"]["message"] == "the request failed"
    assert detail["error"]["code"] == "NODE_EXECUTION"
    run = await runtime.json("GET", f"/workflows/v1/workflow-runs/{execution_id}")
    assert run["workflow_run"]["workflow_run"]["status"] == "failed"
    assert run["workflow_run"]["workflow_run"]["llm_token_usage"]["call_count"] == 2
    # per span: initiated, one log per span event, terminal; the root span also: the workflow's two
    published = sum(2 + len(span.events) for span in spans) + 2
    assert len(await runtime.topic_messages(published)) == published
    await runtime.consumed(published)
    # every span again, in both encodings: nothing changes
    again = await runtime.client.post("/v1/traces", json=otlp_json(spans))
    assert again.status_code == 200
    repeat = await runtime.client.post(
        "/v1/traces", content=export_request(spans).SerializeToString(), headers=PROTOBUF
    )
    assert repeat.status_code == 200
    await runtime.consumed(3 * published)
    assert await runtime.json("GET", f"/workflows/v1/workflow-runs/{execution_id}") == run
    after = await runtime.json("GET", f"/v1/workflow-executions/{execution_id}/detail")
    assert {s["span_id"]: len(s["events"]) for s in after["spans"]} == {
        s["span_id"]: len(s["events"]) for s in detail["spans"]
    }
    assert after["usage_results"] == detail["usage_results"]


async def test_bad_bodies_media_types_and_keys(memory_runtime: IntakeRuntime) -> None:
    runtime = memory_runtime
    spans = recorded_spans()
    for content, headers in (
        (b"\xff\xff\xff\xff", PROTOBUF),
        (b"{not json", {"content-type": "application/json"}),
        (b"[1, 2]", {"content-type": "application/json"}),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}).encode(),
         {"content-type": "application/json"}),
        (b"not gzip", {**PROTOBUF, "content-encoding": "gzip"}),
    ):  # fmt: skip
        response = await runtime.client.post("/v1/traces", content=content, headers=headers)
        assert response.status_code == 400, (content, response.text)
        assert isinstance(response.json()["detail"], str)
    body = export_request(spans).SerializeToString()
    response = await runtime.client.post("/v1/traces", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 415
    response = await runtime.client.post("/v1/traces", content=body, headers={**PROTOBUF, "content-encoding": "br"})
    assert response.status_code == 415
    response = await runtime.client.post("/v1/traces", content=body, headers={**PROTOBUF, "X-API-KEY": ""})
    assert response.status_code == 401
    bearer = {**PROTOBUF, "X-API-KEY": "", "Authorization": f"Bearer {runtime.key}"}
    assert (await runtime.client.post("/v1/traces", content=body, headers=bearer)).status_code == 200


async def test_malformed_spans_are_refused_in_partial_success(memory_runtime: IntakeRuntime) -> None:
    runtime = memory_runtime
    spans = recorded_spans()
    request = export_request(spans)
    broken = request.resource_spans[0].scope_spans[0].spans.add()
    broken.CopyFrom(request.resource_spans[0].scope_spans[0].spans[0])
    broken.trace_id = b"\x01\x02"
    response = await runtime.client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "trace_id" in answer.partial_success.error_message
    as_json = await runtime.client.post("/v1/traces", json=json_format.MessageToDict(request))
    assert as_json.status_code == 400  # base64 ids are not OTLP/JSON's hex: refused, not misread
    await stored_detail(runtime, execution_of(spans), len(TREE) + 1, "FULFILLED")
