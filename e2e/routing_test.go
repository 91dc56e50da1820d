package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// TestRoundRobinSpreadWithRealProcesses: 3,000 round-robin runs over three
// `pluto worker` processes give each exactly 1,000 (the bar allows ±1),
// however the workers' slots come free: a run waits for the worker whose
// turn it is.
func TestRoundRobinSpreadWithRealProcesses(t *testing.T) {
	dir := t.TempDir()
	_, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", "sqlite:"+filepath.Join(dir, "pluto.db"))
	a := proc.NewAPI(t, httpAddr)
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("w%d", i)
		w := proc.Start(t, id, "worker", "--server", grpcAddr, "--id", id, "--capacity", fmt.Sprint(i*2))
		w.Await(20*time.Second, "connected")
	}
	const n = 3000
	var ids []string
	for range n / 1000 {
		specs := make([]map[string]any, 1000)
		for i := range specs {
			specs[i] = map[string]any{"type": "noop", "group": "default", "routing": "round-robin"}
		}
		var batch struct{ Items []proc.Run }
		if code := a.Do("POST", "/api/v1/runs", map[string]any{"runs": specs}, &batch); code != 201 || len(batch.Items) != len(specs) {
			t.Fatalf("submit: HTTP %d, %d runs", code, len(batch.Items))
		}
		for _, r := range batch.Items {
			ids = append(ids, r.ID)
		}
	}
	on := map[string]int{}
	for _, id := range ids {
		r := a.Wait(id, time.Minute)
		if r.Status != "succeeded" {
			t.Fatalf("run %s: %s", id, r.Status)
		}
		on[proc.Deref(r.WorkerID)]++
	}
	t.Logf("runs per worker: %v", on)
	for _, w := range []string{"w1", "w2", "w3"} {
		if d := on[w] - n/3; d < -1 || d > 1 {
			t.Fatalf("round-robin gave %v; want %d ± 1 each", on, n/3)
		}
	}
}
