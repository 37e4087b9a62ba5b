-- Key rotation by timetable: a key is published at creation and signs from activates_at; it
-- verifies until retired_at. Never edit an applied migration: add one.
ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT;
UPDATE signing_keys SET activates_at = created_at;
ALTER TABLE signing_keys ADD COLUMN retired_at BIGINT;
