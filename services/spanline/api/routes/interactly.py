"""Interactly's workflow run in the page's document shape (seeds/003): an outer document holding the inner
run with its status, LLM token usage and latency stats; fields spanline has no data for are neutral.

Choices where Interactly's page and SPEC are silent:
- `workflow_run_id` is spanline's execution id (a UUID, not Interactly's 24-hex id); a malformed id is
  404, like an unknown one or another organization's (nothing to validate for a caller: no such run).
- status: not_started (no workflow event stored yet), in_progress (INITIATED, STREAMING, RESUMED), paused,
  completed (FULFILLED), failed (REJECTED).
- created_at is the run's start; updated_at the time of its latest stored event; `_id` and logical_id are
  the execution id, team_id the organization.
- token usage and latency come from the run's model calls in `usage` (FINAL), subworkflows included
  (their calls carry the root execution id); latency is each call's `compute_nanos` in milliseconds
  (floats, not rounded); the average is 0 when there are no calls. Breakdowns are per (response_model,
  provider), ordered by both. Interactly's call_count_with_user_keys/_fallback_keys are not modelled (0).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final
from uuid import UUID

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from spanline.api.contract_types import UtcTimestamp
from spanline.api.deps import OrgDep, StoreDep
from spanline.api.routes.actuals import ActualView, actual_view
from spanline.api.routes.interactly_document import input_output_pair, workflow_config_fully_hydrated
from spanline.store.execution_labels import get_actuals
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
    "": "not_started",
}


class ModelTokenUsage(BaseModel):
    response_model: str
    provider: str
    total_input_tokens: int
    total_output_tokens: int
    total_tokens: int
    call_count_with_user_keys: int = 0
    call_count_with_fallback_keys: int = 0
    call_count: int


class TokenUsage(BaseModel):
    total_input_tokens: int
    total_output_tokens: int
    total_tokens: int
    call_count_with_user_keys: int = 0
    call_count_with_fallback_keys: int = 0
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


class Comment(BaseModel):
    logical_id: str
    content: str
    createdBy: str  # Interactly's camelCase field names
    updatedBy: str
    createdAt: UtcTimestamp
    updatedAt: UtcTimestamp


class EvaluationRunInfo(BaseModel):
    evaluation_workflow_run_id: str | None = None


class WorkflowRun(BaseModel):
    logical_id: str
    workflow_id: str
    version_number: int = 0
    status: str
    termination_source: str | None = None
    input_output_pairs: list[dict[str, Any]]
    run_by: str | None = None
    comments: list[Comment] = Field(default_factory=list)
    llm_token_usage: TokenUsage
    llm_latency_stats: LatencyStats
    version_name: str | None = None
    workflow_config_fully_hydrated: dict[str, Any]
    workflow_run_id: str
    source_workflow_run_id: str | None = None
    is_evaluation_run: bool = False
    evaluation_run_info: EvaluationRunInfo = Field(default_factory=EvaluationRunInfo)
    actuals: list[ActualView] = Field(default_factory=list)  # spanline's: feedback submitted on the run


class WorkflowRunDocument(BaseModel):
    team_id: str
    created_by: str | None = None
    updated_by: str | None = None
    created_at: UtcTimestamp | None
    updated_at: UtcTimestamp | None
    id: str = Field(serialization_alias="_id")
    workflow_run: WorkflowRun
    debug_info: dict[str, Any] = Field(default_factory=dict)


class WorkflowRunResponse(BaseModel):
    workflow_run: WorkflowRunDocument


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
    response_model_by_alias=True,
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
    usage, actuals = await asyncio.gather(
        usage_by_model(store, org, execution_id), get_actuals(store, org, execution_id)
    )
    run_id, workflow_id = str(run.execution_id), str(run.workflow_id)
    inner = WorkflowRun(
        logical_id=run_id,
        workflow_id=workflow_id,
        status=INTERACTLY_STATUS.get(run.status, run.status.lower()),
        termination_source=run.error_code or None,
        input_output_pairs=[
            input_output_pair(
                org=org, workflow_id=workflow_id, workflow_run_id=run_id, inputs=run.inputs, outputs=run.outputs
            )
        ],
        llm_token_usage=token_usage(usage),
        llm_latency_stats=latency_stats(usage),
        workflow_config_fully_hydrated=workflow_config_fully_hydrated(workflow_id, run.workflow_name),
        workflow_run_id=run_id,
        actuals=[actual_view(actual) for actual in actuals],
    )
    return WorkflowRunResponse(
        workflow_run=WorkflowRunDocument(
            team_id=org,
            created_at=run.start,
            updated_at=await last_event_time(store, org, execution_id) or run.end or run.start,
            id=run_id,
            workflow_run=inner,
        )
    )
