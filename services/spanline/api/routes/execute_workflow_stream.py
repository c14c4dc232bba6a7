"""`POST /v1/execute-workflow-stream`: Vellum's run-and-stream endpoint in the framing the official SDK's
`execute_workflow_stream` parses: NDJSON, one `WorkflowStreamEvent` a line —
`{"execution_id", "run_id", "external_id", "type": "WORKFLOW" | "NODE", "data": ...}`.

- WORKFLOW events are the top-level workflow's initiated (with `inputs`), streaming (`output`), fulfilled
  (`outputs`) and rejected (`error`: message and code) events; a subworkflow's own events are not sent.
- NODE events (only when `event_types` names NODE; the default is WORKFLOW only, as Vellum's) are every
  node's initiated, fulfilled (`output_values`) and rejected (`error`) events; `node_result_id` is the
  node execution's span id, `node_id` its node definition's id.
- the stream ends after the workflow's terminal event (or at `SPANLINE_EXECUTE_TIMEOUT_S`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from msgspec import UnsetType

from spanline.api.deps import AppStateDep, OrgDep
from spanline.api.routes.execute import ExecuteWorkflowRequest
from spanline.api.run_requests import follow, request_execution, workflow_or_404
from spanline.api.vellum_values import vellum_type, vellum_values
from spanline.core.times import rfc3339
from spanline.events.models import (
    Event,
    NodeExecutionFulfilledEvent,
    NodeExecutionInitiatedEvent,
    NodeExecutionRejectedEvent,
    WorkflowExecutionFulfilledEvent,
    WorkflowExecutionInitiatedEvent,
    WorkflowExecutionRejectedEvent,
    WorkflowExecutionStreamingEvent,
)

router = APIRouter(prefix="/v1", tags=["execute"])


class ExecuteWorkflowStreamRequest(ExecuteWorkflowRequest):
    event_types: list[str] | None = None  # WORKFLOW and/or NODE; unset: WORKFLOW


def _node_output_type(value: Any) -> str:
    kind = vellum_type(value)
    return "JSON" if kind == "ARRAY" else kind  # an ARRAY output holds typed values, not raw items


def workflow_data(execution_id: UUID, event: Event) -> dict[str, Any] | None:
    """The `data` of a WORKFLOW stream event (WorkflowResultEvent), None for events it has no state for."""
    head = {"id": str(event.id), "ts": rfc3339(event.timestamp)}
    if isinstance(event, WorkflowExecutionInitiatedEvent):
        inputs = vellum_values(execution_id, event.body.inputs)
        return {**head, "state": "INITIATED", "inputs": [value.model_dump() for value in inputs]}
    if isinstance(event, WorkflowExecutionStreamingEvent):
        output = event.body.output
        value = None if isinstance(output.value, UnsetType) else output.value
        delta = None if isinstance(output.delta, UnsetType) else output.delta
        streamed = {"name": output.name, "state": "STREAMING", "type": vellum_type(value or delta or "")}
        return {**head, "state": "STREAMING", "output": {**streamed, "value": value, "delta": delta}}
    if isinstance(event, WorkflowExecutionFulfilledEvent):
        outputs = vellum_values(execution_id, event.body.outputs)
        return {**head, "state": "FULFILLED", "outputs": [value.model_dump() for value in outputs]}
    if isinstance(event, WorkflowExecutionRejectedEvent):
        error = {"message": event.body.error.message, "code": event.body.error.code}
        return {**head, "state": "REJECTED", "error": error}
    return None


def node_data(event: Event) -> dict[str, Any] | None:
    """The `data` of a NODE stream event (WorkflowNodeResultEvent), None for the node events not sent."""
    if not isinstance(event, NodeExecutionInitiatedEvent | NodeExecutionFulfilledEvent | NodeExecutionRejectedEvent):
        return None
    head = {
        "id": str(event.id),
        "node_id": str(event.body.node_definition.id),
        "node_result_id": str(event.span_id),
        "ts": rfc3339(event.timestamp),
    }
    if isinstance(event, NodeExecutionInitiatedEvent):
        return {**head, "state": "INITIATED"}
    if isinstance(event, NodeExecutionFulfilledEvent):
        values = [
            {"type": _node_output_type(value), "value": value, "node_output_id": str(uuid.uuid5(event.span_id, name))}
            for name, value in event.body.outputs.items()
        ]
        return {**head, "state": "FULFILLED", "output_values": values}
    return {**head, "state": "REJECTED", "error": {"message": event.body.error.message, "code": event.body.error.code}}


@router.post(
    "/execute-workflow-stream",
    response_model=None,
    responses={200: {"content": {"application/x-ndjson": {}}}, 404: {}, 422: {}},
)
async def execute_workflow_stream(
    body: ExecuteWorkflowStreamRequest, org: OrgDep, state: AppStateDep
) -> StreamingResponse:
    """Run a workflow and stream Vellum's WORKFLOW (and, when asked, NODE) result events as NDJSON."""
    workflow = await workflow_or_404(state, org, body.workflow_reference())
    wanted = set(body.event_types or ["WORKFLOW"])
    execution_id = uuid.uuid4()
    subscription_scope = state.hub.subscribe(execution_id, org)
    subscription = subscription_scope.__enter__()  # before the run can start; closed when the stream ends
    try:
        await request_execution(
            state,
            org,
            workflow,
            body.input_values(),
            execution_id=execution_id,
            external_id=body.external_id,
            metadata=body.metadata,
        )
    except BaseException:
        subscription_scope.__exit__(None, None, None)
        raise
    envelope = {"execution_id": str(execution_id), "run_id": str(execution_id), "external_id": body.external_id}

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for item in follow(subscription, state.settings.execute_timeout_s):
                event = item.event
                if event.span_id == execution_id and "WORKFLOW" in wanted:
                    data, kind = workflow_data(execution_id, event), "WORKFLOW"
                elif "NODE" in wanted:
                    data, kind = node_data(event), "NODE"
                else:
                    continue
                if data is not None:
                    yield json.dumps({**envelope, "type": kind, "data": data}).encode() + b"\n"
        finally:
            subscription_scope.__exit__(None, None, None)

    headers = {"X-Execution-Id": str(execution_id), "X-Accel-Buffering": "no", "Cache-Control": "no-cache"}
    return StreamingResponse(lines(), media_type="application/x-ndjson", headers=headers)
