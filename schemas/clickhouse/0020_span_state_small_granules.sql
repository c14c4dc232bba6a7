-- A detail page's span states in granules of 16 rows instead of ~64 KiB (~48 rows): its 100 spans, random
-- ids, each read a granule of their own by primary key (one per part), so the rows read and merged per
-- page fall ~3×, and reading them with PREWHERE no longer leaves the bytes read to where in a granule
-- the wanted rows fall (tests/test_page_cost.py). The sparse index grows with it (a mark per 16 spans).
-- Every state is duplicate-insensitive, so copying the rows again after an interrupted run is harmless.
DROP VIEW IF EXISTS span_state_events_mv;
DROP VIEW IF EXISTS span_state_usage_mv;

RENAME TABLE span_state TO span_state_before_0020;
CREATE TABLE span_state AS span_state_before_0020
ENGINE = AggregatingMergeTree
ORDER BY (org, execution_id, span_id)
SETTINGS index_granularity = 16, index_granularity_bytes = 65536;
INSERT INTO span_state SELECT * FROM span_state_before_0020;
DROP TABLE span_state_before_0020;

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
