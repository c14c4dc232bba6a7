"""Interactly's workflow run: a run's status with its LLM token usage and latency stats.

Choices where Interactly's page and SPEC are silent:
- `workflow_run_id` is spanline's execution id (a UUID, not Interactly's 24-hex id); a malformed id is
  404, like an unknown one or another organization's (nothing to validate for a caller: no such run).
- status: in_progress (INITIATED, STREAMING, RESUMED), paused, completed (FULFILLED), failed (REJECTED).
- created_at is the run's start; updated_at the time of its latest stored event.
- token usage and latency come from the run's model calls in `usage` (FINAL), subworkflows included
  (their calls carry the root execution id); latency is each call's `compute_nanos` in milliseconds
  (floats, not rounded); the average is 0 when there are no calls. Breakdowns are per (response_model,
  provider), ordered by both. Interactly's call_count_with_user_keys/_fallback_keys are not modelled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from spanline.api.deps import OrgDep, StoreDep
from spanline.store.model_usage import ModelUsageRow, usage_by_model
from spanline.store.run_records import get_run, last_event_time

router = APIRouter(prefix="/workflows/v1", tags=["interactly"])

INTERACTLY_STATUS: Final = {
    "INITIATED": "in_progress",
    "STREAMING": "in_progress",
    "RESUMED": "in_progress",
    "PAUSED": "paused",
    "FULFILLED": "completed",
    "REJECTED": "failed",
}


class ModelTokenUsage(BaseModel):
    response_model: str
    provider: str
    total_input_tokens: int
    total_output_tokens: int
    total_tokens: int
    call_count: int


class TokenUsage(BaseModel):
    total_input_tokens: int
    total_output_tokens: int
    total_tokens: int
    call_count: int
    breakdown_by_models: list[ModelTokenUsage]


class ModelLatency(BaseModel):
    response_model: str
    provider: str
    call_count: int
    total_latency_milliseconds: float
    average_latency_milliseconds: float


class LatencyStats(BaseModel):
    call_count: int
    total_latency_milliseconds: float
    average_latency_milliseconds: float
    breakdown_by_models: list[ModelLatency]


class WorkflowRun(BaseModel):
    workflow_run_id: str
    workflow_id: str
    status: str
    created_at: datetime | None
    updated_at: datetime | None
    llm_token_usage: TokenUsage
    llm_latency_stats: LatencyStats


class WorkflowRunResponse(BaseModel):
    workflow_run: WorkflowRun


def _average(total: float, count: int) -> float:
    return total / count if count else 0.0


def token_usage(usage: list[ModelUsageRow]) -> TokenUsage:
    inputs = sum(u.input_tokens for u in usage)
    outputs = sum(u.output_tokens for u in usage)
    return TokenUsage(
        total_input_tokens=inputs,
        total_output_tokens=outputs,
        total_tokens=inputs + outputs,
        call_count=sum(u.calls for u in usage),
        breakdown_by_models=[
            ModelTokenUsage(
                response_model=u.model,
                provider=u.provider,
                total_input_tokens=u.input_tokens,
                total_output_tokens=u.output_tokens,
                total_tokens=u.input_tokens + u.output_tokens,
                call_count=u.calls,
            )
            for u in usage
        ],
    )


def latency_stats(usage: list[ModelUsageRow]) -> LatencyStats:
    calls = sum(u.calls for u in usage)
    total_ms = sum(u.compute_nanos for u in usage) / 1e6
    return LatencyStats(
        call_count=calls,
        total_latency_milliseconds=total_ms,
        average_latency_milliseconds=_average(total_ms, calls),
        breakdown_by_models=[
            ModelLatency(
                response_model=u.model,
                provider=u.provider,
                call_count=u.calls,
                total_latency_milliseconds=u.compute_nanos / 1e6,
                average_latency_milliseconds=_average(u.compute_nanos / 1e6, u.calls),
            )
            for u in usage
        ],
    )


@router.get(
    "/workflow-runs/{workflow_run_id}",
    response_model=WorkflowRunResponse,
    responses={404: {"description": "unknown or malformed run id, or another organization's run"}},
)
async def workflow_run(workflow_run_id: str, org: OrgDep, store: StoreDep) -> WorkflowRunResponse:
    try:
        execution_id = UUID(workflow_run_id)
    except ValueError:
        raise HTTPException(404, f"workflow run {workflow_run_id!r} not found") from None
    run = await get_run(store, org, execution_id)
    if run is None:
        raise HTTPException(404, f"workflow run {workflow_run_id!r} not found")
    usage = await usage_by_model(store, org, execution_id)
    return WorkflowRunResponse(
        workflow_run=WorkflowRun(
            workflow_run_id=str(run.execution_id),
            workflow_id=str(run.workflow_id),
            status=INTERACTLY_STATUS.get(run.status, run.status.lower()),
            created_at=run.start,
            updated_at=await last_event_time(store, org, execution_id) or run.end or run.start,
            llm_token_usage=token_usage(usage),
            llm_latency_stats=latency_stats(usage),
        )
    )
