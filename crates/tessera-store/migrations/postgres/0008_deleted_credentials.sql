-- Credentials of deleted accounts (C1): only their random ids and when. Deleting an account
-- removes its sessions and API keys with it; an instance that learns of revocations by polling
-- the database (no Redis) finds them here instead, and refuses their tokens until they would
-- have expired anyway. Rows older than the longest token lifetime are purged on each deletion.
CREATE TABLE deleted_credentials (
    kind       TEXT   NOT NULL CHECK (kind IN ('session', 'api_key')),
    id         TEXT   NOT NULL,
    deleted_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX deleted_credentials_deleted_at ON deleted_credentials (deleted_at);
