"""Liveness, readiness and the process's operational metrics.

`/healthz` and `/readyz` are open (probes carry no key). `/metrics` needs a key (401 without one): it
shows process-wide operational figures only (the consumer group's lag per partition, the live feed's
subscriber count, an in-process consumer's counters), never an organization's name, ids or data. Where
even aggregate activity is not for tenants to see, `SPANLINE_METRICS_ORG` limits it to the keys of one
(operators') organization; other keys get 403.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse

from spanline.api.deps import AppStateDep, BusDep, OrgDep, StoreDep
from spanline.bus.interface import BusUnavailableError
from spanline.store.store import StoreUnavailableError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Kafka or ClickHouse does not answer"}})
async def readyz(store: StoreDep, bus: BusDep) -> JSONResponse:
    store_check, bus_check = await asyncio.gather(store.ping(), bus.ping(), return_exceptions=True)
    problems = {
        name: str(outcome)
        for name, outcome in (("clickhouse", store_check), ("kafka", bus_check))
        if isinstance(outcome, StoreUnavailableError | BusUnavailableError)
    }
    for outcome in (store_check, bus_check):
        if isinstance(outcome, BaseException) and not isinstance(outcome, StoreUnavailableError | BusUnavailableError):
            raise outcome
    if problems:
        detail = "; ".join(f"{name}: {reason}" for name, reason in problems.items())
        return JSONResponse({"status": "unavailable", "detail": detail, "checks": problems}, status_code=503)
    return JSONResponse({"status": "ready", "checks": {"clickhouse": "ok", "kafka": "ok"}})


@router.get(
    "/metrics",
    responses={401: {"description": "no or bad key"}, 403: {"description": "not a key of SPANLINE_METRICS_ORG"}},
)
async def metrics(org: OrgDep, state: AppStateDep) -> dict[str, Any]:
    """The consumer group's lag per partition of the events topic (end offset seen by this process's live
    feed minus the group's committed offset; works whatever process the consumer runs in), live
    subscribers, and, when the consumer runs in this process (`spanline dev`), its own counters."""
    settings = state.settings
    if settings.metrics_org is not None and org != settings.metrics_org:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this key's organization may not read /metrics")
    lag_error: str | None = None
    try:
        committed = await state.offsets.committed_offsets(settings.consumer_group, settings.events_topic)
    except Exception as exc:  # lag is best effort: the bus may not know the group yet
        committed, lag_error = {}, str(exc)
    lag = {
        f"{tp.topic}/{tp.partition}": end - committed.get(tp, 0)
        for tp, end in sorted(state.hub.end_offsets().items(), key=lambda item: item[0].partition)
    }
    consumer = state.consumer_metrics.snapshot() if state.consumer_metrics is not None else None
    return {
        "consumer_group": settings.consumer_group,
        "consumer_lag": lag,
        "consumer_total_lag": sum(lag.values()),
        "consumer_lag_error": lag_error,
        "live_subscribers": state.hub.subscriber_count(),
        "consumer": consumer,
    }
