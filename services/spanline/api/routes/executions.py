"""Vellum's execution reads: the detail page with keyset span pagination, the status, and a list."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel

from spanline.api.contract_types import UsageResultField, UtcTimestamp
from spanline.api.deps import AppStateDep, OrgDep
from spanline.api.routes.actuals import ActualView, actual_view
from spanline.api.vellum_values import VellumValue, vellum_values
from spanline.core.times import rfc3339, rfc3339_text
from spanline.events.models import Cost, ModelUsage, ModelUsageCounts, UsageResult
from spanline.store import execution_reads as reads
from spanline.store.execution_labels import Actual, Label, get_actuals, get_label
from spanline.store.model_usage import ModelUsageRow, usage_by_model

router = APIRouter(prefix="/v1", tags=["executions"])

ExecutionState = Literal["INITIATED", "STREAMING", "FULFILLED", "REJECTED", "PAUSED", "PENDING"]


class Span(BaseModel):
    name: Literal["workflow.execution", "node.execution"]
    span_id: str
    parent_span_id: str | None
    start_ts: UtcTimestamp
    end_ts: UtcTimestamp
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    usage_result: dict[str, Any] | None


class ExecutionDetail(BaseModel):
    span_id: str
    parent_context: dict[str, Any] | None
    start: UtcTimestamp | None
    end: UtcTimestamp | None
    inputs: list[VellumValue]
    outputs: list[VellumValue]
    error: dict[str, Any] | None
    usage_results: list[UsageResultField] | None
    spans: list[Span]
    state: dict[str, Any] | None
    # spanline fields (the SDK's WorkflowExecutionDetail keeps extra fields): what the caller attached
    external_id: str | None = None
    metadata: dict[str, Any] | None = None
    actuals: list[ActualView] = []


class ExecutionStatus(BaseModel):
    status: ExecutionState
    execution_id: str
    outputs: dict[str, Any] | None = None  # output name → value, as the SDK's status response parses it
    error: dict[str, Any] | None = None
    execution_detail_url: str


class ExecutionListItem(BaseModel):
    execution_id: str
    workflow_id: str
    workflow_name: str
    status: str
    start: UtcTimestamp | None
    end: UtcTimestamp | None
    external_id: str | None
    span_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class ExecutionList(BaseModel):
    results: list[ExecutionListItem]
    next_cursor: str | None


def _json_object(text: str) -> dict[str, Any] | None:
    return json.loads(text) if text else None


# The page's events are written back as msgspec reads them (what the consumer's msgspec decode accepted,
# big integers included), not through pydantic's generic dict serializer: most of the response is them.
_EVENT_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


def _span(row: reads.SpanRow, events: list[str], workflow_id: UUID) -> dict[str, Any]:
    """One `Span` as the JSON object its model writes (fields in its order; a test holds them equal)."""
    decoded = [_EVENT_DECODER.decode(payload) for payload in events]
    for event in decoded:  # as its emitter wrote it (`+00:00`, no fraction): in the API's one format
        event["timestamp"] = rfc3339_text(event["timestamp"])
    terminal = next((e for e in reversed(decoded) if e["name"].endswith((".fulfilled", ".rejected"))), None)
    is_workflow = row.kind == "workflow"
    attributes: dict[str, Any] = (
        {"label": row.definition_name, "workflow_id": str(row.definition_id)}
        if is_workflow
        else {"label": row.definition_name, "node_id": str(row.definition_id), "workflow_id": str(workflow_id)}
    )
    return {
        "name": "workflow.execution" if is_workflow else "node.execution",
        "span_id": str(row.span_id),
        "parent_span_id": str(row.parent_span_id) if row.parent_span_id else None,
        "start_ts": rfc3339(row.start_ts),
        "end_ts": rfc3339(row.end_ts or row.start_ts),  # a running span ends, for now, where it started
        "attributes": attributes,
        "events": decoded,
        "usage_result": (terminal or {}).get("body", {}).get("usage_result"),
    }


_COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "input_chars", "output_chars",
           "compute_nanos")  # fmt: skip


def _usage_results(rows: list[ModelUsageRow]) -> list[UsageResult] | None:
    """One UsageResult for the whole execution: usage per model (providers summed), one total cost."""
    if not rows:
        return None
    per_model: dict[str, list[int]] = {}
    for row in rows:  # ordered by model
        totals = per_model.setdefault(row.model, [0] * len(_COUNTS))
        for index, name in enumerate(_COUNTS):
            totals[index] += getattr(row, name)
    usage = [
        ModelUsage(
            ml_model_name=model,
            ml_model_usage=ModelUsageCounts(
                input_token_count=totals[0],
                output_token_count=totals[1],
                cache_read_input_tokens=totals[2],
                cache_creation_input_tokens=totals[3],
                input_char_count=totals[4],
                output_char_count=totals[5],
                compute_nanos=totals[6],
            ),
        )
        for model, totals in per_model.items()
    ]
    return [UsageResult(usage=usage, cost=[Cost(value=float(sum(row.cost_usd for row in rows)))])]


@router.get(
    "/workflow-executions/{execution_id}/detail",
    response_model=ExecutionDetail,
    responses={404: {"description": "unknown execution, or prev_span_id not in it"}},
)
async def execution_detail(
    execution_id: UUID,
    org: OrgDep,
    state: AppStateDep,
    prev_span_id: Annotated[UUID | None, Query(description="exclusive keyset cursor: the last span seen")] = None,
    span_limit: Annotated[int, Query(ge=1, le=1000, description="spans per page")] = 100,
) -> Response:
    """An execution with one page of its spans, ordered by (start_ts, span_id)."""
    store = state.store
    # Two rounds of reads that need nothing from each other within a round (the store runs queries on a
    # thread pool): the header, usage, label, the root span's events and the page's span ids (the cursor's
    # start looked up in the same query); then the page's spans and their events.
    header, usage, label, actuals, root_events, span_ids = await asyncio.gather(
        reads.execution(store, org, execution_id),
        usage_by_model(store, org, execution_id, with_cost_only_entries=True),
        get_label(store, org, execution_id),
        get_actuals(store, org, execution_id),
        reads.span_events(store, org, execution_id, [execution_id]),  # parent_context and state
        reads.page_span_ids(store, org, execution_id, span_limit, after_span=prev_span_id),
    )
    if header is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"execution {execution_id} not found")
    if (
        prev_span_id is not None
        and not span_ids
        and await reads.span_start(store, org, execution_id, prev_span_id) is None
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"span {prev_span_id} is not part of execution {execution_id}")
    others = [span_id for span_id in span_ids if span_id != execution_id]
    page, events = await asyncio.gather(
        reads.span_rows(store, org, execution_id, span_ids), reads.span_events(store, org, execution_id, others)
    )
    events.update(root_events)
    # Decoding and writing a page's events is CPU work in proportion to their size: off the loop the live
    # streams share.
    body = await asyncio.to_thread(_detail, execution_id, header, usage, page, events, label, actuals)
    return Response(body, media_type="application/json")


def _detail(
    execution_id: UUID,
    header: reads.ExecutionRow,
    usage: list[ModelUsageRow],
    page: list[reads.SpanRow],
    events: dict[UUID, list[str]],
    label: Label,
    actuals: list[Actual],
) -> bytes:
    """The response body: the header fields by the model, the spans spliced in as `_span` writes them."""
    root_events = [_EVENT_DECODER.decode(payload) for payload in events.get(execution_id, [])]
    parent_context = next((e.get("parent") for e in root_events if e["name"].endswith(".initiated")), None)
    final_state = next((e["body"].get("final_state") for e in root_events if e["name"].endswith(".fulfilled")), None)
    detail = ExecutionDetail(
        span_id=str(execution_id),
        parent_context=parent_context,
        start=header.start_ts,
        end=header.end_ts,
        inputs=vellum_values(execution_id, _json_object(header.inputs) or {}),
        outputs=vellum_values(execution_id, _json_object(header.outputs) or {}),
        error=_json_object(header.error),
        usage_results=_usage_results(usage),
        spans=[],
        state=final_state,
        external_id=label.external_id,
        metadata=label.metadata,
        actuals=[actual_view(actual) for actual in actuals],
    )
    spans = _ENCODER.encode([_span(row, events[row.span_id], header.workflow_id) for row in page])
    before = detail.model_dump_json(include=_BEFORE_SPANS, by_alias=True).encode()
    after = detail.model_dump_json(include=_AFTER_SPANS, by_alias=True).encode()
    return b"".join((before[:-1], b',"spans":', spans, b",", after[1:]))


# The fields written before and after `spans`, in the model's order (both sets are non-empty).
_FIELDS = list(ExecutionDetail.model_fields)
_BEFORE_SPANS = set(_FIELDS[: _FIELDS.index("spans")])
_AFTER_SPANS = set(_FIELDS[_FIELDS.index("spans") + 1 :])


@router.get("/workflows/executions/{execution_id}/status", response_model=ExecutionStatus, responses={404: {}})
async def execution_status(execution_id: UUID, org: OrgDep, state: AppStateDep, request: Request) -> ExecutionStatus:
    detail_url = str(request.url_for("execution_detail", execution_id=str(execution_id)))
    header = await reads.execution(state.store, org, execution_id)
    if header is None:
        if state.recent_requests.get(execution_id) == org:  # requested here, not stored yet
            return ExecutionStatus(status="PENDING", execution_id=str(execution_id), execution_detail_url=detail_url)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"execution {execution_id} not found")
    outputs = _json_object(header.outputs)
    return ExecutionStatus(
        status=header.status if header.status in ExecutionState.__args__ else "INITIATED",  # type: ignore[attr-defined]
        execution_id=str(execution_id),
        outputs=outputs if outputs is not None and header.status == "FULFILLED" else None,
        error=_json_object(header.error),
        execution_detail_url=detail_url,
    )


def _encode_cursor(row: reads.ExecutionSummary) -> str:
    return base64.urlsafe_b64encode(f"{row.sort_ts.isoformat()}|{row.execution_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        moment, _, execution_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(moment), UUID(execution_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise HTTPException(422, "cursor is not one this API gave out") from exc


# What DateTime64(6, 'UTC') holds: a filter or cursor time outside it is clamped (before 1900 = from the start,
# after 2299 = to the end), never sent to ClickHouse as a value it cannot parse.
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(2299, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted past datetime's own range
        return _EARLIEST if moment.year < 1900 else _LATEST
    return min(max(moment, _EARLIEST), _LATEST)


@router.get("/workflow-executions", response_model=ExecutionList)
async def list_executions(
    org: OrgDep,
    state: AppStateDep,
    workflow_id: Annotated[str | None, Query(description="a workflow's id or name")] = None,
    status_filter: Annotated[
        Literal["INITIATED", "STREAMING", "FULFILLED", "REJECTED", "PAUSED"] | None, Query(alias="status")
    ] = None,
    external_id: Annotated[str | None, Query(description="the external_id given at execution")] = None,
    started_from: Annotated[datetime | None, Query(description="runs that started at or after this")] = None,
    started_to: Annotated[datetime | None, Query(description="runs that started before this")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> ExecutionList:
    """The organization's executions, newest first, a keyset page at a time; naive times are UTC."""
    before = _decode_cursor(cursor) if cursor else None
    if before is not None:
        before = (_utc(before[0]) or _LATEST, before[1])
    rows = await reads.list_executions(
        state.store,
        org,
        limit=limit,
        workflow=workflow_id,
        status=status_filter,
        before=before,
        filters=reads.ExecutionFilters(external_id, _utc(started_from), _utc(started_to)),
    )
    items = [
        ExecutionListItem(
            execution_id=str(row.execution_id),
            workflow_id=str(row.workflow_id),
            workflow_name=row.workflow_name,
            status=row.status,
            start=row.start_ts,
            end=row.end_ts,
            external_id=row.external_id,
            span_count=row.span_count,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost_usd=float(row.cost_usd),
        )
        for row in rows
    ]
    return ExecutionList(results=items, next_cursor=_encode_cursor(rows[-1]) if len(rows) == limit else None)
