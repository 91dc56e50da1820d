// Package sqlite is Pluto's embedded storage backend: two SQLite database
// files — the runs' (everything but log lines) and the log lines' beside
// it (logdb.go) — through modernc.org/sqlite (pure Go, so the pluto binary
// stays a single CGO_ENABLED=0 executable). It implements store.Store and
// passes the shared conformance suite in internal/store/storetest.
//
// # Connections: one writer, a pool of readers
//
// SQLite allows one writer at a time per database file. Rather than let
// several connections race for the write lock (and back off on
// SQLITE_BUSY), the store owns exactly one writer connection per file — a
// *sql.DB with MaxOpenConns(1) — and every Store.Tx runs on the runs'
// one, one after another, every Store.LogTx on the log lines' one. Reads
// (RunGet, RunList, LogList, …) go to a separate pool of four connections
// per file opened with query_only, so they never write and never wait for
// a writer: in WAL mode a reader sees the last committed snapshot while a
// write transaction is open.
//
// Store.Tx is the unit of group commit. The engine gathers hundreds of
// state changes (inserts, claims, starts, finishes) from many callers and
// applies them in one transaction, so one commit — and one fsync — is
// shared by all of them. Tx returns only after COMMIT. Log lines are
// grouped the same way by the engine's log writer into Store.LogTx.
//
// # Why BEGIN IMMEDIATE
//
// A plain BEGIN is deferred: the transaction starts as a reader and tries
// to upgrade to a writer at its first write. If another connection (a
// second process on the same file, or the pluto CLI) wrote in between, the
// upgrade fails with SQLITE_BUSY in the middle of the transaction and
// busy_timeout cannot help, because the snapshot it read is stale. BEGIN
// IMMEDIATE takes the write lock up front, where waiting under busy_timeout
// is safe, so a transaction that has started never fails for a lock. The
// writer pool's DSN sets _txlock=immediate; busy_timeout is 10 s.
//
// # Journal and durability
//
// The database runs in WAL mode: commits append to the write-ahead log,
// readers are not blocked by the writer, and SQLite checkpoints the log
// back into the main file in the background of later commits.
//
// Options.Synchronous chooses what a commit promises:
//
//   - FULL (the default): the WAL is fsynced at every commit. A transaction
//     Tx reported as committed survives a process crash, an OS crash and a
//     power loss. This is what "a submission acknowledged to a client is
//     never lost" requires. The cost is one fsync per Tx, which group commit
//     spreads over every change in the batch.
//   - NORMAL: the WAL is fsynced only at checkpoints. A committed
//     transaction survives a process crash (the log is in the OS page
//     cache), but the last transactions before an OS crash or power loss
//     may be rolled back. The database is never corrupted either way.
//
// # Schema and hot paths
//
// Migrations are SQL files in migrations/, embedded and applied with goose
// at Open. Runs live in one table whose rowid, seq, is the insertion order
// (the FIFO tie-break of the claim order and the list cursor). Times are
// INTEGER Unix microseconds — PostgreSQL's precision, so both backends
// round alike — and payloads and results are JSON text.
//
// Every index is paid for on the write path, so there are few and most are
// partial:
//
//   - runs_claim (grp, type, priority DESC, run_at, seq) WHERE status =
//     'queued': one queue per group and handler type, in claim order. A
//     claim reads the head of each requested type's range (at most Limit
//     entries each), merges them and takes the first Limit, so runs of a
//     type no worker serves never slow a claim down. A run is in this index
//     only while it is queued.
//   - runs_pending (run_at) WHERE status = 'pending': promotion and the
//     next-wake-up query.
//   - runs_active (server_id) WHERE server_id IS NOT NULL: runs a worker
//     holds. server_id is set by the claim and cleared when the run leaves
//     dispatched/running, so marking a run running touches no index at all
//     (but runs_job_active, below, for a run of a job).
//   - the unique id index (reports name runs by ID) and a unique partial
//     index on idempotency keys.
//   - for jobs (migration 00003_jobs), two indexes partial on a
//     non-empty job, so runs of no job never write them: runs_job_slot,
//     unique (job, logical_time) WHERE logical_time IS NOT NULL, which
//     makes a cron slot fire once; and runs_job_active (job, status, seq)
//     for the runs that are not terminal, which lists a job's unfinished
//     runs and decides RunUnblockNext by a few seeks, without reading its
//     finished runs. Its predicate names status, so a state change of a
//     run of no job evaluates it (and stops at the job test): about 1–2%
//     of a start or a finish, and nothing on insert.
//   - for feedback (migration 00004_callbacks), runs_callback_due
//     (callback_next_at, seq) WHERE callback_next_at IS NOT NULL: the
//     pending deliveries of runs with a callback URL, in due order. The hot
//     finish applies to runs without a URL ("AND callback_url IS NULL") and
//     names no callback column, so it never evaluates that predicate; a
//     finish it does not apply is retried by a statement that also makes
//     the delivery pending when the run ends (callbacks.go). runCols
//     returns the delivery state as one JSON array, NULL for runs without a
//     URL, so reads pay one column for it, not five.
//   - for lists (migration 00007_lists, store/listq): runs_grp, runs_type
//     and runs_job (runs of a job only), on columns fixed at insert, so state
//     changes never write them; and the table ended (seq) of the runs that
//     ended failed, cancelled, timed_out or skipped, written by the
//     statement after the finish, cancel or skipped insert that ends a run
//     that way and cleared by a retry (ended.go) — a partial index on
//     status would be evaluated on every status change (it doubled a
//     start's cost).
//   - for retention (migration 00008_retention, retention.go): nothing.
//     Expired runs are found by walking runs by rowid (or ended, or one
//     job's runs by runs_job) from a cursor, so the finish writes nothing
//     for them. New databases use auto_vacuum = INCREMENTAL, and
//     ReclaimSpace gives free pages back after deletions.
//   - for the attempt history (migration 00013_attempts, attempts.go): the
//     table run_attempts, keyed by (run_id, attempt), written only by the
//     changes that end an attempt without ending its run (a retry, a
//     hand-back, a requeue of lost runs, an operator retry); the claim sets
//     dispatched_at in the UPDATE it does anyway, and a finish that ends
//     the run writes nothing more.
//   - for fan-outs (migration 00018_fanout, fanout.go): runs_parent
//     (parent_id) and runs_parent_shard (parent_id, shard), partial on a
//     non-empty parent, so only children and merge runs write them; and
//     the table fanouts, a parent's join state. Its counters are kept by
//     the Tx methods that move children into and out of terminal statuses
//     — the finish from the aggregate read that already counts its runs —
//     not by a trigger, whose program SQLite would run for every row of
//     every statement that sets status.
//
// RunCountByGroup is the one full scan (an index on status would be written
// on every state change); it is for dashboards, not hot paths.
//
// # The write path
//
// The writer's statements are prepared once per connection and executed on
// the driver connection directly (sql.Conn.Raw), with driver values and a
// context that is never done: database/sql's argument conversion and the
// driver's per-statement cancellation goroutine cost about a fifth of a
// single-row UPDATE. Plain runs (no idempotency key, no job slot, not
// skipped) are inserted 64, 16 or 4 rows per statement, the others one at
// a time so that a conflict on the key or the slot can be told apart; a
// claim selects the heads of the queues from the claim index and updates
// exactly the chosen rows by rowid in one statement; a start or finish is
// one prepared UPDATE per run, fenced by "id = ? AND attempt = ? AND
// status IN (…)". Measured alternatives that
// lost: UPDATE … RETURNING for the claim (SQLite buffers RETURNING rows),
// json_each and multi-row UPDATE … FROM (VALUES …) batches for starts and
// finishes (parsing or joining cost more than the statements they saved).
// The benchmarks in bench_test.go measure each operation and a full cycle.
//
// Cancellation: Tx honours its context while it waits for the writer and
// every Tx method checks it before it starts; a statement, once started,
// runs to completion (none is unbounded).
//
// # One process, one server
//
// Open takes an exclusive flock on PATH.lock: two processes on one
// database would both dispatch its runs. The cluster side of the contract
// is implemented all the same, because the engine runs the same code on
// every backend: the leader lease and the servers table (migration
// 00002_cluster) work as on PostgreSQL — the one server simply wins every
// election — and a start or finish that names a ServerID adds
// "server_id = ?" to its condition (a separate prepared statement, so an
// unfenced report costs what it did). Tx.Notify is a no-op and Listen
// waits for its context or Close: there is nobody else to tell, and the
// process learns of its own changes without a round trip.
package sqlite
