package faults

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// burst runs clients that each submit one run at a time, paced, until stop
// is closed, recording what a server acknowledged (HTTP 201). A client
// that gets no answer moves to the next server in apis, as the Go client
// does, and tries again after a pause. stop ends the clients and returns
// the number of submissions that got no answer (their outcome unknown to
// the client: not acknowledged, so not counted as lost if they never run).
func (s *scenario) burst(apis []proc.API, clients int, pace time.Duration, sleep string) (stop func() (unanswered int64)) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range clients {
		wg.Go(func() {
			k := i % len(apis)
			for {
				select {
				case <-quit:
					return
				case <-time.After(pace): // the client's pace
				}
				var r proc.Run
				sent := time.Now()
				code, err := apis[k].TryWithin(10*time.Second, "POST", "/api/v1/runs", s.shell(sleep), &r)
				if err == nil && code == 201 {
					s.ack(r.ID)
					s.ackTook(sent, time.Since(sent))
					continue
				}
				failed.Add(1)
				s.refuse(err, code)
				k = (k + 1) % len(apis)
				select {
				case <-quit:
					return
				case <-time.After(50 * time.Millisecond): // back-off before the next server
				}
			}
		})
	}
	return func() int64 {
		close(quit)
		wg.Wait()
		return failed.Load()
	}
}

// TestServerSIGKILLMidBurst: two clients submit one run at a time while
// two workers run them; the server (SQLite) is SIGKILLed and started again
// at once on the same store and ports, three times, a second of burst
// apart. Every run acknowledged to a client succeeds, with one accepted
// completion, and no attempt executes twice: the workers deliver what
// they ran to the restarted server, which waits for them, at the same
// attempt.
func TestServerSIGKILLMidBurst(t *testing.T) {
	s := newScenario(t, "server-sigkill-mid-burst")
	s.unloggedOK = 32
	args := s.serverArgs("", "--heartbeat", "1s")
	srv, httpAddr, grpcAddr := proc.StartServer(t, "server", args...)
	a := proc.NewAPI(t, httpAddr)
	worker(t, "w1", grpcAddr, "--capacity", "8")
	worker(t, "w2", grpcAddr, "--capacity", "8")

	stop := s.burst([]proc.API{a}, 2, 10*time.Millisecond, "0.1")
	awaitSucceeded(t, a, 100, 30*time.Second)
	var faults []time.Time
	var back []time.Duration
	for i := range 3 {
		if i > 0 {
			time.Sleep(time.Second) // the burst goes on between kills
		}
		fault := time.Now()
		srv.Kill()
		srv = proc.Start(t, fmt.Sprintf("server%d", i+2), append([]string{"server", "--http", httpAddr, "--grpc", grpcAddr}, args...)...)
		up := srv.Await(30*time.Second, "pluto server started")
		faults = append(faults, fault)
		back = append(back, proc.LogTime(t, up).Sub(fault).Round(10*time.Millisecond))
	}
	time.Sleep(2 * time.Second) // clients keep submitting to the restarted server
	unanswered := stop()
	s.metric("kills", len(faults))
	s.metric("unanswered", unanswered)
	s.metric("server_back", back)

	runs := s.settle(a, 2*time.Minute)
	// Per kill: the runs submitted before it and finished after it (the
	// backlog it hit), and the first run to complete after it.
	var firsts []time.Duration
	var hit []int
	for _, fault := range faults {
		var after []proc.Run
		n := 0
		for _, r := range runs {
			if r.FinishedAt != nil && r.FinishedAt.After(fault) {
				after = append(after, r)
				if r.CreatedAt != nil && r.CreatedAt.Before(fault) {
					n++
				}
			}
		}
		first, _, ok := span(after, finishedAt)
		if !ok {
			t.Fatal("no run completed after a restart")
		}
		if d := first.Sub(fault); d > recoveryBound {
			t.Errorf("first completion %v after a kill", d)
		}
		firsts = append(firsts, first.Sub(fault).Round(10*time.Millisecond))
		hit = append(hit, n)
	}
	s.metric("backlog_at_kill", hit)
	s.metric("first_completion", firsts)
	var acked []proc.Run
	for _, id := range s.ackedIDs() {
		acked = append(acked, runs[id])
	}
	_, last, _ := span(acked, finishedAt)
	s.recovery("all_acked_done_after_last_kill", last.Sub(faults[len(faults)-1]))
	s.verdict(runs)
}

// TestServerRestartWithUndeliveredResults: the server (SQLite) is
// SIGKILLed while two workers run commands; the commands finish while it
// is down, so the workers hold results no server has acknowledged, in
// their result stores (--result-dir). One worker is SIGKILLed too and
// started again: its results now exist only on disk. When the server is
// back, both workers deliver, and the server accepts every result at
// attempt 1 from the worker that ran it: nothing runs twice, nothing is
// lost.
func TestServerRestartWithUndeliveredResults(t *testing.T) {
	s := newScenario(t, "server-restart-undelivered-results")
	args := s.serverArgs("") // default heartbeat: a restarted server waits 15 s for workers
	srv, httpAddr, grpcAddr := proc.StartServer(t, "server", args...)
	a := proc.NewAPI(t, httpAddr)
	dirs := map[string]string{"w1": t.TempDir(), "w2": t.TempDir()}
	wargs := func(id string) []string {
		return []string{"--capacity", "4", "--prefetch", "-1", "--result-dir", dirs[id]}
	}
	w1 := worker(t, "w1", grpcAddr, wargs("w1")...)
	worker(t, "w2", grpcAddr, wargs("w2")...)

	s.submit(a, 8, "2")
	running := awaitRunning(t, a, 30*time.Second, "8 runs running", func(rs []proc.Run) bool { return len(rs) == 8 })
	ranOn := map[string]string{}
	for _, r := range running {
		ranOn[r.ID] = proc.Deref(r.WorkerID)
	}
	fault := time.Now()
	srv.Kill()
	// The commands finish; each worker stores its four results at once
	// (no stream to deliver them on).
	for id, dir := range dirs {
		awaitStored(t, dir, 4, id)
	}
	w1.Kill()
	w1 = proc.Start(t, "w1-restarted", append([]string{"worker", "--server", grpcAddr, "--id", "w1", "--shell"}, wargs("w1")...)...)
	w1.Await(30*time.Second, "results from an earlier run of this worker to deliver", "results=4")

	restarted := proc.Start(t, "server2", append([]string{"server", "--http", httpAddr, "--grpc", grpcAddr}, args...)...)
	up := proc.LogTime(t, restarted.Await(30*time.Second, "pluto server started"))
	s.metric("outage", up.Sub(fault))
	runs := s.settle(a, time.Minute)
	var held []proc.Run
	for id, w := range ranOn {
		r := runs[id]
		held = append(held, r)
		if r.Status != "succeeded" || r.Attempt != 1 || proc.Deref(r.WorkerID) != w {
			t.Errorf("run %s (ran on %s): %s at attempt %d on %q, want succeeded at attempt 1 on %s",
				id, w, r.Status, r.Attempt, proc.Deref(r.WorkerID), w)
		}
	}
	_, last, _ := span(held, finishedAt)
	s.recovery("delivered_after_restart", last.Sub(up))
	if n := len(proc.CountLines(t, s.execLog, -1)); n != 8 {
		t.Errorf("%d attempts executed, want 8: results were not delivered and runs ran again", n)
	}
	s.verdict(runs)
}

// awaitStored polls a worker's result store until it holds n results
// (records of kind 1; nothing was acknowledged, so there are no
// tombstones to subtract). The log's format is described in
// worker/resultstore.go.
func awaitStored(t *testing.T, dir string, n int, who string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := 0
		if b, err := os.ReadFile(filepath.Join(dir, "results.log")); err == nil && len(b) >= 8 {
			for rest := b[8:]; len(rest) >= 9; { // magic, then length, crc, kind…
				size := int(binary.LittleEndian.Uint32(rest))
				if len(rest) < 8+size || size == 0 {
					break
				}
				if rest[8] == 1 {
					got++
				}
				rest = rest[8+size:]
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s stored %d results after 30s, want %d", who, got, n)
		}
		time.Sleep(50 * time.Millisecond) // polling a file another process writes
	}
}
