"""Re-derivation of the one-row-per-key tables (executions, usage rollups) for just the keys a batch
touched. Spans need none: ClickHouse keeps their mergeable states as events arrive (`span_state`, read
through the `spans` view).

Every derived row is computed whole from duplicate-free sources (the merged span states, sums over
`usage_by_minute FINAL`) and stamped with `now64(6)`; a ReplacingMergeTree keeps the highest stamp.
A derivation sees every write that finished before it started, and every write is followed by a
derivation of its keys, so the newest row of a key always reflects all its data: replays, duplicates
and crashes between the steps change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from spanline.consumer.rows import BucketKey, ExecutionKey

# Key lists are long string literals (one line per touched span).
QUERY_SETTINGS: Final[dict[str, Any]] = {"max_query_size": 256 * 1024 * 1024}

# A run's own fields come from its root span (span_id = execution_id, read by primary key); until that
# span's first event arrives the run shows as INITIATED with what its nodes reported. The totals read only
# the columns they need from every span of the run (the merged inputs and outputs of the root alone).
EXECUTIONS_SQL: Final = """
INSERT INTO executions
SELECT t.org, t.execution_id,
    r.definition_id, r.definition_name, r.definition_module,
    if(r.is_root, r.status, 'INITIATED'), if(r.is_root, r.start_ts, t.first_start_ts), if(r.is_root, r.end_ts, NULL),
    r.inputs, r.outputs, r.error, r.error_code,
    l.label_external_id,
    t.span_count, t.node_span_count, t.failed_span_count,
    t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens, t.model_calls, t.cost_usd,
    now64(6)
FROM (
    SELECT org, execution_id, min(start_ts) AS first_start_ts,
        toUInt32(count()) AS span_count, toUInt32(countIf(kind = 'node')) AS node_span_count,
        toUInt32(countIf(status = 'REJECTED')) AS failed_span_count,
        sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
        sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
        toUInt32(sum(model_calls)) AS model_calls, sum(cost_usd) AS cost_usd
    FROM spans WHERE (org, execution_id) IN ({keys})
    GROUP BY org, execution_id
) AS t
LEFT JOIN (
    SELECT org, execution_id, toUInt8(1) AS is_root, definition_id, definition_name, definition_module, status,
        start_ts, end_ts, inputs, outputs, error, error_code
    FROM spans WHERE (org, execution_id) IN ({keys}) AND span_id = execution_id
) AS r ON r.org = t.org AND r.execution_id = t.execution_id
LEFT JOIN (
    SELECT org, execution_id, any(external_id) AS label_external_id FROM execution_labels FINAL
    WHERE (org, execution_id) IN ({keys})
    GROUP BY org, execution_id
) AS l ON l.org = t.org AND l.execution_id = t.execution_id
SETTINGS join_use_nulls = 0
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


def execution_keys(keys: Iterable[ExecutionKey]) -> str:
    return _key_rows("org String, execution_id UUID", (f"{_tsv_field(org)}\t{e}" for org, e in keys))


def bucket_keys(keys: Iterable[BucketKey]) -> str:
    return _key_rows(
        "kafka_partition UInt32, org String, minute DateTime('UTC')",
        (f"{p}\t{_tsv_field(org)}\t{_minute(m)}" for p, org, m in keys),
    )


def _minute(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
