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
    """Live subscribers of this API process and, when the consumer runs in this process (`spanline dev`),
    its events, rows written, DLQ count and lag per partition."""
    consumer = state.consumer_metrics.snapshot() if state.consumer_metrics is not None else None
    return {"live_subscribers": state.hub.subscriber_count(), "consumer": consumer}
