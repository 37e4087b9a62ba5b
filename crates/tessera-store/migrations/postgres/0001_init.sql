-- Tessera schema for the PostgreSQL backend, the twin of migrations/sqlite/0001_init.sql.
-- Never edit an applied migration: add one (sqlx checks the checksum of every applied file).
--
-- Times are unix seconds in BIGINT, as in SQLite, so both backends return identical values.
-- Tables are created unqualified: they land in the first schema of the search_path, which is
-- how the tests isolate themselves (one schema per test).

CREATE TABLE users (
    id                  BIGSERIAL PRIMARY KEY,
    email               TEXT      NOT NULL,
    email_normalized    TEXT      NOT NULL,
    username            TEXT      NOT NULL,
    username_normalized TEXT      NOT NULL,
    password_hash       TEXT      NOT NULL,
    created_at          BIGINT    NOT NULL,
    disabled_at         BIGINT,
    -- The store maps a unique violation to the field by these names: do not rename them.
    CONSTRAINT users_email_key UNIQUE (email_normalized),
    CONSTRAINT users_username_key UNIQUE (username_normalized)
);

CREATE TABLE sessions (
    id                TEXT   PRIMARY KEY,
    user_id           BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    current_jti       TEXT   NOT NULL,
    previous_jti      TEXT,
    refresh_issued_at BIGINT NOT NULL,
    rotated_at        BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    last_used_at      BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    revoked_at        BIGINT,
    ip_address        TEXT,
    user_agent        TEXT
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE signing_keys (
    kid            TEXT   PRIMARY KEY,
    purpose        TEXT   NOT NULL CHECK (purpose IN ('access', 'refresh', 'csrf')),
    alg            TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    deactivated_at BIGINT,
    private_key    BYTEA  NOT NULL
);
