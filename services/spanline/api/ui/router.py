"""Serves the web UI: `/` and every `/ui/...` page get the one HTML shell (the ES modules route in the
browser), `/ui/static/...` the files shipped in the package. A strict Content-Security-Policy keeps every
request the page makes on its own origin (no CDN, no web fonts, no inline script)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MEDIA_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


def _static_files() -> dict[str, Path]:
    """Every servable file by its URL path under /ui/static/ (a fixed set: no path from a request ever
    reaches the file system)."""
    return {
        path.relative_to(STATIC_DIR).as_posix(): path
        for path in STATIC_DIR.rglob("*")
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


STATIC_FILES: Final = _static_files()


def _shell() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type=MEDIA_TYPES[".html"],
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/executions", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/ui/static/{name:path}")
async def static_file(name: str) -> FileResponse:
    path = STATIC_FILES.get(name)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no UI file {name!r}")
    return FileResponse(
        path, media_type=MEDIA_TYPES[path.suffix], headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    )


@router.get("/ui")
@router.get("/ui/{page:path}")
async def page(page: str = "") -> FileResponse:
    del page  # the browser-side router reads the path
    return _shell()
