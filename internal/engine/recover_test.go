package engine

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// A running attempt recovered after a restart keeps its server-side
// timeout, counted from when it started.
func TestTimeoutOfARecoveredRunStillFires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{Timeout: 10 * time.Second})[0]
		task := c.Tasks()[0]
		ack(s, task)
		time.Sleep(4 * time.Second)
		if err := en.e.Stop(en.ctx); err != nil {
			t.Fatal(err)
		}
		en.e = en.start(en.st, nil)
		_, c2 := en.connectHeld("w1", 1, []RunRef{{RunID: task.RunID, Attempt: task.Attempt}})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		en.wantStatus(run.ID, store.StatusRunning)
		time.Sleep(2 * time.Second) // 11 s after the start
		synctest.Wait()
		en.wantStatus(run.ID, store.StatusTimedOut)
		if cs := c2.Cancels(); len(cs) != 1 || cs[0].RunID != run.ID {
			t.Fatalf("worker told to cancel %v, want the timed-out run", cs)
		}
	})
}

// A server that is not the leader still hears of queued runs it missed
// while its notification connection was down.
func TestNonLeaderWakesItsGroupsWhenItListensAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newEnv(t, func(c *Config) { c.ServerID = "s0" })
		base.e.Stop(context.Background()) // only its store is used
		en := &env{t: t, ctx: context.Background(), st: base.st}
		en.e = en.start(&listenOnceFails{Store: base.st}, func(c *Config) { c.ExclusiveStore = false; c.Standby = true })
		_, c := en.connect("w1", 1)
		// Another server's submit, whose notification this one never hears.
		err := en.st.Tx(en.ctx, func(tx store.Tx) error {
			_, err := tx.RunInsert(en.ctx, []store.RunInsertParams{{ID: "r_elsewhere", Type: "noop", Group: "g",
				Status: store.StatusQueued, MaxAttempts: 1, RunAt: time.Now(), Now: time.Now()}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if ts := c.Tasks(); len(ts) != 1 || ts[0].RunID != "r_elsewhere" {
			t.Fatalf("tasks %v, want the run queued while not listening", ids(ts))
		}
	})
}
