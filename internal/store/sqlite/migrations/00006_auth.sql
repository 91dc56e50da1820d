-- +goose Up

-- Bearer tokens (store/tokens.go). hash is the hex SHA-256 of the secret;
-- the secret itself is never stored. groups is a JSON array of the run
-- groups the token is limited to, NULL for all groups. Times are Unix
-- microseconds; expires_at and revoked_at are NULL when unset.
CREATE TABLE tokens (
    name       TEXT    PRIMARY KEY,
    role       TEXT    NOT NULL,
    groups     TEXT,
    hash       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);

-- The audit trail (store/audit.go). seq is insertion order, the list
-- cursor. at is indexed for retention and time ranges; actor for "what
-- did this token do", the common question.
CREATE TABLE audit (
    seq     INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL DEFAULT '',
    outcome TEXT    NOT NULL DEFAULT '',
    detail  TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_actor ON audit (actor, seq);

-- +goose Down
DROP TABLE audit;
DROP TABLE tokens;
