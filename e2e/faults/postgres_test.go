package faults

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// pgBound is how long after PostgreSQL is back every acknowledged run
// must be terminal.
const pgBound = 60 * time.Second

// TestPostgresRestartMidBurst: three servers share PostgreSQL (a schema of
// their own), three workers list all of them, three clients submit one
// run at a time through different servers. Mid-burst PostgreSQL itself is
// restarted (pg_ctlcluster … restart: a fast shutdown that disconnects
// every client, then a start). While it is down writes fail: submissions
// are refused or wait (a refused one is not acknowledged, so not counted
// if it never runs), results cannot be committed. Once it is back the
// servers reconnect, re-listen and carry on: every acknowledged run
// succeeds exactly once within pgBound; no server exits.
func TestPostgresRestartMidBurst(t *testing.T) {
	s := newScenario(t, "postgres-restart-mid-burst")
	storeURL := proc.PGURL(t)
	pg := proc.LocalPGCluster(t) // started again at the end if the test left it down
	servers, apis := s.startServers(storeURL, 3)
	var workers []*proc.Proc
	for i := range 3 {
		var list []string
		for j := range servers {
			list = append(list, servers[(i+j)%len(servers)].grpc)
		}
		workers = append(workers, worker(t, fmt.Sprintf("w%d", i+1), strings.Join(list, ","), "--capacity", "4"))
	}

	// 12 slots of 0.2 s runs serve 60 runs/s; the clients submit about as
	// fast, so runs are queued, dispatched and running when the store goes.
	stop := s.burst(apis, 3, 20*time.Millisecond, "0.2")
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	awaitSucceeded(t, apis[0], 100, time.Minute)
	probe := pg.Probe(25 * time.Millisecond)
	t.Cleanup(func() { probe.Stop() })
	logged := watchSize(s.completions, 20*time.Millisecond)
	t.Cleanup(func() { logged() })
	fault := time.Now()
	// pg_ctlcluster returns a while after PostgreSQL answers again (it
	// waits for its own checks): the test goes on from when the probe sees
	// PostgreSQL back, and waits for the command at the end.
	ctl := make(chan error, 1)
	var ctlAt time.Time // when the command returned
	var ctlRunning sync.WaitGroup
	ctlRunning.Go(func() {
		err := pg.Ctl(2*time.Minute, "restart")
		ctlAt = time.Now()
		ctl <- err
	})
	t.Cleanup(ctlRunning.Wait) // before the cluster's own cleanup checks it is up
	ctlReturned := false
	var outage proc.PGOutage
	for deadline := time.Now().Add(pgBound); ; {
		if outage = probe.Outage(); !outage.Back.IsZero() {
			break
		}
		select {
		case err := <-ctl:
			if err != nil {
				t.Fatal(err)
			}
			ctlReturned = true
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL not back %v after the restart began (probe: %+v)", pgBound, outage)
		}
		time.Sleep(20 * time.Millisecond) // polling the probe
	}
	time.Sleep(2 * time.Second) // the burst goes on against the restarted store
	unanswered := stop()
	stopped = true
	if !ctlReturned {
		if err := <-ctl; err != nil {
			t.Fatal(err)
		}
	}
	s.metric("restart_cmd", ctlAt.Sub(fault))
	sizes := logged()
	back := outage.Back
	s.metric("down_after", outage.Down.Sub(fault))
	s.recovery("store_down", back.Sub(outage.Down))
	refused := s.refusals(fault)
	s.reportSubmits(refused, fault, "fault", "the restart began", unanswered)

	runs := s.settleAfter(apis[0], back, pgBound)
	// The first completion committed after the store was back: the
	// completion log (written after each commit) grew.
	if at, ok := firstGrowth(sizes, back); ok {
		s.recovery("first_completion_after_back", at.Sub(back))
	} else {
		t.Error("no completion was committed after PostgreSQL was back (within the burst's last 2 s)")
	}
	var acked, backlog []proc.Run
	for _, id := range s.ackedIDs() {
		r := runs[id]
		acked = append(acked, r)
		if r.CreatedAt != nil && r.CreatedAt.Before(back) {
			backlog = append(backlog, r)
		}
	}
	hit := 0
	for _, r := range backlog {
		if r.FinishedAt != nil && r.FinishedAt.After(fault) {
			hit++
		}
	}
	s.metric("backlog_hit", hit)
	_, last, _ := span(backlog, finishedAt)
	s.recovery("acked_before_back_done", last.Sub(back))
	_, last, _ = span(acked, finishedAt)
	s.recovery("all_acked_done_after_back", last.Sub(back))

	exits := 0
	for _, n := range servers {
		if exited(n.p) {
			exits++
			t.Errorf("server %s exited: %s", n.id, lastLines(n.p, 8))
		}
	}
	s.metric("server_exits", exits)
	reconnects := 0
	for _, w := range workers {
		reconnects += len(w.Lines("msg=connected")) - 1
	}
	s.metric("worker_reconnects", reconnects)
	s.verdict(runs)
}

// sizeSample is a file's size at a moment.
type sizeSample struct {
	at   time.Time
	size int64
}

// watchSize samples the size of path every interval until the returned
// function is called (once or more), which returns the samples.
func watchSize(path string, interval time.Duration) (stop func() []sizeSample) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	var samples []sizeSample
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			var size int64
			if fi, err := os.Stat(path); err == nil {
				size = fi.Size()
			}
			samples = append(samples, sizeSample{time.Now(), size})
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	})
	return func() []sizeSample {
		once.Do(func() { close(quit) })
		wg.Wait()
		return samples
	}
}

// firstGrowth is the first sample after since whose size is larger than
// the size at since.
func firstGrowth(samples []sizeSample, since time.Time) (time.Time, bool) {
	var base int64 = -1
	for _, s := range samples {
		if !s.at.After(since) {
			base = s.size
			continue
		}
		if base >= 0 && s.size > base {
			return s.at, true
		}
	}
	return time.Time{}, false
}
