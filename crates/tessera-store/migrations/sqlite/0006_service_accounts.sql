-- Service accounts (G3): non-human accounts that own API keys and never log in with a password.
-- They are rows of `users` (keys keep belonging to a user id) with kind 'service' and an
-- unusable password hash. Never edit an applied migration: add one.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
