// Package postgres is Pluto's PostgreSQL storage backend, for clusters:
// any number of pluto servers share one database and schema. It
// implements store.Store and passes the shared conformance suite in
// internal/store/storetest.
//
// Everything goes through pgx v5: a pgxpool for transactions and reads,
// one dedicated connection per Listen, and goose (through
// stdlib.OpenDBFromPool) for the migrations embedded from migrations/. The
// SQL is written by hand, as in the SQLite backend, rather than generated
// with sqlc: the write path is a handful of batch statements over arrays
// (unnest) and writable CTEs, which sqlc handles poorly, and each is
// documented and its query plan tested (internal_test.go) where it is
// declared.
//
// # Schema
//
// A store lives in one schema (Options.Schema, the URL's ?schema=, or
// "pluto"), created if missing. Every pooled connection starts with
// search_path set to that schema alone, so the SQL never names it, and
// goose keeps its version table there too; several stores (tests, or
// separate Pluto clusters) share a database without seeing each other.
// Servers starting at once migrate in turn under a session advisory lock
// whose id derives from the schema name.
//
// The runs table has indexes only on columns a run never changes — seq,
// id, the idempotency key, a job's slot (job, logical_time), for lists
// (grp, seq), (type, seq) and (job, seq), and a fan-out parent's runs
// (parent_id, seq) and (parent_id, shard) — so every
// state change is a HOT update (a new
// row version on the same page, no index entry), and the table is created
// with fillfactor 50 to leave room for those versions. The runs the
// scheduler looks for by state are listed in three narrow side tables
// instead of partial indexes on status (each of which would make every
// state change write an entry in every index):
//
//   - queue (grp, type, priority, run_at, seq), indexed in claim order per
//     group and type: one row per queued run;
//   - pending (run_at, seq): runs waiting for their time;
//   - active (seq, server_id), by seq and by server: runs a worker holds;
//   - blocked (job, seq): runs waiting for upstream runs, by job;
//   - job_live (job, seq): the runs of jobs that are pending, queued,
//     dispatched or running. A run enters it when it is born, retried or
//     unblocked and leaves it at a terminal status; the moves in between
//     leave it alone, so runs of no job never touch it.
//   - callbacks (next_at, seq): the pending deliveries of runs with a
//     callback URL (feedback, callbacks.go). The delivery state itself is
//     in runs, in columns no index names.
//   - ended (seq): runs that ended failed, cancelled, timed_out or
//     skipped, for lists (store/listq). Written by the statement that ends
//     a run that way, deleted by a retry; succeeded finishes never touch
//     it. A retry racing the finish may leave a row behind: lists re-test
//     the status.
//
// Retention (migration 00007_retention, retention.go) adds no index and
// no side table: it walks runs by seq (or ended, or one job's runs by
// runs_job) from a cursor and deletes expired terminal runs with their
// ended and callbacks rows, attempt history and log lines; the other side
// tables hold unfinished runs only.
//
// Fan-outs (migration 00016_fanout, fanout.go) add runs_parent
// (parent_id, seq) and runs_parent_shard (parent_id, shard), partial on a
// non-empty parent and on columns fixed at insert; the table fanouts, a
// parent's join state; and fanout_deltas, the changes to its counters,
// appended (never an update of a shared row) by the Tx methods that move
// children into or out of terminal statuses and folded with the run
// counters. No
// trigger: an AFTER UPDATE row trigger on runs has PostgreSQL fetch the
// old version of every updated row again, which the hot start paid for.
// A parent of a job is in job_live while it runs; no parent is ever in
// queue, pending or active.
//
// The attempt history (migration 00012_attempts, attempts.go) is a table
// of its own, run_attempts (run_id, attempt), written only by the changes
// that end an attempt without ending the run; the claim sets
// dispatched_at, which no index names, in the update it does anyway.
//
// A side row is written in the statement that moves its run in or out of
// the state, so the two never disagree for long. There are no foreign
// keys (each costs a lookup per written row). Text columns that are
// matched or ordered (ids, groups, types, keys, server ids) use the "C"
// collation: byte order, as in SQLite, and memcmp comparisons. Times are
// timestamptz (microseconds, as the contract wants); payloads and results
// are stored as the text sent, not jsonb: no re-encoding, and a worker
// that reports invalid JSON cannot fail a group commit. NUL bytes and
// invalid UTF-8, which PostgreSQL's text refuses, are replaced by U+FFFD in
// free text (payloads, results, errors, log lines).
//
// Measured on the 2-core development machine (PostgreSQL 15 on the same
// machine, bench_test.go), the PostgreSQL side of a run's life — insert,
// claim, start, finish, in batches of 512 — costs about 45–55 µs of server
// CPU with this layout, against about 70 µs with partial indexes on
// status.
//
// # Transactions and the write path
//
// Store.Tx takes a pooled connection and runs fn in one READ COMMITTED
// transaction. Each batch method is one statement whatever the batch size
// (arrays bound as parameters and expanded with unnest; a finish that
// clears active rows adds one more), so a group commit of hundreds of
// changes costs a handful of round trips, and the one COMMIT (with
// synchronous_commit at its default, on: Tx returns after the WAL flush)
// is shared by all of them.
//
// The transaction begins, in the same round trip, with enable_seqscan,
// enable_hashjoin and enable_mergejoin off. Every write statement finds
// its rows through an index — by id, by seq, or in the order of a side
// table's index — but the planner does not always know: its estimates come
// from statistics that lag a queue's churn (a table that was small at the
// last ANALYZE looks cheap to read in full, and a sequential scan under a
// hash join turns a batch of 500 updates into a scan of a million runs).
// TestQueryPlans checks the plans, custom and generic, on a table with no
// statistics at all.
//
// A batch that names one run twice is cut into rounds in which every run
// appears once (an UPDATE … FROM applies at most one source row to a
// target), so elements still apply in input order; within a round the
// elements are sorted by id, so concurrent transactions lock shared runs
// in the same order. Transactions can still deadlock (two servers
// cancelling the same runs in different orders, say): PostgreSQL then
// aborts one with SQLSTATE 40P01 and its Tx returns that error; the batch
// may be retried as a whole. store.ErrNotFound and store.ErrConflict are
// decided from what a statement returned, never raised by the server, so
// they leave the transaction usable.
//
// Side rows and snapshots: a statement that locks runs by an UPDATE may
// wait for another transaction and then act on the runs' newest versions,
// while its snapshot — taken before the wait — misses the side rows that
// transaction wrote. So deletes and updates of active rows run in a
// statement of their own after the runs are locked (inserts are safe in
// the same statement). TestSideTablesConsistent drives every transition
// from concurrent transactions and checks the side tables against runs.
//
// # Claims
//
// A claim locks, with FOR UPDATE SKIP LOCKED, the head of the group's
// queue for each requested type (an ordered range of queue_order, cut at
// the limit), keeps the first Limit of them in claim order, deletes those
// queue rows and dispatches their runs, in one statement. Rows another
// claimer holds are skipped rather than waited for, so servers claiming
// from one group at once get disjoint runs and never block each other; a
// claim may then return fewer runs than are queued. The runs update
// re-checks that each run is still queued (a cancel may have won the
// race), so no run is handed out twice. A cancel never waits for a queue
// row a claimer holds: it takes the run's lock first and the claimer, which
// needs that lock next, then finds the run cancelled. (When a claim for
// several types locks heads it does not take, such a queue row can outlive
// its run's queued state; the next claim that reaches it drops it.)
//
// # Jobs
//
// A job is a row of jobs (payload as jsonb: a job is written rarely, and
// a payload PostgreSQL cannot store fails JobPut, not the transaction).
// The leader's cron tick locks the due jobs with FOR UPDATE SKIP LOCKED
// (index jobs_due on next_fire, unpaused jobs only), so two leaders never
// fire one job at once, and moves next_fire on with a compare-and-set. A
// slot fires once because (job, logical_time) is unique in runs (a
// partial unique index): an insert naming a taken slot returns the run
// holding it, like an idempotency key. One INSERT … ON CONFLICT can name
// one arbiter only, so batches holding runs of jobs (or blocked or
// skipped runs) take a second insert statement, ON CONFLICT DO NOTHING
// without a target, that also fills blocked and job_live; the hot path —
// batches of queued and pending runs of no job — keeps the statement with
// the key as its arbiter. A job's unfinished runs (RunListActiveForJob)
// are read from job_live and blocked, by job, never from runs: a job with
// a million finished runs, or a million delayed runs of other jobs,
// costs nothing. RunUnblockNext locks the job's row first (an advisory
// lock stands for it when the job has none), so that it waits for a cron
// tick that holds the row, then — in a statement whose snapshot follows
// the lock — queues the job's oldest blocked run if job_live holds none
// of its runs.
//
// # Servers, leases and fencing
//
// Each server registers in the servers table and renews last_seen with
// ServerHeartbeat: that row is the lease under which it holds its active
// runs (runs.server_id, mirrored in active). Reports are fenced twice: by
// attempt, always, and by server when RunStartParams/RunFinishParams name
// one, so a server that lost a run (adopted by another server, or
// requeued) cannot change it. The leader calls RunRequeueLost: runs held
// by servers that are not registered or were last seen before the cut-off
// go back to the queue with their attempt unchanged (the next claim
// increments it, fencing the lost attempt). A worker that reconnects to
// another server has its runs moved there with RunAdopt.
//
// # Leader election
//
// The leader holds a lease row (table leader, name 'leader') with a term,
// taken and renewed by one INSERT … ON CONFLICT DO UPDATE … WHERE: term 1
// when the row is new; the same term when the holder renews before
// expiry; term+1 when anybody — the old holder included — takes an expired
// lease. The row lock and the re-check of the condition on the newest row
// version serialise concurrent electors, so a term is won exactly once.
// Expiry is decided by the caller's clock (the params' Now), never the
// database's. LeaderResign sets expires_at to the zero time (0001-01-01),
// before any time a caller passes, keeping the term, so the next election
// takes the next term; LeaderGet then reports ExpiresAt as the zero time.
// A lease row rather than advisory locks (River's design): an advisory
// lock vanishes silently with its connection — the holder keeps acting as
// leader until it notices — and does not work through PgBouncer's
// transaction pooling; a lease with a term expires on a clock every server
// agrees to read, and the term tells a deposed leader's late writes apart.
//
// # Notifications
//
// All notifications of a schema travel on one channel, "pluto_" and the
// schema name (a digest of it when that would pass PostgreSQL's 63-byte
// identifier limit), so stores in different schemas do not hear each
// other. Tx.Notify collects a transaction's notifications, dropping
// duplicates; they are sent with pg_notify in the same round trip as
// COMMIT, packed one per line ("topic:payload", with backslash, newline
// and NUL escaped) into as few payloads as fit PostgreSQL's 8,000-byte
// limit. PostgreSQL delivers them only if the transaction commits, in
// commit order, to every listener, the publisher included. One
// notification must fit in 7,900 bytes. Listen opens a connection of its
// own, outside the pool, LISTENs and calls fn on its goroutine; it returns
// ctx's error when ctx ends, ErrClosed when the store closes, and the
// connection's error when that fails — the caller listens again and should
// assume it missed notifications in between.
//
// # Operations
//
// Keep autovacuum on (PostgreSQL's default): the side tables churn a row
// per state change. HOT pruning keeps runs compact without it, but the
// side tables and their indexes only give space back through VACUUM.
// Through PgBouncer, use session pooling (Listen holds a session, and
// migrations take a session advisory lock); pgx's statement cache can be
// switched off with the URL parameter default_query_exec_mode=exec.
package postgres
