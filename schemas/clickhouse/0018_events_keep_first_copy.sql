-- A re-posted event (same event id, a later Kafka offset) must not move in its span's event order or in
-- the SSE sequence: `events` and `events_by_span` keep the copy with the earliest offset. A
-- ReplacingMergeTree keeps the highest version, so the version is the offset's complement. The tables are
-- rebuilt (an engine cannot be altered): the old rows are copied in, the materialized view refills
-- events_by_span from them, then the old tables are dropped.
DROP VIEW IF EXISTS events_by_span_mv;
RENAME TABLE events TO events_before_0018, events_by_span TO events_by_span_before_0018;
CREATE TABLE events (
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
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    first_copy UInt64 MATERIALIZED 18446744073709551615 - kafka_offset
) ENGINE = ReplacingMergeTree(first_copy)
ORDER BY (org, execution_id, event_id);
CREATE TABLE events_by_span (
    org LowCardinality(String),
    execution_id UUID,
    span_id UUID,
    event_id UUID,
    name LowCardinality(String),
    timestamp DateTime64(6, 'UTC'),
    payload String CODEC(ZSTD(1)),
    kafka_partition UInt32,
    kafka_offset UInt64,
    first_copy UInt64 MATERIALIZED 18446744073709551615 - kafka_offset
) ENGINE = ReplacingMergeTree(first_copy)
ORDER BY (org, execution_id, span_id, event_id);
CREATE MATERIALIZED VIEW events_by_span_mv TO events_by_span AS
SELECT org, execution_id, span_id, event_id, name, timestamp, payload, kafka_partition, kafka_offset
FROM events;
INSERT INTO events (org, execution_id, event_id, span_id, parent_span_id, trace_id, name, timestamp, payload,
    kafka_partition, kafka_offset, ingested_at)
SELECT org, execution_id, event_id, span_id, parent_span_id, trace_id, name, timestamp, payload,
    kafka_partition, kafka_offset, ingested_at
FROM events_before_0018;
DROP TABLE events_before_0018;
DROP TABLE events_by_span_before_0018;
