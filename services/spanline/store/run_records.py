"""Runs (top-level executions) and their steps (node spans) as decoded records, read for the Arcee and
Interactly endpoints (their model usage: store/model_usage.py). One row per key with FINAL over a
primary-key range; every statement is scoped by `org = {org:String}` and takes user input only as
server-side parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from spanline.store.store import Store
from spanline.store.workflows import UnknownWorkflowError, find_workflow

_RUN_COLUMNS: Final = """execution_id, workflow_id, workflow_name, status, start_ts, end_ts, inputs, outputs, error,
    error_code, input_tokens, output_tokens, model_calls, cost_usd"""

_RUNS_SQL: Final = f"""
SELECT {_RUN_COLUMNS}
FROM executions FINAL
WHERE org = {{org:String}} AND workflow_id = {{workflow_id:UUID}}
ORDER BY start_ts DESC NULLS LAST, execution_id DESC
LIMIT {{limit:UInt32}} OFFSET {{offset:UInt64}}
"""

_RUN_SQL: Final = f"""
SELECT {_RUN_COLUMNS}
FROM executions FINAL
WHERE org = {{org:String}} AND execution_id = {{execution_id:UUID}}
"""

_LAST_EVENT_SQL: Final = """
SELECT max(timestamp) FROM events WHERE org = {org:String} AND execution_id = {execution_id:UUID}
"""

_STEPS_SQL: Final = """
SELECT span_id, parent_span_id, definition_id, definition_name, definition_module, status, start_ts, end_ts,
    inputs, outputs, error, error_code, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    model_calls, cost_usd
FROM steps
WHERE org = {org:String} AND execution_id = {execution_id:UUID}
ORDER BY start_ts, toString(span_id)
"""

_SEEN_WORKFLOW_BY_ID: Final = """
SELECT workflow_id FROM executions FINAL WHERE org = {org:String} AND workflow_id = {workflow_id:UUID} LIMIT 1
"""

_SEEN_WORKFLOW_BY_NAME: Final = """
SELECT workflow_id FROM executions FINAL WHERE org = {org:String} AND workflow_name = {name:String}
ORDER BY start_ts DESC NULLS LAST LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class RunRecord:
    execution_id: UUID
    workflow_id: UUID
    workflow_name: str
    status: str  # spanline's: INITIATED, STREAMING, RESUMED, PAUSED, FULFILLED, REJECTED
    start: datetime | None
    end: datetime | None
    inputs: Any
    outputs: Any
    error: dict[str, Any] | None
    error_code: str
    input_tokens: int
    output_tokens: int
    model_calls: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class StepRecord:
    span_id: UUID
    parent_span_id: UUID | None
    definition_id: UUID
    definition_name: str
    definition_module: list[str]
    status: str
    start: datetime
    end: datetime | None
    inputs: Any
    outputs: Any
    error: dict[str, Any] | None
    error_code: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    model_calls: int
    cost_usd: Decimal


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json(value: str) -> Any:
    """A stored JSON document; an empty string means the event that carries it has not arrived."""
    return json.loads(value) if value else None


def _run(row: tuple[Any, ...]) -> RunRecord:
    (execution_id, workflow_id, workflow_name, status, start, end, inputs, outputs, error, error_code,
     input_tokens, output_tokens, model_calls, cost_usd) = row  # fmt: skip
    return RunRecord(
        UUID(str(execution_id)), UUID(str(workflow_id)), str(workflow_name), str(status), _utc(start), _utc(end),
        _json(inputs), _json(outputs), _json(error), str(error_code), int(input_tokens), int(output_tokens),
        int(model_calls), Decimal(cost_usd),
    )  # fmt: skip


def _step(row: tuple[Any, ...]) -> StepRecord:
    (span_id, parent_span_id, definition_id, definition_name, definition_module, status, start, end, inputs, outputs,
     error, error_code, input_tokens, output_tokens, cache_read, cache_write, model_calls, cost) = row  # fmt: skip
    start_utc = _utc(start)
    assert start_utc is not None
    return StepRecord(
        UUID(str(span_id)), UUID(str(parent_span_id)) if parent_span_id is not None else None,
        UUID(str(definition_id)), str(definition_name), [str(part) for part in definition_module], str(status),
        start_utc, _utc(end), _json(inputs), _json(outputs), _json(error), str(error_code), int(input_tokens),
        int(output_tokens), int(cache_read), int(cache_write), int(model_calls), Decimal(cost),
    )  # fmt: skip


async def resolve_workflow_id(store: Store, org: str, id_or_name: str) -> UUID:
    """A stored workflow (by id or name, latest version), else a workflow known only from its runs' events
    (plain Vellum emitters publish runs of workflows spanline never stored). UnknownWorkflowError if neither."""
    try:
        return (await find_workflow(store, org, id_or_name)).workflow_id
    except UnknownWorkflowError:
        pass
    try:
        workflow_id = UUID(id_or_name)
    except ValueError:
        rows = await store.query(_SEEN_WORKFLOW_BY_NAME, {"org": org, "name": id_or_name})
    else:
        rows = await store.query(_SEEN_WORKFLOW_BY_ID, {"org": org, "workflow_id": workflow_id})
    if not rows:
        raise UnknownWorkflowError(f"workflow {id_or_name!r} not found")
    return UUID(str(rows[0][0]))


async def list_runs(store: Store, org: str, workflow_id: UUID, *, limit: int, offset: int) -> list[RunRecord]:
    """Most recent first (by start, then id); runs whose root event has not arrived have no workflow yet."""
    parameters = {"org": org, "workflow_id": workflow_id, "limit": limit, "offset": offset}
    return [_run(row) for row in await store.query(_RUNS_SQL, parameters)]


async def get_run(store: Store, org: str, execution_id: UUID) -> RunRecord | None:
    rows = await store.query(_RUN_SQL, {"org": org, "execution_id": execution_id})
    return _run(rows[0]) if rows else None


async def last_event_time(store: Store, org: str, execution_id: UUID) -> datetime | None:
    rows = await store.query(_LAST_EVENT_SQL, {"org": org, "execution_id": execution_id})
    value = _utc(rows[0][0]) if rows else None
    # max() over no rows gives the epoch, not NULL.
    return value if value is not None and value.timestamp() > 0 else None


async def list_steps(store: Store, org: str, execution_id: UUID) -> list[StepRecord]:
    """Every node execution of the run, subworkflow nodes included, in start order."""
    return [_step(row) for row in await store.query(_STEPS_SQL, {"org": org, "execution_id": execution_id})]
