-- What a caller attached to a run at execution: external_id and metadata (SPEC §4), written by the API
-- before the run request is published, so the consumer's executions derivation finds it.
CREATE TABLE IF NOT EXISTS execution_labels (
    org LowCardinality(String),
    execution_id UUID,
    external_id Nullable(String),
    metadata String,  -- a JSON object, '' when none was given
    created_at DateTime64(6, 'UTC'),
    INDEX external_id_bloom external_id TYPE bloom_filter GRANULARITY 4
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (org, execution_id);
