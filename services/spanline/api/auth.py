"""API-key authentication: `X-API-KEY` (Vellum) or `Authorization: Bearer` (Arcee, Interactly)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fastapi import HTTPException, Request, status

from spanline.store.api_keys import hash_key, org_for_key
from spanline.store.store import Store


@dataclass
class KeyCache:
    """Remembers recent key → org answers so each request does not query ClickHouse; a revoked key
    keeps working for at most `ttl_s` seconds."""

    ttl_s: float
    _entries: dict[str, tuple[float, str]] = field(default_factory=dict)

    def get(self, key_hash: str) -> str | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, org: str) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self.ttl_s, org)


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


async def authenticate(request: Request, store: Store, cache: KeyCache) -> str:
    """The caller's organization, or a 401 with a JSON detail."""
    key = presented_key(request)
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send X-API-KEY or Authorization: Bearer <key>",
        )
    key_hash = hash_key(key)
    org = cache.get(key_hash)
    if org is None:
        org = await org_for_key(store, key)
        if org is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key")
        cache.put(key_hash, org)
    return org
