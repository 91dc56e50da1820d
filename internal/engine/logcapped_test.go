package engine

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// logStats reads a run's log counters.
func (en *env) logStats(id string) store.LogStats {
	en.t.Helper()
	st, err := en.e.LogStats(en.ctx, id)
	if err != nil {
		en.t.Fatal(err)
	}
	return st
}

// The session holding a capped run's attempt is told once, and told again
// for the run's next attempt (the cap counts all attempts together); the
// counts its worker reports are added to the run's, before the run is
// seen ended even while log writes fail.
func TestLogsCappedToldOncePerAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &logObserver{}
		en, fl := newFlakyEnv(t, func(c *Config) { c.Observer = obs; c.LogMaxLines = 5 })
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{Retries: 1})[0]
		task := c.Tasks()[0]
		ref := RunRef{RunID: task.RunID, Attempt: task.Attempt}
		s.Logs(logLines(ref, 4, "a"))
		synctest.Wait()
		if got := c.Capped(); len(got) != 0 {
			t.Fatalf("told %v before the cap", got)
		}
		s.Logs(logLines(ref, 3, "b")) // the fifth line is kept; two are dropped
		synctest.Wait()
		if got := c.Capped(); !slices.Equal(got, []RunRef{ref}) {
			t.Fatalf("told %v, want %v", got, ref)
		}
		s.Logs(logLines(ref, 3, "c")) // already on their way: dropped early
		s.LogDrops([]LogDrop{{RunID: ref.RunID, Attempt: ref.Attempt, Lines: 90}})
		synctest.Wait()
		if got := c.Capped(); len(got) != 1 {
			t.Fatalf("told %d times, want once", len(got))
		}

		// The count of the next drops must be in the store once the run
		// is seen ended, however long the log writes take.
		fl.set("LogAppend", 3)
		s.LogDrops([]LogDrop{{RunID: ref.RunID, Attempt: ref.Attempt, Lines: 5}})
		s.Results([]Result{{RunID: ref.RunID, Attempt: ref.Attempt, Outcome: OutcomeFailed, Error: "boom"}})
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		if r := en.get(run.ID); r.Status != store.StatusDispatched {
			t.Fatalf("run %s before its count of dropped lines was written", r.Status)
		}
		time.Sleep(5 * time.Second) // the back-off of the failed writes, and the retry's
		synctest.Wait()
		if st := en.logStats(run.ID); st.Lines != 5 || st.Dropped != 100 {
			t.Errorf("stats %+v after attempt 1, want 5 lines and 100 dropped", st)
		}
		if n := obs.count(); n != 100 {
			t.Errorf("observer saw %d dropped lines, want 100", n)
		}

		ts := c.Tasks()
		if len(ts) != 2 || ts[1].Attempt != 2 {
			t.Fatalf("tasks %+v, want attempt 2", ts)
		}
		ref2 := RunRef{RunID: run.ID, Attempt: 2}
		s.Logs(logLines(ref2, 2, "d"))
		synctest.Wait()
		if got := c.Capped(); !slices.Equal(got, []RunRef{ref, ref2}) {
			t.Fatalf("told %v, want attempt 2 told too", got)
		}
		fl.set("LogAppend", 2)
		s.LogDrops([]LogDrop{{RunID: ref2.RunID, Attempt: ref2.Attempt, Lines: 8}})
		s.Results([]Result{{RunID: ref2.RunID, Attempt: ref2.Attempt, Outcome: OutcomeSucceeded}})
		r, err := en.e.Wait(en.ctx, run.ID)
		if err != nil || r.Status != store.StatusSucceeded {
			t.Fatalf("run %+v, %v", r, err)
		}
		if st := en.logStats(r.ID); st.Lines != 5 || st.Dropped != 110 {
			t.Errorf("stats %+v at the end, want 5 lines and 110 dropped", st)
		}
	})
}

// A worker that reconnects is told again on its new stream: the old one
// may have lost the message.
func TestLogsCappedToldAgainAfterReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, func(c *Config) { c.LogMaxLines = 1 })
		s, c := en.connect("w1", 1)
		en.submit(SubmitSpec{})
		task := c.Tasks()[0]
		ref := RunRef{RunID: task.RunID, Attempt: task.Attempt}
		s.Logs(logLines(ref, 2, "a"))
		synctest.Wait()
		s.Close(nil)
		s2, c2 := en.connectHeld("w1", 1, []RunRef{ref})
		s2.Logs(logLines(ref, 1, "b"))
		synctest.Wait()
		if got := c2.Capped(); !slices.Equal(got, []RunRef{ref}) {
			t.Fatalf("new stream told %v, want %v", got, ref)
		}
		if got := c.Capped(); len(got) != 1 {
			t.Fatalf("old stream told %d times, want once", len(got))
		}
	})
}

// Counts of dropped lines from a worker are taken only for attempts it
// holds (or reported lately and not since superseded), only when
// positive, and each at most maxLogDrop; anything else is ignored without
// harm.
func TestLogDropsHostile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, func(c *Config) { c.LogMaxLines = 1 })
		s, c := en.connect("w1", 1)
		other, _ := en.connect("w2", 1, "other")
		run := en.submit(SubmitSpec{Retries: 1})[0]
		task := c.Tasks()[0]
		id := task.RunID
		s.Logs(logLines(RunRef{RunID: id, Attempt: 1}, 2, "a")) // capped: 1 dropped
		synctest.Wait()
		s.LogDrops([]LogDrop{
			{RunID: "r_unknown", Attempt: 1, Lines: 5},
			{RunID: id, Attempt: 2, Lines: 5}, // not dispatched yet
			{RunID: id, Attempt: 0, Lines: 5},
			{RunID: id, Attempt: -1, Lines: 5},
			{RunID: id, Attempt: 1, Lines: -5},
			{RunID: id, Attempt: 1, Lines: 0},
			{RunID: id, Attempt: 1, Lines: -1 << 63},
		})
		other.LogDrops([]LogDrop{{RunID: id, Attempt: 1, Lines: 5}}) // not its run
		other.LogDrops(nil)
		synctest.Wait()
		if st := en.logStats(id); st.Dropped != 1 {
			t.Fatalf("dropped %d after hostile counts, want 1", st.Dropped)
		}
		s.LogDrops([]LogDrop{{RunID: id, Attempt: 1, Lines: 1 << 62}, {RunID: id, Attempt: 1, Lines: 1 << 62}})
		synctest.Wait()
		if st := en.logStats(id); st.Dropped != 1+maxLogDrop {
			t.Fatalf("dropped %d after huge counts, want 1 + %d", st.Dropped, int64(maxLogDrop))
		}

		// Reported, then retried: attempt 1's late counts are taken until
		// attempt 2 is in flight, and ignored after.
		finish(s, OutcomeFailed, task)
		s.LogDrops([]LogDrop{{RunID: id, Attempt: 1, Lines: 3}})
		synctest.Wait()
		time.Sleep(2 * time.Second) // the retry's back-off
		synctest.Wait()
		if ts := c.Tasks(); len(ts) != 2 {
			t.Fatalf("tasks %+v, want attempt 2", ts)
		}
		s.LogDrops([]LogDrop{{RunID: id, Attempt: 1, Lines: 7}})
		synctest.Wait()
		if st := en.logStats(run.ID); st.Dropped != 4+maxLogDrop {
			t.Fatalf("dropped %d, want the late count taken and the stale one not (%d)", st.Dropped, 4+int64(maxLogDrop))
		}
		en.e.logw.mu.Lock()
		left := len(en.e.logw.dropped)
		en.e.logw.mu.Unlock()
		if left != 0 {
			t.Errorf("%d counts left in the writer", left)
		}
	})
}
