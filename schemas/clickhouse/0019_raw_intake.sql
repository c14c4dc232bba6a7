-- The write path at the machine's limit (issue 15). The consumer inserts each batch once, as raw RowBinary
-- bytes, into `event_intake` (Null engine: nothing is stored there); materialized views fan it out inside
-- ClickHouse:
--   event_intake → events_by_span (each payload stored once; `events` becomes a view over it)
--   event_intake → span_state     (mergeable, duplicate-insensitive span states: no re-derivation reads
--                                   a span's events back)
--   event_intake → span_order     (page order, as before)
--   usage        → span_state     (the span's model calls, deduplicated by (event_id, call_index) at read)
--   usage        → usage_by_minute
-- `spans` and `steps` become views that merge the states. Existing rows are carried over.
DROP VIEW IF EXISTS events_by_span_mv;
DROP VIEW IF EXISTS span_order_mv;
DROP VIEW IF EXISTS steps;

-- One payload per event, in granules of ~64 KiB (about 64 events) instead of up to 8,192 rows: a detail
-- page reads its spans' events by primary key, so it reads a few granules per span, not the execution's.
RENAME TABLE events_by_span TO events_by_span_before_0019;
CREATE TABLE events_by_span (
    org LowCardinality(String),
    execution_id UUID,
    span_id UUID,
    event_id UUID,
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
ORDER BY (org, execution_id, span_id, event_id)
SETTINGS index_granularity_bytes = 65536;
INSERT INTO events_by_span (org, execution_id, span_id, event_id, parent_span_id, trace_id, name, timestamp,
    payload, kafka_partition, kafka_offset, ingested_at)
SELECT org, execution_id, span_id, event_id, parent_span_id, trace_id, name, timestamp, payload,
    kafka_partition, kafka_offset, ingested_at
FROM events;
DROP TABLE events;
DROP TABLE events_by_span_before_0019;
CREATE VIEW events AS
SELECT org, execution_id, event_id, span_id, parent_span_id, trace_id, name, timestamp, payload,
    kafka_partition, kafka_offset, ingested_at
FROM events_by_span FINAL;

CREATE TABLE event_intake (
    org String,
    execution_id UUID,
    event_id UUID,
    span_id UUID,
    parent_span_id Nullable(UUID),
    trace_id UUID,
    name String,
    timestamp DateTime64(6, 'UTC'),
    kafka_partition UInt32,
    kafka_offset UInt64,
    payload String,
    kind String,             -- '' for events that change no span state (logs, snapshots)
    definition_id UUID,
    definition_name String,
    definition_module Array(String),
    status String,
    status_rank UInt8,
    inputs String,
    outputs String,
    error String,
    error_code String
) ENGINE = Null;

CREATE MATERIALIZED VIEW events_by_span_mv TO events_by_span AS
SELECT org, execution_id, span_id, event_id, parent_span_id, trace_id, name, timestamp, payload,
    kafka_partition, kafka_offset
FROM event_intake;

-- Page order in granules of 1,024 rows: a page reads one or two from its cursor (no FINAL: a page
-- skips the copies of a row itself, store/execution_reads.py).
RENAME TABLE span_order TO span_order_before_0019;
CREATE TABLE span_order (
    org LowCardinality(String),
    execution_id UUID,
    start_ts DateTime64(6, 'UTC'),
    span_id String
) ENGINE = ReplacingMergeTree
ORDER BY (org, execution_id, start_ts, span_id)
SETTINGS index_granularity = 1024;
INSERT INTO span_order SELECT org, execution_id, start_ts, span_id FROM span_order_before_0019;
DROP TABLE span_order_before_0019;

CREATE MATERIALIZED VIEW span_order_mv TO span_order AS
SELECT org, execution_id, timestamp AS start_ts, toString(span_id) AS span_id
FROM event_intake
WHERE status = 'INITIATED';

-- Every state is insensitive to duplicates and order: min/max, argMin/argMax with total tie-breaks,
-- uniqExact, and a set of model calls.
CREATE TABLE span_state (
    org LowCardinality(String),
    execution_id UUID,
    span_id UUID,
    has_event SimpleAggregateFunction(max, UInt8),
    parent_span_id SimpleAggregateFunction(max, Nullable(UUID)),
    kind SimpleAggregateFunction(max, String),
    definition AggregateFunction(argMin, Tuple(UUID, String, Array(String)), UUID),  -- id, name, module
    status AggregateFunction(argMax, String, Tuple(UInt8, DateTime64(6, 'UTC'), UInt8, UUID)),
    initiated_ts SimpleAggregateFunction(min, Nullable(DateTime64(6, 'UTC'))),
    first_ts SimpleAggregateFunction(min, Nullable(DateTime64(6, 'UTC'))),
    end_ts SimpleAggregateFunction(max, Nullable(DateTime64(6, 'UTC'))),
    inputs AggregateFunction(argMinIf, String, Tuple(DateTime64(6, 'UTC'), UUID), UInt8),
    outputs AggregateFunction(argMaxIf, String, Tuple(DateTime64(6, 'UTC'), UUID), UInt8),
    failure AggregateFunction(argMaxIf, Tuple(String, String), Tuple(DateTime64(6, 'UTC'), UUID), UInt8),  -- error, code
    event_ids AggregateFunction(uniqExact, UUID),
    -- (event_id, call_index, input, output, cache read, cache write tokens, is a model call, cost)
    calls AggregateFunction(groupUniqArray,
        Tuple(UUID, UInt16, UInt64, UInt64, UInt64, UInt64, UInt8, Decimal(38, 12)))
) ENGINE = AggregatingMergeTree
ORDER BY (org, execution_id, span_id)
SETTINGS index_granularity_bytes = 65536;  -- a page's spans by primary key read a few small granules each

-- (The inner query renames the event's columns: an alias of the outer select would shadow them.)
CREATE MATERIALIZED VIEW span_state_events_mv TO span_state AS
SELECT org, execution_id, span_id,
    toUInt8(1) AS has_event,
    max(e_parent_span_id) AS parent_span_id,
    max(e_kind) AS kind,
    argMinState((e_definition_id, e_definition_name, e_definition_module), event_id) AS definition,
    argMaxState(e_status, (toUInt8(e_status IN ('FULFILLED', 'REJECTED')), timestamp, e_status_rank, event_id))
        AS status,
    CAST(if(countIf(e_status = 'INITIATED') > 0, minIf(timestamp, e_status = 'INITIATED'), NULL)
        AS Nullable(DateTime64(6, 'UTC'))) AS initiated_ts,
    CAST(min(timestamp) AS Nullable(DateTime64(6, 'UTC'))) AS first_ts,
    CAST(if(countIf(e_status IN ('FULFILLED', 'REJECTED')) > 0,
        maxIf(timestamp, e_status IN ('FULFILLED', 'REJECTED')), NULL) AS Nullable(DateTime64(6, 'UTC'))) AS end_ts,
    argMinIfState(e_inputs, (timestamp, event_id), toUInt8(e_status = 'INITIATED')) AS inputs,
    argMaxIfState(e_outputs, (timestamp, event_id), toUInt8(e_status = 'FULFILLED')) AS outputs,
    argMaxIfState((e_error, e_error_code), (timestamp, event_id), toUInt8(e_status = 'REJECTED')) AS failure,
    uniqExactState(event_id) AS event_ids
FROM (
    SELECT org, execution_id, span_id, event_id, timestamp, parent_span_id AS e_parent_span_id, kind AS e_kind,
        definition_id AS e_definition_id, definition_name AS e_definition_name,
        definition_module AS e_definition_module, toString(status) AS e_status, status_rank AS e_status_rank,
        inputs AS e_inputs, outputs AS e_outputs, error AS e_error, toString(error_code) AS e_error_code
    FROM event_intake
    WHERE status != ''
)
GROUP BY org, execution_id, span_id;

CREATE MATERIALIZED VIEW span_state_usage_mv TO span_state AS
SELECT org, execution_id, span_id,
    groupUniqArrayState((event_id, call_index, input_tokens, output_tokens, cache_read_tokens,
        cache_write_tokens, toUInt8(model != ''), cost_usd)) AS calls
FROM usage
GROUP BY org, execution_id, span_id;

CREATE MATERIALIZED VIEW usage_by_minute_mv TO usage_by_minute AS
SELECT kafka_partition, org, toStartOfMinute(timestamp) AS minute, event_id, call_index, execution_id,
    workflow_id, workflow_name, status, model, provider, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, compute_nanos, cost_usd
FROM usage;

-- Carry the existing spans over: their events' states, then their calls.
INSERT INTO span_state (org, execution_id, span_id, has_event, parent_span_id, kind, definition, status,
    initiated_ts, first_ts, end_ts, inputs, outputs, failure, event_ids)
SELECT org, execution_id, span_id,
    toUInt8(1) AS has_event,
    max(e_parent_span_id) AS parent_span_id,
    max(e_kind) AS kind,
    argMinState((e_definition_id, e_definition_name, e_definition_module), event_id) AS definition,
    argMaxState(e_status, (toUInt8(e_status IN ('FULFILLED', 'REJECTED')), timestamp, e_status_rank, event_id))
        AS status,
    CAST(if(countIf(e_status = 'INITIATED') > 0, minIf(timestamp, e_status = 'INITIATED'), NULL)
        AS Nullable(DateTime64(6, 'UTC'))) AS initiated_ts,
    CAST(min(timestamp) AS Nullable(DateTime64(6, 'UTC'))) AS first_ts,
    CAST(if(countIf(e_status IN ('FULFILLED', 'REJECTED')) > 0,
        maxIf(timestamp, e_status IN ('FULFILLED', 'REJECTED')), NULL) AS Nullable(DateTime64(6, 'UTC'))) AS end_ts,
    argMinIfState(e_inputs, (timestamp, event_id), toUInt8(e_status = 'INITIATED')) AS inputs,
    argMaxIfState(e_outputs, (timestamp, event_id), toUInt8(e_status = 'FULFILLED')) AS outputs,
    argMaxIfState((e_error, e_error_code), (timestamp, event_id), toUInt8(e_status = 'REJECTED')) AS failure,
    uniqExactState(event_id) AS event_ids
FROM (
    SELECT org, execution_id, span_id, event_id, timestamp, parent_span_id AS e_parent_span_id, kind AS e_kind,
        definition_id AS e_definition_id, definition_name AS e_definition_name,
        definition_module AS e_definition_module, toString(status) AS e_status, status_rank AS e_status_rank,
        inputs AS e_inputs, outputs AS e_outputs, error AS e_error, toString(error_code) AS e_error_code
    FROM span_events
    WHERE status != ''
)
GROUP BY org, execution_id, span_id;
INSERT INTO span_state (org, execution_id, span_id, calls)
SELECT org, execution_id, span_id,
    groupUniqArrayState((event_id, call_index, input_tokens, output_tokens, cache_read_tokens,
        cache_write_tokens, toUInt8(model != ''), cost_usd))
FROM usage FINAL
GROUP BY org, execution_id, span_id;
DROP TABLE span_events;
DROP TABLE spans;

-- A span's current state, merged at read. Model calls count once per (event_id, call_index): of copies
-- that differ (a re-posted event), the smallest tuple counts.
CREATE VIEW spans AS
SELECT org, execution_id, span_id, m_parent_span_id AS parent_span_id, m_kind AS kind,
    m_definition.1 AS definition_id, m_definition.2 AS definition_name, m_definition.3 AS definition_module,
    m_status AS status, m_start_ts AS start_ts, m_end_ts AS end_ts,
    m_inputs AS inputs, m_outputs AS outputs, m_failure.1 AS error, m_failure.2 AS error_code,
    m_event_count AS event_count,
    arraySum(c -> c.3, calls_once) AS input_tokens,
    arraySum(c -> c.4, calls_once) AS output_tokens,
    arraySum(c -> c.5, calls_once) AS cache_read_tokens,
    arraySum(c -> c.6, calls_once) AS cache_write_tokens,
    toUInt32(arrayCount(c -> c.7 = 1, calls_once)) AS model_calls,
    CAST(arraySum(c -> c.8, calls_once) AS Decimal(38, 12)) AS cost_usd
FROM (
    SELECT org, execution_id, span_id,
        max(parent_span_id) AS m_parent_span_id,
        max(kind) AS m_kind,
        argMinMerge(definition) AS m_definition,
        argMaxMerge(status) AS m_status,
        assumeNotNull(ifNull(min(initiated_ts), min(first_ts))) AS m_start_ts,
        max(end_ts) AS m_end_ts,
        argMinIfMerge(inputs) AS m_inputs,
        argMaxIfMerge(outputs) AS m_outputs,
        argMaxIfMerge(failure) AS m_failure,
        toUInt32(uniqExactMerge(event_ids)) AS m_event_count,
        arraySort(groupUniqArrayMerge(calls)) AS calls_sorted,
        arrayFilter((c, i) -> i = 1 OR (c.1, c.2) != (calls_sorted[i - 1].1, calls_sorted[i - 1].2),
            calls_sorted, arrayEnumerate(calls_sorted)) AS calls_once
    FROM span_state
    GROUP BY org, execution_id, span_id
    HAVING max(has_event) = 1
);

CREATE VIEW steps AS
SELECT * FROM spans WHERE kind = 'node';
