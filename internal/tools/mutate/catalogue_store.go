package main

// The store's mutants: each SQLite one is tested by the SQLite backend's
// tests (the conformance suite among them), each PostgreSQL one by the
// PostgreSQL backend's (which need PLUTO_TEST_POSTGRES or the default
// local server; slow plan tests are skipped).

var (
	sqlitePkgs = []string{"./internal/store/sqlite"}
	pgPkgs     = []string{"./internal/store/postgres"}
)

// pgSkip leaves out a PostgreSQL test that loads 100,000 runs to measure
// pages read: it checks plans, not behaviour, and doubles the run time.
const pgSkip = "TestJobWithManyFinishedRuns"

var storeMutants = []Mutant{
	// PostgreSQL
	{
		ID: "pg-claim-recheck", File: "internal/store/postgres/runs.go",
		Old: "FROM c WHERE runs.seq = c.seq AND runs.status = 'queued'", New: "FROM c WHERE runs.seq = c.seq",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL claim without its runs.status = 'queued' recheck: a run cancelled while the claim waited is dispatched",
	},
	{
		ID: "pg-promote-recheck", File: "internal/store/postgres/runs.go",
		Old: "FROM p WHERE runs.seq = p.seq AND runs.status = 'pending'", New: "FROM p WHERE runs.seq = p.seq",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL promote without its runs.status = 'pending' recheck: a run cancelled while the promote waited is queued",
	},
	{
		ID: "pg-claim-priority", File: "internal/store/postgres/runs.go",
		Old: "ORDER BY q.priority DESC, q.run_at, q.seq", New: "ORDER BY q.run_at, q.seq",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL claim takes each type's queue head by run_at, ignoring priority",
	},
	{
		ID: "pg-claim-types", File: "internal/store/postgres/runs.go",
		Old: "WHERE q.grp = $2 AND q.type = t.type", New: "WHERE q.grp = $2",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL claim ignores the types the workers serve",
	},
	{
		ID: "pg-start-attempt", File: "internal/store/postgres/runs.go",
		Old: "runs.attempt = u.attempt AND runs.status = 'dispatched'", New: "u.attempt IS NOT NULL AND runs.status = 'dispatched'",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL start not fenced by attempt",
	},
	{
		ID: "pg-finish-attempt", File: "internal/store/postgres/runs.go",
		Old:  "runs.attempt = u.attempt AND runs.status IN ('dispatched', 'running')\n\t\t\t\tAND (u.server",
		New:  "u.attempt IS NOT NULL AND runs.status IN ('dispatched', 'running')\n\t\t\t\tAND (u.server",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL finish not fenced by attempt",
	},
	{
		ID: "pg-finish-server", File: "internal/store/postgres/runs.go",
		Old: "OR runs.server_id = u.server)\n\t\t\tRETURNING runs.id, runs.job", New: "OR true)\n\t\t\tRETURNING runs.id, runs.job",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL finish not fenced by the holding server",
	},
	{
		ID: "pg-promote-due", File: "internal/store/postgres/runs.go",
		Old: "WHERE run_at <= $1", New: "WHERE run_at < $1",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL promote leaves a run due exactly now pending",
	},
	{
		ID: "pg-requeue-limit", File: "internal/store/postgres/lost.go",
		Old: "ORDER BY r.seq\n\t\t\tLIMIT $2\n", New: "ORDER BY r.seq\n",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL requeue of lost runs ignores its limit",
	},
	{
		ID: "pg-slot-unique", File: "internal/store/postgres/migrations/00002_jobs.sql",
		Old: "CREATE UNIQUE INDEX runs_job_slot", New: "CREATE INDEX runs_job_slot",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL (job, logical_time) slot not unique: a cron slot can fire twice",
	},
	{
		ID: "pg-listdue-skip-locked", File: "internal/store/postgres/jobs.go",
		Old: "LIMIT $2\n\t\tFOR UPDATE SKIP LOCKED`", New: "LIMIT $2\n\t\tFOR UPDATE`",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL JobListDue waits for jobs another leader holds instead of skipping them",
	},
	{
		ID: "pg-leader-term", File: "internal/store/postgres/cluster.go",
		Old: "ELSE l.term + 1 END", New: "ELSE l.term END",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL leader lease taken over without a new term",
	},
	{
		ID: "pg-callback-due", File: "internal/store/postgres/callbacks.go",
		Old: "WHERE next_at <= $1", New: "WHERE next_at < $1",
		Pkgs: pgPkgs, Skip: pgSkip,
		Desc: "PostgreSQL callback deliveries due exactly now are not claimed",
	},

	// SQLite
	{
		ID: "sqlite-finish-attempt", File: "internal/store/sqlite/runs.go",
		Old: "error = coalesce(?, error)\n\t\tWHERE id = ? AND attempt = ?", New: "error = coalesce(?, error)\n\t\tWHERE id = ? AND ? IS NOT NULL",
		Pkgs: sqlitePkgs,
		Desc: "SQLite finish not fenced by attempt: a stale attempt's result overwrites the current one",
	},
	{
		// The parameter numbers change with the statement's columns: the
		// edit leaves the number's last digit in place ("attempt = ?11"
		// becomes "attempt >= 0 AND ?11", true for any attempt).
		ID: "sqlite-finish-callback-attempt", File: "internal/store/sqlite/callbacks.go",
		Old: "AND attempt = ?1", New: "AND attempt >= 0 AND ?1",
		Pkgs: sqlitePkgs,
		Desc: "SQLite finish of a run with a callback URL not fenced by attempt",
	},
	{
		// As above: "server_id = ?12" becomes "0 < ?12", true for any server
		// (SQLite orders numbers before text).
		ID: "sqlite-finish-callback-server", File: "internal/store/sqlite/callbacks.go",
		Old: "finishCallbackSQL + ` AND server_id = ?1", New: "finishCallbackSQL + ` AND 0 < ?1",
		Pkgs: sqlitePkgs,
		Desc: "SQLite finish of a run with a callback URL not fenced by the holding server",
	},
	{
		ID: "sqlite-fenced-server", File: "internal/store/sqlite/runs.go",
		Old: "fenced = ` AND server_id = ?`", New: "fenced = ` AND ? IS NOT NULL`",
		Pkgs: sqlitePkgs,
		Desc: "SQLite start and finish not fenced by the holding server",
	},
	{
		ID: "sqlite-start-attempt", File: "internal/store/sqlite/runs.go",
		Old: "WHERE id = ? AND attempt = ? AND status = 'dispatched'", New: "WHERE id = ? AND ? IS NOT NULL AND status = 'dispatched'",
		Pkgs: sqlitePkgs,
		Desc: "SQLite start not fenced by attempt",
	},
	{
		ID: "sqlite-claim-types", File: "internal/store/sqlite/runs.go",
		Old: "WHERE status = 'queued' AND grp = ?1 AND type = ?", New: "WHERE status = 'queued' AND grp = ?1 AND ? IS NOT NULL",
		Pkgs: sqlitePkgs,
		Desc: "SQLite claim ignores the types the workers serve",
	},
	{
		ID: "sqlite-claim-run-at", File: "internal/store/sqlite/runs.go",
		Old: "ORDER BY priority DESC, run_at, seq LIMIT ?)`", New: "ORDER BY priority DESC, seq LIMIT ?)`",
		Pkgs: sqlitePkgs,
		Desc: "SQLite claim takes each type's queue head ignoring run_at",
	},
	{
		ID: "sqlite-claim-fifo", File: "internal/store/sqlite/runs.go",
		Old: "\n\treturn cmp.Compare(a.Seq, b.Seq)\n}", New: "\n\treturn cmp.Compare(b.Seq, a.Seq)\n}",
		Pkgs: sqlitePkgs,
		Desc: "SQLite claim returns runs of equal priority and run_at newest first",
	},
	{
		ID: "sqlite-promote-due", File: "internal/store/sqlite/runs.go",
		Old: "p.status = 'pending' AND p.run_at <= ?", New: "p.status = 'pending' AND p.run_at < ?",
		Pkgs: sqlitePkgs,
		Desc: "SQLite promote leaves a run due exactly now pending",
	},
	{
		ID: "sqlite-promote-status", File: "internal/store/sqlite/runs.go",
		Old: "WHERE p.status = 'pending' AND", New: "WHERE p.status IN ('pending', 'blocked') AND",
		Pkgs: sqlitePkgs,
		Desc: "SQLite promote also queues blocked runs whose run_at passed",
	},
	{
		ID: "sqlite-requeue-stale", File: "internal/store/sqlite/runs.go",
		Old: "s.id = a.server_id AND s.last_seen >= ?", New: "s.id = a.server_id AND s.last_seen > ?",
		Pkgs: sqlitePkgs,
		Desc: "SQLite requeues the runs of a server seen exactly at the cut-off",
	},
	{
		ID: "sqlite-cancel-terminal", File: "internal/store/sqlite/runs.go",
		Old: "if prev.Status.Terminal() {", New: "if prev.Status == store.StatusSucceeded {",
		Pkgs: sqlitePkgs,
		Desc: "SQLite cancel overwrites failed, cancelled and skipped runs",
	},
	{
		ID: "sqlite-retry-succeeded", File: "internal/store/sqlite/runs.go",
		Old: "case store.StatusFailed, store.StatusCancelled,", New: "case store.StatusSucceeded, store.StatusFailed, store.StatusCancelled,",
		Pkgs: sqlitePkgs,
		Desc: "SQLite retry accepts a run that succeeded",
	},
	{
		ID: "sqlite-slot-unique", File: "internal/store/sqlite/migrations/00003_jobs.sql",
		Old: "CREATE UNIQUE INDEX runs_job_slot", New: "CREATE INDEX runs_job_slot",
		Pkgs: sqlitePkgs,
		Desc: "SQLite (job, logical_time) slot not unique",
	},
	{
		ID: "sqlite-leader-term", File: "internal/store/sqlite/runs.go",
		Old: "ELSE leader.term + 1 END", New: "ELSE leader.term END",
		Pkgs: sqlitePkgs,
		Desc: "SQLite leader lease taken over without a new term",
	},
	{
		ID: "sqlite-job-advance-cas", File: "internal/store/sqlite/jobs.go",
		Old: "WHERE name = ? AND next_fire IS ?`", New: "WHERE name = ? AND (next_fire IS ? OR 1)`",
		Pkgs: sqlitePkgs,
		Desc: "SQLite job advance is not a compare-and-set: a slot can be advanced past twice",
	},
	{
		ID: "sqlite-callback-due", File: "internal/store/sqlite/callbacks.go",
		Old: "c.callback_next_at <= ?1", New: "c.callback_next_at < ?1",
		Pkgs: sqlitePkgs,
		Desc: "SQLite callback deliveries due exactly now are not claimed",
	},
}
