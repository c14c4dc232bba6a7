"""The compact skeleton of one execution: every span's id, parent, label, kind, status and times, in the
detail API's page order (start_ts, span_id as text), so a client can lay out a run of any size at once
and find the keyset cursor of any span (the span before it) without reading the pages before it.

ClickHouse writes the rows as JSON arrays itself (JSONCompactEachRow): no Python object per span."""

from __future__ import annotations

from uuid import UUID

from clickhouse_connect.driver.client import Client

from spanline.store.store import Store

# Times as microseconds after `origin`; the kind as one letter (w: workflow, n: node).
_SKELETON = """
SELECT toString(span_id) AS id, toString(parent_span_id), definition_name, substring(kind, 1, 1), status,
       toInt64(toUnixTimestamp64Micro(start_ts) - {origin:Int64}) AS start_us,
       toInt64(toUnixTimestamp64Micro(end_ts) - {origin:Int64})
FROM spans
WHERE org = {org:String} AND execution_id = {execution:UUID}
ORDER BY start_ts, id
"""
# Any instant at or before every span's start serves as the origin (older row versions included).
_ORIGIN = """
SELECT min(toUnixTimestamp64Micro(start_ts)), count() FROM spans
WHERE org = {org:String} AND execution_id = {execution:UUID}
"""
COLUMNS = ("span_id", "parent_span_id", "label", "kind", "status", "start_us", "end_us")


async def skeleton_origin(store: Store, org: str, execution_id: UUID) -> int | None:
    rows = await store.query(_ORIGIN, {"org": org, "execution": execution_id})
    return int(rows[0][0]) if rows and rows[0][1] else None


async def skeleton_rows(store: Store, org: str, execution_id: UUID, origin: int) -> bytes:
    """The spans as comma-separated JSON arrays (the inside of a JSON list), in page order."""
    parameters = {"org": org, "execution": execution_id, "origin": origin}

    def read(client: Client) -> bytes:
        raw: bytes = client.raw_query(
            _SKELETON,
            parameters=parameters,
            fmt="JSONCompactEachRow",
            settings={"output_format_json_quote_64bit_integers": 0},
        )
        return raw

    # One JSON array per line; a JSON string never holds a raw newline, so the newlines are the separators.
    return (await store.run(read)).rstrip(b"\n").replace(b"\n", b",")
