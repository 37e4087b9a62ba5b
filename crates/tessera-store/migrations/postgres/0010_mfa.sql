-- Second factor (C3). One TOTP factor per account: its secret (sealed under MASTER_KEY when one
-- is set), pending until confirmed with a first code, and the last accepted time step, which a
-- code must exceed (RFC 6238 section 5.2: a code is accepted once; the check and the update are
-- one conditional UPDATE, so two instances cannot both accept it). Recovery codes and login
-- challenges are stored only as SHA-256 digests of 80- and 256-bit random values. Every row goes
-- with its account (ON DELETE CASCADE), in the transaction that deletes it.
CREATE TABLE mfa_totp (
    user_id      BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       BYTEA NOT NULL,
    confirmed_at BIGINT,
    created_at   BIGINT NOT NULL,
    last_step    BIGINT NOT NULL DEFAULT -1
);

CREATE TABLE mfa_recovery_codes (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash BYTEA PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ip_address TEXT,
    user_agent TEXT,
    attempts   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mfa_challenges_user_id ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_at ON mfa_challenges (expires_at);
