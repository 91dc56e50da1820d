package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// graphRun is a run of a job of the graph, as the API lists it.
type graphRun struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	LogicalTime *string    `json:"logical_time"`
	StartedAt   *time.Time `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	Error       *string    `json:"error"`
}

// startPGCluster starts three servers on one PostgreSQL (a short lease,
// so that a leader's death is seen in seconds) and two shell workers, each
// with every server in its list, its own first (the failover tests of
// cron and workflows).
func startPGCluster(t *testing.T) []*node {
	nodes := startPGServers(t)
	startShellWorkers(t, nodes, 0, 1)
	return nodes
}

// startPGServers starts three servers on one PostgreSQL, with a short
// lease so that a leader's death is seen in seconds.
func startPGServers(t *testing.T) []*node {
	storeURL := proc.PGURL(t)
	nodes := make([]*node, 3)
	for i := range nodes {
		n := &node{id: fmt.Sprintf("s%d", i+1)}
		n.p, n.http, n.grpc = proc.StartServer(t, n.id, "--store", storeURL, "--id", n.id, "--heartbeat", "1s",
			"--lease-ttl", "5s", "--renew-interval", "1s")
		n.api = proc.NewAPI(t, n.http)
		nodes[i] = n
	}
	return nodes
}

// startShellWorkers starts a shell worker w1, w2, … for each index of
// nodes given: each lists every server, that one first.
func startShellWorkers(t *testing.T, nodes []*node, first ...int) {
	var grpcs []string
	for _, n := range nodes {
		grpcs = append(grpcs, n.grpc)
	}
	for i, k := range first {
		w := proc.Start(t, fmt.Sprintf("w%d", i+1), "worker", "--server", strings.Join(grpcs[k:], ",")+","+strings.Join(grpcs[:k], ","),
			"--id", fmt.Sprintf("w%d", i+1), "--capacity", "8", "--shell")
		w.Await(30*time.Second, "connected")
	}
}

// clusterLeader asks via which server leads.
func clusterLeader(via *node) string {
	var c proc.ClusterJSON
	via.api.Do("GET", "/api/v1/cluster", nil, &c)
	return c.Leader
}

// killLeader SIGKILLs the leader and returns a survivor once another
// server leads.
func killLeader(t *testing.T, nodes []*node) *node {
	t.Helper()
	var old *node
	for _, n := range nodes {
		if n.id == clusterLeader(nodes[0]) {
			old = n
		}
	}
	if old == nil {
		t.Fatal("no leader")
	}
	old.p.Signal(syscall.SIGKILL)
	<-old.p.Exited()
	survivor := nodes[0]
	if survivor == old {
		survivor = nodes[1]
	}
	deadline := time.Now().Add(30 * time.Second)
	for l := clusterLeader(survivor); l == "" || l == old.id; l = clusterLeader(survivor) {
		if time.Now().After(deadline) {
			t.Fatal("no new leader within 30s")
		}
		time.Sleep(200 * time.Millisecond) // polling another process's state
	}
	return survivor
}

// TestDependenciesAcrossLeaderFailover: three servers on one PostgreSQL,
// two workers, a three-level graph — roots r1 and r2 every second, join j
// on both, leaf on j (neither has a schedule). The leader is SIGKILLed
// mid-way. Once the roots are paused and everything settled, every slot of
// the roots has exactly one run of j and of leaf, each succeeded, each
// started after its upstream runs finished, and no attempt ran twice.
func TestDependenciesAcrossLeaderFailover(t *testing.T) {
	execLog := filepath.Join(t.TempDir(), "exec.log")
	nodes := startPGCluster(t)
	put := func(name string, job map[string]any) {
		job["type"], job["group"] = "shell", "default"
		job["payload"] = map[string]string{"cmd": fmt.Sprintf(`echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT" >> %s`, execLog)}
		if code := nodes[1].api.Do("PUT", "/api/v1/jobs/"+name, job, nil); code != 201 {
			t.Fatalf("PUT job %s: HTTP %d", name, code)
		}
	}
	put("r1", map[string]any{"schedule": "* * * * * ?", "misfire": "all"})
	put("r2", map[string]any{"schedule": "* * * * * ?", "misfire": "all"})
	put("j", map[string]any{"depends_on": []string{"r1", "r2"}})
	put("leaf", map[string]any{"depends_on": []string{"j"}})

	awaitSlots(nodes[0].api, "leaf", 3, 60*time.Second)
	survivor := killLeader(t, nodes)
	before := len(jobRuns(survivor.api, "leaf"))
	awaitSlots(survivor.api, "leaf", before+3, 60*time.Second)
	for _, r := range []string{"r1", "r2"} {
		if code := survivor.api.Do("POST", "/api/v1/jobs/"+r+"/pause", nil, nil); code != 200 {
			t.Fatalf("pause %s: HTTP %d", r, code)
		}
	}
	slots := func(job string) map[string]graphRun {
		out := map[string]graphRun{}
		for _, r := range proc.MustListOf[graphRun](survivor.api, "job="+job) {
			if r.LogicalTime == nil {
				t.Fatalf("%s: run %s has no logical time", job, r.ID)
			}
			if prev, ok := out[*r.LogicalTime]; ok {
				t.Errorf("%s: slot %s has two runs, %s and %s", job, *r.LogicalTime, prev.ID, r.ID)
			}
			if r.Status != "succeeded" && r.Status != "skipped" && r.Status != "failed" && r.Status != "cancelled" {
				r = graphRun{ID: r.ID, Status: survivor.api.Wait(r.ID, 2*time.Minute).Status, LogicalTime: r.LogicalTime}
			}
			out[*r.LogicalTime] = r
		}
		return out
	}
	// Everything settles: read again once every run ended.
	for _, j := range []string{"r1", "r2", "j", "leaf"} {
		slots(j)
	}
	r1, r2, js, leaves := slots("r1"), slots("r2"), slots("j"), slots("leaf")
	t.Logf("slots: r1 %d, r2 %d, j %d, leaf %d", len(r1), len(r2), len(js), len(leaves))
	// A slot the roots fired before j was saved (the roots fire from the
	// moment they are saved) has no run of j, by design: j's runs come
	// with its upstreams' runs. Those are left out.
	var jDef struct {
		CreatedAt time.Time `json:"created_at"`
	}
	if code := survivor.api.Do("GET", "/api/v1/jobs/j", nil, &jDef); code != 200 {
		t.Fatalf("GET job j: HTTP %d", code)
	}
	for at, a := range r1 {
		if t0, err := time.Parse(time.RFC3339Nano, at); err == nil && !t0.After(jDef.CreatedAt.Add(time.Second)) {
			continue
		}
		b, ok := r2[at]
		if !ok || a.Status != "succeeded" || b.Status != "succeeded" {
			t.Errorf("slot %s: r1 %s, r2 %+v", at, a.Status, b)
			continue
		}
		jr, ok := js[at]
		if !ok || jr.Status != "succeeded" {
			t.Errorf("slot %s: j's run %+v, want one, succeeded", at, jr)
			continue
		}
		lr, ok := leaves[at]
		if !ok || lr.Status != "succeeded" {
			t.Errorf("slot %s: leaf's run %+v, want one, succeeded", at, lr)
			continue
		}
		if jr.StartedAt.Before(*a.FinishedAt) || jr.StartedAt.Before(*b.FinishedAt) || lr.StartedAt.Before(*jr.FinishedAt) {
			t.Errorf("slot %s out of order: r1 ended %v, r2 ended %v, j started %v and ended %v, leaf started %v",
				at, a.FinishedAt, b.FinishedAt, jr.StartedAt, jr.FinishedAt, lr.StartedAt)
		}
	}
	for at := range js {
		if _, ok := r1[at]; !ok {
			t.Errorf("j has a run for %s, a slot the roots never had", at)
		}
	}
	for k, n := range proc.CountLines(t, execLog, -1) {
		if n > 1 {
			t.Errorf("attempt %q executed %d times", k, n)
		}
	}
}

// TestBackfillAcrossLeaderFailover: three servers on one PostgreSQL, a
// diamond (a; b and c on a; d joining b and c) backfilled over 30 days
// with cascade and parallel 4; the leader driving it is SIGKILLed mid-way.
// The dry run's plan, every (job, day) exactly once and succeeded, each
// dispatched after its upstream runs finished, no attempt run twice.
func TestBackfillAcrossLeaderFailover(t *testing.T) {
	execLog := filepath.Join(t.TempDir(), "exec.log")
	nodes := startPGCluster(t)
	api := nodes[1].api
	for _, j := range []struct {
		name string
		deps []string
	}{{"a", nil}, {"b", []string{"a"}}, {"c", []string{"a"}}, {"d", []string{"b", "c"}}} {
		job := map[string]any{"type": "shell", "group": "default", "depends_on": j.deps,
			"payload": map[string]string{"cmd": fmt.Sprintf(`sleep 0.2; echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT" >> %s`, execLog)}}
		if code := api.Do("PUT", "/api/v1/jobs/"+j.name, job, nil); code != 201 {
			t.Fatalf("PUT job %s: HTTP %d", j.name, code)
		}
	}
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	body := map[string]any{"from": from.Format(time.RFC3339), "to": from.AddDate(0, 0, 29).Format(time.RFC3339),
		"parallel": 4, "cascade": true, "dry_run": true}
	var plan struct {
		Jobs   []string `json:"jobs"`
		Create int      `json:"create"`
	}
	if code := api.Do("POST", "/api/v1/jobs/a/backfill", body, &plan); code != 200 {
		t.Fatalf("dry run: HTTP %d", code)
	}
	if plan.Create != 30 || len(plan.Jobs) != 4 {
		t.Fatalf("plan: %d slots to create, jobs %v", plan.Create, plan.Jobs)
	}
	body["dry_run"] = false
	var bf struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if code := api.Do("POST", "/api/v1/jobs/a/backfill", body, &bf); code != 201 {
		t.Fatalf("backfill: HTTP %d", code)
	}
	awaitSlots(nodes[0].api, "d", 8, 90*time.Second)
	survivor := killLeader(t, nodes)
	deadline := time.Now().Add(3 * time.Minute)
	for bf.State != "done" {
		if time.Now().After(deadline) {
			t.Fatalf("backfill %s still %s after the failover", bf.ID, bf.State)
		}
		time.Sleep(500 * time.Millisecond) // polling another process's state
		survivor.api.Do("GET", "/api/v1/backfills/"+bf.ID, nil, &bf)
	}
	type dayRun struct {
		graphRun
		DispatchedAt *time.Time `json:"dispatched_at"`
	}
	runs := map[string]map[string]dayRun{}
	total := 0
	for _, j := range []string{"a", "b", "c", "d"} {
		runs[j] = map[string]dayRun{}
		for _, r := range proc.MustListOf[dayRun](survivor.api, "job="+j) {
			if prev, ok := runs[j][*r.LogicalTime]; ok {
				t.Errorf("%s: day %s has two runs, %s and %s", j, *r.LogicalTime, prev.ID, r.ID)
			}
			if r.Status != "succeeded" {
				t.Errorf("%s: day %s: %s", j, *r.LogicalTime, r.Status)
			}
			runs[j][*r.LogicalTime] = r
			total++
		}
	}
	if total != plan.Create*len(plan.Jobs) {
		t.Errorf("%d runs, the dry run planned %d", total, plan.Create*len(plan.Jobs))
	}
	for day, dr := range runs["d"] {
		a, b, c := runs["a"][day], runs["b"][day], runs["c"][day]
		if a.FinishedAt == nil || b.FinishedAt == nil || c.FinishedAt == nil || dr.DispatchedAt == nil ||
			b.DispatchedAt.Before(*a.FinishedAt) || c.DispatchedAt.Before(*a.FinishedAt) ||
			dr.DispatchedAt.Before(*b.FinishedAt) || dr.DispatchedAt.Before(*c.FinishedAt) {
			t.Errorf("day %s out of dependency order", day)
		}
	}
	for k, n := range proc.CountLines(t, execLog, -1) {
		if n > 1 {
			t.Errorf("attempt %q executed %d times", k, n)
		}
	}
}
