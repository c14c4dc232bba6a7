"""Vellum's execute endpoints: run and wait, run in the background, run and stream the events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, model_validator
from sse_starlette import EventSourceResponse

from spanline.api.contract_types import ExecutionErrorField, UtcTimestamp
from spanline.api.deps import AppStateDep, OrgDep
from spanline.api.live import LiveEvent
from spanline.api.run_requests import follow, request_execution, workflow_or_404
from spanline.api.stored_wait import wait_until_stored
from spanline.api.vellum_values import VellumValue, vellum_values
from spanline.events.models import (
    ExecutionError,
    WorkflowExecutionFulfilledEvent,
    WorkflowExecutionRejectedEvent,
    event_name,
)

router = APIRouter(prefix="/v1", tags=["execute"])

VellumType = Literal["STRING", "NUMBER", "JSON", "CHAT_HISTORY", "ARRAY", "ERROR", "FUNCTION_CALL", "IMAGE", "AUDIO"]


class WorkflowRequestInput(BaseModel):
    name: str
    type: VellumType = "STRING"
    value: Any = None


class ExecuteWorkflowRequest(BaseModel):
    inputs: list[WorkflowRequestInput] = Field(default_factory=list)
    workflow_deployment_id: str | None = None
    workflow_deployment_name: str | None = None
    release_tag: str | None = None
    external_id: str | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _names_a_workflow(self) -> ExecuteWorkflowRequest:
        if not (self.workflow_deployment_id or self.workflow_deployment_name):
            raise ValueError("give workflow_deployment_id or workflow_deployment_name")
        return self

    def workflow_reference(self) -> str:
        return str(self.workflow_deployment_id or self.workflow_deployment_name)

    def input_values(self) -> dict[str, Any]:
        return {item.name: item.value for item in self.inputs}


class ExecuteStreamRequest(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict)
    external_id: str | None = None
    metadata: dict[str, Any] | None = None


class ExecutionData(BaseModel):
    id: str
    state: Literal["FULFILLED", "REJECTED"]
    ts: UtcTimestamp
    outputs: list[VellumValue] | None = None
    error: ExecutionErrorField | None = None  # message and code only


class ExecuteWorkflowResponse(BaseModel):
    execution_id: str
    run_id: str
    external_id: str | None
    data: ExecutionData


class ExecuteAsyncResponse(BaseModel):
    execution_id: str


def execution_data(execution_id: UUID, end: LiveEvent) -> ExecutionData:
    event = end.event
    if isinstance(event, WorkflowExecutionFulfilledEvent):
        outputs = vellum_values(execution_id, event.body.outputs)
        return ExecutionData(id=str(execution_id), state="FULFILLED", ts=event.timestamp, outputs=outputs)
    if isinstance(event, WorkflowExecutionRejectedEvent):
        error = ExecutionError(message=event.body.error.message, code=event.body.error.code)
        return ExecutionData(id=str(execution_id), state="REJECTED", ts=event.timestamp, error=error)
    raise HTTPException(status.HTTP_409_CONFLICT, f"execution {execution_id} paused instead of ending")


@router.post("/execute-workflow", response_model=ExecuteWorkflowResponse, responses={404: {}, 504: {}})
async def execute_workflow(body: ExecuteWorkflowRequest, org: OrgDep, state: AppStateDep) -> ExecuteWorkflowResponse:
    """Run a workflow and answer when it has ended."""
    workflow = await workflow_or_404(state, org, body.workflow_reference())
    execution_id = uuid.uuid4()
    with state.hub.subscribe(execution_id, org) as subscription:  # before the run can start
        await request_execution(
            state,
            org,
            workflow,
            body.input_values(),
            execution_id=execution_id,
            external_id=body.external_id,
            metadata=body.metadata,
        )
        end: LiveEvent | None = None
        async for item in follow(subscription, state.settings.execute_timeout_s):
            end = item
    if end is None or end.event.span_id != execution_id:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, f"execution {execution_id} did not end in time")
    settings = state.settings
    await wait_until_stored(state.offsets, settings.consumer_group, end.message, settings.execute_stored_wait_s)
    return ExecuteWorkflowResponse(
        execution_id=str(execution_id),
        run_id=str(execution_id),
        external_id=body.external_id,
        data=execution_data(execution_id, end),
    )


@router.post("/execute-workflow-async", response_model=ExecuteAsyncResponse, responses={404: {}})
async def execute_workflow_async(body: ExecuteWorkflowRequest, org: OrgDep, state: AppStateDep) -> ExecuteAsyncResponse:
    """Start a workflow and answer at once with its execution_id."""
    workflow = await workflow_or_404(state, org, body.workflow_reference())
    execution_id = await request_execution(
        state, org, workflow, body.input_values(), external_id=body.external_id, metadata=body.metadata
    )
    return ExecuteAsyncResponse(execution_id=str(execution_id))


@router.post(
    "/workflow-deployments/{id_or_name}/execute-stream",
    response_model=None,
    responses={200: {"content": {"application/x-ndjson": {}, "text/event-stream": {}}}, 404: {}},
)
async def execute_stream(
    id_or_name: str, body: ExecuteStreamRequest, org: OrgDep, state: AppStateDep, request: Request
) -> StreamingResponse | EventSourceResponse:
    """Run a workflow and stream its events as they happen: NDJSON (Vellum's framing) by default, SSE
    when the request accepts text/event-stream."""
    workflow = await workflow_or_404(state, org, id_or_name)
    execution_id = uuid.uuid4()
    subscription_scope = state.hub.subscribe(execution_id, org)
    subscription = subscription_scope.__enter__()  # before the run can start; closed when the stream ends
    try:
        await request_execution(
            state,
            org,
            workflow,
            body.inputs,
            execution_id=execution_id,
            external_id=body.external_id,
            metadata=body.metadata,
        )
    except BaseException:
        subscription_scope.__exit__(None, None, None)
        raise

    async def events() -> AsyncIterator[LiveEvent]:
        try:
            async for item in follow(subscription, state.settings.execute_timeout_s):
                yield item
        finally:
            subscription_scope.__exit__(None, None, None)

    headers = {"X-Execution-Id": str(execution_id), "X-Accel-Buffering": "no", "Cache-Control": "no-cache"}
    if "text/event-stream" in request.headers.get("accept", ""):

        async def sse() -> AsyncIterator[dict[str, str]]:
            sequence = 0
            async for item in events():
                sequence += 1
                yield {"id": str(sequence), "event": event_name(item.event), "data": item.message.value.decode()}

        return EventSourceResponse(sse(), headers=headers, ping=15)

    async def ndjson() -> AsyncIterator[bytes]:
        async for item in events():
            yield item.message.value + b"\n"

    return StreamingResponse(ndjson(), media_type="application/x-ndjson", headers=headers)
