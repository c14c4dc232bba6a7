-- Raw events: every accepted event once (the key collapses duplicates), with its Kafka position, for
-- replay and SSE history. A duplicate produced twice may keep either copy's offset; history readers
-- order by (timestamp, event_id) or take `LIMIT 1 BY event_id`.
CREATE TABLE IF NOT EXISTS events (
    org LowCardinality(String),
    execution_id UUID,
    event_id UUID,
    span_id UUID,
    parent_span_id Nullable(UUID),
    trace_id UUID,
    name LowCardinality(String),
    timestamp DateTime64(6, 'UTC'),
    payload String CODEC(ZSTD(1)),
    kafka_partition UInt32,
    kafka_offset UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (org, execution_id, event_id);
