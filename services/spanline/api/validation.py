"""Request validation failures as the SPEC's `{"detail": "..."}`: one string that says what is wrong and
where (`query.limit: Input should be greater than or equal to 1`), not FastAPI's list of error objects.
The OpenAPI document describes that shape for every 422."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

_DETAIL_SCHEMA = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}


def describe(errors: Sequence[Mapping[str, Any]]) -> str:
    """`<where>: <what>` per error (where: the field's location, e.g. `body.inputs.0.value`), joined."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())) or "request"
        parts.append(f"{where}: {error.get('msg', 'is not valid')}")
    return "; ".join(parts) or "the request is not valid"


async def _refuse(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": describe(exc.errors())})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _refuse)
    render = app.openapi

    def openapi() -> dict[str, Any]:
        document = render()
        schemas = document.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = _DETAIL_SCHEMA
            schemas.pop("ValidationError", None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
