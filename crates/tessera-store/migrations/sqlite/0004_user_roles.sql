-- User roles (G4): free-form names, `admin` built in. A user's full scope follows from them;
-- access tokens carry them in the `roles` claim. Never edit an applied migration: add one.
CREATE TABLE user_roles (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, role)
);
