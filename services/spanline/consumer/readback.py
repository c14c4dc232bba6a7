"""The consumer's derived state read back in a canonical, comparable form (tests, `spanline consumer
totals`, the throughput bench). Reads use FINAL so they see one row per key."""

from __future__ import annotations

from typing import Any, Final

from spanline.store.store import Store

_QUERIES: Final = {
    "spans": """SELECT org, execution_id, span_id, parent_span_id, kind, definition_id, definition_name,
        definition_module, status, start_ts, end_ts, inputs, outputs, error, error_code, event_count,
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, model_calls, cost_usd
        FROM spans ORDER BY org, execution_id, span_id""",
    "steps": "SELECT org, execution_id, span_id, status FROM steps ORDER BY org, execution_id, span_id",
    "executions": """SELECT org, execution_id, workflow_id, workflow_name, workflow_module, status, start_ts,
        end_ts, inputs, outputs, error, error_code, span_count, node_span_count, failed_span_count,
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, model_calls, cost_usd
        FROM executions FINAL ORDER BY org, execution_id""",
    "usage": """SELECT org, execution_id, span_id, event_id, call_index, timestamp, workflow_id, node_id,
        status, model, provider, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
        input_chars, output_chars, compute_nanos, cost_usd
        FROM usage FINAL ORDER BY org, execution_id, span_id, event_id, call_index""",
    "rollup": """SELECT org, minute, workflow_id, model, provider, sum(calls), sum(failed_calls),
        sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
        sum(compute_nanos), sum(cost_usd), sumMap(latency_hist), uniqExactMerge(executions_state)
        FROM usage_rollup_minute FINAL GROUP BY org, minute, workflow_id, model, provider
        ORDER BY org, minute, workflow_id, model, provider""",
    "rollup_hour": """SELECT org, hour, workflow_id, model, provider, sum(calls), sum(failed_calls),
        sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
        sum(compute_nanos), sum(cost_usd), sumMap(latency_hist), uniqExactMerge(executions_state)
        FROM usage_rollup_hour FINAL GROUP BY org, hour, workflow_id, model, provider
        ORDER BY org, hour, workflow_id, model, provider""",
    "events": "SELECT org, execution_id, event_id, name FROM events FINAL ORDER BY org, execution_id, event_id",
}

TOTALS_SQL: Final = {
    "events": "SELECT count() FROM events FINAL",
    "executions": "SELECT count() FROM executions FINAL",
    "spans": "SELECT count() FROM spans",
    "exec_spans": "SELECT sum(span_count) FROM executions FINAL",
    "exec_input_tokens": "SELECT sum(input_tokens) FROM executions FINAL",
    "exec_output_tokens": "SELECT sum(output_tokens) FROM executions FINAL",
    "exec_cost_usd": "SELECT toString(sum(cost_usd)) FROM executions FINAL",
    "exec_status": "SELECT groupArray((status, c)) FROM (SELECT status, count() c FROM executions FINAL "
    "GROUP BY status ORDER BY status)",
    "usage_calls": "SELECT count() FROM usage FINAL",
    "rollup_calls": "SELECT sum(calls) FROM usage_rollup_minute FINAL",
    "rollup_input_tokens": "SELECT sum(input_tokens) FROM usage_rollup_minute FINAL",
    "rollup_output_tokens": "SELECT sum(output_tokens) FROM usage_rollup_minute FINAL",
    "rollup_cost_usd": "SELECT toString(sum(cost_usd)) FROM usage_rollup_minute FINAL",
}


async def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {name: await store.query(sql) for name, sql in _QUERIES.items()}


async def totals(store: Store) -> dict[str, Any]:
    """Whole-store counts and sums (JSON-friendly), to compare with what was produced."""
    result: dict[str, Any] = {}
    for name, sql in TOTALS_SQL.items():
        value = (await store.query(sql))[0][0]
        result[name] = [list(pair) for pair in value] if isinstance(value, list) else value
    return result
