-- Usage latency as a bounded, mergeable, deterministic sketch, and an hour tier of the usage rollup.
--
-- The minute rollup kept `quantilesState(0.5, 0.95, 0.99)` per row: a reservoir of up to 8,192 raw values,
-- so a month's query re-read every latency sample (80 % of its time). It becomes `latency_hist`: calls per
-- log bucket of compute_nanos, bucket = 1 + ceil(log(ns) / log(1.02 / 0.98)) (0 for 0 ns), read back as
-- 0.98 * (1.02 / 0.98)^(bucket - 1) ns, i.e. within 2 % of every value in the bucket
-- (services/spanline/store/latency_sketch.py). Counts add, so merging is exact and order-free.
--
-- Every statement re-runs safely; stop consumers of the previous version first (their rollup statement
-- names the dropped column, so it fails and is retried without committing until they are upgraded).

ALTER TABLE usage_rollup_minute ADD COLUMN IF NOT EXISTS latency_hist Map(UInt16, UInt64) AFTER cost_usd;

-- Rows written before this migration: re-derive each whole from the deduplicated per-call rows, exactly
-- as the consumer derives a bucket (consumer/derive.ROLLUP_SQL); the newer version replaces the old row.
INSERT INTO usage_rollup_minute (org, minute, workflow_id, workflow_name, model, provider, kafka_partition,
    calls, failed_calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, compute_nanos,
    cost_usd, latency_hist, executions_state, version)
SELECT org, minute, workflow_id, min(workflow_name), model, provider, kafka_partition,
    count(), countIf(status = 'REJECTED'), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
    sum(cache_write_tokens), sum(compute_nanos), sum(cost_usd),
    sumMap(map(toUInt16(if(compute_nanos = 0, 0, 1 + ceil(log(compute_nanos) / log(1.02 / 0.98)))), toUInt64(1))),
    uniqExactState(execution_id), now64(6)
FROM usage_by_minute FINAL
GROUP BY org, minute, workflow_id, model, provider, kafka_partition;

ALTER TABLE usage_rollup_minute DROP COLUMN IF EXISTS latency_ms_state;

-- The hour tier: the same measures per org x hour x workflow x model x provider x Kafka partition, each row
-- re-derived whole from that hour's minute rows (consumer/derive.ROLLUP_HOUR_SQL) after the minute rows of
-- a batch are written. A month then reads ~720 rows per combination instead of ~43,200.
CREATE TABLE IF NOT EXISTS usage_rollup_hour (
    org LowCardinality(String),
    hour DateTime('UTC'),
    workflow_id UUID,
    workflow_name String,
    model LowCardinality(String),
    provider LowCardinality(String),
    kafka_partition UInt32,
    calls UInt64,
    failed_calls UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    compute_nanos UInt64,
    cost_usd Decimal(38, 12),
    latency_hist Map(UInt16, UInt64),
    executions_state AggregateFunction(uniqExact, UUID),
    version DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour)
ORDER BY (org, hour, workflow_id, model, provider, kafka_partition);

INSERT INTO usage_rollup_hour (org, hour, workflow_id, workflow_name, model, provider, kafka_partition,
    calls, failed_calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, compute_nanos,
    cost_usd, latency_hist, executions_state, version)
SELECT org, toStartOfHour(minute) AS hour, workflow_id, min(workflow_name), model, provider, kafka_partition,
    sum(calls), sum(failed_calls), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
    sum(cache_write_tokens), sum(compute_nanos), sum(cost_usd), sumMap(latency_hist),
    uniqExactMergeState(executions_state), now64(6)
FROM usage_rollup_minute FINAL
GROUP BY org, hour, workflow_id, model, provider, kafka_partition;
