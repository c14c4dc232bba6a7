"""Stored workflow definitions: versioned per organization, looked up by id or name, and resolved
together with every subworkflow they call (so a run request carries all it needs)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from spanline.events.execution_request import WorkflowSnapshot
from spanline.events.workflow_definition import WorkflowDefinition
from spanline.store.store import Store

_LATEST = """
SELECT workflow_id, name, version, description, definition, created_at,
       min(created_at) OVER (PARTITION BY workflow_id) AS first_created_at
FROM workflows FINAL
WHERE org = {org:String} {condition}
ORDER BY workflow_id, version DESC
LIMIT 1 BY workflow_id
"""


class UnknownWorkflowError(LookupError):
    pass


class SubworkflowError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class StoredWorkflow:
    workflow_id: UUID
    name: str
    version: int
    description: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def snapshot(self) -> WorkflowSnapshot:
        return WorkflowSnapshot(self.workflow_id, self.version, self.definition)


def _row_to_workflow(row: tuple[Any, ...]) -> StoredWorkflow:
    workflow_id, name, version, description, definition, created_at, first_created_at = row
    return StoredWorkflow(
        workflow_id=UUID(str(workflow_id)),
        name=str(name),
        version=int(version),
        description=str(description),
        definition=json.loads(definition),
        created_at=first_created_at,
        updated_at=created_at,
    )


async def _latest(
    store: Store, org: str, condition: str = "", parameters: dict[str, Any] | None = None
) -> list[StoredWorkflow]:
    rows = await store.query(_LATEST.replace("{condition}", condition), {"org": org, **(parameters or {})})
    return [_row_to_workflow(row) for row in rows]


async def list_workflows(store: Store, org: str) -> list[StoredWorkflow]:
    return sorted(await _latest(store, org), key=lambda workflow: workflow.name)


async def find_workflow(store: Store, org: str, id_or_name: str) -> StoredWorkflow:
    """The latest version of a workflow of this organization, by id or by name."""
    try:
        workflow_id = UUID(id_or_name)
    except ValueError:
        found = await _latest(store, org, "AND name = {name:String}", {"name": id_or_name})
    else:
        found = await _latest(store, org, "AND workflow_id = {id:UUID}", {"id": workflow_id})
    if not found:
        raise UnknownWorkflowError(f"workflow {id_or_name!r} not found")
    return found[0]


async def resolve_subworkflows(store: Store, org: str, definition: WorkflowDefinition) -> dict[str, WorkflowSnapshot]:
    """Every workflow reachable through subworkflow nodes, by name; a missing one or a workflow that
    calls itself (directly or not) is refused."""
    resolved: dict[str, WorkflowSnapshot] = {}
    pending: list[tuple[WorkflowDefinition, tuple[str, ...]]] = [(definition, (definition.name,))]
    while pending:
        current, path = pending.pop()
        for node in current.nodes:
            if node.kind != "subworkflow":
                continue
            name = str(node.config["workflow"])
            if name in path:
                raise SubworkflowError(f"workflow {path[0]!r} calls itself through {' → '.join((*path, name))}")
            if name not in resolved:
                try:
                    stored = await find_workflow(store, org, name)
                except UnknownWorkflowError as exc:
                    raise SubworkflowError(f"node {node.id!r} calls unknown workflow {name!r}") from exc
                resolved[name] = stored.snapshot()
                pending.append((WorkflowDefinition.model_validate(stored.definition), (*path, name)))
    return resolved


async def save_workflow(store: Store, org: str, definition: WorkflowDefinition) -> StoredWorkflow:
    """Store a definition: a new workflow, or the next version of the one with the same name."""
    await resolve_subworkflows(store, org, definition)
    try:
        previous: StoredWorkflow | None = await find_workflow(store, org, definition.name)
    except UnknownWorkflowError:
        previous = None
    now = datetime.now(UTC)
    workflow_id = previous.workflow_id if previous else uuid.uuid4()
    version = previous.version + 1 if previous else 1
    document = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    await store.insert(
        "workflows",
        [[org, workflow_id, definition.name, version, definition.description, json.dumps(document), now]],
        ["org", "workflow_id", "name", "version", "description", "definition", "created_at"],
    )
    return StoredWorkflow(
        workflow_id,
        definition.name,
        version,
        definition.description,
        document,
        previous.created_at if previous else now,
        now,
    )


@dataclass(frozen=True, slots=True)
class WorkflowVersion:
    version: int
    created_at: datetime


async def workflow_versions(store: Store, org: str, workflow_id: UUID) -> list[WorkflowVersion]:
    """Every stored version of one workflow, newest first."""
    rows = await store.query(
        "SELECT version, created_at FROM workflows FINAL WHERE org = {org:String} AND workflow_id = {id:UUID}"
        " ORDER BY version DESC",
        {"org": org, "id": workflow_id},
    )
    return [WorkflowVersion(int(version), created_at) for version, created_at in rows]
