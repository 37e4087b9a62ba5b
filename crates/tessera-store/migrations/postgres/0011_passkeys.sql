-- Passkeys (C3). A credential is keyed by the id its authenticator chose (unique across
-- accounts) and keeps the verifier's encodings of its public key and of its changing state (the
-- signature counter, also kept as a column); it goes with its account (ON DELETE CASCADE).
-- Ceremonies (registration, password-less login, second factor) wait here for the browser's
-- answer, keyed by the SHA-256 of a random ceremony_id, 5 minutes, deleted when finished (one
-- DELETE ... RETURNING), so any instance can finish one and none twice.
CREATE TABLE passkeys (
    credential_id BYTEA PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    user_handle   BYTEA NOT NULL,
    public_key    BYTEA NOT NULL,
    state         BYTEA NOT NULL,
    sign_count    BIGINT NOT NULL DEFAULT 0,
    transports    BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_user_id ON passkeys (user_id);

CREATE TABLE passkey_ceremonies (
    id_hash        BYTEA PRIMARY KEY,
    kind           TEXT NOT NULL,
    user_id        BIGINT REFERENCES users (id) ON DELETE CASCADE,
    mfa_token_hash BYTEA,
    state          BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX passkey_ceremonies_expires_at ON passkey_ceremonies (expires_at);
CREATE INDEX passkey_ceremonies_user_id ON passkey_ceremonies (user_id);
