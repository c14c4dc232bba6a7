"""What callers attach to runs: external_id and metadata given at execution (`execution_labels`), and the
actuals submitted afterwards (`execution_actuals`). Every read is scoped to one organization."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from spanline.store.store import Store

_LABELS = """
SELECT execution_id, external_id, metadata FROM execution_labels FINAL
WHERE org = {org:String} AND execution_id IN {executions:Array(UUID)}
"""
_BY_EXTERNAL_ID = """
SELECT execution_id FROM execution_labels FINAL
WHERE org = {org:String} AND external_id = {external_id:String}
ORDER BY created_at DESC
LIMIT 1
"""
_ACTUALS = """
SELECT execution_id, output, output_id, output_key, output_type, quality, desired_output_value, metadata, timestamp
FROM execution_actuals FINAL
WHERE org = {org:String} AND execution_id IN {executions:Array(UUID)}
ORDER BY execution_id, output
"""


@dataclass(frozen=True, slots=True)
class Label:
    external_id: str | None
    metadata: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Actual:
    output: str
    output_id: str
    output_key: str
    output_type: str
    quality: float | None
    desired_output_value: Any
    metadata: dict[str, Any] | None
    timestamp: datetime


def _json_or_none(text: str) -> Any:
    return json.loads(text) if text else None


async def save_label(
    store: Store, org: str, execution_id: UUID, external_id: str | None, metadata: dict[str, Any] | None
) -> None:
    if external_id is None and metadata is None:
        return  # nothing attached: no row
    row = [org, execution_id, external_id, json.dumps(metadata) if metadata is not None else "", datetime.now(UTC)]
    await store.insert("execution_labels", [row], ["org", "execution_id", "external_id", "metadata", "created_at"])


_NO_LABEL: Final = Label(None, None)


async def get_labels(store: Store, org: str, execution_ids: Sequence[UUID]) -> dict[UUID, Label]:
    """The label of each of these runs that has one (absent: nothing was attached)."""
    if not execution_ids:
        return {}
    rows = await store.query(_LABELS, {"org": org, "executions": list(execution_ids)})
    return {UUID(str(run)): Label(external_id, _json_or_none(metadata)) for run, external_id, metadata in rows}


async def get_label(store: Store, org: str, execution_id: UUID) -> Label:
    return (await get_labels(store, org, [execution_id])).get(execution_id, _NO_LABEL)


async def execution_of_external_id(store: Store, org: str, external_id: str) -> UUID | None:
    """The organization's latest run given this external_id (None: no such run in this organization)."""
    rows = await store.query(_BY_EXTERNAL_ID, {"org": org, "external_id": external_id})
    return UUID(str(rows[0][0])) if rows else None


async def save_actuals(store: Store, org: str, execution_id: UUID, actuals: Sequence[Actual]) -> None:
    now = datetime.now(UTC)
    rows = [
        [
            org,
            execution_id,
            actual.output,
            actual.output_id,
            actual.output_key,
            actual.output_type,
            actual.quality,
            json.dumps(actual.desired_output_value),
            json.dumps(actual.metadata) if actual.metadata is not None else "",
            actual.timestamp,
            now,
        ]
        for actual in actuals
    ]
    columns = ["org", "execution_id", "output", "output_id", "output_key", "output_type", "quality"]
    await store.insert(
        "execution_actuals", rows, [*columns, "desired_output_value", "metadata", "timestamp", "submitted_at"]
    )


async def get_actuals_of(store: Store, org: str, execution_ids: Sequence[UUID]) -> dict[UUID, list[Actual]]:
    """Each run's actuals, ordered by output (absent: none submitted)."""
    if not execution_ids:
        return {}
    found: dict[UUID, list[Actual]] = {}
    for run, out, oid, key, kind, quality, desired, meta, ts in await store.query(
        _ACTUALS, {"org": org, "executions": list(execution_ids)}
    ):
        actual = Actual(out, oid, key, kind, quality, _json_or_none(desired), _json_or_none(meta), ts)
        found.setdefault(UUID(str(run)), []).append(actual)
    return found


async def get_actuals(store: Store, org: str, execution_id: UUID) -> list[Actual]:
    return (await get_actuals_of(store, org, [execution_id])).get(execution_id, [])
