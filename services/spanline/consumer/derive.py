"""Re-derivation of the one-row-per-key tables (spans, executions, usage rollups) from the
deduplicated per-event rows, for just the keys a batch touched.

Every derived row is computed whole from duplicate-free sources (min/max/argMax over span_events,
sums over `usage FINAL`) and stamped with `now64(6)`; a ReplacingMergeTree keeps the highest stamp.
A derivation sees every write that finished before it started, and every write is followed by a
derivation of its keys, so the newest row of a key always reflects all its data: replays, duplicates
and crashes between the steps change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from spanline.consumer.rows import BucketKey, ExecutionKey, SpanKey

# Key lists are long string literals (one line per touched span).
QUERY_SETTINGS: Final[dict[str, Any]] = {"max_query_size": 256 * 1024 * 1024}

_SPAN_STATE: Final = """
    max(parent_span_id) AS x_parent_span_id,
    max(kind) AS x_kind,
    argMin(definition_id, event_id) AS x_definition_id,
    argMin(definition_name, event_id) AS x_definition_name,
    argMin(definition_module, event_id) AS x_definition_module,
    argMaxIf(status, (status IN ('FULFILLED', 'REJECTED'), timestamp, status_rank, event_id), status != '')
        AS x_status,
    if(countIf(status = 'INITIATED') > 0, minIf(timestamp, status = 'INITIATED'), min(timestamp)) AS x_start_ts,
    if(countIf(status IN ('FULFILLED', 'REJECTED')) > 0,
       maxIf(timestamp, status IN ('FULFILLED', 'REJECTED')), NULL) AS x_end_ts,
    argMinIf(inputs, (timestamp, event_id), status = 'INITIATED') AS x_inputs,
    argMaxIf(outputs, (timestamp, event_id), status = 'FULFILLED') AS x_outputs,
    argMaxIf(error, (timestamp, event_id), status = 'REJECTED') AS x_error,
    argMaxIf(error_code, (timestamp, event_id), status = 'REJECTED') AS x_error_code,
    toUInt32(uniqExact(event_id)) AS x_event_count
"""

SPANS_SQL: Final = f"""
INSERT INTO spans
SELECT s.org, s.execution_id, s.span_id, x_parent_span_id, x_kind, x_definition_id, x_definition_name,
    x_definition_module, x_status, x_start_ts, x_end_ts, x_inputs, x_outputs, x_error, x_error_code,
    x_event_count, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.model_calls,
    u.cost_usd,
    now64(6)
FROM (
    SELECT org, execution_id, span_id, {_SPAN_STATE}
    FROM span_events WHERE (org, execution_id, span_id) IN ({{keys}})
    GROUP BY org, execution_id, span_id
) AS s
LEFT JOIN (
    SELECT org, execution_id, span_id, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
        sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
        toUInt32(countIf(model != '')) AS model_calls, sum(cost_usd) AS cost_usd
    FROM usage FINAL WHERE (org, execution_id, span_id) IN ({{keys}})
    GROUP BY org, execution_id, span_id
) AS u ON s.org = u.org AND s.execution_id = u.execution_id AND s.span_id = u.span_id
SETTINGS join_use_nulls = 0
"""

# A run's own fields come from its root span (span_id = execution_id); until that span's first event
# arrives the run shows as INITIATED with what its nodes reported.
EXECUTIONS_SQL: Final = """
INSERT INTO executions
SELECT org, execution_id,
    argMaxIf(definition_id, version, is_root), argMaxIf(definition_name, version, is_root),
    argMaxIf(definition_module, version, is_root),
    if(countIf(is_root) > 0, argMaxIf(status, version, is_root), 'INITIATED'),
    if(countIf(is_root) > 0, argMaxIf(start_ts, version, is_root), min(start_ts)),
    if(countIf(is_root) > 0, argMaxIf(end_ts, version, is_root), NULL),
    argMaxIf(inputs, version, is_root), argMaxIf(outputs, version, is_root),
    argMaxIf(error, version, is_root), argMaxIf(error_code, version, is_root),
    any(label_external_id),
    toUInt32(count()), toUInt32(countIf(kind = 'node')), toUInt32(countIf(status = 'REJECTED')),
    sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
    toUInt32(sum(model_calls)), sum(cost_usd), now64(6)
FROM (SELECT *, span_id = execution_id AS is_root FROM spans FINAL WHERE (org, execution_id) IN ({keys})) AS s
LEFT JOIN (
    SELECT org, execution_id, external_id AS label_external_id FROM execution_labels FINAL
    WHERE (org, execution_id) IN ({keys})
) AS l USING (org, execution_id)
GROUP BY org, execution_id
"""

# latency_hist: calls per log bucket of compute_nanos (store/latency_sketch.py, 2 % relative error).
ROLLUP_SQL: Final = """
INSERT INTO usage_rollup_minute (org, minute, workflow_id, workflow_name, model, provider, kafka_partition,
    calls, failed_calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, compute_nanos,
    cost_usd, latency_hist, executions_state, version)
SELECT org, minute, workflow_id, min(workflow_name), model, provider, kafka_partition,
    count(), countIf(status = 'REJECTED'), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
    sum(cache_write_tokens), sum(compute_nanos), sum(cost_usd),
    sumMap(map(toUInt16(if(compute_nanos = 0, 0, 1 + ceil(log(compute_nanos) / log(1.02 / 0.98)))), toUInt64(1))),
    uniqExactState(execution_id), now64(6)
FROM usage_by_minute FINAL
WHERE (kafka_partition, org, minute) IN ({keys})
GROUP BY org, minute, workflow_id, model, provider, kafka_partition
"""

# Hour rows merge the hour's minute rows, so they run after a batch's minute rows are written ({keys}:
# (partition, org, hour) tuples). The newest hour derivation started after every minute row it needs.
ROLLUP_HOUR_SQL: Final = """
INSERT INTO usage_rollup_hour (org, hour, workflow_id, workflow_name, model, provider, kafka_partition,
    calls, failed_calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, compute_nanos,
    cost_usd, latency_hist, executions_state, version)
SELECT org, toStartOfHour(minute) AS hour, workflow_id, min(workflow_name), model, provider, kafka_partition,
    sum(calls), sum(failed_calls), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
    sum(cache_write_tokens), sum(compute_nanos), sum(cost_usd), sumMap(latency_hist),
    uniqExactMergeState(executions_state), now64(6)
FROM usage_rollup_minute FINAL
WHERE (kafka_partition, org, toStartOfHour(minute)) IN ({keys})
GROUP BY org, hour, workflow_id, model, provider, kafka_partition
"""


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tsv_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _key_rows(structure: str, rows: Iterable[str]) -> str:
    """A key list as a subquery over one string literal parsed by the TSV reader: a literal list of
    tuples is parsed and analysed per statement, which dominated large derivations (bench/README.md,
    After item 4)."""
    return f"SELECT * FROM format(TSV, {_sql_string(structure)}, {_sql_string(chr(10).join(rows))})"


def span_keys(keys: Iterable[SpanKey]) -> str:
    return _key_rows(
        "org String, execution_id UUID, span_id UUID", (f"{_tsv_field(org)}\t{e}\t{s}" for org, e, s in keys)
    )


def execution_keys(keys: Iterable[ExecutionKey]) -> str:
    return _key_rows("org String, execution_id UUID", (f"{_tsv_field(org)}\t{e}" for org, e in keys))


def bucket_keys(keys: Iterable[BucketKey]) -> str:
    return _key_rows(
        "kafka_partition UInt32, org String, minute DateTime('UTC')",
        (f"{p}\t{_tsv_field(org)}\t{_minute(m)}" for p, org, m in keys),
    )


def _minute(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
