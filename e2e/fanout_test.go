package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// fanoutChild is a run of a fan-out as the API lists it.
type fanoutChild struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status string `json:"status"`
	Shard  *int   `json:"shard"`
}

// TestFanoutAcrossLeaderKill: three servers on one PostgreSQL and two
// shell workers, one of them on the leader. A parent of 1,000 shell
// children with a merge is submitted, and the leader is SIGKILLed while
// the children run. The parent succeeds with the merge's result; every
// shard has exactly one child, each succeeded and executed once; there is
// one merge run.
func TestFanoutAcrossLeaderKill(t *testing.T) {
	const shards = 1000
	execLog := filepath.Join(t.TempDir(), "exec.log")
	nodes := startPGServers(t)
	var leader int
	deadline := time.Now().Add(30 * time.Second)
	for leader = -1; leader < 0; {
		for i, n := range nodes {
			if clusterLeader(nodes[0]) == n.id {
				leader = i
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no leader within 30s")
		}
		time.Sleep(100 * time.Millisecond) // another process's state
	}
	startShellWorkers(t, nodes, leader, (leader+1)%3) // w1 on the leader
	via := nodes[(leader+1)%3]
	spec := map[string]any{
		"type": "shell", "group": "default", "shards": shards, "merge": "noop",
		"payload": map[string]string{"cmd": fmt.Sprintf(`echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT $PLUTO_SHARD" >> %s; sleep 0.2`, execLog)},
	}
	var parent proc.Run
	if code := via.api.Do("POST", "/api/v1/runs", spec, &parent); code != 201 {
		t.Fatalf("submit: HTTP %d", code)
	}
	// Kill the leader once a fifth of the children ran.
	for lines(execLog) < shards/5 {
		if time.Now().After(deadline.Add(time.Minute)) {
			t.Fatalf("%d children ran in over a minute", lines(execLog))
		}
		time.Sleep(50 * time.Millisecond) // another process's progress
	}
	ran := lines(execLog)
	killLeader(t, nodes)
	t.Logf("leader %s killed after %d children ran; %d ran by the time another led", nodes[leader].id, ran, lines(execLog))

	got := via.api.Wait(parent.ID, 3*time.Minute)
	if got.Status != "succeeded" {
		t.Fatalf("parent %s: %s (%s)", parent.ID, got.Status, proc.Deref(got.Error))
	}
	runs := proc.MustListOf[fanoutChild](via.api, "parent="+parent.ID)
	byShard, merges := map[int]string{}, 0
	for _, r := range runs {
		if r.Shard == nil {
			merges++
			if r.Type != "noop" || r.Status != "succeeded" {
				t.Errorf("merge run %+v", r)
			}
			continue
		}
		if prev, ok := byShard[*r.Shard]; ok {
			t.Errorf("shard %d has two children, %s and %s", *r.Shard, prev, r.ID)
		}
		byShard[*r.Shard] = r.ID
		if r.Status != "succeeded" {
			t.Errorf("child %s (shard %d): %s", r.ID, *r.Shard, r.Status)
		}
	}
	if len(byShard) != shards || merges != 1 {
		t.Fatalf("%d shards with a child, %d merge runs; want %d and 1", len(byShard), merges, shards)
	}
	execs := proc.CountLines(t, execLog, 0)
	again := 0
	for _, id := range byShard {
		switch n := execs[id]; {
		case n == 0:
			t.Errorf("child %s never executed", id)
		case n > 1:
			again++
		}
	}
	for k, n := range proc.CountLines(t, execLog, -1) {
		if n > 1 {
			t.Errorf("attempt %q executed %d times", k, n)
		}
	}
	if again > 0 {
		t.Errorf("%d children executed more than once", again)
	}
}

// lines counts the lines of a file (0 if it does not exist yet).
func lines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// TestBroadcastAndShardedJobWithRealProcesses: three `pluto worker`
// processes. `pluto submit --routing shard-broadcast --wait` runs once on
// each, every child told its index of three, and prints the parent with
// their results; a job with shards 4, triggered, ends with four results.
func TestBroadcastAndShardedJobWithRealProcesses(t *testing.T) {
	dir := t.TempDir()
	_, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", "sqlite:"+filepath.Join(dir, "pluto.db"))
	a := proc.NewAPI(t, httpAddr)
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("w%d", i)
		w := proc.Start(t, id, "worker", "--server", grpcAddr, "--id", id, "--capacity", "2", "--shell")
		w.Await(20*time.Second, "connected")
	}
	code, out, errOut := cli(t, "submit", "--server", "http://"+httpAddr, "--type", "shell", "--routing", "shard-broadcast",
		"--payload", `{"cmd": "echo $PLUTO_SHARD/$PLUTO_SHARD_COUNT"}`, "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("submit --routing shard-broadcast: exit %d\n%s%s", code, out, errOut)
	}
	var parent proc.Run
	if err := json.Unmarshal([]byte(out), &parent); err != nil || parent.Status != "succeeded" {
		t.Fatalf("parent %+v (%v)\n%s", parent, err, out)
	}
	kids := proc.MustListOf[struct {
		Status   string  `json:"status"`
		WorkerID *string `json:"worker_id"`
		Shard    *int    `json:"shard"`
	}](a, "parent="+parent.ID)
	workers := map[string]bool{}
	for _, k := range kids {
		if k.Status != "succeeded" || k.Shard == nil {
			t.Errorf("child %+v", k)
		}
		workers[proc.Deref(k.WorkerID)] = true
	}
	if len(kids) != 3 || len(workers) != 3 {
		t.Fatalf("%d children on %d workers, want one on each of 3", len(kids), len(workers))
	}

	job := map[string]any{"type": "shell", "shards": 4, "payload": map[string]string{"cmd": "echo $PLUTO_SHARD"}}
	if code := a.Do("PUT", "/api/v1/jobs/sharded", job, nil); code != 201 {
		t.Fatalf("PUT sharded job: HTTP %d", code)
	}
	var run proc.Run
	if code := a.Do("POST", "/api/v1/jobs/sharded/trigger", nil, &run); code != 201 {
		t.Fatalf("trigger: HTTP %d", code)
	}
	got := a.Wait(run.ID, time.Minute)
	var res []json.RawMessage
	if got.Status != "succeeded" || json.Unmarshal(got.Result, &res) != nil || len(res) != 4 {
		t.Fatalf("sharded job's run: %s, result %s", got.Status, got.Result)
	}
}
