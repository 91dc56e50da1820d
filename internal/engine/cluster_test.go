package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// partitionStore cuts one server off from a shared store: while cut, every
// write and lease call fails, as if the database were unreachable.
type partitionStore struct {
	store.Store
	cut atomic.Bool
}

var errPartitioned = errors.New("partitioned")

func (s *partitionStore) Tx(ctx context.Context, fn func(store.Tx) error) error {
	if s.cut.Load() {
		return errPartitioned
	}
	return s.Store.Tx(ctx, fn)
}

func (s *partitionStore) LeaderElect(ctx context.Context, p store.LeaderElectParams) (store.Leader, error) {
	if s.cut.Load() {
		return store.Leader{}, errPartitioned
	}
	return s.Store.LeaderElect(ctx, p)
}

func (s *partitionStore) ServerHeartbeat(ctx context.Context, si store.ServerInfo) error {
	if s.cut.Load() {
		return errPartitioned
	}
	return s.Store.ServerHeartbeat(ctx, si)
}

// shared starts two engines (servers s1 and s2) on one store, as two
// servers on one PostgreSQL would be; s1 reaches it through a partition.
func shared(t *testing.T) (en1, en2 *env, cut *partitionStore) {
	t.Helper()
	base := newEnv(t, func(c *Config) { c.ServerID = "s0" })
	base.e.Stop(context.Background()) // only its store is used
	cut = &partitionStore{Store: base.st}
	en1 = &env{t: t, ctx: context.Background(), st: base.st}
	en1.e = en1.start(cut, func(c *Config) { c.ServerID = "s1"; c.ExclusiveStore = false })
	synctest.Wait() // s1 wins the first term
	en2 = &env{t: t, ctx: context.Background(), st: base.st}
	en2.e = en2.start(base.st, func(c *Config) { c.ServerID = "s2"; c.ExclusiveStore = false })
	synctest.Wait()
	return en1, en2, cut
}

func TestLeaderFailoverWhenCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en1, en2, cut := shared(t)
		if !en1.e.Leading() || en2.e.Leading() {
			t.Fatalf("leading: s1 %v, s2 %v; want s1 only", en1.e.Leading(), en2.e.Leading())
		}
		before, err := en2.e.Cluster(en2.ctx)
		if err != nil || before.Leader != "s1" || len(before.Servers) != 2 {
			t.Fatalf("cluster %+v %v", before, err)
		}
		cut.cut.Store(true)
		start := time.Now()
		var took time.Duration
		for range 30 {
			time.Sleep(500 * time.Millisecond)
			synctest.Wait()
			if en1.e.Leading() && en2.e.Leading() {
				t.Fatalf("both lead at +%v", time.Since(start))
			}
			if en2.e.Leading() && took == 0 {
				took = time.Since(start)
			}
		}
		if en1.e.Leading() || !en2.e.Leading() {
			t.Fatalf("after the cut: s1 %v, s2 %v; want s2", en1.e.Leading(), en2.e.Leading())
		}
		if took > 12*time.Second {
			t.Fatalf("s2 led after %v; want within TTL + renew interval", took)
		}
		after, _ := en2.e.Cluster(en2.ctx)
		if after.Leader != "s2" || after.Term <= before.Term {
			t.Fatalf("cluster after failover %+v (before: term %d)", after, before.Term)
		}
		// Healed, s1 stays a follower: the lease is s2's.
		cut.cut.Store(false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if en1.e.Leading() || !en2.e.Leading() {
			t.Fatalf("after healing: s1 %v, s2 %v", en1.e.Leading(), en2.e.Leading())
		}
	})
}

func TestGracefulStopHandsLeadershipOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en1, en2, _ := shared(t)
		en1.e.Stop(en1.ctx)
		time.Sleep(2 * time.Second) // one renew interval
		synctest.Wait()
		if !en2.e.Leading() {
			t.Fatal("s2 does not lead one renew interval after s1 resigned")
		}
		info, _ := en2.e.Cluster(en2.ctx)
		if len(info.Servers) != 1 || info.Servers[0].ID != "s2" {
			t.Fatalf("servers after s1 stopped: %+v", info.Servers)
		}
	})
}

// A server that is gone loses its runs to the queue once its registration
// expires; its late reports are fenced off.
func TestRunsOfALostServerAreRequeued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en1, en2, cut := shared(t)
		s1w, c1 := en1.connect("w1", 1)
		run := en1.submit(SubmitSpec{})[0]
		task := c1.Tasks()[0]
		ack(s1w, task)
		_, c2 := en2.connect("w2", 1)
		cut.cut.Store(true) // s1 is gone: no renewals, no writes
		time.Sleep(14 * time.Second)
		synctest.Wait()
		got := c2.Tasks()
		if len(got) != 1 || got[0].RunID != run.ID || got[0].Attempt != 2 {
			t.Fatalf("s2's worker got %+v, want the lost run at attempt 2", got)
		}
		// s1 comes back and its worker reports the old attempt: rejected.
		cut.cut.Store(false)
		finish(s1w, OutcomeSucceeded, task)
		en2.wantStatus(run.ID, store.StatusDispatched)
	})
}

// A worker that fails over to another server keeps its run: the new
// server adopts it, and the old server can no longer hand it back.
func TestWorkerFailoverAdoptsHeldRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en1, en2, _ := shared(t)
		s1w, c1 := en1.connect("w1", 1)
		run := en1.submit(SubmitSpec{})[0]
		task := c1.Tasks()[0]
		ack(s1w, task)
		s1w.Close(errors.New("server gone"))
		// The worker connects to s2, holding its run.
		s2w, _ := en2.connectHeld("w1", 1, []RunRef{{RunID: run.ID, Attempt: 1}})
		time.Sleep(4 * time.Second) // s1 declares its old session dead and tries to hand the run back
		synctest.Wait()
		en2.wantStatus(run.ID, store.StatusRunning)
		finish(s2w, OutcomeSucceeded, task)
		r := en2.wantStatus(run.ID, store.StatusSucceeded)
		if r.Attempt != 1 {
			t.Fatalf("attempt %d, want 1 (adopted, not re-run)", r.Attempt)
		}
	})
}

// alwaysLeader grants every election: two engines over it both lead, as
// two servers briefly can while one has not yet noticed its lease is gone.
type alwaysLeader struct{ store.Store }

func (s alwaysLeader) LeaderElect(ctx context.Context, p store.LeaderElectParams) (store.Leader, error) {
	return store.Leader{ServerID: p.ServerID, Term: 7, ExpiresAt: p.Now.Add(p.TTL)}, nil
}

// Two leaders at once run both promoters and both reapers; every leader
// write is conditional, so each delayed run is still promoted, dispatched
// and completed exactly once, and a lost server's run is requeued once.
func TestTwoLeadersAreHarmless(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newEnv(t, func(c *Config) { c.ServerID = "s0" })
		base.e.Stop(context.Background())
		both := alwaysLeader{base.st}
		en1 := &env{t: t, ctx: context.Background(), st: base.st}
		en1.e = en1.start(both, func(c *Config) { c.ServerID = "s1"; c.ExclusiveStore = false })
		en2 := &env{t: t, ctx: context.Background(), st: base.st}
		en2.e = en2.start(both, func(c *Config) { c.ServerID = "s2"; c.ExclusiveStore = false })
		synctest.Wait()
		if !en1.e.Leading() || !en2.e.Leading() {
			t.Fatal("the test needs both engines to lead")
		}
		// A run held by a server that is gone: both reapers see it.
		cut := &partitionStore{Store: alwaysLeader{base.st}}
		ghost := &env{t: t, ctx: context.Background(), st: base.st}
		ghost.e = ghost.start(cut, func(c *Config) { c.ServerID = "ghost"; c.ExclusiveStore = false })
		gw, gc := ghost.connect("wg", 1)
		lost := ghost.submit(SubmitSpec{})[0]
		ack(gw, gc.Tasks()[0])
		cut.cut.Store(true) // gone without a word: no renewals, no writes

		s1, c1 := en1.connect("w1", 100)
		s2, c2 := en2.connect("w2", 100)
		var runs []*store.Run
		for i := range 50 {
			en := en1
			if i%2 == 1 {
				en = en2
			}
			runs = append(runs, en.submit(SubmitSpec{Delay: time.Duration(1+i%5) * time.Second})...)
		}
		time.Sleep(20 * time.Second) // delays pass; the ghost's registration expires
		synctest.Wait()
		seen := map[string]int{}
		for _, c := range []*fakeConn{c1, c2} {
			for _, task := range c.Tasks() {
				seen[task.RunID]++
			}
		}
		for _, r := range append(runs, lost) {
			if seen[r.ID] != 1 {
				t.Errorf("run %s dispatched %d times, want once", r.ID, seen[r.ID])
			}
		}
		finish(s1, OutcomeSucceeded, c1.Tasks()...)
		finish(s2, OutcomeSucceeded, c2.Tasks()...)
		for _, r := range append(runs, lost) {
			en1.wantStatus(r.ID, store.StatusSucceeded)
		}
	})
}

// claimGate holds the first transaction that claimed nothing right after
// it commits, before its callbacks run.
type claimGate struct {
	store.Store
	gate chan struct{}
	held atomic.Bool
}

type gateTx struct {
	store.Tx
	empty *bool
}

func (t gateTx) RunClaim(ctx context.Context, p store.RunClaimParams) ([]*store.Run, error) {
	runs, err := t.Tx.RunClaim(ctx, p)
	if err == nil && len(runs) == 0 {
		*t.empty = true
	}
	return runs, err
}

func (s *claimGate) Tx(ctx context.Context, fn func(store.Tx) error) error {
	empty := false
	err := s.Store.Tx(ctx, func(tx store.Tx) error { return fn(gateTx{tx, &empty}) })
	if empty && s.held.CompareAndSwap(false, true) {
		<-s.gate
	}
	return err
}

// With two transactions in flight, a claim can come back short because it
// missed a run that the other transaction committed meanwhile. The wake
// that run's commit sent must survive the short claim.
func TestShortClaimKeepsAConcurrentWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newEnv(t, func(c *Config) { c.ServerID = "s0" })
		base.e.Stop(context.Background())
		st := &claimGate{Store: base.st, gate: make(chan struct{})}
		en := &env{t: t, ctx: context.Background(), st: base.st}
		en.e = en.start(st, func(c *Config) { c.ServerID = "s1"; c.ExclusiveStore = false })
		_, c := en.connect("w1", 4) // its claim finds nothing and is held
		run := en.submit(SubmitSpec{})[0]
		close(st.gate)
		synctest.Wait()
		if got := c.Tasks(); len(got) != 1 || got[0].RunID != run.ID {
			t.Fatalf("dispatched %v; the run submitted during the short claim was forgotten", ids(got))
		}
	})
}

// A standby serves and dispatches but never leads, even when it is the
// only server left.
func TestStandbyNeverLeads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newEnv(t, func(c *Config) { c.ServerID = "s0" })
		base.e.Stop(context.Background())
		sb := &env{t: t, ctx: context.Background(), st: base.st}
		sb.e = sb.start(base.st, func(c *Config) { c.ServerID = "standby"; c.ExclusiveStore = false; c.Standby = true })
		ld := &env{t: t, ctx: context.Background(), st: base.st}
		ld.e = ld.start(base.st, func(c *Config) { c.ServerID = "leader"; c.ExclusiveStore = false })
		synctest.Wait()
		if sb.e.Leading() || !ld.e.Leading() {
			t.Fatalf("standby leads %v, the other %v", sb.e.Leading(), ld.e.Leading())
		}
		_, c := sb.connect("w1", 1)
		run := sb.submit(SubmitSpec{})[0]
		if got := c.Tasks(); len(got) != 1 || got[0].RunID != run.ID {
			t.Fatalf("a standby must still dispatch: %v", ids(got))
		}
		ld.e.Stop(context.Background())
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if sb.e.Leading() {
			t.Fatal("the standby took the lease")
		}
		info, _ := sb.e.Cluster(sb.ctx)
		if len(info.Servers) != 1 || info.Servers[0].ID != "standby" {
			t.Fatalf("cluster %+v", info)
		}
	})
}
