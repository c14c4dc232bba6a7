"""Arcee Orchestra's workflow endpoints: list, upload a JSON definition, execute."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status
from pydantic import BaseModel

from spanline.api.contract_types import UtcTimestamp
from spanline.api.deps import AppStateDep, OrgDep
from spanline.api.run_requests import request_execution, workflow_or_404
from spanline.api.workflow_graph import WorkflowEdge, workflow_edges
from spanline.events.workflow_definition import WorkflowDefinition
from spanline.store.workflows import (
    StoredWorkflow,
    SubworkflowError,
    list_workflows,
    save_workflow,
    workflow_versions,
)

router = APIRouter(prefix="/api/v1/workflow", tags=["workflows"])


class WorkflowSummary(BaseModel):
    workflow_id: str
    name: str
    description: str
    version: int
    created_at: UtcTimestamp
    updated_at: UtcTimestamp


class StoredWorkflowResponse(WorkflowSummary):
    definition: dict[str, Any]


class WorkflowVersionSummary(BaseModel):
    version: int
    created_at: UtcTimestamp


class WorkflowDetail(StoredWorkflowResponse):
    """The latest version's definition, its graph, and every version."""

    inputs: list[dict[str, Any]]
    nodes: list[dict[str, Any]]
    edges: list[WorkflowEdge]
    outputs: list[dict[str, Any]]
    versions: list[WorkflowVersionSummary]


class ExecuteResponse(BaseModel):
    message: str
    run_id: str


def _summary(workflow: StoredWorkflow) -> WorkflowSummary:
    return WorkflowSummary(
        workflow_id=str(workflow.workflow_id),
        name=workflow.name,
        description=workflow.description,
        version=workflow.version,
        created_at=workflow.created_at,
        updated_at=workflow.updated_at,
    )


@router.get("/workflows", response_model=list[WorkflowSummary])
async def get_workflows(org: OrgDep, state: AppStateDep) -> list[WorkflowSummary]:
    return [_summary(workflow) for workflow in await list_workflows(state.store, org)]


@router.post("/workflows", response_model=StoredWorkflowResponse, status_code=status.HTTP_201_CREATED)
async def upload_workflow(definition: WorkflowDefinition, org: OrgDep, state: AppStateDep) -> StoredWorkflowResponse:
    """Store a definition; an upload with a name already in use adds a version. A definition with an
    unknown node kind, a dangling reference, a cycle, ... is refused with 422 saying what is wrong."""
    try:
        stored = await save_workflow(state.store, org, definition)
    except SubworkflowError as exc:
        raise HTTPException(422, str(exc)) from exc
    return StoredWorkflowResponse(**_summary(stored).model_dump(), definition=stored.definition)


@router.get("/workflows/{workflow_id}", response_model=WorkflowDetail, responses={404: {}})
async def get_workflow(workflow_id: str, org: OrgDep, state: AppStateDep) -> WorkflowDetail:
    """One workflow (by id or name): its latest definition with the graph's edges, and its versions."""
    workflow = await workflow_or_404(state, org, workflow_id)
    versions = await workflow_versions(state.store, org, workflow.workflow_id)
    definition = workflow.definition
    return WorkflowDetail(
        **_summary(workflow).model_dump(),
        definition=definition,
        inputs=definition.get("inputs", []),
        nodes=definition.get("nodes", []),
        edges=workflow_edges(definition),
        outputs=definition.get("outputs", []),
        versions=[WorkflowVersionSummary(version=v.version, created_at=v.created_at) for v in versions],
    )


@router.post("/workflows/{workflow_id}/execute", response_model=ExecuteResponse, responses={404: {}})
async def execute_workflow(
    workflow_id: str, org: OrgDep, state: AppStateDep, inputs: Annotated[dict[str, Any], Body()]
) -> ExecuteResponse:
    workflow = await workflow_or_404(state, org, workflow_id)
    run_id = await request_execution(state, org, workflow, inputs)
    return ExecuteResponse(message="Workflow execution started", run_id=str(run_id))
