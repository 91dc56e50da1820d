package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// cmpJob compares jobs: times with Equal, JSON by value, and an empty
// DependsOn equal to a nil one.
var cmpJob = cmp.Options{
	cmp.Comparer(jsonEqual),
	cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) }),
}

func diffJob(t *testing.T, what string, want, got *store.Job) {
	t.Helper()
	if d := cmp.Diff(want, got, cmpJob); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

// job is a minimal job of type t in group g.
func job(name string) store.Job {
	return store.Job{Name: name, Type: "t", Group: "g", Misfire: store.MisfireSkip, Overlap: store.OverlapAllow}
}

// dueJob is job(name) with NextFire at.
func dueJob(name string, at time.Time) store.Job {
	j := job(name)
	j.Schedule = "* * * * * *"
	j.NextFire = at
	return j
}

func putJob(t *testing.T, s store.Store, j store.Job, now time.Time) (*store.Job, bool) {
	t.Helper()
	var (
		got     *store.Job
		created bool
	)
	tx(t, s, func(tx store.Tx) error {
		var err error
		got, created, err = tx.JobPut(ctx, store.JobPutParams{Job: j, Now: now})
		return err
	})
	if got == nil {
		t.Fatalf("JobPut(%q) returned no job", j.Name)
	}
	return got, created
}

func putJobs(t *testing.T, s store.Store, js ...store.Job) {
	t.Helper()
	for _, j := range js {
		putJob(t, s, j, t0)
	}
}

func getJob(t *testing.T, s store.Store, name string) *store.Job {
	t.Helper()
	j, err := s.JobGet(ctx, name)
	if err != nil {
		t.Fatalf("JobGet(%q): %v", name, err)
	}
	return j
}

func diffJobNames(t *testing.T, what string, want []string, got []*store.Job) {
	t.Helper()
	diffNames(t, what+": job names", want, names(got, func(j *store.Job) string { return j.Name }))
}

func listDue(t *testing.T, s store.Store, now time.Time, limit int) []*store.Job {
	t.Helper()
	var due []*store.Job
	tx(t, s, func(tx store.Tx) error {
		var err error
		due, err = tx.JobListDue(ctx, store.JobListDueParams{Now: now, Limit: limit})
		return err
	})
	return due
}

func advance(t *testing.T, s store.Store, p store.JobAdvanceParams) bool {
	t.Helper()
	return advanceAll(t, s, p)[0]
}

func advanceAll(t *testing.T, s store.Store, ps ...store.JobAdvanceParams) []bool {
	t.Helper()
	var ok []bool
	tx(t, s, func(tx store.Tx) error {
		var err error
		ok, err = tx.JobAdvance(ctx, ps)
		return err
	})
	if len(ok) != len(ps) {
		t.Fatalf("JobAdvance of %d returned %d results", len(ps), len(ok))
	}
	return ok
}

func pause(t *testing.T, s store.Store, p store.JobPauseParams) *store.Job {
	t.Helper()
	var j *store.Job
	tx(t, s, func(tx store.Tx) error {
		var err error
		j, err = tx.JobPause(ctx, p)
		return err
	})
	return j
}

func nextFire(t *testing.T, s store.Store) time.Time {
	t.Helper()
	at, err := s.JobNextFire(ctx)
	if err != nil {
		t.Fatalf("JobNextFire: %v", err)
	}
	return at
}

// slot is a queued run of job at logical time lt.
func slot(id, job string, lt time.Time) store.RunInsertParams {
	p := params(id)
	p.Job, p.LogicalTime = job, lt
	return p
}

// insertResults inserts ps in one batch and returns the results.
func insertResults(t *testing.T, s store.Store, ps ...store.RunInsertParams) []store.RunInsertResult {
	t.Helper()
	var res []store.RunInsertResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		res, err = tx.RunInsert(ctx, ps)
		return err
	})
	if len(res) != len(ps) {
		t.Fatalf("RunInsert returned %d results for %d runs", len(res), len(ps))
	}
	return res
}

func testJobPutAndGet(t *testing.T, s store.Store) {
	full := store.Job{
		Name:       "nightly-report",
		Type:       "report.build",
		Group:      "reports",
		Payload:    json.RawMessage(`{"format": "pdf", "pages": [1, 2.5, "x"], "nested": {"ok": true}}`),
		Schedule:   "0 3 * * *",
		Timezone:   "Europe/Paris",
		DependsOn:  []string{"extract", "load"},
		Misfire:    store.MisfireAll,
		MisfireMax: 12,
		Overlap:    store.OverlapQueue,
		Routing:    "hash",
		Priority:   -3,
		Timeout:    90 * time.Second,
		Retries:    4,
		Shards:     8,
		MinSuccess: 0.75,
		Merge:      "report.merge",
		Paused:     true,
		NextFire:   t0.Add(time.Hour),
		// The store's fields: whatever the caller passes is ignored.
		Version:   42,
		CreatedAt: t0.Add(-time.Hour),
		UpdatedAt: t0.Add(-time.Hour),
	}
	got, created := putJob(t, s, full, t0)
	if !created {
		t.Error("first JobPut: created = false")
	}
	want := full
	want.Version, want.CreatedAt, want.UpdatedAt = 1, t0, t0
	diffJob(t, "JobPut result (create)", &want, got)
	diffJob(t, "JobGet after create", &want, getJob(t, s, "nightly-report"))

	// Replace: every field is the new one, NextFire zero and Paused false
	// included; CreatedAt stays, Version and UpdatedAt move.
	t1 := t0.Add(time.Minute)
	repl := store.Job{Name: "nightly-report", Type: "report.v2", Group: "g2", Misfire: store.MisfireOnce, Overlap: store.OverlapForbid}
	got, created = putJob(t, s, repl, t1)
	if created {
		t.Error("second JobPut: created = true")
	}
	want = repl
	want.Version, want.CreatedAt, want.UpdatedAt = 2, t0, t1
	diffJob(t, "JobPut result (replace)", &want, got)
	diffJob(t, "JobGet after replace", &want, getJob(t, s, "nightly-report"))
	if p := getJob(t, s, "nightly-report").Payload; !isNullJSON(p) {
		t.Errorf("Payload after a replace without one = %q, want nil", p)
	}

	// And back to the full job: Version 3.
	t2 := t0.Add(2 * time.Minute)
	got, created = putJob(t, s, full, t2)
	want = full
	want.Version, want.CreatedAt, want.UpdatedAt = 3, t0, t2
	if created {
		t.Error("third JobPut: created = true")
	}
	diffJob(t, "JobPut result (second replace)", &want, got)
	diffJob(t, "JobGet after the second replace", &want, getJob(t, s, "nightly-report"))
	jobs, err := s.JobList(ctx)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("JobList: %d jobs, %v", len(jobs), err)
	}
	diffJob(t, "JobList after the second replace", &want, jobs[0])

	// Another job is independent; a put rolled back leaves nothing.
	other, created := putJob(t, s, job("other"), t2)
	if !created || other.Version != 1 {
		t.Errorf("put of another job: created %v version %d, want true, 1", created, other.Version)
	}
	err = s.Tx(ctx, func(tx store.Tx) error {
		if _, _, err := tx.JobPut(ctx, store.JobPutParams{Job: job("rolled-back"), Now: t2}); err != nil {
			return err
		}
		if _, _, err := tx.JobPut(ctx, store.JobPutParams{Job: repl, Now: t2}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx returned %v, want fn's error", err)
	}
	if _, err := s.JobGet(ctx, "rolled-back"); !isNotFound(err) {
		t.Errorf("JobGet of a job put in a rolled back tx: %v, want ErrNotFound", err)
	}
	diffJob(t, "job replaced in a rolled back tx", &want, getJob(t, s, "nightly-report"))
}

func testJobNotFound(t *testing.T, s store.Store) {
	putJob(t, s, job("exists"), t0)
	_, err := s.JobGet(ctx, "nope")
	wantErr(t, "JobGet", err, store.ErrNotFound)
	// Refusals are answers: the transaction goes on and commits.
	tx(t, s, func(tx store.Tx) error {
		wantErr(t, "JobDelete", tx.JobDelete(ctx, "nope"), store.ErrNotFound)
		_, err := tx.JobPause(ctx, store.JobPauseParams{Name: "nope", Paused: true, Now: t0})
		wantErr(t, "JobPause", err, store.ErrNotFound)
		ok, err := tx.JobAdvance(ctx, []store.JobAdvanceParams{{Name: "nope", From: t0, To: t0.Add(time.Minute), Now: t0}})
		if len(ok) != 1 || ok[0] || err != nil {
			t.Errorf("JobAdvance of a missing job = %v, %v; want false, nil", ok, err)
		}
		_, _, err = tx.JobPut(ctx, store.JobPutParams{Job: job("after"), Now: t0})
		return err
	})
	getJob(t, s, "after")
}

func testJobDelete(t *testing.T, s store.Store) {
	putJobs(t, s, job("a"), job("b"))
	insert(t, s, slot("r1", "a", t0))
	tx(t, s, func(tx store.Tx) error { return tx.JobDelete(ctx, "a") })
	if _, err := s.JobGet(ctx, "a"); !isNotFound(err) {
		t.Errorf("JobGet after delete: %v, want ErrNotFound", err)
	}
	err := s.Tx(ctx, func(tx store.Tx) error { return tx.JobDelete(ctx, "a") })
	wantErr(t, "second JobDelete", err, store.ErrNotFound)
	getJob(t, s, "b")
	if r := get(t, s, "r1"); r.Job != "a" {
		t.Errorf("run of a deleted job: Job %q, want a (runs stay)", r.Job)
	}
	// The name can be used again: a new job, Version 1.
	j, created := putJob(t, s, job("a"), t0.Add(time.Hour))
	if !created || j.Version != 1 || !j.CreatedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("put after delete: created %v version %d created at %v", created, j.Version, j.CreatedAt)
	}
}

func testJobList(t *testing.T, s store.Store) {
	list := func() []*store.Job {
		t.Helper()
		js, err := s.JobList(ctx)
		if err != nil {
			t.Fatalf("JobList: %v", err)
		}
		return js
	}
	diffJobNames(t, "empty store", nil, list())
	for _, n := range []string{"m", "b", "z", "a-2", "a-10"} {
		j := job(n)
		j.Payload = json.RawMessage(fmt.Sprintf(`{"name":%q}`, n))
		putJob(t, s, j, t0)
	}
	got := list()
	diffJobNames(t, "JobList", []string{"a-10", "a-2", "b", "m", "z"}, got)
	for _, j := range got {
		diffJob(t, "JobList vs JobGet "+j.Name, getJob(t, s, j.Name), j)
	}
	tx(t, s, func(tx store.Tx) error { return tx.JobDelete(ctx, "b") })
	diffJobNames(t, "JobList after delete", []string{"a-10", "a-2", "m", "z"}, list())
}

func testJobPause(t *testing.T, s store.Store) {
	j := dueJob("j", t0.Add(time.Minute))
	j.Payload = json.RawMessage(`{"x":1}`)
	j.DependsOn = []string{"up"}
	created, _ := putJob(t, s, j, t0)

	t1 := t0.Add(time.Second)
	got := pause(t, s, store.JobPauseParams{Name: "j", Paused: true, NextFire: t0.Add(time.Minute), Now: t1})
	want := *created
	want.Paused, want.Version, want.UpdatedAt = true, 2, t1
	diffJob(t, "JobPause result", &want, got)
	diffJob(t, "JobGet after pause", &want, getJob(t, s, "j"))

	t2 := t0.Add(2 * time.Second)
	got = pause(t, s, store.JobPauseParams{Name: "j", Paused: false, NextFire: t0.Add(time.Hour), Now: t2})
	want.Paused, want.NextFire, want.Version, want.UpdatedAt = false, t0.Add(time.Hour), 3, t2
	diffJob(t, "JobPause (resume) result", &want, got)
	diffJob(t, "JobGet after resume", &want, getJob(t, s, "j"))

	// NextFire replaces the stored one, even with zero.
	t3 := t0.Add(3 * time.Second)
	got = pause(t, s, store.JobPauseParams{Name: "j", Paused: true, Now: t3})
	want.Paused, want.NextFire, want.Version, want.UpdatedAt = true, time.Time{}, 4, t3
	diffJob(t, "JobPause with zero NextFire", &want, got)
	diffJob(t, "JobGet after pause with zero NextFire", &want, getJob(t, s, "j"))
}

func testJobNextFire(t *testing.T, s store.Store) {
	if at := nextFire(t, s); !at.IsZero() {
		t.Errorf("empty store: %v, want zero", at)
	}
	paused := dueJob("paused", t0.Add(10*time.Second)) // the earliest, but paused: ignored
	paused.Paused = true
	putJobs(t, s,
		dueJob("a", t0.Add(time.Minute)),
		paused,
		job("none"), // no NextFire
		dueJob("d", t0.Add(45*time.Second)),
	)
	if at := nextFire(t, s); !at.Equal(t0.Add(45 * time.Second)) {
		t.Errorf("got %v, want %v", at, t0.Add(45*time.Second))
	}
	pause(t, s, store.JobPauseParams{Name: "d", Paused: true, NextFire: t0.Add(45 * time.Second), Now: t0})
	if at := nextFire(t, s); !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("after pausing d: %v, want %v", at, t0.Add(time.Minute))
	}
	if !advance(t, s, store.JobAdvanceParams{Name: "a", From: t0.Add(time.Minute), To: t0.Add(-time.Hour), Now: t0}) {
		t.Fatal("advance of a rejected")
	}
	if at := nextFire(t, s); !at.Equal(t0.Add(-time.Hour)) {
		t.Errorf("after moving a back: %v, want %v", at, t0.Add(-time.Hour))
	}
	if !advance(t, s, store.JobAdvanceParams{Name: "a", From: t0.Add(-time.Hour), Now: t0}) {
		t.Fatal("advance of a to zero rejected")
	}
	if at := nextFire(t, s); !at.IsZero() {
		t.Errorf("only paused jobs and jobs without NextFire: %v, want zero", at)
	}
	pause(t, s, store.JobPauseParams{Name: "paused", Paused: false, NextFire: t0.Add(time.Hour), Now: t0})
	if at := nextFire(t, s); !at.Equal(t0.Add(time.Hour)) {
		t.Errorf("after resuming: %v, want %v", at, t0.Add(time.Hour))
	}
}

func testJobListDue(t *testing.T, s store.Store) {
	paused := dueJob("paused", t0.Add(-time.Hour))
	paused.Paused = true
	putJobs(t, s,
		dueJob("c", t0.Add(-time.Second)),
		dueJob("now", t0), // NextFire == Now is due
		dueJob("a", t0.Add(-time.Minute)),
		paused,
		job("none"),
		dueJob("future", t0.Add(time.Microsecond)),
		dueJob("b", t0.Add(-30*time.Second)),
	)
	diffJobNames(t, "nothing due yet", nil, listDue(t, s, t0.Add(-2*time.Minute), 10))
	got := listDue(t, s, t0, 100)
	diffJobNames(t, "due at t0", []string{"a", "b", "c", "now"}, got)
	for _, j := range got {
		diffJob(t, "JobListDue vs JobGet "+j.Name, getJob(t, s, j.Name), j)
	}
	diffJobNames(t, "limit 2", []string{"a", "b"}, listDue(t, s, t0, 2))
	diffJobNames(t, "limit 1", []string{"a"}, listDue(t, s, t0, 1))
	diffJobNames(t, "due a microsecond later", []string{"a", "b", "c", "now", "future"}, listDue(t, s, t0.Add(time.Microsecond), 100))

	// Listing changes nothing; advancing a job takes it off the list.
	if !advance(t, s, store.JobAdvanceParams{Name: "a", From: t0.Add(-time.Minute), To: t0.Add(time.Hour), Now: t0}) {
		t.Fatal("advance of a rejected")
	}
	diffJobNames(t, "after advancing a", []string{"b", "c", "now"}, listDue(t, s, t0, 100))
	pause(t, s, store.JobPauseParams{Name: "paused", Paused: false, NextFire: t0.Add(-time.Hour), Now: t0})
	diffJobNames(t, "after resuming paused", []string{"paused", "b", "c"}, listDue(t, s, t0, 3))
}

func testJobAdvance(t *testing.T, s store.Store) {
	j := dueJob("j", t0)
	j.Overlap = store.OverlapReplace
	created, _ := putJob(t, s, j, t0)
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)

	if !advance(t, s, store.JobAdvanceParams{Name: "j", From: t0, To: t1, Now: t0.Add(time.Second)}) {
		t.Fatal("advance from the stored NextFire rejected")
	}
	want := *created
	want.NextFire, want.Version, want.UpdatedAt = t1, 2, t0.Add(time.Second)
	diffJob(t, "after advance", &want, getJob(t, s, "j"))

	// The same compare-and-set again (a second leader): rejected, nothing changes.
	if advance(t, s, store.JobAdvanceParams{Name: "j", From: t0, To: t1, Now: t0.Add(2 * time.Second)}) {
		t.Error("second advance from the same NextFire applied")
	}
	if advance(t, s, store.JobAdvanceParams{Name: "j", From: t2, To: t2.Add(time.Minute), Now: t0.Add(2 * time.Second)}) {
		t.Error("advance from a NextFire never stored applied")
	}
	diffJob(t, "after rejected advances", &want, getJob(t, s, "j"))

	// To zero: no more slots.
	if !advance(t, s, store.JobAdvanceParams{Name: "j", From: t1, Now: t0.Add(3 * time.Second)}) {
		t.Fatal("advance to zero rejected")
	}
	want.NextFire, want.Version, want.UpdatedAt = time.Time{}, 3, t0.Add(3*time.Second)
	diffJob(t, "after advance to zero", &want, getJob(t, s, "j"))
	if advance(t, s, store.JobAdvanceParams{Name: "j", From: t1, To: t2, Now: t0.Add(4 * time.Second)}) {
		t.Error("advance from the old NextFire applied after it became zero")
	}
	diffJob(t, "after a rejected advance from the old NextFire", &want, getJob(t, s, "j"))

	// A batch: each element on its own, results in input order; of two
	// elements with the same From for one job only one applies.
	putJob(t, s, dueJob("a", t0), t0)
	putJob(t, s, dueJob("b", t0), t0)
	got := advanceAll(t, s,
		store.JobAdvanceParams{Name: "b", From: t0, To: t1, Now: t0},
		store.JobAdvanceParams{Name: "nope", From: t0, To: t1, Now: t0},
		store.JobAdvanceParams{Name: "a", From: t2, To: t1, Now: t0}, // wrong From
		store.JobAdvanceParams{Name: "a", From: t0, To: t2, Now: t0},
		store.JobAdvanceParams{Name: "b", From: t0, To: t2, Now: t0}, // b again, same From
	)
	// Which of b's two applies is the backend's choice; exactly one does.
	if got[1] || got[2] || !got[3] || got[0] == got[4] {
		t.Errorf("batch advance = %v, want [one-of false false true other-of]", got)
	}
	wantB := t1
	if got[4] {
		wantB = t2
	}
	if a, b := getJob(t, s, "a"), getJob(t, s, "b"); !a.NextFire.Equal(t2) || !b.NextFire.Equal(wantB) {
		t.Errorf("after the batch: a next %v (want %v), b next %v (want %v)", a.NextFire, t2, b.NextFire, wantB)
	}
}

// testJobListDueConcurrent has 8 cron ticks race over 60 due jobs, each
// tick listing a few due jobs and advancing them in one transaction: every
// job is listed by exactly one tick, and every advance applies.
func testJobListDueConcurrent(t *testing.T, s store.Store) {
	const n, tickers = 60, 8
	for i := range n {
		putJob(t, s, dueJob(fmt.Sprintf("j%02d", i), t0.Add(-time.Duration(i)*time.Second)), t0)
	}
	var (
		mu   sync.Mutex
		seen = make(map[string]int)
		wg   sync.WaitGroup
		dctx = deadlineCtx(t)
	)
	for c := range tickers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if i > n {
					t.Errorf("ticker %d: still listing due jobs after %d ticks over %d jobs (advanced jobs stay due?)", c, i, n)
					return
				}
				var got []*store.Job
				err := s.Tx(dctx, func(tx store.Tx) error {
					var err error
					got, err = tx.JobListDue(dctx, store.JobListDueParams{Now: t0, Limit: 1 + (c+i)%4})
					if err != nil {
						return err
					}
					for _, j := range got {
						ok, err := tx.JobAdvance(dctx, []store.JobAdvanceParams{{Name: j.Name, From: j.NextFire, Now: t0}})
						if err != nil {
							return err
						}
						if !ok[0] {
							return fmt.Errorf("advance of %s (listed due in this transaction) rejected", j.Name)
						}
					}
					return nil
				})
				if err != nil {
					t.Errorf("ticker %d: %v", c, err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, j := range got {
					seen[j.Name]++
				}
				mu.Unlock()
			}
		}()
	}
	waitAll(t, "tickers", &wg)
	if len(seen) != n {
		t.Errorf("%d distinct jobs listed, want %d", len(seen), n)
	}
	for name, k := range seen {
		if k != 1 {
			t.Errorf("job %s listed %d times", name, k)
		}
	}
	if at := nextFire(t, s); !at.IsZero() {
		t.Errorf("JobNextFire after every job advanced to zero: %v", at)
	}
}

// testJobListDueHeld runs on stores whose transactions run at once
// (Options.ConcurrentTx). While one transaction holds the jobs it listed
// due, a second one skips them instead of waiting, and RunUnblockNext for
// one of them waits for the first transaction to end.
func testJobListDueHeld(t *testing.T, s store.Store, opts Options) {
	if !opts.ConcurrentTx {
		t.Skip("the store runs one transaction at a time")
	}
	for i := range 6 {
		putJob(t, s, dueJob(fmt.Sprintf("j%d", i), t0.Add(time.Duration(i-6)*time.Second)), t0)
	}
	type listing struct {
		names []string
		err   error
	}
	dctx := deadlineCtx(t)
	// tick lists what is due and advances it, in its own transaction.
	tick := func(limit int, hold func()) listing {
		var l listing
		l.err = s.Tx(dctx, func(tx store.Tx) error {
			due, err := tx.JobListDue(dctx, store.JobListDueParams{Now: t0, Limit: limit})
			if err != nil {
				return err
			}
			l.names = names(due, func(j *store.Job) string { return j.Name })
			if hold != nil {
				hold()
			}
			ps := make([]store.JobAdvanceParams, len(due))
			for i, j := range due {
				ps[i] = store.JobAdvanceParams{Name: j.Name, From: j.NextFire, Now: t0}
			}
			ok, err := tx.JobAdvance(dctx, ps)
			if err != nil {
				return err
			}
			for i, j := range due {
				if !ok[i] {
					return fmt.Errorf("advance of %s (listed due in this transaction) rejected", j.Name)
				}
			}
			return nil
		})
		return l
	}

	second := make(chan listing, 1)
	var first listing
	first = tick(3, func() {
		go func() { second <- tick(10, nil) }()
		select {
		case l := <-second:
			second <- l
		case <-time.After(10 * time.Second):
			t.Error("JobListDue waited for rows another transaction holds; it must skip them")
		}
	})
	b := receive(t, "the second tick", second)
	if first.err != nil || b.err != nil {
		t.Fatalf("ticks: %v; %v", first.err, b.err)
	}
	if d := cmp.Diff([]string{"j0", "j1", "j2"}, first.names); d != "" {
		t.Errorf("first transaction listed (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"j3", "j4", "j5"}, b.names); d != "" {
		t.Errorf("second transaction, while the first held its jobs, listed (-want +got):\n%s", d)
	}

	// RunUnblockNext locks the job's row: it waits for the tick that holds it.
	putJob(t, s, dueJob("q", t0), t0)
	bl := params("blocked")
	bl.Job, bl.Status = "q", store.StatusBlocked
	insert(t, s, bl)
	unblocked := make(chan error, 1)
	tx(t, s, func(tx store.Tx) error {
		due, err := tx.JobListDue(ctx, store.JobListDueParams{Now: t0, Limit: 10})
		if err != nil {
			return err
		}
		diffJobNames(t, "tick holding q", []string{"q"}, due)
		go func() {
			unblocked <- s.Tx(dctx, func(tx store.Tx) error {
				_, err := tx.RunUnblockNext(dctx, "q", t0)
				return err
			})
		}()
		select {
		case err := <-unblocked:
			t.Errorf("RunUnblockNext returned (%v) while another transaction held the job's row", err)
			unblocked <- err
		case <-time.After(300 * time.Millisecond):
		}
		return nil
	})
	if err := receive(t, "RunUnblockNext", unblocked); err != nil {
		t.Errorf("RunUnblockNext: %v", err)
	}
	if r := get(t, s, "blocked"); r.Status != store.StatusQueued {
		t.Errorf("blocked run is %s after RunUnblockNext, want queued", r.Status)
	}
}

func testJobsClosed(t *testing.T, s store.Store) {
	putJobs(t, s, job("a"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.JobGet(ctx, "a")
	wantErr(t, "JobGet after Close", err, store.ErrClosed)
	_, err = s.JobList(ctx)
	wantErr(t, "JobList after Close", err, store.ErrClosed)
	_, err = s.JobNextFire(ctx)
	wantErr(t, "JobNextFire after Close", err, store.ErrClosed)
}
