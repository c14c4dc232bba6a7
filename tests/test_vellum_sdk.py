"""The official Vellum SDK (vellum-ai) against a live uvicorn server: every method spanline serves returns
the SDK's own objects with the run's values. The SDK's pydantic types are the contract."""

from __future__ import annotations

import uuid
from uuid import UUID

import pytest
from vellum import (
    WorkflowExecutionActualStringRequest,
    WorkflowExecutionNodeResultEvent,
    WorkflowExecutionWorkflowResultEvent,
    WorkflowRequestStringInputRequest,
)
from vellum.client.core.api_error import ApiError

from spanline.events.models import NodeExecutionInitiatedEvent, WorkflowExecutionFulfilledEvent, event_name
from tests.executor_runtime import Runtime
from tests.test_vellum_sdk_status import runtime, sdk, status_when

__all__ = ["runtime"]  # the fixture, shared with the status tests

TEXT = [WorkflowRequestStringInputRequest(name="text", value="hello there")]


async def spans_on_the_bus(runtime: Runtime, execution_id: str) -> set[str]:
    return {str(event.span_id) for _, event in await runtime.events_of(UUID(execution_id))}


async def test_execute_workflow_then_status_and_detail_at_once(runtime: Runtime) -> None:
    client = sdk(runtime)
    executed = await client.execute_workflow(workflow_deployment_name="summarize", inputs=TEXT)
    assert executed.data.state == "FULFILLED"
    # No polling: once execute_workflow returned, the stored run is whole (read-your-writes).
    status = await client.workflows.workflow_execution_status(executed.execution_id)
    detail = await client.workflow_executions.retrieve_workflow_execution_detail(executed.execution_id)
    assert status.status == "FULFILLED"
    assert status.outputs == {output.name: output.value for output in executed.data.outputs}
    assert {span.span_id for span in detail.spans} == await spans_on_the_bus(runtime, executed.execution_id)
    assert len(detail.spans) == 3  # the workflow and its two nodes
    assert [output.value for output in detail.outputs] == [output.value for output in executed.data.outputs]
    assert detail.end is not None and detail.end.tzinfo is not None


async def test_execute_workflow_async_then_status(runtime: Runtime) -> None:
    client = sdk(runtime)
    started = await client.execute_workflow_async(workflow_deployment_name="summarize", inputs=TEXT)
    UUID(started.execution_id)
    status = await status_when(client, started.execution_id, "FULFILLED")
    assert status.outputs is not None and set(status.outputs) == {"summary"}


async def test_execute_workflow_stream_yields_the_sdks_workflow_events(runtime: Runtime) -> None:
    client = sdk(runtime)
    events = [
        event
        async for event in client.execute_workflow_stream(
            workflow_deployment_name="summarize", inputs=TEXT, external_id="stream-1"
        )
    ]
    assert all(isinstance(event, WorkflowExecutionWorkflowResultEvent) for event in events)
    execution_id = events[0].execution_id
    sent = [event for _, event in await runtime.events_of(UUID(execution_id))]
    own = [event_name(e).split(".")[-1].upper() for e in sent if str(e.span_id) == execution_id]
    assert [event.data.state for event in events] == own
    assert own[0] == "INITIATED" and own[-1] == "FULFILLED" and "STREAMING" in own
    assert {event.execution_id for event in events} == {execution_id}
    assert {event.external_id for event in events} == {"stream-1"}
    initiated, fulfilled = events[0], events[-1]
    assert [(value.name, value.value) for value in initiated.data.inputs or []] == [("text", "hello there")]
    end = next(e for e in sent if isinstance(e, WorkflowExecutionFulfilledEvent) and str(e.span_id) == execution_id)
    assert {output.name: output.value for output in fulfilled.data.outputs or []} == end.body.outputs
    assert fulfilled.data.ts == end.timestamp


async def test_execute_workflow_stream_with_node_events(runtime: Runtime) -> None:
    client = sdk(runtime)
    events = [
        event
        async for event in client.execute_workflow_stream(
            workflow_deployment_name="summarize", inputs=TEXT, event_types=["WORKFLOW", "NODE"]
        )
    ]
    nodes = [event for event in events if isinstance(event, WorkflowExecutionNodeResultEvent)]
    sent = [event for _, event in await runtime.events_of(UUID(events[0].execution_id))]
    node_spans = {str(e.span_id) for e in sent if isinstance(e, NodeExecutionInitiatedEvent)}
    assert len(node_spans) == 2
    assert {(event.data.node_result_id, event.data.state) for event in nodes} == {
        (span, state) for span in node_spans for state in ("INITIATED", "FULFILLED")
    }
    summary = next(e for e in nodes if e.data.state == "FULFILLED" and e.data.output_values[0].type == "STRING")
    assert summary.data.output_values[0].value
    assert events[-1].type == "WORKFLOW" and events[-1].data.state == "FULFILLED"


async def test_execute_workflow_stream_rejected_run_carries_the_error(runtime: Runtime) -> None:
    client = sdk(runtime)
    events = [
        event
        async for event in client.execute_workflow_stream(
            workflow_deployment_name="failing", inputs=[WorkflowRequestStringInputRequest(name="topic", value="x")]
        )
    ]
    end = events[-1]
    assert isinstance(end, WorkflowExecutionWorkflowResultEvent) and end.data.state == "REJECTED"
    assert end.data.error is not None and end.data.error.code == "NODE_EXECUTION"
    assert end.data.error.message == "draft is too short"


async def test_deployment_execute_stream(runtime: Runtime) -> None:
    client = sdk(runtime)
    names = [
        event.name async for event in client.workflow_deployments.execute_stream("summarize", inputs={"text": "hello"})
    ]
    assert names[0] == "workflow.execution.initiated" and names[-1] == "workflow.execution.fulfilled"
    assert names.count("node.execution.fulfilled") == 2


async def test_detail_paged_one_span_at_a_time(runtime: Runtime) -> None:
    client = sdk(runtime)
    executed = await client.execute_workflow(workflow_deployment_name="summarize", inputs=TEXT)
    pages: list[list[str]] = []
    previous: str | None = None
    while True:
        detail = await client.workflow_executions.retrieve_workflow_execution_detail(
            executed.execution_id, prev_span_id=previous, span_limit=1
        )
        if not detail.spans:
            break
        pages.append([span.span_id for span in detail.spans])
        previous = detail.spans[-1].span_id
    assert all(len(page) == 1 for page in pages)
    seen = [page[0] for page in pages]
    assert len(set(seen)) == len(seen) == 3
    assert set(seen) == await spans_on_the_bus(runtime, executed.execution_id)
    assert seen[0] == executed.execution_id  # the workflow span starts first


async def test_external_id_and_metadata_are_kept_returned_and_filterable(runtime: Runtime) -> None:
    client = sdk(runtime)
    external_id = f"ticket-{uuid.uuid4()}"
    executed = await client.execute_workflow(
        workflow_deployment_name="summarize", inputs=TEXT, external_id=external_id, metadata={"user": "u-7"}
    )
    assert executed.external_id == external_id
    detail = await client.workflow_executions.retrieve_workflow_execution_detail(executed.execution_id)
    assert detail.external_id == external_id and detail.metadata == {"user": "u-7"}  # type: ignore[attr-defined]
    other = await client.execute_workflow(workflow_deployment_name="summarize", inputs=TEXT, external_id="other")
    listed = await runtime.client.get("/v1/workflow-executions")
    assert {item["execution_id"]: item["external_id"] for item in listed.json()["results"]} == {
        executed.execution_id: external_id,
        other.execution_id: "other",
    }
    filtered = await runtime.client.get("/v1/workflow-executions", params={"external_id": external_id})
    assert [item["execution_id"] for item in filtered.json()["results"]] == [executed.execution_id]
    run = await runtime.client.get(f"/api/v1/workflow/workflows/summarize/runs/{executed.execution_id}")
    assert run.json()["external_id"] == external_id and run.json()["metadata"] == {"user": "u-7"}


async def test_submit_actuals_by_execution_id_and_by_external_id(runtime: Runtime) -> None:
    client = sdk(runtime)
    external_id = f"order-{uuid.uuid4()}"
    by_id = await client.execute_workflow(workflow_deployment_name="summarize", inputs=TEXT)
    by_external = await client.execute_workflow(
        workflow_deployment_name="summarize", inputs=TEXT, external_id=external_id
    )
    await client.submit_workflow_execution_actuals(
        execution_id=by_id.execution_id,
        actuals=[WorkflowExecutionActualStringRequest(output_key="summary", quality=0.25, desired_output_value="a")],
    )
    await client.submit_workflow_execution_actuals(
        external_id=external_id,
        actuals=[WorkflowExecutionActualStringRequest(output_key="summary", quality=0.75, timestamp=1_767_225_600.5)],
    )
    first = await client.workflow_executions.retrieve_workflow_execution_detail(by_id.execution_id)
    second = await client.workflow_executions.retrieve_workflow_execution_detail(by_external.execution_id)
    [actual] = first.actuals  # type: ignore[attr-defined]
    assert (actual["output_key"], actual["quality"], actual["desired_output_value"]) == ("summary", 0.25, "a")
    [other] = second.actuals  # type: ignore[attr-defined]
    assert (other["quality"], other["timestamp"]) == (0.75, "2026-01-01T00:00:00.500000Z")
    interactly = await runtime.client.get(f"/workflows/v1/workflow-runs/{by_id.execution_id}")
    assert [a["quality"] for a in interactly.json()["workflow_run"]["workflow_run"]["actuals"]] == [0.25]
    with pytest.raises(ApiError) as unknown:
        await client.submit_workflow_execution_actuals(
            external_id="never-given", actuals=[WorkflowExecutionActualStringRequest(output_key="summary")]
        )
    assert unknown.value.status_code == 404
    query = {"from": "2025-01-01T00:00:00Z", "to": "2028-01-01T00:00:00Z", "dimensions": ["workflow_name"]}
    usage = await runtime.client.post(
        "/v1/usage/query",
        json={**query, "measures": ["actuals", "quality_avg", "executions"], "filters": {"workflow_name": "summarize"}},
    )
    assert usage.status_code == 200, usage.text
    assert usage.json()["rows"] == [{"workflow_name": "summarize", "actuals": 2, "quality_avg": 0.5, "executions": 2}]
    by_model = await runtime.client.post(
        "/v1/usage/query", json={**query, "dimensions": ["model"], "measures": ["actuals"]}
    )
    assert by_model.status_code == 422 and "workflow only" in by_model.text
