-- API keys (G3): only the HMAC-SHA256 of a key is stored (key_hash), never the key. A
-- rotation points the old key at the new one (rotated_to) and ends it after the grace period
-- (revoked_at in the future); a revocation sets revoked_at to now. updated_at is what the
-- revocation poll of every instance reads. Never edit an applied migration: add one.
CREATE TABLE api_keys (
    id           TEXT    PRIMARY KEY,
    user_id      INTEGER  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    key_hash     BLOB   NOT NULL,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER  NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    rate_limit   TEXT,
    quota        TEXT,
    last_used_at INTEGER,
    last_used_ip TEXT,
    rotated_to   TEXT,
    updated_at   INTEGER  NOT NULL,
    CONSTRAINT api_keys_hash_key UNIQUE (key_hash)
);

CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);
CREATE INDEX api_keys_updated_at_idx ON api_keys (updated_at);
