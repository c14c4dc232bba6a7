"""Starting a run and following it: shared by the Vellum and Arcee execute endpoints."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import HTTPException, status

from spanline.api.live import LiveEvent, Subscription
from spanline.api.state import AppState
from spanline.bus.interface import ORG_HEADER, BusUnavailableError, OutgoingMessage
from spanline.events.execution_request import ExecutionRequest, encode_request
from spanline.events.models import TERMINAL_WORKFLOW_EVENT_NAMES, event_name
from spanline.events.workflow_definition import WorkflowDefinition
from spanline.store.execution_labels import save_label
from spanline.store.workflows import (
    StoredWorkflow,
    SubworkflowError,
    UnknownWorkflowError,
    find_workflow,
    resolve_subworkflows,
)


async def workflow_or_404(state: AppState, org: str, id_or_name: str) -> StoredWorkflow:
    try:
        return await find_workflow(state.store, org, id_or_name)
    except UnknownWorkflowError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


async def request_execution(
    state: AppState,
    org: str,
    workflow: StoredWorkflow,
    inputs: dict[str, Any],
    *,
    execution_id: UUID | None = None,
    external_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> UUID:
    """Publish a run request on spanline.executions; the run's events follow on spanline.events."""
    try:
        subworkflows = await resolve_subworkflows(
            state.store, org, WorkflowDefinition.model_validate(workflow.definition)
        )
    except SubworkflowError as exc:
        raise HTTPException(422, str(exc)) from exc
    request = ExecutionRequest(
        execution_id=execution_id or uuid.uuid4(),
        org=org,
        workflow=workflow.snapshot(),
        subworkflows=subworkflows,
        inputs=inputs,
        external_id=external_id,
        metadata=metadata,
        requested_at=datetime.now(UTC),
    )
    # Stored before the request is published: the consumer's derivation of the run reads it.
    await save_label(state.store, org, request.execution_id, external_id, metadata)
    message = OutgoingMessage(
        encode_request(request), key=str(request.execution_id).encode(), headers=((ORG_HEADER, org.encode()),)
    )
    # Acked for this request alone: a failed send answers this request (503), never another one.
    timeout_s = state.settings.publish_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            await state.producer.send_acked(state.settings.executions_topic, [message])
    except TimeoutError as exc:
        raise BusUnavailableError(f"Kafka did not acknowledge the run request within {timeout_s:g} s") from exc
    state.recent_requests.add(request.execution_id, org)
    return request.execution_id


def is_run_end(item: LiveEvent, execution_id: UUID) -> bool:
    return item.event.span_id == execution_id and event_name(item.event) in TERMINAL_WORKFLOW_EVENT_NAMES


async def follow(subscription: Subscription, timeout_s: float) -> AsyncIterator[LiveEvent]:
    """The run's events as they arrive, up to and including the top-level workflow's terminal event."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        item = await subscription.next(remaining) if remaining > 0 else None
        if item is None:
            return
        yield item
        if is_run_end(item, subscription.execution_id):
            return
