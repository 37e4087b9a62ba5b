-- Email verification, email change and password reset (C2). `email_verified_at` is set when the
-- owner follows a verification link (or an email-change link, which proves the new address).
-- One-time tokens are stored only as their SHA-256 (token_hash); a new token of a purpose
-- deletes the account's older ones, and redeeming deletes the token in the same transaction as
-- its effect. Rows go with their account.
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;

CREATE TABLE email_tokens (
    token_hash BLOB    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('verify_email', 'change_email', 'reset_password')),
    email      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX email_tokens_user_purpose ON email_tokens (user_id, purpose);
CREATE INDEX email_tokens_expires_at ON email_tokens (expires_at);
