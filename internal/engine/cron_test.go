package engine

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Inside a synctest bubble the clock starts at 2000-01-01T00:00:00Z, so
// an every-second job's slots are whole seconds after it.

func (en *env) putJob(j store.Job) *store.Job {
	en.t.Helper()
	if j.Type == "" {
		j.Type = "noop"
	}
	if j.Group == "" {
		j.Group = "g"
	}
	saved, _, err := en.e.JobPut(en.ctx, j)
	if err != nil {
		en.t.Fatal(err)
	}
	synctest.Wait()
	return saved
}

// jobRuns lists a job's runs, oldest slot first (triggered runs, which
// have no slot, last).
func (en *env) jobRuns(job string) []*store.Run {
	en.t.Helper()
	page, err := en.st.RunList(en.ctx, store.RunListParams{Job: job, Limit: 1000})
	if err != nil {
		en.t.Fatal(err)
	}
	runs := page.Runs
	slices.Reverse(runs) // oldest first
	return runs
}

// slotsOf maps each logical time (seconds after start) to its runs'
// statuses.
func slotsOf(runs []*store.Run, start time.Time) map[int][]store.RunStatus {
	out := map[int][]store.RunStatus{}
	for _, r := range runs {
		if r.LogicalTime.IsZero() {
			continue
		}
		s := int(r.LogicalTime.Sub(start) / time.Second)
		out[s] = append(out[s], r.Status)
	}
	return out
}

func TestCronFiresEachSlotOnceOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		start := time.Now()
		s, c := en.connect("w1", 100)
		en.putJob(store.Job{Name: "tick", Schedule: "* * * * * ?"})
		for range 10 {
			time.Sleep(time.Second)
			synctest.Wait()
			finish(s, OutcomeSucceeded, c.Tasks()[len(c.Acks()):]...)
		}
		runs := en.jobRuns("tick")
		if len(runs) != 10 {
			t.Fatalf("%d runs after 10s, want 10", len(runs))
		}
		for i, r := range runs {
			want := start.Add(time.Duration(i+1) * time.Second)
			if !r.LogicalTime.Equal(want) || !r.CreatedAt.Equal(want) || r.Status != store.StatusSucceeded {
				t.Errorf("run %d: slot %v created %v status %s, want slot and creation at %v, succeeded", i, r.LogicalTime, r.CreatedAt, r.Status, want)
			}
		}
		j, err := en.e.JobGet(en.ctx, "tick")
		if err != nil || !j.NextFire.Equal(start.Add(11*time.Second)) {
			t.Fatalf("next fire %v (%v), want start+11s", j.NextFire, err)
		}
	})
}

func TestJobPutRejectsBadScheduleAndZone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		for _, tc := range []struct {
			job   store.Job
			field string
		}{
			{store.Job{Name: "a", Type: "noop", Schedule: "0 61 * * * ?"}, "schedule"},
			{store.Job{Name: "a", Type: "noop", Schedule: "every day"}, "schedule"},
			{store.Job{Name: "a", Type: "noop", Schedule: "0 0 0 1,5,L * ?"}, "schedule"}, // L alone, as Quartz
			{store.Job{Name: "a", Type: "noop", Schedule: "@every 1s", Timezone: "Mars/Olympus"}, "timezone"},
			{store.Job{Name: "a", Type: "noop", Schedule: "@every 1s", Timezone: "Local"}, "timezone"},
			{store.Job{Name: "a/b", Type: "noop"}, "name"},
			{store.Job{Name: "a", Type: "noop", Misfire: "later"}, "misfire"},
			{store.Job{Name: "a", Type: "noop", Overlap: "maybe"}, "overlap"},
			{store.Job{Name: "a", Type: "noop", MisfireMax: -1}, "misfire_max"},
			{store.Job{Name: "a", Type: "noop", DependsOn: []string{"b"}}, "depends_on"},
			{store.Job{Name: "a"}, "type"},
			{store.Job{Name: "a", Type: "noop", Payload: json.RawMessage(`{`)}, "payload"},
		} {
			_, _, err := en.e.JobPut(en.ctx, tc.job)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("%+v: error %v, want a FieldError on %s", tc.job, err, tc.field)
			}
		}
		if _, err := en.e.JobGet(en.ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a rejected job was saved: %v", err)
		}
	})
}

// downtime stops the engine, lets d pass and starts a new one on the same
// store, as a server restarted after an outage would be.
func (en *env) downtime(d time.Duration) {
	en.t.Helper()
	en.e.Stop(context.Background())
	time.Sleep(d)
	en.e = en.start(en.st, nil)
	synctest.Wait()
}

func TestMisfirePolicies(t *testing.T) {
	// Slots 1–3 fire; the server is down from just after slot 3 until
	// 3.5+20 s; the restarted leader ticks at once. Slots 4–18 are more
	// than 5 s (MisfireGrace) late then, slots 19–23 are not.
	for _, tc := range []struct {
		misfire string
		max     int
		fired   []int // missed slots that fire
		first   int   // the first slot with a record (older ones beyond the bound)
	}{
		{store.MisfireSkip, 0, nil, 1},
		{store.MisfireOnce, 0, []int{18}, 1},
		{store.MisfireAll, 0, []int{4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}, 1},
		// Four fire and four more are recorded as skipped.
		{store.MisfireAll, 4, []int{15, 16, 17, 18}, 11},
	} {
		t.Run(tc.misfire, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				en := newEnv(t, nil)
				start := time.Now()
				en.putJob(store.Job{Name: "m", Schedule: "@every 1s", Misfire: tc.misfire, MisfireMax: tc.max})
				time.Sleep(3500 * time.Millisecond)
				en.downtime(20 * time.Second)
				slots := slotsOf(en.jobRuns("m"), start)
				for s := 1; s <= 23; s++ {
					st := slots[s]
					if s >= 4 && s < tc.first {
						if len(st) != 0 {
							t.Errorf("slot %d: runs %v beyond the bound, want none", s, st)
						}
						continue
					}
					want := store.StatusQueued // no worker: fired runs wait
					if s >= 4 && s <= 18 && !slices.Contains(tc.fired, s) {
						want = store.StatusSkipped
					}
					if len(st) != 1 || st[0] != want {
						t.Errorf("slot %d: runs %v, want one %s", s, st, want)
					}
				}
				if want := 23 - (tc.first - 1); tc.first > 1 && len(slots) != want+3 || tc.first == 1 && len(slots) != 23 {
					t.Errorf("%d slots have runs", len(slots))
				}
			})
		})
	}
}

func TestMisfireAfterLongOutageIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		en.putJob(store.Job{Name: "m", Schedule: "@every 1s", Misfire: store.MisfireOnce, MisfireMax: 10})
		en.downtime(30 * 24 * time.Hour) // 2.6 million missed slots
		runs := en.jobRuns("m")
		var fired, skipped int
		for _, r := range runs {
			switch r.Status {
			case store.StatusQueued:
				fired++
			case store.StatusSkipped:
				skipped++
			}
		}
		// One run for the missed slots, the on-time ones within the grace
		// (now−5 s … now: 6), and at most 2·MisfireMax skipped records.
		if fired != 7 || skipped == 0 || skipped > 20 {
			t.Fatalf("%d fired, %d skipped after a month down; want 7 fired and ≤20 skipped", fired, skipped)
		}
		j, _ := en.e.JobGet(en.ctx, "m")
		if !j.NextFire.After(time.Now()) {
			t.Fatalf("next fire %v is not in the future", j.NextFire)
		}
	})
}

func TestOverlapPolicies(t *testing.T) {
	t.Run("allow", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			en := newEnv(t, nil)
			_, c := en.connect("w1", 10)
			en.putJob(store.Job{Name: "o", Schedule: "@every 1s", Overlap: store.OverlapAllow})
			time.Sleep(3500 * time.Millisecond)
			synctest.Wait()
			if n := len(c.Tasks()); n != 3 {
				t.Fatalf("%d runs dispatched while earlier ones run, want 3", n)
			}
		})
	})
	t.Run("forbid", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			en := newEnv(t, nil)
			s, c := en.connect("w1", 10)
			start := time.Now()
			en.putJob(store.Job{Name: "o", Schedule: "@every 1s", Overlap: store.OverlapForbid})
			time.Sleep(3500 * time.Millisecond)
			synctest.Wait()
			if n := len(c.Tasks()); n != 1 {
				t.Fatalf("%d runs dispatched, want 1 (the others are forbidden)", n)
			}
			finish(s, OutcomeSucceeded, c.Tasks()...)
			time.Sleep(time.Second)
			synctest.Wait()
			got := slotsOf(en.jobRuns("o"), start)
			want := map[int][]store.RunStatus{
				1: {store.StatusSucceeded}, 2: {store.StatusSkipped}, 3: {store.StatusSkipped}, 4: {store.StatusDispatched},
			}
			if !equalSlots(got, want) {
				t.Fatalf("slots %v, want %v", got, want)
			}
		})
	})
	t.Run("queue", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			en := newEnv(t, nil)
			s, c := en.connect("w1", 10)
			start := time.Now()
			en.putJob(store.Job{Name: "o", Schedule: "@every 1s", Overlap: store.OverlapQueue})
			time.Sleep(3500 * time.Millisecond)
			synctest.Wait()
			got := slotsOf(en.jobRuns("o"), start)
			want := map[int][]store.RunStatus{1: {store.StatusDispatched}, 2: {store.StatusBlocked}, 3: {store.StatusBlocked}}
			if !equalSlots(got, want) || len(c.Tasks()) != 1 {
				t.Fatalf("slots %v (%d dispatched), want %v", got, len(c.Tasks()), want)
			}
			// Each end releases the next slot, in slot order.
			for i := range 3 {
				finish(s, OutcomeSucceeded, c.Tasks()[i])
				if n := len(c.Tasks()); n != min(i+2, 3) {
					t.Fatalf("after run %d ended: %d dispatched, want %d", i+1, n, min(i+2, 3))
				}
			}
			time.Sleep(time.Second) // nothing unfinished: slot 4 runs at once
			synctest.Wait()
			got = slotsOf(en.jobRuns("o"), start)
			want = map[int][]store.RunStatus{
				1: {store.StatusSucceeded}, 2: {store.StatusSucceeded}, 3: {store.StatusSucceeded}, 4: {store.StatusDispatched},
			}
			if !equalSlots(got, want) {
				t.Fatalf("slots %v, want %v", got, want)
			}
		})
	})
	t.Run("replace", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			en := newEnv(t, nil)
			s, c := en.connect("w1", 10)
			start := time.Now()
			en.putJob(store.Job{Name: "o", Schedule: "@every 1s", Overlap: store.OverlapReplace})
			time.Sleep(1500 * time.Millisecond)
			synctest.Wait()
			ack(s, c.Tasks()...)
			time.Sleep(time.Second)
			synctest.Wait()
			if cs := c.Cancels(); len(cs) != 1 || cs[0].RunID != c.Tasks()[0].RunID {
				t.Fatalf("worker told to cancel %v, want the first run", cs)
			}
			got := slotsOf(en.jobRuns("o"), start)
			want := map[int][]store.RunStatus{1: {store.StatusCancelled}, 2: {store.StatusDispatched}}
			if !equalSlots(got, want) {
				t.Fatalf("slots %v, want %v", got, want)
			}
		})
	})
}

func equalSlots(a, b map[int][]store.RunStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestPausedJobDoesNotFireAndResumesWithoutMisfires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		start := time.Now()
		en.putJob(store.Job{Name: "p", Schedule: "@every 1s"})
		time.Sleep(1500 * time.Millisecond)
		if _, err := en.e.JobPause(en.ctx, "p", true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if n := len(en.jobRuns("p")); n != 1 {
			t.Fatalf("%d runs while paused, want only the one before", n)
		}
		if _, err := en.e.JobPause(en.ctx, "p", false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		got := slotsOf(en.jobRuns("p"), start)
		// Resumed at 21.5 s: the next slot is 22.
		want := map[int][]store.RunStatus{1: {store.StatusQueued}, 22: {store.StatusQueued}}
		if !equalSlots(got, want) {
			t.Fatalf("slots %v, want %v (no records for the pause)", got, want)
		}
	})
}

func TestEditingAJobKeepsItsRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		j := store.Job{Name: "e", Schedule: "@every 1s", Payload: json.RawMessage(`{"v":1}`)}
		en.putJob(j)
		time.Sleep(1500 * time.Millisecond)
		j.Payload = json.RawMessage(`{"v":2}`)
		j.Priority = 7
		en.putJob(j)
		time.Sleep(time.Second)
		synctest.Wait()
		runs := en.jobRuns("e")
		if len(runs) != 2 || string(runs[0].Payload) != `{"v":1}` || runs[0].Priority != 0 ||
			string(runs[1].Payload) != `{"v":2}` || runs[1].Priority != 7 {
			t.Fatalf("runs %+v, want the first unchanged and the second with the new spec", runs)
		}
	})
}

func TestTriggerRunsNowWithAPayloadOverride(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c := en.connect("w1", 10)
		en.putJob(store.Job{Name: "t", Payload: json.RawMessage(`{"v":1}`), Paused: true})
		r, err := en.e.JobTrigger(en.ctx, "t", json.RawMessage(`{"debug":true}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := en.e.JobTrigger(en.ctx, "t", nil); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		ts := c.Tasks()
		if len(ts) != 2 || ts[0].RunID != r.ID || string(ts[0].Payload) != `{"debug":true}` || ts[0].Job != "t" || string(ts[1].Payload) != `{"v":1}` {
			t.Fatalf("tasks %+v, want the override then the job's payload", ts)
		}
		if !r.LogicalTime.IsZero() {
			t.Fatalf("a triggered run has logical time %v, want none", r.LogicalTime)
		}
		if _, err := en.e.JobTrigger(en.ctx, "nope", nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("trigger of a missing job: %v", err)
		}
	})
}

func TestTwoLeadersFireEachSlotOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newEnv(t, func(c *Config) { c.ServerID = "s0" })
		base.e.Stop(context.Background())
		both := alwaysLeader{base.st}
		start := time.Now()
		var ens []*env
		for _, id := range []string{"s1", "s2", "s3"} {
			en := &env{t: t, ctx: context.Background(), st: base.st}
			en.e = en.start(both, func(c *Config) { c.ServerID = id; c.ExclusiveStore = false })
			ens = append(ens, en)
		}
		synctest.Wait()
		for i, en := range ens {
			en.putJob(store.Job{Name: "j" + string(rune('a'+i)), Schedule: "@every 1s", Overlap: store.OverlapForbid})
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		for i := range ens {
			name := "j" + string(rune('a'+i))
			slots := slotsOf(ens[0].jobRuns(name), start)
			for s := 1; s <= 30; s++ {
				if len(slots[s]) != 1 {
					t.Errorf("job %s slot %d: runs %v, want exactly one", name, s, slots[s])
				}
			}
		}
	})
}

// listenOnceFails is a store whose first Listen fails at once, as a lost
// PostgreSQL connection would.
type listenOnceFails struct {
	store.Store
	failed atomic.Bool
}

func (s *listenOnceFails) Listen(ctx context.Context, fn func(store.Notification)) error {
	if s.failed.CompareAndSwap(false, true) {
		return errors.New("connection lost")
	}
	return s.Store.Listen(ctx, fn)
}

// A job saved by another server while this leader's notification
// connection was down (its TopicJobs lost) still fires: re-listening
// re-reads the next fire time from the store.
func TestLeaderRearmsCronWhenItListensAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newEnv(t, func(c *Config) { c.ServerID = "s0" })
		base.e.Stop(context.Background()) // only its store is used
		en := &env{t: t, ctx: context.Background(), st: base.st}
		en.e = en.start(&listenOnceFails{Store: base.st}, func(c *Config) { c.ExclusiveStore = false })
		synctest.Wait() // leading, cron armed from an empty store, Listen failed
		start := time.Now()
		err := en.st.Tx(en.ctx, func(tx store.Tx) error {
			_, _, err := tx.JobPut(en.ctx, store.JobPutParams{Now: start, Job: store.Job{
				Name: "elsewhere", Type: "noop", Group: "g", Schedule: "@every 1s", Misfire: store.MisfireSkip,
				MisfireMax: 10, Overlap: store.OverlapAllow, NextFire: start.Add(3 * time.Second),
			}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(4500 * time.Millisecond)
		synctest.Wait()
		got := slotsOf(en.jobRuns("elsewhere"), start)
		if len(got[3]) != 1 || len(got[4]) != 1 {
			t.Fatalf("slots %v, want 3 and 4 fired", got)
		}
	})
}
