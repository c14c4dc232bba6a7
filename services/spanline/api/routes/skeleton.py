"""`GET /v1/workflow-executions/{execution_id}/span-skeleton`: every span of a run in about a hundred
bytes (far less gzipped), so a client can draw the tree and timeline of 100,000 spans at once and fetch
any page of the detail API directly (the cursor of a span's page is the span before it in this order)."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response

from spanline.api.deps import AppStateDep, OrgDep
from spanline.core.times import rfc3339
from spanline.store import execution_reads as reads
from spanline.store.model_usage import ModelUsageRow, usage_by_model
from spanline.store.span_skeleton import COLUMNS, skeleton_origin, skeleton_rows

router = APIRouter(prefix="/v1", tags=["executions"])

# Below this the bytes saved are not worth the compression time.
GZIP_MIN_BYTES = 4096


def _rfc3339(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


def skeleton_header(
    execution_id: UUID, header: reads.ExecutionRow, usage: list[ModelUsageRow], origin: int
) -> dict[str, Any]:
    return {
        "execution_id": str(execution_id),
        "workflow_id": str(header.workflow_id),
        "workflow_name": header.workflow_name,
        "status": header.status,
        "start": _rfc3339(header.start_ts),
        "end": _rfc3339(header.end_ts),
        "error": json.loads(header.error) if header.error else None,
        "external_id": header.external_id,
        "span_count": header.span_count,
        "usage_by_model": [
            {
                "model": row.model,
                "provider": row.provider,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "cost_usd": float(row.cost_usd),
            }
            for row in usage
        ],
        "origin_us": origin,
        "columns": COLUMNS,
    }


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
    array per span in the order of `columns`: span_id, parent_span_id (null for the top span), label,
    kind (`w` workflow, `n` node), status, start_us and end_us (microseconds after `origin_us`, an instant
    in µs since the epoch at or before every start; end_us null while the span runs). Also the run's
    status, times, error and tokens and cost per model and provider. Gzip-compressed when the client accepts it."""
    header, usage, origin = await asyncio.gather(
        reads.execution(state.store, org, execution_id),
        usage_by_model(state.store, org, execution_id),
        skeleton_origin(state.store, org, execution_id),
    )
    if header is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"execution {execution_id} not found")
    origin = origin if origin is not None else 0
    rows = await skeleton_rows(state.store, org, execution_id, origin)
    # The header, then the rows ClickHouse wrote, spliced in as the `spans` list.
    body = orjson.dumps(skeleton_header(execution_id, header, usage, origin))[:-1] + b',"spans":[' + rows + b"]}"
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        body = await asyncio.to_thread(gzip.compress, body, 1)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)
