"""`GET /v1/workflow-executions/{execution_id}/span-skeleton`: every span of a run in a few dozen bytes
each, so a client can draw the tree and timeline of 100,000 spans at once and fetch any page of the
detail API directly (the cursor of a span's page is the span before it in this order)."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response

from spanline.api.deps import AppStateDep, OrgDep
from spanline.store import execution_reads as reads
from spanline.store.span_skeleton import SkeletonSpan, span_skeleton

router = APIRouter(prefix="/v1", tags=["executions"])

COLUMNS = ("span_id", "parent", "label", "kind", "status", "start_us", "end_us")
# Below this the bytes saved are not worth the compression time.
GZIP_MIN_BYTES = 4096


def _rfc3339(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def skeleton_document(
    execution_id: UUID, header: reads.ExecutionRow, usage: list[reads.ModelUsageRow], spans: list[SkeletonSpan]
) -> bytes:
    """The response body: the run's header, then one short array per span (labels and statuses as
    indexes into tables, times as microseconds after `origin_us`, the parent as an index)."""
    index = {span.span_id: position for position, span in enumerate(spans)}
    labels: dict[str, int] = {}
    statuses: dict[str, int] = {}
    origin = spans[0].start_us if spans else 0
    rows = [
        [
            span.span_id,
            None if span.parent_span_id is None else index.get(span.parent_span_id, span.parent_span_id),
            labels.setdefault(span.label, len(labels)),
            span.kind,
            statuses.setdefault(span.status, len(statuses)),
            span.start_us - origin,
            None if span.end_us is None else span.end_us - origin,
        ]
        for span in spans
    ]
    document = {
        "execution_id": str(execution_id),
        "workflow_id": str(header.workflow_id),
        "workflow_name": header.workflow_name,
        "status": header.status,
        "start": _rfc3339(header.start_ts),
        "end": _rfc3339(header.end_ts),
        "error": json.loads(header.error) if header.error else None,
        "external_id": header.external_id,
        "span_count": len(spans),
        "usage_by_model": [
            {
                "model": row.model,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "cost_usd": float(row.cost_usd),
            }
            for row in usage
        ],
        "origin_us": origin,
        "columns": COLUMNS,
        "labels": list(labels),
        "statuses": list(statuses),
        "spans": rows,
    }
    return orjson.dumps(document)


@router.get(
    "/workflow-executions/{execution_id}/span-skeleton",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}, "description": "the run's header and every span, compact"},
        404: {"description": "unknown execution (or another organization's)"},
    },
)
async def execution_span_skeleton(execution_id: UUID, org: OrgDep, state: AppStateDep, request: Request) -> Response:
    """Every span of the execution in the detail API's order (start_ts, span_id): `spans` holds one
    array per span in the order of `columns`: span_id; parent (the parent's index in `spans`, its span_id
    when that span has no row yet, or null); label (index into `labels`); kind (`workflow` | `node`);
    status (index into `statuses`); start_us and end_us (microseconds after `origin_us`, the first span's
    start in µs since the epoch; end_us null while the span runs). Also the run's status, times, error
    and tokens and cost per model. Gzip-compressed when the client accepts it."""
    header, usage, spans = await asyncio.gather(
        reads.execution(state.store, org, execution_id),
        reads.usage_by_model(state.store, org, execution_id),
        span_skeleton(state.store, org, execution_id),
    )
    if header is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"execution {execution_id} not found")
    body = skeleton_document(execution_id, header, usage, spans)
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        body = await asyncio.to_thread(gzip.compress, body, 1)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)
