-- Passkeys (C3). A credential is keyed by the id its authenticator chose (unique across
-- accounts) and keeps the verifier's encodings of its public key and of its changing state (the
-- signature counter, also kept as a column); it goes with its account (ON DELETE CASCADE).
-- Ceremonies (registration, password-less login, second factor) wait here for the browser's
-- answer, keyed by the SHA-256 of a random ceremony_id, 5 minutes, deleted when finished (one
-- DELETE ... RETURNING), so any instance can finish one and none twice.
CREATE TABLE passkeys (
    credential_id BLOB PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    user_handle   BLOB NOT NULL,
    public_key    BLOB NOT NULL,
    state         BLOB NOT NULL,
    sign_count    INTEGER NOT NULL DEFAULT 0,
    transports    INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
);
CREATE INDEX passkeys_user_id ON passkeys (user_id);

CREATE TABLE passkey_ceremonies (
    id_hash        BLOB PRIMARY KEY,
    kind           TEXT NOT NULL,
    user_id        INTEGER REFERENCES users (id) ON DELETE CASCADE,
    mfa_token_hash BLOB,
    state          BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX passkey_ceremonies_expires_at ON passkey_ceremonies (expires_at);
CREATE INDEX passkey_ceremonies_user_id ON passkey_ceremonies (user_id);
