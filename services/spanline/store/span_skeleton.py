"""The compact skeleton of one execution: every span's id, parent, label, kind, status and times, in the
detail API's page order (start_ts, span_id as text), so a client can lay out a run of any size at once
and find the keyset cursor of any span (the span before it) without reading the pages before it."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from spanline.store.store import Store

# Times as microseconds since the epoch and ids as text: no per-row datetime or UUID objects to build.
_SKELETON = """
SELECT toString(span_id) AS id, toString(parent_span_id), kind, definition_name, status,
       toUnixTimestamp64Micro(start_ts), toUnixTimestamp64Micro(end_ts)
FROM spans FINAL
WHERE org = {org:String} AND execution_id = {execution:UUID}
ORDER BY start_ts, id
"""


@dataclass(frozen=True, slots=True)
class SkeletonSpan:
    span_id: str
    parent_span_id: str | None
    kind: str
    label: str
    status: str
    start_us: int
    end_us: int | None


async def span_skeleton(store: Store, org: str, execution_id: UUID) -> list[SkeletonSpan]:
    rows = await store.query(_SKELETON, {"org": org, "execution": execution_id})
    return [
        SkeletonSpan(str(span_id), parent or None, str(kind), str(label), str(status), int(start), end)
        for span_id, parent, kind, label, status, start, end in rows
    ]
