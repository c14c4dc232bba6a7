"""Usage analytics: `POST /v1/usage/query`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from spanline.api.deps import OrgDep, StoreDep
from spanline.store.actual_queries import run_query
from spanline.store.usage_queries import UsageQueryError, parse_usage_query

router = APIRouter(prefix="/v1/usage", tags=["usage"])


class UsageQueryRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    start: datetime = Field(alias="from", description="inclusive; naive times are UTC")
    end: datetime = Field(alias="to", description="exclusive")
    dimensions: list[str] = Field(default_factory=list)
    measures: list[str]
    granularity: str | None = Field(default=None, description="minute | hour | day | week | month")
    filters: dict[str, str | list[str]] = Field(default_factory=dict)
    limit: int | None = Field(default=None, description="1..10000, default 1000")


class UsageQueryResponse(BaseModel):
    rows: list[dict[str, Any]]
    truncated: bool


@router.post(
    "/query",
    response_model=UsageQueryResponse,
    responses={401: {"description": "no or bad key"}, 422: {"description": "unknown names, bad range or limit"}},
)
async def query_usage(body: UsageQueryRequest, org: OrgDep, store: StoreDep) -> UsageQueryResponse:
    """Token, cost, call and latency totals of the caller's model calls, grouped by dimensions and time.

    Request: `{"from": ts, "to": ts, "dimensions": [...], "measures": [...], "granularity"?: minute | hour |
    day | week | month, "filters"?: {dimension: value | [values]}, "limit"?: 1..10000 (default 1000)}`.

    - dimensions: model, provider, workflow_id, workflow_name, status (the model call's span status:
      FULFILLED or REJECTED). Filters name dimensions; a list means any of its values.
    - measures: input_tokens, output_tokens, total_tokens (input + output), cache_read_tokens,
      cache_write_tokens, cost_usd, calls, failed_calls, executions (distinct runs), latency_avg,
      latency_p50, latency_p95, latency_p99 (milliseconds of `compute_nanos`; null when there are no calls).
      `actuals` (outputs given an actual with `submit-workflow-execution-actuals`) and `quality_avg` (the
      mean of their quality, null without one) count actuals by their timestamp and break down by
      workflow_id / workflow_name only.
      latency_p50/p95/p99 are approximations within 2 % relative error of the exact nearest-rank quantile
      (the latency of the call at rank ceil(q * n)), read from log-bucket histograms; latency_avg is exact.
    - time: calls are counted per minute (of their terminal node event); a minute counts when its start is
      in [from, to). Buckets are UTC; weeks start on Monday.

    Response: `{"rows": [{"bucket"?: "2026-11-02T09:00:00Z", <dimension>: value, ..., <measure>: value, ...}],
    "truncated": bool}`, ordered by bucket then dimensions; `truncated` says more rows than `limit` exist.
    Without dimensions and granularity there is exactly one row (the totals).

    Answered from the rollups (`usage_rollup_hour` for whole hours, `usage_rollup_minute` for the minutes
    around them); a query on `status` reads the per-call `usage_by_minute` rows, since the rollups keep only
    failed counts. Every source buckets latencies the same way, so they give the same quantiles.
    Unknown dimension, measure, filter or granularity, `to <= from`, or a limit outside 1..10000 → 422
    whose detail names each problem.
    """
    try:
        query = parse_usage_query(
            start=body.start,
            end=body.end,
            dimensions=body.dimensions,
            measures=body.measures,
            granularity=body.granularity,
            filters=body.filters,
            limit=body.limit,
        )
    except UsageQueryError as exc:
        raise HTTPException(422, str(exc)) from exc
    result = await run_query(store, org, query)
    return UsageQueryResponse(rows=result.rows, truncated=result.truncated)
