"""API keys: random 256-bit tokens, stored as their SHA-256 (a fast hash suits high-entropy secrets;
there is nothing to brute-force), each tied to one organization."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from spanline.store.store import Store

KEY_PREFIX: Final = "sl_"


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: str
    org: str
    prefix: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(store: Store, org: str, name: str = "") -> CreatedKey:
    if not org.strip():
        raise ValueError("an organization name is required")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = key[:10]
    await store.insert(
        "api_keys",
        [[hash_key(key), prefix, org, name, datetime.now(UTC), 0]],
        ["key_hash", "key_prefix", "org", "name", "created_at", "revoked"],
    )
    return CreatedKey(key=key, org=org, prefix=prefix)


async def org_for_key(store: Store, key: str) -> str | None:
    """The organization a key belongs to, or None for an unknown or revoked key."""
    rows = await store.query(
        "SELECT argMax(org, created_at), argMax(revoked, created_at) FROM api_keys "
        "WHERE key_hash = {key_hash:String} GROUP BY key_hash",
        {"key_hash": hash_key(key)},
    )
    if not rows or rows[0][1]:
        return None
    return str(rows[0][0])
