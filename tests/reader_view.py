"""Everything a reader can see of some organizations' data, in a comparable form: the derived tables
(runs, spans, steps, usage, minute and hour rollups, raw events), every detail page of every execution
(paged by `prev_span_id` as the API does, through the store's read functions) and the SSE history each
execution's stream replays (`api/routes/stream.py`'s own framing and joiner).

Organization names are namespaced per example (`<tag>-<org>`); the view strips the tag, so two ingests
of the same executions under different tags compare equal when a reader could not tell them apart."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from spanline.api.routes.stream import EVENT_TYPE_PREFIXES, _history_events, _Joiner
from spanline.store import execution_reads as reads
from spanline.store.model_usage import usage_by_model
from spanline.store.store import Store

_ORGS: Final = "org IN {orgs:Array(String)}"
TABLES: Final = {
    "runs": f"""SELECT org, execution_id, workflow_id, workflow_name, workflow_module, status, start_ts, end_ts,
        inputs, outputs, error, error_code, span_count, node_span_count, failed_span_count, input_tokens,
        output_tokens, cache_read_tokens, cache_write_tokens, model_calls, cost_usd
        FROM executions FINAL WHERE {_ORGS} ORDER BY org, execution_id""",
    "spans": f"""SELECT org, execution_id, span_id, parent_span_id, kind, definition_id, definition_name,
        definition_module, status, start_ts, end_ts, inputs, outputs, error, error_code, event_count,
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, model_calls, cost_usd
        FROM spans FINAL WHERE {_ORGS} ORDER BY org, execution_id, span_id""",
    "steps": f"SELECT org, execution_id, span_id, status FROM steps WHERE {_ORGS} ORDER BY org, execution_id, span_id",
    "usage": f"""SELECT org, execution_id, span_id, event_id, call_index, timestamp, workflow_id, node_id, status,
        model, provider, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, input_chars,
        output_chars, compute_nanos, cost_usd
        FROM usage FINAL WHERE {_ORGS} ORDER BY org, execution_id, span_id, event_id, call_index""",
    "rollup_minute": f"""SELECT org, minute, workflow_id, model, provider, sum(calls), sum(failed_calls),
        sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
        sum(compute_nanos), sum(cost_usd), sumMap(latency_hist), uniqExactMerge(executions_state)
        FROM usage_rollup_minute FINAL WHERE {_ORGS} GROUP BY org, minute, workflow_id, model, provider
        ORDER BY org, minute, workflow_id, model, provider""",
    "rollup_hour": f"""SELECT org, hour, workflow_id, model, provider, sum(calls), sum(failed_calls),
        sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
        sum(compute_nanos), sum(cost_usd), sumMap(latency_hist), uniqExactMerge(executions_state)
        FROM usage_rollup_hour FINAL WHERE {_ORGS} GROUP BY org, hour, workflow_id, model, provider
        ORDER BY org, hour, workflow_id, model, provider""",
    "events": f"""SELECT org, execution_id, span_id, event_id, name, timestamp, payload
        FROM events_by_span FINAL WHERE {_ORGS} ORDER BY org, execution_id, span_id, event_id""",
    # Rows per key before FINAL collapses them would differ; what FINAL leaves is what readers get.
    "rollup_minute_rows": f"""SELECT org, minute, workflow_id, model, provider, kafka_partition, count()
        FROM usage_rollup_minute FINAL WHERE {_ORGS} GROUP BY ALL ORDER BY ALL""",
}
_SSE_FRAME: Final = re.compile(rb"id: (\d+)\r\nevent: ([^\r]*)\r\ndata: (.*?)\r\n\r\n", re.S)


@dataclass(frozen=True)
class SseEvent:
    offset: int  # the SSE id
    name: str
    event_id: str


def _strip(value: Any, tag: str) -> Any:
    return value.removeprefix(f"{tag}-") if isinstance(value, str) else value


async def tables(store: Store, tag: str, orgs: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    namespaced = [f"{tag}-{org}" for org in orgs]
    out = {}
    for name, sql in TABLES.items():
        rows = await store.query(sql, {"orgs": namespaced})
        out[name] = [(_strip(row[0], tag), *row[1:]) for row in rows]
    return out


async def detail_pages(store: Store, org: str, execution_id: UUID, limit: int) -> list[dict[str, Any]]:
    """Every page of the execution's detail, each as the API assembles it from these reads."""
    header = await reads.execution(store, org, execution_id)
    usage = await usage_by_model(store, org, execution_id, with_cost_only_entries=True)  # as the detail page
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        page = await reads.span_page(store, org, execution_id, limit, after)
        wanted = [row.span_id for row in page]
        events = await reads.span_events(store, org, execution_id, [*wanted, execution_id])
        pages.append({"header": header, "usage": usage, "spans": page, "events": events})
        if len(page) < limit:
            return pages
        last = page[-1].span_id
        start = await reads.span_start(store, org, execution_id, last)  # what prev_span_id resolves to
        assert start is not None, f"span {last} of a page is not found as a cursor"
        after = (start, last)


async def sse_history(store: Store, org: str, execution_id: UUID) -> list[SseEvent]:
    """The events a new stream of the execution sends from the store, parsed from its frames."""
    stored = await reads.history(store, org, execution_id, -1)
    joiner = _Joiner(execution_id, -1, tuple(EVENT_TYPE_PREFIXES.values()))
    frames = b"".join(joiner.history_frames(_history_events(execution_id, stored)))
    out = []
    for offset, name, data in _SSE_FRAME.findall(frames):
        out.append(SseEvent(int(offset), name.decode(), str(json.loads(data)["id"])))
    return out
