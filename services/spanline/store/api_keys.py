"""API keys: random 256-bit tokens, stored as their SHA-256 (a fast hash suits high-entropy secrets;
there is nothing to brute-force), each tied to one organization, listed by their prefix (the first
characters of the key, not enough to use it) and revoked by it.

Revoking writes the key's row again, same `created_at` (the table's version), with `revoked = 1`: until a
merge a key has both rows and is revoked when either says so (`max(revoked)`); a merge keeps one row per
key, of equal versions the last inserted, i.e. the revocation."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from spanline.store.store import Store

KEY_PREFIX: Final = "sl_"
PREFIX_LENGTH: Final = 10


class KeyNotFoundError(LookupError):
    """No key, or more than one, has the prefix given."""


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
    prefix = key[:PREFIX_LENGTH]
    await store.insert(
        "api_keys",
        [[hash_key(key), prefix, org, name, datetime.now(UTC), 0]],
        ["key_hash", "key_prefix", "org", "name", "created_at", "revoked"],
    )
    return CreatedKey(key=key, org=org, prefix=prefix)


async def org_for_key(store: Store, key: str) -> str | None:
    """The organization a key belongs to, or None for an unknown or revoked key."""
    rows = await store.query(
        "SELECT any(org), max(revoked) FROM api_keys WHERE key_hash = {key_hash:String} GROUP BY key_hash",
        {"key_hash": hash_key(key)},
    )
    if not rows or rows[0][1]:
        return None
    return str(rows[0][0])


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown of a key: never the key, nor its hash."""

    prefix: str
    org: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


# One row per key, whichever of its rows are still unmerged. A key revoked before revoked_at existed has
# no time: its creation stands in (it was revoked some time after).
_KEYS = """
SELECT any(key_prefix), any(org), any(name), min(created_at),
       if(max(revoked) = 1, ifNull(max(revoked_at), min(created_at)), NULL), any(key_hash)
FROM api_keys
WHERE {condition}
GROUP BY key_hash
ORDER BY min(created_at), any(key_prefix)
"""


async def _keys(store: Store, condition: str, parameters: dict[str, str]) -> list[tuple[KeyInfo, str]]:
    rows = await store.query(_KEYS.replace("{condition}", condition), parameters)
    return [(KeyInfo(str(prefix), str(org), str(name), created, revoked), str(key_hash))
            for prefix, org, name, created, revoked, key_hash in rows]  # fmt: skip


async def list_api_keys(store: Store, org: str) -> list[KeyInfo]:
    """The organization's keys, oldest first, revoked ones included."""
    return [info for info, _ in await _keys(store, "org = {org:String}", {"org": org})]


async def revoke_api_key(store: Store, prefix: str, *, org: str | None = None) -> KeyInfo:
    """Revoke the one key with this prefix (of `org`, when given); revoking a revoked key changes nothing.
    KeyNotFoundError when no key, or more than one, has it."""
    condition, parameters = "key_prefix = {prefix:String}", {"prefix": prefix}
    if org is not None:
        condition, parameters = condition + " AND org = {org:String}", {**parameters, "org": org}
    found = await _keys(store, condition, parameters)
    if len(found) != 1:
        whose = f" of organization {org!r}" if org is not None else ""
        problem = "no key" if not found else f"{len(found)} keys (give --org)"
        raise KeyNotFoundError(f"{problem}{whose} with prefix {prefix!r}; `spanline keys list --org NAME` shows them")
    info, key_hash = found[0]
    if info.revoked:
        return info
    now = datetime.now(UTC)
    revoked_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the column keeps milliseconds
    await store.insert(
        "api_keys",
        [[key_hash, info.prefix, info.org, info.name, info.created_at, 1, revoked_at]],
        ["key_hash", "key_prefix", "org", "name", "created_at", "revoked", "revoked_at"],
    )
    return KeyInfo(info.prefix, info.org, info.name, info.created_at, revoked_at)
