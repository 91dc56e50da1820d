package engine

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// A claim that committed although the store answered with an error leaves
// runs dispatched to this server that no component holds; the reconciler
// hands them back and they run.
func TestReconcilerRequeuesRunsNobodyHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		s, c, err := en.hello(Hello{WorkerID: "w1", Capacity: 1, Draining: true})
		if err != nil {
			t.Fatal(err)
		}
		en.keepAlive(s)
		run := en.submit(SubmitSpec{})[0]
		fl.set("commit", 1)
		s.SetWindow(1) // the claim commits, its answer is lost
		time.Sleep(time.Second)
		synctest.Wait()
		if r := en.get(run.ID); r.Status != store.StatusDispatched || len(c.Tasks()) != 0 {
			t.Fatalf("setup: run %s with %d tasks sent, want dispatched and unsent", r.Status, len(c.Tasks()))
		}
		time.Sleep(2*defaultReconcileInterval + time.Second)
		synctest.Wait()
		if ts := c.Tasks(); len(ts) != 1 || ts[0].RunID != run.ID || ts[0].Attempt != 2 {
			t.Fatalf("tasks %v, want the stranded run at attempt 2", ts)
		}
	})
}

// A blocked run of an overlap-queue job whose predecessor ended without
// unblocking it (a crash in between) is released by the leader.
func TestReconcilerReleasesStrandedBlockedRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c := en.connect("w1", 1)
		en.putJob(store.Job{Name: "o", Schedule: "@every 1h", Overlap: store.OverlapQueue, Paused: true})
		err := en.st.Tx(en.ctx, func(tx store.Tx) error {
			_, err := tx.RunInsert(en.ctx, []store.RunInsertParams{{ID: "r_blocked", Job: "o", Type: "noop", Group: "g",
				Status: store.StatusBlocked, MaxAttempts: 1, LogicalTime: time.Now(), RunAt: time.Now(), Now: time.Now()}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(defaultReconcileInterval + time.Second)
		synctest.Wait()
		if ts := c.Tasks(); len(ts) != 1 || ts[0].RunID != "r_blocked" {
			t.Fatalf("tasks %v, want the stranded blocked run", ids(ts))
		}
	})
}
