-- Keyset pages of an execution's spans follow (start_ts, span_id as text). `spans` is keyed by span id
-- (its rows are re-derived), so this narrow copy is keyed in page order: a page reads from its cursor
-- on and no further. A span enters it with its initiated event (start_ts = that event's timestamp);
-- a copy of the same event collapses.
CREATE TABLE IF NOT EXISTS span_order (
    org LowCardinality(String),
    execution_id UUID,
    start_ts DateTime64(6, 'UTC'),
    span_id String
) ENGINE = ReplacingMergeTree
ORDER BY (org, execution_id, start_ts, span_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS span_order_mv TO span_order AS
SELECT org, execution_id, timestamp AS start_ts, toString(span_id) AS span_id
FROM span_events
WHERE status = 'INITIATED';
