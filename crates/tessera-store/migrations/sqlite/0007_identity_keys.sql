-- Identity keys (the gateway's signed assertions, later OpenID id_tokens) are a fourth key
-- purpose. SQLite cannot change a CHECK constraint in place: the table is rebuilt, rows kept.
CREATE TABLE signing_keys_new (
    kid            TEXT    PRIMARY KEY,
    purpose        TEXT    NOT NULL CHECK (purpose IN ('access', 'refresh', 'csrf', 'identity')),
    alg            TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    deactivated_at INTEGER,
    private_key    BLOB    NOT NULL,
    activates_at   INTEGER,
    retired_at     INTEGER
);
INSERT INTO signing_keys_new (kid, purpose, alg, state, created_at, deactivated_at, private_key, activates_at, retired_at)
    SELECT kid, purpose, alg, state, created_at, deactivated_at, private_key, activates_at, retired_at FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_new RENAME TO signing_keys;
