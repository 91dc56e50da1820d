package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

type slotRun struct {
	ID          string  `json:"id"`
	Status      string  `json:"status"`
	LogicalTime *string `json:"logical_time"`
	Error       *string `json:"error"`
}

// jobRuns lists every run of a job.
func jobRuns(a proc.API, job string) []slotRun {
	a.T.Helper()
	return proc.MustListOf[slotRun](a, "job="+job)
}

// awaitSlots polls until the job has at least n runs in a terminal state.
func awaitSlots(a proc.API, job string, n int, within time.Duration) {
	a.T.Helper()
	deadline := time.Now().Add(within)
	for {
		done := len(jobRunsTerminal(a, job))
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			a.T.Fatalf("job %s: %d terminal runs after %v, want %d", job, done, within, n)
		}
		time.Sleep(200 * time.Millisecond) // polling another process's state
	}
}

func jobRunsTerminal(a proc.API, job string) []slotRun {
	var out []slotRun
	for _, r := range jobRuns(a, job) {
		if r.Status == "succeeded" || r.Status == "skipped" || r.Status == "failed" {
			out = append(out, r)
		}
	}
	return out
}

// checkSlots asserts that every whole second from the job's first slot to
// its last has exactly one run, and returns the runs by slot.
func checkSlots(t *testing.T, runs []slotRun) map[time.Time]slotRun {
	t.Helper()
	bySlot := map[time.Time]slotRun{}
	var first, last time.Time
	for _, r := range runs {
		if r.LogicalTime == nil {
			t.Fatalf("run %s has no logical time", r.ID)
		}
		at, err := time.Parse(time.RFC3339Nano, *r.LogicalTime)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := bySlot[at]; ok {
			t.Errorf("slot %s fired twice: %s (%s) and %s (%s)", at.Format(time.RFC3339), prev.ID, prev.Status, r.ID, r.Status)
		}
		bySlot[at] = r
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	for at := first; !at.After(last); at = at.Add(time.Second) {
		if _, ok := bySlot[at]; !ok {
			t.Errorf("slot %s has no run: silently dropped", at.Format(time.RFC3339))
		}
	}
	t.Logf("%d slots from %s to %s", len(bySlot), first.Format(time.RFC3339), last.Format(time.RFC3339))
	return bySlot
}

func putTickJob(t *testing.T, a proc.API, name, misfire, execLog string) {
	t.Helper()
	job := map[string]any{
		"type": "shell", "group": "default", "schedule": "* * * * * ?", "misfire": misfire, "overlap": "allow",
		"payload": map[string]string{"cmd": fmt.Sprintf(`echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT" >> %s`, execLog)},
	}
	if code := a.Do("PUT", "/api/v1/jobs/"+name, job, nil); code != 201 {
		t.Fatalf("PUT job: HTTP %d", code)
	}
}

func pauseAndSettle(t *testing.T, a proc.API, job string) []slotRun {
	t.Helper()
	if code := a.Do("POST", "/api/v1/jobs/"+job+"/pause", nil, nil); code != 200 {
		t.Fatalf("pause: HTTP %d", code)
	}
	runs := jobRuns(a, job)
	for _, r := range runs {
		if r.Status != "skipped" {
			if got := a.Wait(r.ID, time.Minute); got.Status != "succeeded" {
				t.Errorf("run %s: %s (%v)", r.ID, got.Status, proc.Deref(got.Error))
			}
		}
	}
	return jobRuns(a, job)
}

// TestCronAcrossServerKill: an every-second job on SQLite; the server is
// SIGKILLed and restarted 8 s later. Every slot has exactly one run: with
// misfire "all" every missed slot runs late, with "skip" those more than
// the 5 s grace late are recorded as skipped; none runs twice.
func TestCronAcrossServerKill(t *testing.T) {
	for _, misfire := range []string{"all", "skip"} {
		t.Run(misfire, func(t *testing.T) {
			dir := t.TempDir()
			db := "sqlite:" + filepath.Join(dir, "pluto.db")
			execLog := filepath.Join(dir, "exec.log")
			srv, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", db, "--heartbeat", "1s")
			w := proc.Start(t, "w1", "worker", "--server", grpcAddr, "--id", "w1", "--capacity", "4", "--shell")
			w.Await(30*time.Second, "connected")
			a := proc.NewAPI(t, httpAddr)
			putTickJob(t, a, "tick", misfire, execLog)
			awaitSlots(a, "tick", 4, 30*time.Second)

			srv.Signal(syscall.SIGKILL)
			<-srv.Exited()
			killed := time.Now()
			time.Sleep(8 * time.Second) // the outage
			restarted := proc.Start(t, "server2", "server", "--store", db, "--heartbeat", "1s", "--http", httpAddr, "--grpc", grpcAddr)
			restarted.Await(30*time.Second, "pluto server started")
			before := len(jobRuns(a, "tick"))
			awaitSlots(a, "tick", before+3, 30*time.Second)

			bySlot := checkSlots(t, pauseAndSettle(t, a, "tick"))
			var skipped []string
			for at, r := range bySlot {
				if r.Status == "skipped" {
					skipped = append(skipped, at.Format(time.RFC3339))
					if !at.After(killed.Add(-2*time.Second)) || r.Error == nil || !strings.Contains(*r.Error, "misfire") {
						t.Errorf("slot %s skipped (%v) but it was not missed in the outage", at.Format(time.RFC3339), proc.Deref(r.Error))
					}
				}
			}
			slices.Sort(skipped)
			switch {
			case misfire == "all" && len(skipped) > 0:
				t.Errorf("misfire all: slots %v skipped, want every one run", skipped)
			case misfire == "skip" && len(skipped) == 0:
				t.Errorf("misfire skip: no slot skipped after an 8 s outage (grace 5 s)")
			}
			t.Logf("skipped slots: %v", skipped)
			for k, n := range proc.CountLines(t, execLog, -1) {
				if n > 1 {
					t.Errorf("attempt %q executed %d times", k, n)
				}
			}
		})
	}
}

// TestCronAcrossLeaderFailover: three servers on one PostgreSQL fire an
// every-second job (misfire "all"); the leader is SIGKILLed. The next
// leader fires the slots the outage missed, late, and every slot has
// exactly one run, executed once.
func TestCronAcrossLeaderFailover(t *testing.T) {
	execLog := filepath.Join(t.TempDir(), "exec.log")
	nodes := startPGCluster(t)
	putTickJob(t, nodes[1].api, "tick", "all", execLog)
	awaitSlots(nodes[0].api, "tick", 4, 30*time.Second)
	survivor := killLeader(t, nodes)
	before := len(jobRuns(survivor.api, "tick"))
	awaitSlots(survivor.api, "tick", before+3, 30*time.Second)
	bySlot := checkSlots(t, pauseAndSettle(t, survivor.api, "tick"))
	for at, r := range bySlot {
		if r.Status != "succeeded" {
			t.Errorf("slot %s: %s, want succeeded (misfire all)", at.Format(time.RFC3339), r.Status)
		}
	}
	for k, n := range proc.CountLines(t, execLog, -1) {
		if n > 1 {
			t.Errorf("attempt %q executed %d times", k, n)
		}
	}
}
