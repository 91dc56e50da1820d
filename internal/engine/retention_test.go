package engine

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// retentionCounter records RetentionDeleted.
type retentionCounter struct {
	nopObserver
	mu sync.Mutex
	n  map[store.RunStatus]int
}

func (o *retentionCounter) RetentionDeleted(s store.RunStatus, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[store.RunStatus]int{}
	}
	o.n[s] += n
}

func (o *retentionCounter) get(s store.RunStatus) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[s]
}

func (en *env) exists(id string) bool {
	en.t.Helper()
	_, err := en.st.RunGet(en.ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		en.t.Fatal(err)
	}
	return err == nil
}

// runAndFinish submits n runs, runs them on a worker and finishes them with
// outcome; it returns their IDs.
func runAndFinish(en *env, s *Session, c *fakeConn, n int, outcome Outcome) []string {
	specs := make([]SubmitSpec, n)
	runs := en.submit(specs...)
	tasks := c.Tasks()
	finish(s, outcome, tasks[len(tasks)-n:]...)
	out := make([]string, n)
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

func TestRetentionDeletesExpiredRunsOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &retentionCounter{}
		en := newEnv(t, func(c *Config) {
			c.Retention = Retention{Succeeded: 2 * time.Minute}
			c.Observer = obs
		})
		s, c := en.connect("w1", 100)
		ok := runAndFinish(en, s, c, 3, OutcomeSucceeded)
		failed := runAndFinish(en, s, c, 1, OutcomeFailed)
		queued := en.submit(SubmitSpec{Type: "nobody-serves-this"})[0].ID
		time.Sleep(100 * time.Second)
		synctest.Wait()
		for _, id := range ok {
			if !en.exists(id) {
				t.Fatalf("%s deleted before its 2 minutes", id)
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		for _, id := range ok {
			if en.exists(id) {
				t.Errorf("%s kept after its 2 minutes", id)
			}
		}
		if !en.exists(failed[0]) || !en.exists(queued) {
			t.Error("a failed run (kept for ever) or a queued run was deleted")
		}
		if n := obs.get(store.StatusSucceeded); n != 3 {
			t.Errorf("observer saw %d succeeded runs deleted, want 3", n)
		}
		if n := obs.get(store.StatusFailed); n != 0 {
			t.Errorf("observer saw %d failed runs deleted, want 0", n)
		}
	})
}

func TestRetentionReconfigureAppliesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil) // retention off
		s, c := en.connect("w1", 100)
		failed := runAndFinish(en, s, c, 2, OutcomeFailed)
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		if !en.exists(failed[0]) {
			t.Fatal("a run was deleted with retention off")
		}
		l := en.e.Live()
		l.Retention = Retention{Failed: time.Minute}
		if err := en.e.Reconfigure(l); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for _, id := range failed {
			if en.exists(id) {
				t.Errorf("%s kept after the reload shortened its retention", id)
			}
		}
		l.Retention = Retention{Failed: -time.Hour}
		if err := en.e.Reconfigure(l); err == nil {
			t.Error("a negative retention was accepted")
		}
	})
}

func TestRetentionJobKeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, func(c *Config) { c.Retention = Retention{Succeeded: time.Minute} })
		s, c := en.connect("w1", 100)
		en.putJob(store.Job{Name: "long", Keep: 10 * time.Minute})
		en.putJob(store.Job{Name: "last", KeepLast: 2})
		var long, last []string
		for range 3 {
			for _, name := range []string{"long", "last"} {
				r, err := en.e.JobTrigger(en.ctx, name, nil)
				if err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				tasks := c.Tasks()
				finish(s, OutcomeSucceeded, tasks[len(tasks)-1])
				if name == "long" {
					long = append(long, r.ID)
				} else {
					last = append(last, r.ID)
				}
			}
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		for _, id := range long {
			if !en.exists(id) {
				t.Errorf("run %s of a job kept 10m deleted after 2m", id)
			}
		}
		if en.exists(last[0]) || !en.exists(last[1]) || !en.exists(last[2]) {
			t.Errorf("keep_last 2 of 3 expired runs: exists %v %v %v, want false true true",
				en.exists(last[0]), en.exists(last[1]), en.exists(last[2]))
		}
		time.Sleep(9 * time.Minute)
		synctest.Wait()
		for _, id := range long {
			if en.exists(id) {
				t.Errorf("run %s of a job kept 10m still there after 11m", id)
			}
		}
	})
}

func TestParseRetention(t *testing.T) {
	base := DefaultRetention
	r, err := ParseRetention("succeeded=30s, failed=7d,skipped=off", base)
	if err != nil {
		t.Fatal(err)
	}
	want := base
	want.Succeeded, want.Failed, want.Skipped = 30*time.Second, 7*24*time.Hour, 0
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	if back, err := ParseRetention(r.String(), Retention{}); err != nil || back != r {
		t.Errorf("String does not read back: %q → %+v, %v", r.String(), back, err)
	}
	for _, bad := range []string{"done=1h", "succeeded", "succeeded=soon", "failed=-1h", "failed=1h,failed=2h"} {
		if _, err := ParseRetention(bad, base); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
