-- Nothing looks up an execution's organization any more (SSE treats another organization's id as an
-- unknown one: every read is scoped by org and keyed (org, execution_id, ...)), so the bloom filters that
-- found the owner of an id without a scan only cost writes.
ALTER TABLE executions DROP INDEX IF EXISTS executions_id;
ALTER TABLE events DROP INDEX IF EXISTS events_execution_id;
