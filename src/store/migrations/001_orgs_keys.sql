-- 001: organisations and their API keys.
-- Keys are stored as the SHA-256 of the secret, never the secret; the prefix
-- ("sk-sb-" + 8 hex chars) narrows the lookup and is safe to show.
-- Times are milliseconds since the Unix epoch; 0 means "never".

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    prefix        TEXT NOT NULL,
    hash          BLOB NOT NULL CHECK (length(hash) = 32),
    label         TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL DEFAULT 0,
    revoked_at    INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Authentication looks keys up by prefix, then compares the hash.
CREATE UNIQUE INDEX api_keys_prefix_hash ON api_keys(prefix, hash);
CREATE INDEX api_keys_org ON api_keys(org_id);
