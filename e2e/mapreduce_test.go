package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// buildMapWorker builds e2e/internal/mapworker, a worker written with the
// Go SDK whose handler maps, into the test's directory.
func buildMapWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mapworker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/pluto-sched/pluto/e2e/internal/mapworker").CombinedOutput()
	if err != nil {
		t.Fatalf("building mapworker: %v\n%s", err, out)
	}
	return bin
}

// TestMapReduceWorkerKilledAfterMap: a handler maps its run into 200
// children and its worker process SIGKILLs itself as soon as the Map is
// answered. The run's next attempt, on another worker, maps again and
// gets the same children: there are exactly 200, one per shard, every
// one ran, one merge run summed them, and the run ends with the sum. On
// the embedded store with one server, and on PostgreSQL with the second
// worker connected to another server than the first.
func TestMapReduceWorkerKilledAfterMap(t *testing.T) {
	bin := buildMapWorker(t)
	t.Run("sqlite", func(t *testing.T) {
		_, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", "sqlite:"+filepath.Join(t.TempDir(), "pluto.db"))
		mapWorkerKilled(t, bin, proc.NewAPI(t, httpAddr), grpcAddr, grpcAddr)
	})
	t.Run("postgres", func(t *testing.T) {
		nodes := startPGServers(t)
		mapWorkerKilled(t, bin, nodes[0].api, nodes[0].grpc, nodes[1].grpc)
	})
}

// mapWorkerKilled runs the map of 200 children with a worker on grpc1
// that dies after its Map and one on grpc2 that takes over.
func mapWorkerKilled(t *testing.T, bin string, a proc.API, grpc1, grpc2 string) {
	const n = 200
	execLog := filepath.Join(t.TempDir(), "exec.log")
	w1 := proc.StartBinary(t, "w1", bin, "--server", grpc1, "--id", "w1", "--exec-log", execLog, "--die-after-map")
	w1.Await(20*time.Second, "connected")

	var run proc.Run
	if code := a.Do("POST", "/api/v1/runs", map[string]any{"type": "sum", "group": "default", "payload": map[string]int{"n": n}}, &run); code != 201 {
		t.Fatalf("submit: HTTP %d", code)
	}
	w1.Await(20*time.Second, "mapped", "attempt=1", "existing=false")
	w1.AwaitExit(20 * time.Second)

	w2 := proc.StartBinary(t, "w2", bin, "--server", grpc2, "--id", "w2", "--exec-log", execLog)
	w2.Await(20*time.Second, "connected")
	got := a.Wait(run.ID, 2*time.Minute)
	if got.Status != "succeeded" || string(got.Result) != "20100" {
		t.Fatalf("run: %s, result %s, error %s", got.Status, got.Result, proc.Deref(got.Error))
	}
	w2.Await(5*time.Second, "mapped", "attempt=2", "children=200", "existing=true")

	kids := proc.MustListOf[fanoutChild](a, "parent="+run.ID+"&limit=1000")
	shards, merges := map[int]bool{}, 0
	for _, k := range kids {
		switch {
		case k.Shard == nil:
			merges++
		case k.Status != "succeeded" || shards[*k.Shard]:
			t.Errorf("child %s: shard %d, %s", k.ID, *k.Shard, k.Status)
		default:
			shards[*k.Shard] = true
		}
	}
	if len(shards) != n || merges != 1 {
		t.Fatalf("%d shards and %d merge runs, want %d and 1", len(shards), merges, n)
	}
	// Children w1 held when it died ran again on w2 (at least once, as any
	// run of a lost worker); each of the 200 ran.
	b, err := os.ReadFile(execLog)
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]bool{}
	for _, id := range strings.Fields(string(b)) {
		ran[id] = true
	}
	if len(ran) != n {
		t.Errorf("%d distinct children ran, want %d", len(ran), n)
	}
}
