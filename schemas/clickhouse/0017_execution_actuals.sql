-- Feedback on a run's outputs (`POST /v1/submit-workflow-execution-actuals`): one row per (run, output);
-- a later submission for the same output replaces the earlier one.
CREATE TABLE IF NOT EXISTS execution_actuals (
    org LowCardinality(String),
    execution_id UUID,
    output String,  -- output_key, else output_id
    output_id String,
    output_key String,
    output_type LowCardinality(String),
    quality Nullable(Float64),
    desired_output_value String,  -- JSON
    metadata String,  -- JSON object, '' when none
    timestamp DateTime64(6, 'UTC'),  -- the submission's, else when it arrived
    submitted_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(submitted_at)
ORDER BY (org, execution_id, output);
