-- One row per top-level run with its totals, re-derived after every batch that touched the run from
-- the deduplicated span_events and usage rows; the latest derivation (highest version) wins.
CREATE TABLE IF NOT EXISTS executions (
    org LowCardinality(String),
    execution_id UUID,
    workflow_id UUID,
    workflow_name String,
    workflow_module Array(String),
    status LowCardinality(String),
    start_ts Nullable(DateTime64(6, 'UTC')),
    end_ts Nullable(DateTime64(6, 'UTC')),
    inputs String,
    outputs String,
    error String,
    error_code LowCardinality(String),
    external_id Nullable(String),
    span_count UInt32,
    node_span_count UInt32,
    failed_span_count UInt32,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    model_calls UInt32,
    cost_usd Decimal(38, 12),
    version DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (org, execution_id);
