package faults

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// Disk-full scenario sizes: the server's data directory is a tmpfs of
// diskSize; once the server runs, a ballast file leaves diskLeft of it
// free, which the burst fills within a second or two (SQLite's WAL grows
// by whole pages per commit, and each run stores a few KiB of log).
const (
	diskSize = 32 << 20
	diskLeft = 1 << 20
	// diskBound is how long after the space comes back every acknowledged
	// run must be terminal.
	diskBound = 60 * time.Second
)

// TestSQLiteDiskFull: the SQLite server's data directory is a small tmpfs
// almost filled by a ballast file, and two clients submit a burst of runs
// that print a few KiB each. The disk fills: commits fail (submissions are
// refused, results cannot be committed). After 3 s of that the ballast is
// deleted and the space is back. Every run a client got a 201 for must
// succeed, exactly once, within diskBound of the space coming back; the
// server should stay up and retry (if it exits, the test records it and
// starts it again once the space is back, as a supervisor would).
func TestSQLiteDiskFull(t *testing.T) {
	s := newScenario(t, "sqlite-disk-full-mid-burst")
	data := proc.MountTmpfs(t, diskSize)
	args := s.serverArgs("sqlite:"+filepath.Join(data, "pluto.db"), "--heartbeat", "1s")
	srv, httpAddr, grpcAddr := proc.StartServer(t, "server", args...)
	a := proc.NewAPI(t, httpAddr)
	workers := []*proc.Proc{
		worker(t, "w1", grpcAddr, "--capacity", "8"),
		worker(t, "w2", grpcAddr, "--capacity", "8"),
	}
	// Each run prints 4 KiB: the store grows with its log.
	s.output = `head -c 4000 /dev/zero | tr '\000' y; echo`
	s.submit(a, 16, "0")
	awaitSucceeded(t, a, 16, 30*time.Second)

	ballast := filepath.Join(data, "ballast")
	size := proc.FillTo(t, ballast, diskLeft)
	s.metric("ballast_mib", size>>20)
	s.metric("free_kib", proc.FreeBytes(t, data)>>10)

	start := time.Now()
	stop := s.burst([]proc.API{a}, 2, 10*time.Millisecond, "0.1")
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	// Writes fail: the server logs a failed commit, or a client is refused.
	var full time.Time
	deadline := time.Now().Add(30 * time.Second)
	for full.IsZero() {
		if ls := srv.Lines("disk is full"); len(ls) > 0 {
			full = proc.LogTime(t, ls[0].Text)
			t.Logf("first write failure: %s", ls[0].Text)
		} else if rs := s.refusals(start); len(rs) > 0 {
			full = rs[0].at
			t.Logf("first refused submission: HTTP %d %v", rs[0].code, rs[0].err)
		}
		if exited(srv) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the disk did not fill within 30 s of burst (%d acknowledged, %d KiB free): the scenario proved nothing",
				len(s.ackedIDs()), proc.FreeBytes(t, data)>>10)
		}
		time.Sleep(20 * time.Millisecond) // polling another process's log
	}
	if full.IsZero() {
		full = time.Now()
	}
	s.metric("full_after", full.Sub(start))
	// The disk is full now: a second ballast takes what SQLite's failed
	// writes left or gave back, so that the fault lasts until it is cleared.
	topUp := filepath.Join(data, "ballast2")
	s.metric("top_up_kib", proc.FillTo(t, topUp, 0)>>10)

	// The fault lasts 3 s; then the space is back.
	time.Sleep(time.Until(full.Add(3 * time.Second)))
	for _, f := range []string{ballast, topUp} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) { // no top-up if nothing was free
			t.Fatal(err)
		}
	}
	cleared := time.Now()
	s.metric("fault_lasted", cleared.Sub(full))
	refusedDuring := s.refusals(full) // during the fault, and while it clears
	exits := 0
	if exited(srv) {
		exits++
		t.Logf("the server exited during the fault: %s", lastLines(srv, 8))
		srv = proc.Start(t, "server-restarted", append([]string{"server", "--http", httpAddr, "--grpc", grpcAddr}, args...)...)
		srv.Await(30*time.Second, "pluto server started")
	}
	time.Sleep(2 * time.Second) // the burst goes on on the freed disk
	unanswered := stop()
	stopped = true
	s.reportSubmits(refusedDuring, full, "full", "the disk filled", unanswered)

	runs := s.settleAfter(a, cleared, diskBound)
	if exited(srv) {
		exits++
		t.Errorf("the server exited after the space was back: %s", lastLines(srv, 8))
	}
	s.metric("server_exits", exits)
	commitFailures := len(srv.Lines("commit failed"))
	s.metric("server_commit_failures_logged", commitFailures)
	reconnects := 0
	for _, w := range workers {
		reconnects += len(w.Lines("msg=connected")) - 1
	}
	s.metric("worker_reconnects", reconnects)
	if exits > 0 {
		t.Errorf("the server exited %d times on a full disk: it should stay up, fail the writes and retry", exits)
	}

	var after, acked []proc.Run
	for _, r := range runs {
		if r.FinishedAt != nil && r.FinishedAt.After(cleared) {
			after = append(after, r)
		}
	}
	var backlog []proc.Run // acknowledged before the space was back
	for _, id := range s.ackedIDs() {
		r := runs[id]
		acked = append(acked, r)
		if r.CreatedAt != nil && r.CreatedAt.Before(cleared) {
			backlog = append(backlog, r)
		}
	}
	during := 0
	for _, r := range runs {
		if r.FinishedAt != nil && r.FinishedAt.After(full) && r.FinishedAt.Before(cleared) {
			during++
		}
	}
	s.metric("completed_during_fault", during)
	if first, _, ok := span(after, finishedAt); ok {
		s.recovery("first_completion_after_clear", first.Sub(cleared))
	} else {
		t.Error("no run completed after the space was back")
	}
	_, last, _ := span(backlog, finishedAt)
	s.recovery("acked_before_clear_done", last.Sub(cleared))
	_, last, _ = span(acked, finishedAt)
	s.recovery("all_acked_done_after_clear", last.Sub(cleared))
	if l := srv.Lines("disk is full"); len(l) > 0 {
		t.Logf("server: %d log lines about the full disk, the last: %s", len(l), strings.TrimSpace(l[len(l)-1].Text))
	}
	s.verdict(runs)
}

// refusalKinds counts refused submissions by how they were refused: the
// HTTP status, "timeout" or "error" (no answer), as in "500:3,timeout:1".
func refusalKinds(rs []refusal) string {
	n := map[string]int{}
	for _, r := range rs {
		switch {
		case r.code != 0:
			n[fmt.Sprint(r.code)]++
		case strings.Contains(r.err.Error(), "deadline exceeded"):
			n["timeout"]++
		default:
			n["error"]++
		}
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		out = append(out, fmt.Sprintf("%s:%d", k, n[k]))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}
