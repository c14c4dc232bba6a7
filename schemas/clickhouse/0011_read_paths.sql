-- Read paths of the API. The raw `events` table is keyed by event id (the consumer's idempotency key);
-- a detail page needs the events of a few hundred spans, and an SSE replay the events of one execution
-- in stream order, so this copy keys them by span and carries the Kafka offset (the per-execution
-- sequence: an execution's events all live in one partition). A duplicate collapses here as there.
CREATE TABLE IF NOT EXISTS events_by_span (
    org LowCardinality(String),
    execution_id UUID,
    span_id UUID,
    event_id UUID,
    name LowCardinality(String),
    timestamp DateTime64(6, 'UTC'),
    payload String CODEC(ZSTD(1)),
    kafka_partition UInt32,
    kafka_offset UInt64
) ENGINE = ReplacingMergeTree
ORDER BY (org, execution_id, span_id, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS events_by_span_mv TO events_by_span AS
SELECT org, execution_id, span_id, event_id, name, timestamp, payload, kafka_partition, kafka_offset
FROM events;

-- Finding which organization an execution id belongs to (SSE answers 404 for another's) without a scan.
ALTER TABLE executions ADD INDEX IF NOT EXISTS executions_id execution_id TYPE bloom_filter GRANULARITY 1;
ALTER TABLE events ADD INDEX IF NOT EXISTS events_execution_id execution_id TYPE bloom_filter GRANULARITY 1;
