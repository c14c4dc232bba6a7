-- API keys: only the SHA-256 of a key is stored; the key itself is shown once, at creation.
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash String,
    key_prefix String,
    org String,
    name String,
    created_at DateTime64(3, 'UTC'),
    revoked UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY key_hash;
