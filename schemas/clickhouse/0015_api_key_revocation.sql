-- `spanline keys revoke` writes a key's row again (same created_at, the version) with revoked = 1 and
-- when; readers take max(revoked) until a merge keeps the later row (store/api_keys.py).
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS revoked_at Nullable(DateTime64(3, 'UTC'));
