"""Outages answer 503 with a JSON reason, never 500: the store's and the bus's "cannot be reached"
errors, wherever in a request they surface (authentication, a read, publishing a run request)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from spanline.bus.interface import BusUnavailableError
from spanline.store.store import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

RETRY_AFTER_S = "5"


def _unavailable(reason: str, what: str) -> object:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: %s unavailable: %s", request.method, request.url.path, what, exc)
        return JSONResponse(
            {"detail": f"{what} is unavailable: {exc or type(exc).__name__}", "reason": reason},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_S},
        )

    return handler


def install_outage_handlers(app: FastAPI) -> None:
    for error in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, _unavailable("store_unavailable", "ClickHouse"))  # type: ignore[arg-type]
    app.add_exception_handler(BusUnavailableError, _unavailable("bus_unavailable", "Kafka"))  # type: ignore[arg-type]
