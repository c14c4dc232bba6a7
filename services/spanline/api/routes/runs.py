"""Arcee Orchestra's run history: a workflow's runs, one run, and a run's steps (node executions).

Choices where Arcee's pages and SPEC are silent:
- `workflow_id` is a stored workflow's id or name (its latest version); a workflow spanline never stored
  but whose runs arrived as events (a plain Vellum emitter) is found by the id or name in those events.
- status, in Arcee's lower-case words: running (INITIATED, STREAMING, RESUMED), paused, completed
  (FULFILLED), failed (REJECTED).
- times are RFC 3339 UTC with microseconds; `elapsed_time` is whole seconds (truncated, as Arcee shows
  2.24 s as 2), null while running; `end_time` is null while running.
- `error` is the error's message (Arcee shows a string); its code is in `step_metadata.error_code`.
- `inputs`/`outputs` are the JSON objects of the initiated/fulfilled events, null until those arrive.
- a step's `user_id` is null (spanline keys belong to organizations, not users); `organization_id` is the
  caller's organization.
- steps are every node execution of the run, subworkflow nodes included, in start order; `node_id` is
  the node's id in its workflow definition (the last part of the node definition's module), and
  `step_metadata` says where the step sits and what its model calls used.
- runs are paged with limit (1..1000, default 20) and offset, most recent start first; an unknown,
  malformed or other organization's workflow or run is 404.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from spanline.api.contract_types import UtcTimestamp
from spanline.api.deps import OrgDep, StoreDep
from spanline.api.routes.actuals import ActualView, actual_view
from spanline.store.execution_labels import get_actuals_of, get_labels
from spanline.store.run_records import (
    RunRecord,
    StepRecord,
    get_run,
    list_runs,
    list_steps,
    resolve_workflow_id,
)
from spanline.store.store import Store
from spanline.store.workflows import UnknownWorkflowError

router = APIRouter(prefix="/api/v1/workflow", tags=["runs"])

ARCEE_STATUS: Final = {
    "INITIATED": "running",
    "STREAMING": "running",
    "RESUMED": "running",
    "PAUSED": "paused",
    "FULFILLED": "completed",
    "REJECTED": "failed",
}
_NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {
    404: {"description": "unknown workflow or run, or another organization's"}
}


class ArceeRun(BaseModel):
    id: str
    status: str
    start_time: UtcTimestamp | None
    end_time: UtcTimestamp | None
    elapsed_time: int | None
    error: str | None
    outputs: Any
    inputs: Any
    # spanline fields: what the caller attached at execution and afterwards
    external_id: str | None = None
    metadata: dict[str, Any] | None = None
    actuals: list[ActualView] = []


class ArceeStep(BaseModel):
    id: str
    user_id: str | None  # spanline has organizations, not users
    organization_id: str
    node_id: str
    status: str
    start_time: UtcTimestamp
    end_time: UtcTimestamp | None
    elapsed_time: int | None
    error: str | None
    outputs: Any
    inputs: Any
    step_metadata: dict[str, Any]
    tokens: int


def arcee_status(status: str) -> str:
    return ARCEE_STATUS.get(status, status.lower())


def _elapsed(start: datetime | None, end: datetime | None) -> int | None:
    return int((end - start).total_seconds()) if start is not None and end is not None else None


def _message(error: dict[str, Any] | None) -> str | None:
    return None if error is None else str(error.get("message", error))


def _run(run: RunRecord) -> ArceeRun:
    return ArceeRun(
        id=str(run.execution_id),
        status=arcee_status(run.status),
        start_time=run.start,
        end_time=run.end,
        elapsed_time=_elapsed(run.start, run.end),
        error=_message(run.error),
        outputs=run.outputs,
        inputs=run.inputs,
    )


def _step(step: StepRecord, org: str) -> ArceeStep:
    metadata = {
        "node_definition_id": str(step.definition_id),
        "node_name": step.definition_name,
        "module": step.definition_module,
        "parent_span_id": str(step.parent_span_id) if step.parent_span_id else None,
        "error_code": step.error_code or None,
        "model_calls": step.model_calls,
        "input_tokens": step.input_tokens,
        "output_tokens": step.output_tokens,
        "cache_read_tokens": step.cache_read_tokens,
        "cache_write_tokens": step.cache_write_tokens,
        "cost_usd": float(step.cost_usd),
    }
    return ArceeStep(
        id=str(step.span_id),
        user_id=None,
        organization_id=org,
        node_id=step.definition_module[-1] if step.definition_module else step.definition_name,
        status=arcee_status(step.status),
        start_time=step.start,
        end_time=step.end,
        elapsed_time=_elapsed(step.start, step.end),
        error=_message(step.error),
        outputs=step.outputs,
        inputs=step.inputs,
        step_metadata=metadata,
        tokens=step.input_tokens + step.output_tokens,
    )


async def _with_labels(store: Store, org: str, runs: list[RunRecord]) -> list[ArceeRun]:
    """The runs with what their callers attached (external_id, metadata, actuals): two reads per page."""
    ids = [run.execution_id for run in runs]
    labels, actuals = await asyncio.gather(get_labels(store, org, ids), get_actuals_of(store, org, ids))
    shown = []
    for run in runs:
        label = labels.get(run.execution_id)
        view = _run(run)
        view.external_id, view.metadata = (label.external_id, label.metadata) if label else (None, None)
        view.actuals = [actual_view(actual) for actual in actuals.get(run.execution_id, [])]
        shown.append(view)
    return shown


async def _workflow_id(store: Store, org: str, id_or_name: str) -> UUID:
    try:
        return await resolve_workflow_id(store, org, id_or_name)
    except UnknownWorkflowError as exc:
        raise HTTPException(404, str(exc)) from exc


async def _run_of_workflow(store: Store, org: str, workflow_id: str, run_id: str) -> RunRecord:
    resolved = await _workflow_id(store, org, workflow_id)
    try:
        execution_id = UUID(run_id)
    except ValueError:
        raise HTTPException(404, f"run {run_id!r} not found") from None
    run = await get_run(store, org, execution_id)
    if run is None or run.workflow_id != resolved:
        raise HTTPException(404, f"run {run_id!r} not found in workflow {workflow_id!r}")
    return run


@router.get("/workflows/{workflow_id}/runs", response_model=list[ArceeRun], responses=_NOT_FOUND)
async def workflow_runs(
    workflow_id: str,
    org: OrgDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ArceeRun]:
    """The workflow's execution history, most recent first."""
    resolved = await _workflow_id(store, org, workflow_id)
    return await _with_labels(store, org, await list_runs(store, org, resolved, limit=limit, offset=offset))


@router.get("/workflows/{workflow_id}/runs/{run_id}", response_model=ArceeRun, responses=_NOT_FOUND)
async def workflow_run(workflow_id: str, run_id: str, org: OrgDep, store: StoreDep) -> ArceeRun:
    [run] = await _with_labels(store, org, [await _run_of_workflow(store, org, workflow_id, run_id)])
    return run


@router.get("/workflows/{workflow_id}/runs/{run_id}/steps", response_model=list[ArceeStep], responses=_NOT_FOUND)
async def workflow_run_steps(workflow_id: str, run_id: str, org: OrgDep, store: StoreDep) -> list[ArceeStep]:
    """One object per node execution; `tokens` is the input + output tokens of the step's own model calls."""
    run = await _run_of_workflow(store, org, workflow_id, run_id)
    return [_step(step, org) for step in await list_steps(store, org, run.execution_id)]
