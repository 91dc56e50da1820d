package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
)

// TestRunsIndexesHOTOnly: every index of runs names only columns a run
// never changes, so that state changes stay HOT updates (doc.go).
func TestRunsIndexesHOTOnly(t *testing.T) {
	s := openInternal(t)
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, `SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)
		FROM pg_index WHERE indrelid = 'runs'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		defs[name] = def
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	immutable := map[string]bool{"seq": true, "id": true, "key": true, "job": true, "logical_time": true,
		"grp": true, "type": true, "parent_id": true, "shard": true}
	cols := regexp.MustCompile(`[a-z_]+`)
	for name, def := range defs {
		_, rest, _ := strings.Cut(def, " USING btree ")
		for _, w := range cols.FindAllString(rest, -1) {
			switch w {
			case "where", "and", "is", "not", "null", "text", "collate", "c":
				continue
			}
			if !immutable[w] {
				t.Errorf("index %s names %s, which changes: %s", name, w, def)
			}
		}
	}
	if len(defs) != 9 {
		t.Errorf("runs has %d indexes, want 9 (pkey, id, key, job slot; the lists' grp, type, job; a parent's runs by seq and by shard): %v",
			len(defs), defs)
	}
}

// TestInsertSlotConcurrent: an insert into a slot another open
// transaction just took waits for it, then returns its run as existing
// when it commits, or inserts when it rolls back. Every wait is bounded:
// when slots are not unique the second insert does not wait at all, and
// the test must say so rather than hang.
func TestInsertSlotConcurrent(t *testing.T) {
	s := openInternal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	mk := func(id string, lt time.Time) store.RunInsertParams {
		return store.RunInsertParams{ID: id, Job: "j", Type: "t", Group: "g", Status: store.StatusQueued, LogicalTime: lt, Now: t0}
	}
	type outcome struct {
		res store.RunInsertResult
		err error
	}
	for _, commit := range []bool{true, false} {
		lt := t0.Add(time.Duration(len(strconv.FormatBool(commit))) * time.Minute) // a slot per case
		first, second := fmt.Sprintf("first-%v", commit), fmt.Sprintf("second-%v", commit)
		// One channel carries the second transaction's whole outcome, sent
		// once after it returned: whoever receives it keeps it.
		done := make(chan outcome, 1)
		var (
			got      outcome
			received bool
		)
		errBack := errors.New("roll back")
		err := s.Tx(ctx, func(tx store.Tx) error {
			if _, err := tx.RunInsert(ctx, []store.RunInsertParams{mk(first, lt)}); err != nil {
				return err
			}
			go func() {
				var o outcome
				o.err = s.Tx(ctx, func(tx store.Tx) error {
					r, err := tx.RunInsert(ctx, []store.RunInsertParams{mk(second, lt)})
					if err == nil {
						o.res = r[0]
					}
					return err
				})
				done <- o
			}()
			select {
			case got = <-done:
				received = true
				t.Errorf("commit=%v: the second insert returned (%s existing=%v, err %v) while the first transaction held the slot; it must wait",
					commit, runIDOf(got.res), got.res.Existing, got.err)
			case <-time.After(200 * time.Millisecond):
			}
			if !commit {
				return errBack
			}
			return nil
		})
		if commit && err != nil || !commit && !errors.Is(err, errBack) {
			t.Fatalf("commit=%v: first Tx: %v", commit, err)
		}
		if !received {
			select {
			case got = <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("commit=%v: the second insert did not return within 20s of the first transaction's end", commit)
			}
		}
		if got.err != nil {
			t.Fatalf("commit=%v: second Tx: %v", commit, got.err)
		}
		r := got.res
		switch {
		case commit && (!r.Existing || r.Run.ID != first):
			t.Errorf("after the first committed: got %s existing=%v, want existing %s", runIDOf(r), r.Existing, first)
		case !commit && (r.Existing || r.Run.ID != second):
			t.Errorf("after the first rolled back: got %s existing=%v, want %s inserted", runIDOf(r), r.Existing, second)
		}
	}
	checkSideTables(t, s)
}

// runIDOf names the run of an insert result, or says there is none.
func runIDOf(r store.RunInsertResult) string {
	if r.Run == nil {
		return "no run"
	}
	return r.Run.ID
}

// TestInsertDuplicateID: a run whose ID is taken, in a batch that takes
// sqlInsertFull (ON CONFLICT without a target), is an error, not a run
// silently not inserted; and the transaction rolls back.
func TestInsertDuplicateID(t *testing.T) {
	s := openInternal(t)
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := store.RunInsertParams{ID: "a", Job: "j", Type: "t", Group: "g", Status: store.StatusQueued, Now: now}
	for _, batch := range [][]store.RunInsertParams{{p}, {p, p}} {
		err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.RunInsert(ctx, batch)
			return err
		})
		if len(batch) == 1 && err != nil {
			t.Fatal(err)
		}
		if len(batch) == 2 && (err == nil || !strings.Contains(err.Error(), `"a" was not inserted`)) {
			t.Errorf("batch with a taken ID: %v", err)
		}
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM runs`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d runs (%v), want 1", n, err)
	}
}

// TestJobPayload: payloads are jsonb. One PostgreSQL cannot store fails
// the call but not the transaction; NUL escapes become U+FFFD.
func TestJobPayload(t *testing.T) {
	s := openInternal(t)
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	put := func(tx store.Tx, name, payload string) (*store.Job, error) {
		j, _, err := tx.JobPut(ctx, store.JobPutParams{Job: store.Job{Name: name, Type: "t", Group: "g", Payload: json.RawMessage(payload)}, Now: now})
		return j, err
	}
	if err := s.Tx(ctx, func(tx store.Tx) error {
		if _, err := put(tx, "bad", `{"a":`); err == nil {
			t.Error("invalid JSON accepted")
		}
		for payload, want := range map[string]string{
			`{"b": 1, "a": [true, null]}`:     `{"a": [true, null], "b": 1}`,
			`"x\u0000y"`:                      `"x\ufffdy"`,
			`{"k\\u0000": "\\\u0000\\u0000"}`: `{"k\\u0000": "\\\ufffd\\u0000"}`,
			`null`:                            `null`,
			"\"a\x00b\"":                      `"a\ufffdb"`,
		} {
			j, err := put(tx, "p", payload)
			if err != nil {
				return fmt.Errorf("payload %s: %w", payload, err)
			}
			var got, w any
			if err := json.Unmarshal(j.Payload, &got); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(want), &w); err != nil {
				return err
			}
			if fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("payload %s stored as %s, want %s", payload, j.Payload, want)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestJobWithManyFinishedRuns: listing a job's unfinished runs and
// unblocking the next one read a handful of pages, whatever the number of
// its finished runs (here 100,000) or of other jobs' unfinished ones.
func TestJobWithManyFinishedRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := openInternal(t)
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	if _, err := s.pool.Exec(ctx, `INSERT INTO runs (id, job, type, grp, status, logical_time, run_at, created_at, finished_at)
		SELECT 'old-' || i, 'j', 't', 'g', 'succeeded', $1::timestamptz - i * interval '1 second', $1, $1, $1
		FROM generate_series(1, 100000) AS i`, now); err != nil {
		t.Fatal(err)
	}
	var ps []store.RunInsertParams
	for i := range 2000 { // other jobs' unfinished runs
		ps = append(ps, store.RunInsertParams{ID: fmt.Sprintf("other-%d", i), Job: "other", Type: "t", Group: "g",
			Status: []store.RunStatus{store.StatusQueued, store.StatusBlocked, store.StatusPending}[i%3], Now: now})
	}
	ps = append(ps,
		store.RunInsertParams{ID: "live", Job: "j", Type: "t", Group: "g", Status: store.StatusQueued, LogicalTime: now, Now: now},
		store.RunInsertParams{ID: "b1", Job: "j", Type: "t", Group: "g", Status: store.StatusBlocked, LogicalTime: now.Add(time.Second), Now: now},
		store.RunInsertParams{ID: "b2", Job: "j", Type: "t", Group: "g", Status: store.StatusBlocked, LogicalTime: now.Add(2 * time.Second), Now: now},
	)
	if err := s.Tx(ctx, func(tx store.Tx) error {
		if _, _, err := tx.JobPut(ctx, store.JobPutParams{Job: store.Job{Name: "j", Type: "t", Group: "g"}, Now: now}); err != nil {
			return err
		}
		_, err := tx.RunInsert(ctx, ps)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE runs; ANALYZE job_live; ANALYZE blocked`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sql  string
		args []any
	}{
		{sqlListActiveForJob, []any{"j", int64(100)}},
		{sqlUnblockCandidate, []any{"j"}},
	} {
		plan := explainAnalyze(t, s, c.sql, c.args)
		if pages := bufferPages(plan); pages > 60 {
			t.Errorf("%d pages read:\n%s", pages, plan)
		} else {
			t.Logf("%d pages read by %.40q…", pages, strings.Join(strings.Fields(c.sql), " "))
		}
	}
	var ids []string
	if err := s.Tx(ctx, func(tx store.Tx) error {
		runs, err := tx.RunListActiveForJob(ctx, "j", 100)
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		if err != nil {
			return err
		}
		if r, err := tx.RunUnblockNext(ctx, "j", now); err != nil || r != nil {
			return fmt.Errorf("unblock while live runs: %v, %v", r, err)
		}
		if _, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "live", Now: now}); err != nil {
			return err
		}
		r, err := tx.RunUnblockNext(ctx, "j", now)
		if err != nil || r == nil || r.ID != "b1" || r.Status != store.StatusQueued {
			return fmt.Errorf("unblock after the live run ended: %+v, %v", r, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"live", "b1", "b2"}) {
		t.Errorf("RunListActiveForJob = %v", ids)
	}
	checkSideTables(t, s)
}

// explainAnalyze runs sql (in a write transaction, rolled back) under
// EXPLAIN (ANALYZE, BUFFERS) and returns the plan.
func explainAnalyze(t *testing.T, s *Store, sql string, args []any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	defer conn.Exec(ctx, "ROLLBACK")
	if _, err := conn.Exec(ctx, beginSQL); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

var buffersRE = regexp.MustCompile(`Buffers: shared ((?:hit|read)=\d+(?: (?:hit|read)=\d+)*)`)

// bufferPages is the shared buffers the top node of a plan touched (the
// first Buffers line).
func bufferPages(plan string) int {
	m := buffersRE.FindStringSubmatch(plan)
	if m == nil {
		return 1 << 30
	}
	n := 0
	for _, f := range strings.Fields(m[1]) {
		_, v, _ := strings.Cut(f, "=")
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n
}
