-- One row per model call: (event id, call index) is the idempotency key, so a duplicated event adds
-- nothing; sums read the table with FINAL over a primary-key range.
CREATE TABLE IF NOT EXISTS usage (
    org LowCardinality(String),
    execution_id UUID,
    span_id UUID,
    event_id UUID,
    call_index UInt16,
    kafka_partition UInt32,
    timestamp DateTime64(6, 'UTC'),
    workflow_id UUID,
    workflow_name String,
    node_id UUID,
    node_name String,
    status LowCardinality(String),
    model LowCardinality(String),
    provider LowCardinality(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    input_chars UInt64,
    output_chars UInt64,
    compute_nanos UInt64,
    cost_usd Decimal(38, 12)
) ENGINE = ReplacingMergeTree
ORDER BY (org, execution_id, span_id, event_id, call_index);

-- The same rows keyed by Kafka partition and minute, so a batch's rollup buckets re-derive from a
-- primary-key range. The partition comes from the message key (the root execution), so a duplicate
-- produced twice lands in the same partition and collapses here too.
CREATE TABLE IF NOT EXISTS usage_by_minute (
    kafka_partition UInt32,
    org LowCardinality(String),
    minute DateTime('UTC'),
    event_id UUID,
    call_index UInt16,
    execution_id UUID,
    workflow_id UUID,
    workflow_name String,
    status LowCardinality(String),
    model LowCardinality(String),
    provider LowCardinality(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    compute_nanos UInt64,
    cost_usd Decimal(38, 12)
) ENGINE = ReplacingMergeTree
ORDER BY (kafka_partition, org, minute, event_id, call_index);

-- Analytics rollup by organization, minute, workflow, model and provider (hour/day/... sum minutes).
-- Each row is re-derived whole from the deduplicated rows above (never incremented), one row per source
-- partition so two consumers never derive the same row; read with FINAL and sum over partitions.
CREATE TABLE IF NOT EXISTS usage_rollup_minute (
    org LowCardinality(String),
    minute DateTime('UTC'),
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
    latency_ms_state AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64),
    executions_state AggregateFunction(uniqExact, UUID),
    version DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (org, minute, workflow_id, model, provider, kafka_partition);
