-- The readiness write probe: after a write failed for want of storage, /readyz inserts a row
-- here and deletes it in one transaction, proving that a write needing space commits again.
-- Always empty. Never edit an applied migration: add one.
CREATE TABLE health (
    probe BLOB NOT NULL
);
