"""`spanline replay`: rebuild every derived table from the raw events table.

The derived tables are emptied, then the raw events are read in primary-key pages (keyset, no OFFSET)
and pushed through the same decode → rows → writer path as live traffic, so a replay gives exactly the
state the live consumer would have built. Stop live consumers first; on chDB the store is this process's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from spanline.bus.interface import ORG_HEADER, BusMessage
from spanline.consumer.decode import AcceptedEvent, decode_message
from spanline.consumer.rows import build_rows
from spanline.consumer.writer import EventBatchWriter
from spanline.store.store import Store

DERIVED_TABLES: Final = (
    "span_state",
    "span_order",
    "usage",
    "usage_by_minute",
    "usage_rollup_minute",
    "usage_rollup_hour",
    "executions",
)

_PAGE_SQL: Final = """
SELECT org, execution_id, event_id, payload, kafka_partition, kafka_offset FROM events FINAL
WHERE (org, execution_id, event_id) > ({org:String}, {execution_id:UUID}, {event_id:UUID})
ORDER BY org, execution_id, event_id LIMIT {limit:UInt32}
"""
_ZERO_UUID: Final = "00000000-0000-0000-0000-000000000000"


async def replay_from_events(
    store: Store, *, page_size: int = 20_000, progress: Callable[[int, int], None] | None = None
) -> int:
    """Rebuild; `progress(done, total)` after each page. Returns the number of events replayed."""
    total = int((await store.query("SELECT count() FROM events FINAL"))[0][0])
    for table in DERIVED_TABLES:
        await store.command(f"TRUNCATE TABLE IF EXISTS {table}")
    writer = EventBatchWriter(store)
    cursor = {"org": "", "execution_id": _ZERO_UUID, "event_id": _ZERO_UUID}
    done = 0
    while True:
        page = await store.query(_PAGE_SQL, {**cursor, "limit": page_size})
        if not page:
            break
        accepted: list[AcceptedEvent] = []
        for org, _, _, payload, partition, offset in page:
            raw = payload.encode() if isinstance(payload, str) else bytes(payload)
            message = BusMessage("replay", partition, offset, None, raw, ((ORG_HEADER, org.encode()),), 0)
            result = decode_message(message, default_org=org, max_bytes=len(raw) + 1)
            if isinstance(result, AcceptedEvent):
                accepted.append(result)
        await writer.write(build_rows(accepted))
        last = page[-1]
        cursor = {"org": last[0], "execution_id": str(last[1]), "event_id": str(last[2])}
        done += len(page)
        if progress is not None:
            progress(done, total)
    return done
