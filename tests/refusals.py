"""What every 422 must be (SPEC §4): JSON `{"detail": "..."}`, one string that names what is wrong."""

from __future__ import annotations

import httpx


def assert_refused_naming(response: httpx.Response, *names: str) -> str:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str), f"detail is not a string: {detail!r}"
    for name in names:
        assert name in detail, f"{name!r} is not named in {detail!r}"
    return detail
