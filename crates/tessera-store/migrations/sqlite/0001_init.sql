-- Tessera schema for the embedded SQLite backend. Never edit an applied migration: add one.

CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    email               TEXT    NOT NULL,
    email_normalized    TEXT    NOT NULL,
    username            TEXT    NOT NULL,
    username_normalized TEXT    NOT NULL,
    password_hash       TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    disabled_at         INTEGER,
    CONSTRAINT users_email_key UNIQUE (email_normalized),
    CONSTRAINT users_username_key UNIQUE (username_normalized)
);

CREATE TABLE sessions (
    id                TEXT    PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    current_jti       TEXT    NOT NULL,
    previous_jti      TEXT,
    refresh_issued_at INTEGER NOT NULL,
    rotated_at        INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    last_used_at      INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    revoked_at        INTEGER,
    ip_address        TEXT,
    user_agent        TEXT
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE signing_keys (
    kid            TEXT    PRIMARY KEY,
    purpose        TEXT    NOT NULL CHECK (purpose IN ('access', 'refresh', 'csrf')),
    alg            TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    deactivated_at INTEGER,
    private_key    BLOB    NOT NULL
);
