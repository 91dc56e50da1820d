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

type node struct {
	id, http, grpc string
	p              *proc.Proc
	api            proc.API
}

// TestClusterFailover: three servers on one PostgreSQL, four workers spread
// over them, runs submitted through every server. SIGKILL the leader: a new
// leader is elected and every acknowledged run still completes. SIGKILL a
// non-leader with workers attached: its workers move, its runs complete.
// No run is completed twice: the servers' completion logs count every
// accepted terminal status.
func TestClusterFailover(t *testing.T) {
	storeURL := proc.PGURL(t)
	dir := t.TempDir()
	completions := filepath.Join(dir, "completions.log")
	execLog := filepath.Join(dir, "exec.log")

	nodes := make([]*node, 3)
	for i := range nodes {
		n := &node{id: fmt.Sprintf("s%d", i+1)}
		n.p, n.http, n.grpc = proc.StartServer(t, n.id, "--store", storeURL, "--id", n.id,
			"--heartbeat", "1s", "--completion-log", completions)
		n.api = proc.NewAPI(t, n.http)
		nodes[i] = n
	}
	// Each worker lists every server, starting with a different one.
	for i := range 4 {
		var list []string
		for j := range nodes {
			list = append(list, nodes[(i+j)%len(nodes)].grpc)
		}
		w := proc.Start(t, fmt.Sprintf("w%d", i+1), "worker", "--server", strings.Join(list, ","),
			"--id", fmt.Sprintf("w%d", i+1), "--capacity", "4", "--shell")
		w.Await(30*time.Second, "connected")
	}

	var ids []string
	submit := func(via []*node, perNode int) {
		for _, n := range via {
			specs := make([]map[string]any, perNode)
			for i := range specs {
				specs[i] = map[string]any{"type": "shell", "group": "default", "payload": map[string]string{
					"cmd": fmt.Sprintf(`echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT" >> %s; sleep 0.1`, execLog)}}
			}
			var batch struct{ Items []proc.Run }
			if code := n.api.Do("POST", "/api/v1/runs", map[string]any{"runs": specs}, &batch); code != 201 {
				t.Fatalf("submit via %s: HTTP %d", n.id, code)
			}
			for _, r := range batch.Items {
				ids = append(ids, r.ID)
			}
		}
	}
	cluster := func(n *node) proc.ClusterJSON {
		var c proc.ClusterJSON
		n.api.Do("GET", "/api/v1/cluster", nil, &c)
		return c
	}

	submit(nodes, 100)
	first := cluster(nodes[0])
	var leader *node
	for _, n := range nodes {
		if n.id == first.Leader {
			leader = n
		}
	}
	if leader == nil || len(first.Servers) != 3 {
		t.Fatalf("cluster before the kill: %+v", first)
	}

	// Kill the leader while runs are in flight.
	killed := time.Now()
	leader.p.Signal(syscall.SIGKILL)
	var rest []*node
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	var after proc.ClusterJSON
	deadline := time.Now().Add(30 * time.Second)
	for {
		after = cluster(rest[0])
		if after.Leader != "" && after.Leader != leader.id && after.Term > first.Term {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader 30s after killing %s: %+v", leader.id, after)
		}
		time.Sleep(100 * time.Millisecond) // polling another process's state
	}
	failover := time.Since(killed)
	t.Logf("leader %s SIGKILLed: %s leads (term %d → %d) after %v", leader.id, after.Leader, first.Term, after.Term, failover.Round(time.Millisecond))
	if failover > 15*time.Second {
		t.Errorf("new leader after %v, want within 15s", failover)
	}

	submit(rest, 100)

	// Kill the non-leader that has workers attached.
	var victim, survivor *node
	for _, n := range rest {
		if n.id != after.Leader {
			victim = n
		} else {
			survivor = n
		}
	}
	var workers struct{ Items []struct{ ID string } }
	victim.api.Do("GET", "/api/v1/workers?local=1", nil, &workers)
	t.Logf("killing non-leader %s with %d workers attached", victim.id, len(workers.Items))
	killed = time.Now()
	victim.p.Signal(syscall.SIGKILL)

	for _, id := range ids {
		if got := survivor.api.Wait(id, 2*time.Minute); got.Status != "succeeded" {
			t.Fatalf("run %s: %s (error %v)", id, got.Status, proc.Deref(got.Error))
		}
	}
	t.Logf("all %d runs succeeded %v after the non-leader was killed", len(ids), time.Since(killed).Round(time.Millisecond))

	// Never two accepted completions for a run, across all servers. (A
	// server killed between a commit and its audit write misses that line;
	// the store has the completion — every run succeeded above.)
	done := proc.CountLines(t, completions, 0)
	unlogged := 0
	for _, id := range ids {
		switch n := done[id]; {
		case n > 1:
			t.Errorf("run %s: %d accepted completions, want 1", id, n)
		case n == 0:
			unlogged++
		}
	}
	if unlogged > 32 {
		t.Errorf("%d completions missing from the audit logs; a kill can only lose the last few", unlogged)
	}
	t.Logf("accepted completions: %d runs once, %d lost with a killed server's last audit lines, none twice", len(ids)-unlogged, unlogged)
	// No attempt executed twice.
	for k, n := range proc.CountLines(t, execLog, -1) {
		if n > 1 {
			t.Errorf("attempt %q executed %d times", k, n)
		}
	}
}
