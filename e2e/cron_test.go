package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

type slotRun struct {
	ID          string  `json:"id"`
	Status      string  `json:"status"`
	LogicalTime *string `json:"logical_time"`
	Error       *string `json:"error"`
}

// jobRuns lists every run of a job.
func (a api) jobRuns(job string) []slotRun {
	a.t.Helper()
	var all []slotRun
	cursor := ""
	for {
		var page struct {
			Items      []slotRun `json:"items"`
			NextCursor string    `json:"next_cursor"`
		}
		if code := a.do("GET", "/api/v1/runs?job="+job+"&limit=1000&cursor="+cursor, nil, &page); code != 200 {
			a.t.Fatalf("list runs of %s: HTTP %d", job, code)
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// awaitSlots polls until the job has at least n runs in a terminal state.
func (a api) awaitSlots(job string, n int, within time.Duration) {
	a.t.Helper()
	deadline := time.Now().Add(within)
	for {
		done := len(a.jobRunsTerminal(job))
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("job %s: %d terminal runs after %v, want %d", job, done, within, n)
		}
		time.Sleep(200 * time.Millisecond) // polling another process's state
	}
}

func (a api) jobRunsTerminal(job string) []slotRun {
	var out []slotRun
	for _, r := range a.jobRuns(job) {
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

func putTickJob(t *testing.T, a api, name, misfire, execLog string) {
	t.Helper()
	job := map[string]any{
		"type": "shell", "group": "default", "schedule": "* * * * * ?", "misfire": misfire, "overlap": "allow",
		"payload": map[string]string{"cmd": fmt.Sprintf(`echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT" >> %s`, execLog)},
	}
	if code := a.do("PUT", "/api/v1/jobs/"+name, job, nil); code != 201 {
		t.Fatalf("PUT job: HTTP %d", code)
	}
}

func pauseAndSettle(t *testing.T, a api, job string) []slotRun {
	t.Helper()
	if code := a.do("POST", "/api/v1/jobs/"+job+"/pause", nil, nil); code != 200 {
		t.Fatalf("pause: HTTP %d", code)
	}
	runs := a.jobRuns(job)
	for _, r := range runs {
		if r.Status != "skipped" {
			if got := a.wait(r.ID, time.Minute); got.Status != "succeeded" {
				t.Errorf("run %s: %s (%v)", r.ID, got.Status, deref(got.Error))
			}
		}
	}
	return a.jobRuns(job)
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
			srv, httpAddr, grpcAddr := startServer(t, "server", "--store", db, "--heartbeat", "1s")
			w := start(t, "w1", "worker", "--server", grpcAddr, "--id", "w1", "--capacity", "4", "--shell")
			w.await(30*time.Second, "connected")
			a := api{t: t, base: "http://" + httpAddr}
			putTickJob(t, a, "tick", misfire, execLog)
			a.awaitSlots("tick", 4, 30*time.Second)

			srv.signal(syscall.SIGKILL)
			<-srv.exit
			killed := time.Now()
			time.Sleep(8 * time.Second) // the outage
			restarted := start(t, "server2", "server", "--store", db, "--heartbeat", "1s", "--http", httpAddr, "--grpc", grpcAddr)
			restarted.await(30*time.Second, "pluto server started")
			before := len(a.jobRuns("tick"))
			a.awaitSlots("tick", before+3, 30*time.Second)

			bySlot := checkSlots(t, pauseAndSettle(t, a, "tick"))
			var skipped []string
			for at, r := range bySlot {
				if r.Status == "skipped" {
					skipped = append(skipped, at.Format(time.RFC3339))
					if !at.After(killed.Add(-2*time.Second)) || r.Error == nil || !strings.Contains(*r.Error, "misfire") {
						t.Errorf("slot %s skipped (%v) but it was not missed in the outage", at.Format(time.RFC3339), deref(r.Error))
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
			for k, n := range countLines(t, execLog, -1) {
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
	storeURL := pgURL(t)
	dir := t.TempDir()
	execLog := filepath.Join(dir, "exec.log")
	nodes := make([]*node, 3)
	var grpcs []string
	for i := range nodes {
		n := &node{id: fmt.Sprintf("s%d", i+1)}
		n.p, n.http, n.grpc = startServer(t, n.id, "--store", storeURL, "--id", n.id, "--heartbeat", "1s",
			"--lease-ttl", "5s", "--renew-interval", "1s")
		n.api = api{t: t, base: "http://" + n.http}
		nodes[i] = n
		grpcs = append(grpcs, n.grpc)
	}
	for i := range 2 {
		w := start(t, fmt.Sprintf("w%d", i+1), "worker", "--server", strings.Join(grpcs[i:], ",")+","+strings.Join(grpcs[:i], ","),
			"--id", fmt.Sprintf("w%d", i+1), "--capacity", "4", "--shell")
		w.await(30*time.Second, "connected")
	}
	putTickJob(t, nodes[1].api, "tick", "all", execLog)
	leader := func(via *node) string {
		var c clusterJSON
		via.api.do("GET", "/api/v1/cluster", nil, &c)
		return c.Leader
	}
	nodes[0].api.awaitSlots("tick", 4, 30*time.Second)
	var old *node
	for _, n := range nodes {
		if n.id == leader(nodes[0]) {
			old = n
		}
	}
	if old == nil {
		t.Fatal("no leader")
	}
	old.p.signal(syscall.SIGKILL)
	<-old.p.exit
	var survivor *node
	for _, n := range nodes {
		if n != old {
			survivor = n
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for l := leader(survivor); l == "" || l == old.id; l = leader(survivor) {
		if time.Now().After(deadline) {
			t.Fatal("no new leader within 30s")
		}
		time.Sleep(200 * time.Millisecond) // polling another process's state
	}
	before := len(survivor.api.jobRuns("tick"))
	survivor.api.awaitSlots("tick", before+3, 30*time.Second)
	bySlot := checkSlots(t, pauseAndSettle(t, survivor.api, "tick"))
	for at, r := range bySlot {
		if r.Status != "succeeded" {
			t.Errorf("slot %s: %s, want succeeded (misfire all)", at.Format(time.RFC3339), r.Status)
		}
	}
	for k, n := range countLines(t, execLog, -1) {
		if n > 1 {
			t.Errorf("attempt %q executed %d times", k, n)
		}
	}
}
