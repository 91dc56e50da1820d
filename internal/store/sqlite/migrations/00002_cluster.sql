-- +goose Up

-- The leader lease: at most one row, name 'leader'. term grows by one every
-- time the lease changes hands or lapses; expires_at is Unix microseconds.
-- With SQLite there is one server, which always leads, but the engine runs
-- the same election code on every backend.
CREATE TABLE leader (
    name       TEXT    PRIMARY KEY,
    server_id  TEXT    NOT NULL,
    term       INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Registered servers. last_seen is renewed by the server's heartbeat; it
-- is the lease under which the server holds its active runs.
CREATE TABLE servers (
    id         TEXT    PRIMARY KEY,
    http       TEXT    NOT NULL DEFAULT '',
    grpc       TEXT    NOT NULL DEFAULT '',
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);

-- +goose Down
DROP TABLE servers;
DROP TABLE leader;
