"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from spanline.api.deps import AppStateDep, BusDep, StoreDep
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


@router.get("/metrics")
async def metrics(state: AppStateDep) -> dict[str, Any]:
    """The consumer group's lag per partition of the events topic (end offset seen by this process's live
    feed minus the group's committed offset; works whatever process the consumer runs in), live
    subscribers, and, when the consumer runs in this process (`spanline dev`), its own counters."""
    settings = state.settings
    lag_error: str | None = None
    try:
        committed = await state.bus.committed_offsets(settings.consumer_group, settings.events_topic)
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
