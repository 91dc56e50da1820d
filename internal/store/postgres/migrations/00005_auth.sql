-- +goose Up

-- Bearer tokens (store/tokens.go). hash is the hex SHA-256 of the secret;
-- the secret itself is never stored. groups lists the run groups the token
-- is limited to, NULL for all groups. expires_at and revoked_at are NULL
-- when unset. TokenBootstrap locks the table (SHARE ROW EXCLUSIVE) to
-- insert into an empty one without a race between servers.
CREATE TABLE tokens (
    name       text        COLLATE "C" PRIMARY KEY,
    role       text        NOT NULL,
    groups     text[],
    hash       text        COLLATE "C" NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);

-- The audit trail (store/audit.go). seq is insertion order, the list
-- cursor. at is indexed for retention and time ranges; actor for "what
-- did this token do", the common question.
CREATE TABLE audit (
    seq     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL,
    actor   text        COLLATE "C" NOT NULL,
    action  text        COLLATE "C" NOT NULL,
    target  text        COLLATE "C" NOT NULL DEFAULT '',
    outcome text        NOT NULL DEFAULT '',
    detail  text        NOT NULL DEFAULT ''
);

CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_actor ON audit (actor, seq);

-- +goose Down
DROP TABLE audit;
DROP TABLE tokens;
