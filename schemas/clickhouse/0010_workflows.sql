-- Workflow definitions, versioned per organization: an upload with a known name adds a version.
CREATE TABLE IF NOT EXISTS workflows (
    org String,
    workflow_id UUID,
    name String,
    version UInt32,
    description String,
    definition String,
    created_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (org, workflow_id, version);
