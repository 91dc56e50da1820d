package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// cli runs a pluto client command and returns its exit code and output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(proc.Binary, args...)
	cmd.Env = proc.Env(t)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	}
	if err != nil {
		t.Fatalf("pluto %v: %v", args, err)
	}
	return 0, out.String(), errb.String()
}

type workerJSON struct {
	ID          string   `json:"id"`
	State       string   `json:"state"`
	Draining    bool     `json:"draining"`
	Server      string   `json:"server"`
	ConnectedAt string   `json:"connected_at"`
	Commands    []string `json:"commands"`
}

// submitNoops submits n noop runs and waits for them; it returns the
// worker each ran on.
func submitNoops(t *testing.T, a proc.API, n int) []string {
	t.Helper()
	specs := make([]map[string]any, n)
	for i := range specs {
		specs[i] = map[string]any{"type": "noop", "group": "default"}
	}
	var batch struct{ Items []proc.Run }
	if code := a.Do("POST", "/api/v1/runs", map[string]any{"runs": specs}, &batch); code != 201 || len(batch.Items) != n {
		t.Fatalf("submit: HTTP %d, %d runs", code, len(batch.Items))
	}
	var on []string
	for _, r := range batch.Items {
		got := a.Wait(r.ID, 30*time.Second)
		if got.Status != "succeeded" {
			t.Fatalf("run %s: %s", r.ID, got.Status)
		}
		on = append(on, proc.Deref(got.WorkerID))
	}
	return on
}

// TestRemoteControlWithRealProcesses: a server and two `pluto worker`
// processes, controlled with the CLI. Drained, a worker gets no new run
// while the other takes them all; resumed, it takes runs again. The
// built-in ping and stats commands answer for the group. Shutdown: the
// worker process exits 0. Restart: the worker (default ID, which contains
// the process ID) re-executes itself and connects again under the same ID,
// and runs go to it.
func TestRemoteControlWithRealProcesses(t *testing.T) {
	dir := t.TempDir()
	_, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", "sqlite:"+filepath.Join(dir, "pluto.db"))
	base := "http://" + httpAddr
	a := proc.NewAPI(t, httpAddr)

	w1 := proc.Start(t, "w1", "worker", "--server", grpcAddr, "--capacity", "2") // default ID: host-pid
	w2 := proc.Start(t, "w2", "worker", "--server", grpcAddr, "--id", "w2", "--capacity", "2")
	id1 := proc.LogField(t, w1.Await(20*time.Second, "pluto worker starting"), "id")
	w1.Await(20*time.Second, "connected")
	w2.Await(20*time.Second, "connected")
	getWorker := func(id string) workerJSON {
		t.Helper()
		var wk workerJSON
		if code := a.Do("GET", "/api/v1/workers/"+id, nil, &wk); code != 200 {
			t.Fatalf("GET worker %s: HTTP %d", id, code)
		}
		return wk
	}

	code, out, errOut := cli(t, "worker", "drain", id1, "--server", base)
	if code != 0 || !strings.Contains(out, "worker "+id1+" draining") {
		t.Fatalf("drain: exit %d\n%s%s", code, out, errOut)
	}
	for i, on := range submitNoops(t, a, 20) {
		if on != "w2" {
			t.Fatalf("run %d ran on %s while %s was drained", i, on, id1)
		}
	}
	if wk := getWorker(id1); !wk.Draining || wk.State != "alive" {
		t.Fatalf("drained worker: %+v", wk)
	}

	if code, out, errOut := cli(t, "worker", "resume", id1, "--server", base); code != 0 || !strings.Contains(out, "resumed") {
		t.Fatalf("resume: exit %d\n%s%s", code, out, errOut)
	}
	deadline := time.Now().Add(10 * time.Second)
	for getWorker(id1).Draining { // until its window reaches the server
		if time.Now().After(deadline) {
			t.Fatal("still draining 10s after resume")
		}
		time.Sleep(20 * time.Millisecond) // another process's state
	}
	ranOn := map[string]int{}
	for _, on := range submitNoops(t, a, 20) {
		ranOn[on]++
	}
	if ranOn[id1] == 0 {
		t.Fatalf("resumed worker ran nothing: %v", ranOn)
	}

	code, out, errOut = cli(t, "worker", "command", "--group", "default", "ping", "--server", base, "-o", "json")
	var reps struct {
		Items []struct {
			Worker string `json:"worker"`
			OK     bool   `json:"ok"`
			Result struct {
				Pong    bool   `json:"pong"`
				ID      string `json:"id"`
				Version string `json:"version"`
			} `json:"result"`
		} `json:"items"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &reps) != nil || len(reps.Items) != 2 {
		t.Fatalf("group ping: exit %d\n%s%s", code, out, errOut)
	}
	for _, it := range reps.Items {
		if !it.OK || !it.Result.Pong || it.Result.ID != it.Worker || it.Result.Version == "" {
			t.Fatalf("ping reply %+v", it)
		}
	}
	code, out, errOut = cli(t, "worker", "command", "w2", "stats", "--server", base)
	if code != 0 || !strings.Contains(out, `"connected":true`) {
		t.Fatalf("stats: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli(t, "worker", "command", "w2", "no-such-command", "--server", base)
	if code != 1 || !strings.Contains(out, "unknown command") {
		t.Fatalf("unknown command: exit %d\n%s", code, out)
	}

	// Shutdown: the process drains and exits 0.
	if code, out, errOut := cli(t, "worker", "shutdown", "w2", "--server", base); code != 0 || !strings.Contains(out, "shutting down") {
		t.Fatalf("shutdown: exit %d\n%s%s", code, out, errOut)
	}
	if code := w2.AwaitExit(30 * time.Second); code != 0 {
		t.Fatalf("w2 exited %d after shutdown:\n%s", code, w2.Log())
	}
	w2.Await(time.Second, "shutdown requested by server")

	// Restart: the same process (same PID, so the same default ID)
	// re-executes itself and connects again.
	before := getWorker(id1)
	if code, out, errOut := cli(t, "worker", "restart", id1, "--server", base); code != 0 || !strings.Contains(out, "restarting") {
		t.Fatalf("restart: exit %d\n%s%s", code, out, errOut)
	}
	w1.Await(30*time.Second, "restarting at the server's request")
	again := w1.AwaitNth(30*time.Second, 2, "pluto worker starting").Text
	if got := proc.LogField(t, again, "id"); got != id1 {
		t.Fatalf("restarted worker has ID %s, want %s", got, id1)
	}
	w1.AwaitNth(30*time.Second, 2, "connected")
	deadline = time.Now().Add(10 * time.Second)
	for {
		wk := getWorker(id1)
		if wk.ConnectedAt != before.ConnectedAt && wk.State == "alive" && !wk.Draining {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted worker not back: %+v (before %+v)", wk, before)
		}
		time.Sleep(20 * time.Millisecond) // another process's state
	}
	for _, on := range submitNoops(t, a, 3) {
		if on != id1 {
			t.Fatalf("run ran on %s, want the restarted %s", on, id1)
		}
	}
	select {
	case <-w1.Exited():
		t.Fatalf("the restarted worker's process exited:\n%s", w1.Log())
	default:
	}
}

// TestRemoteControlAcrossClusterWithRealProcesses: two servers share
// PostgreSQL and the worker is connected to the second; the CLI pointed at
// the first follows its redirect to the second, and a group command asked
// of the first reaches the worker.
func TestRemoteControlAcrossClusterWithRealProcesses(t *testing.T) {
	storeURL := proc.PGURL(t)
	_, http1, _ := proc.StartServer(t, "s1", "--store", storeURL, "--id", "s1")
	_, http2, grpc2 := proc.StartServer(t, "s2", "--store", storeURL, "--id", "s2")
	w := proc.Start(t, "w1", "worker", "--server", grpc2, "--id", "w1", "--capacity", "1")
	w.Await(20*time.Second, "connected")
	deadline := time.Now().Add(20 * time.Second)
	for { // s1 sees s2 alive in the cluster listing
		var c proc.ClusterJSON
		proc.NewAPI(t, http1).Do("GET", "/api/v1/cluster", nil, &c)
		alive := 0
		for _, s := range c.Servers {
			if s.Alive {
				alive++
			}
		}
		if alive == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster: %+v", c)
		}
		time.Sleep(50 * time.Millisecond) // another process's state
	}
	code, out, errOut := cli(t, "worker", "drain", "w1", "--server", "http://"+http1)
	if code != 0 || !strings.Contains(out, "worker w1 draining") || !strings.Contains(out, "server s2") {
		t.Fatalf("drain via s1: exit %d\n%s%s", code, out, errOut)
	}
	w.Await(10*time.Second, "drain requested by server")
	code, out, errOut = cli(t, "worker", "command", "--group", "default", "ping", "--server", "http://"+http1)
	if code != 0 || !strings.Contains(out, "w1") || !strings.Contains(out, "s2") || !strings.Contains(out, "pong") {
		t.Fatalf("group ping via s1: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "worker", "resume", "w1", "--server", "http://"+http2); code != 0 {
		t.Fatalf("resume via s2: exit %d\n%s%s", code, out, errOut)
	}
}
