"""Reads behind the execution endpoints: one execution's header, a keyset page of its spans, the events
of those spans, and the stored event history in stream order (its usage per model: store/model_usage.py).

Every query is scoped to the caller's organization and to one execution's primary-key range; a span page
reads `span_order` (keyed in page order) from its cursor on, then the page's span states (`span_state`) and
events (`events_by_span`) by primary key, so its cost does not grow with how deep into the execution it is
(keyset, not OFFSET). The detail route runs them in two rounds of concurrent reads (docs/read_api.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from spanline.events.models import TERMINAL_WORKFLOW_EVENT_NAMES
from spanline.store.store import Store

_EXECUTION = """
SELECT workflow_id, workflow_name, status, start_ts, end_ts, inputs, outputs, error, error_code, external_id,
       span_count, input_tokens, output_tokens, cost_usd
FROM executions FINAL
WHERE org = {org:String} AND execution_id = {execution:UUID}
"""

# A span's start, as `spans` merges it, read from `span_state` by primary key (the view would merge every
# state of the span; in span_order, keyed by start first, finding a span id reads every row before it).
_SPAN_START = """
SELECT if(max(has_event) = 1, ifNull(min(initiated_ts), min(first_ts)), NULL) FROM span_state
WHERE org = {org:String} AND execution_id = {execution:UUID} AND span_id = {span:UUID}
"""

# The page's span ids, read in page order from the cursor on (span_order is keyed that way): without
# FINAL, which would read the whole execution; copies of a row not merged yet are skipped in `span_page`.
_PAGE_ORDER = """
SELECT start_ts, span_id FROM span_order
WHERE org = {org:String} AND execution_id = {execution:UUID} {after}
ORDER BY start_ts, span_id
LIMIT {limit:UInt32}
"""
# The first condition is the one the primary key can use (it does not analyse a tuple comparison).
_AFTER = (
    "AND start_ts >= {cursor_ts:DateTime64(6, 'UTC')} "
    "AND (start_ts, span_id) > ({cursor_ts:DateTime64(6, 'UTC')}, toString({cursor_span:UUID}))"
)
# The same from the cursor span's id alone: its start is a scalar subquery, a constant by the time the
# primary key is analysed (NULL for a span not in the execution: no row passes).
_AFTER_SPAN = (
    f"AND start_ts >= ({_SPAN_START.replace('{span:UUID}', '{cursor_span:UUID}')}) "
    f"AND (start_ts, span_id) > (({_SPAN_START.replace('{span:UUID}', '{cursor_span:UUID}')}), "
    "toString({cursor_span:UUID}))"
)

# ... then their latest state, merged from `span_state` by primary key: only what a page shows (the
# `spans` view would merge every state, inputs, outputs and model calls included).
_PAGE_SPANS = """
SELECT span_id, max(parent_span_id), max(kind), argMinMerge(definition).1, argMinMerge(definition).2,
       argMaxMerge(status), assumeNotNull(ifNull(min(initiated_ts), min(first_ts))), max(end_ts)
FROM span_state
WHERE org = {org:String} AND execution_id = {execution:UUID} AND span_id IN {spans:Array(UUID)}
GROUP BY span_id
HAVING max(has_event) = 1
"""

# Each event once, as `events_by_span FINAL` keeps it (the copy of the smallest offset), without FINAL:
# that merges every row of the key ranges read, several times the cost of dropping the copies here.
# Not with PREWHERE: in ~64 KiB granules holding a wanted row or two it saves nothing on a merged
# execution and ~a fifth of this read on one still in several parts (measured), and it makes the bytes
# read depend on where in the granules those rows fall (tests/test_page_cost.py). span_state's granules
# are small enough for it (migration 0020), and there it halves the read of an unmerged execution.
_SPAN_EVENTS = """
SELECT span_id, payload FROM events_by_span
WHERE org = {org:String} AND execution_id = {execution:UUID} AND span_id IN {spans:Array(UUID)}
ORDER BY span_id, kafka_offset, event_id
LIMIT 1 BY span_id, event_id
SETTINGS optimize_move_to_prewhere = 0
"""

_HISTORY = """
SELECT kafka_offset, name, payload FROM events_by_span FINAL
WHERE org = {org:String} AND execution_id = {execution:UUID} AND kafka_offset > {after:Int64}
ORDER BY kafka_offset, event_id
LIMIT {limit:UInt32}
"""

# The top-level workflow's terminal event, if stored: one span's key range.
_TERMINAL = """
SELECT max(kafka_offset) FROM events_by_span
WHERE org = {org:String} AND execution_id = {execution:UUID} AND span_id = {execution:UUID}
  AND name IN {names:Array(String)}
HAVING count() > 0
"""


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    workflow_id: UUID
    workflow_name: str
    status: str
    start_ts: datetime | None
    end_ts: datetime | None
    inputs: str
    outputs: str
    error: str
    error_code: str
    external_id: str | None
    span_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class SpanRow:
    span_id: UUID
    parent_span_id: UUID | None
    kind: str
    definition_id: UUID
    definition_name: str
    status: str
    start_ts: datetime
    end_ts: datetime | None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    offset: int
    name: str
    payload: str


def _scope(org: str, execution_id: UUID, **more: Any) -> dict[str, Any]:
    return {"org": org, "execution": execution_id, **more}


async def execution(store: Store, org: str, execution_id: UUID) -> ExecutionRow | None:
    rows = await store.query(_EXECUTION, _scope(org, execution_id))
    return ExecutionRow(*rows[0]) if rows else None


async def span_start(store: Store, org: str, execution_id: UUID, span_id: UUID) -> datetime | None:
    rows = await store.query(_SPAN_START, _scope(org, execution_id, span=span_id))
    start: datetime | None = rows[0][0] if rows else None
    return start


async def span_page(
    store: Store, org: str, execution_id: UUID, limit: int, after: tuple[datetime, UUID] | None
) -> list[SpanRow]:
    """One keyset page: the spans after `after` (start_ts, span_id) in (start_ts, span_id-as-text) order."""
    return await span_rows(store, org, execution_id, await page_span_ids(store, org, execution_id, limit, after=after))


async def page_span_ids(
    store: Store,
    org: str,
    execution_id: UUID,
    limit: int,
    *,
    after: tuple[datetime, UUID] | None = None,
    after_span: UUID | None = None,
) -> list[UUID]:
    """Up to `limit` distinct span ids in page order, after `after` (start_ts, span_id) or after the span
    `after_span` (its start looked up in the same query; none for a span not in the execution). Copies of
    one (start_ts, span_id) row are adjacent in that order; each read asks for what is still missing, from
    the last row on."""
    ordered: list[UUID] = []
    last: tuple[datetime, str] | None = None
    while len(ordered) < limit:
        wanted = limit - len(ordered)
        parameters = _scope(org, execution_id, limit=wanted)
        condition = ""
        if after is not None:
            parameters.update(cursor_ts=after[0], cursor_span=after[1])
            condition = _AFTER
        elif after_span is not None:
            parameters.update(cursor_span=after_span)
            condition = _AFTER_SPAN
        rows = await store.query(_PAGE_ORDER.replace("{after}", condition), parameters)
        for start_ts, span_id in rows:
            if (start_ts, span_id) != last:
                ordered.append(UUID(str(span_id)))
                last = (start_ts, span_id)
        if len(rows) < wanted or last is None:
            break
        after = (last[0], UUID(last[1]))
    return ordered


async def span_rows(store: Store, org: str, execution_id: UUID, span_ids: list[UUID]) -> list[SpanRow]:
    """The current state of each of these spans, in their order (a span with no event yet is left out)."""
    if not span_ids:
        return []
    rows = await store.query(_PAGE_SPANS, _scope(org, execution_id, spans=span_ids))
    by_id = {row.span_id: row for row in (SpanRow(*row) for row in rows)}
    return [by_id[span_id] for span_id in span_ids if span_id in by_id]


async def span_events(store: Store, org: str, execution_id: UUID, span_ids: list[UUID]) -> dict[UUID, list[str]]:
    """The stored events (JSON text) of each span, in stream order."""
    found: dict[UUID, list[str]] = {span_id: [] for span_id in span_ids}
    if not span_ids:
        return found
    for span_id, payload in await store.query(_SPAN_EVENTS, _scope(org, execution_id, spans=span_ids)):
        found[span_id].append(payload)
    return found


async def history(
    store: Store, org: str, execution_id: UUID, after_offset: int, limit: int = 1_000_000
) -> list[StoredEvent]:
    """Up to `limit` stored events after `after_offset`, in stream order (a page: the next one starts
    after the last offset of this one)."""
    rows = await store.query(_HISTORY, _scope(org, execution_id, after=after_offset, limit=limit))
    return [StoredEvent(int(offset), str(name), str(payload)) for offset, name, payload in rows]


async def terminal_offset(store: Store, org: str, execution_id: UUID) -> int | None:
    """The offset of the execution's stored terminal event (None while it has none)."""
    rows = await store.query(_TERMINAL, _scope(org, execution_id, names=sorted(TERMINAL_WORKFLOW_EVENT_NAMES)))
    return int(rows[0][0]) if rows else None


_LIST = """
SELECT execution_id, workflow_id, workflow_name, status, start_ts, end_ts, external_id, span_count,
       input_tokens, output_tokens, cost_usd, ifNull(start_ts, toDateTime64(0, 6, 'UTC')) AS sort_ts
FROM executions FINAL
WHERE org = {org:String} {filters}
ORDER BY sort_ts DESC, execution_id DESC
LIMIT {limit:UInt32}
"""


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    execution_id: UUID
    workflow_id: UUID
    workflow_name: str
    status: str
    start_ts: datetime | None
    end_ts: datetime | None
    external_id: str | None
    span_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    sort_ts: datetime


@dataclass(frozen=True, slots=True)
class ExecutionFilters:
    external_id: str | None = None
    started_from: datetime | None = None  # inclusive
    started_to: datetime | None = None  # exclusive


async def list_executions(
    store: Store,
    org: str,
    *,
    limit: int,
    workflow: str | None = None,
    status: str | None = None,
    before: tuple[datetime, UUID] | None = None,
    filters: ExecutionFilters | None = None,
) -> list[ExecutionSummary]:
    """Newest first; `before` is the (sort_ts, execution_id) keyset cursor of the previous page's last row."""
    conditions: list[str] = []
    parameters: dict[str, Any] = {"org": org, "limit": limit}
    if filters is not None:
        conditions += _more_conditions(filters, parameters)
    if workflow is not None:
        try:
            parameters["workflow_id"] = UUID(workflow)
            conditions.append("AND workflow_id = {workflow_id:UUID}")
        except ValueError:
            parameters["workflow_name"] = workflow
            conditions.append("AND workflow_name = {workflow_name:String}")
    if status is not None:
        parameters["status"] = status
        conditions.append("AND status = {status:String}")
    if before is not None:
        parameters["cursor_ts"], parameters["cursor_id"] = before
        conditions.append("AND (sort_ts, execution_id) < ({cursor_ts:DateTime64(6, 'UTC')}, {cursor_id:UUID})")
    rows = await store.query(_LIST.replace("{filters}", " ".join(conditions)), parameters)
    return [ExecutionSummary(*row) for row in rows]


def _more_conditions(filters: ExecutionFilters, parameters: dict[str, Any]) -> list[str]:
    conditions = []
    if filters.external_id is not None:
        parameters["external_id"] = filters.external_id
        conditions.append("AND external_id = {external_id:String}")
    if filters.started_from is not None:
        parameters["started_from"] = filters.started_from
        conditions.append("AND start_ts >= {started_from:DateTime64(6, 'UTC')}")
    if filters.started_to is not None:
        parameters["started_to"] = filters.started_to
        conditions.append("AND start_ts < {started_to:DateTime64(6, 'UTC')}")
    return conditions
