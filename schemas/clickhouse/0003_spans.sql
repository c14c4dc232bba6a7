-- What each event says about its span, one row per event id: duplicates collapse, and every read of
-- span state uses min/max/argMax, which give the same answer in any order and with any duplicates.
CREATE TABLE IF NOT EXISTS span_events (
    org LowCardinality(String),
    execution_id UUID,
    span_id UUID,
    event_id UUID,
    parent_span_id Nullable(UUID),
    kind LowCardinality(String),
    definition_id UUID,
    definition_name String,
    definition_module Array(String),
    event_name LowCardinality(String),
    status LowCardinality(String),
    status_rank UInt8,
    timestamp DateTime64(6, 'UTC'),
    inputs String,
    outputs String,
    error String,
    error_code LowCardinality(String)
) ENGINE = ReplacingMergeTree
ORDER BY (org, execution_id, span_id, event_id);

-- One row per span, latest state; the consumer re-derives the spans a batch touched after writing it,
-- and the highest `version` (the time of the derivation, which saw every earlier write) wins.
CREATE TABLE IF NOT EXISTS spans (
    org LowCardinality(String),
    execution_id UUID,
    span_id UUID,
    parent_span_id Nullable(UUID),
    kind LowCardinality(String),
    definition_id UUID,
    definition_name String,
    definition_module Array(String),
    status LowCardinality(String),
    start_ts DateTime64(6, 'UTC'),
    end_ts Nullable(DateTime64(6, 'UTC')),
    inputs String,
    outputs String,
    error String,
    error_code LowCardinality(String),
    event_count UInt32,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    model_calls UInt32,
    cost_usd Decimal(38, 12),
    version DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (org, execution_id, span_id);

-- Arcee's "steps": the node spans of a run.
CREATE VIEW IF NOT EXISTS steps AS
SELECT * FROM spans FINAL WHERE kind = 'node';
