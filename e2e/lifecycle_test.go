package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// TestLifecycleWithRealProcesses runs a server and two shell workers as
// processes: 500 shell runs, a cancel of a running command, and a worker
// SIGKILLed mid-burst. Every run must finish exactly as submitted, the
// cancelled command's process must be gone, the killed worker's runs must
// finish on the other worker with a new attempt, and no attempt may ever
// execute twice.
func TestLifecycleWithRealProcesses(t *testing.T) {
	dir := t.TempDir()
	_, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", "sqlite:"+filepath.Join(dir, "pluto.db"), "--heartbeat", "1s")
	a := proc.NewAPI(t, httpAddr)

	w1 := proc.Start(t, "w1", "worker", "--server", grpcAddr, "--id", "w1", "--capacity", "4", "--shell")
	w2 := proc.Start(t, "w2", "worker", "--server", grpcAddr, "--id", "w2", "--capacity", "4", "--shell")
	w1.Await(20*time.Second, "connected")
	w2.Await(20*time.Second, "connected")

	execLog := filepath.Join(dir, "exec.log")
	pidFile := filepath.Join(dir, "long.pid")

	// A long command to cancel while it runs.
	var long proc.Run
	if code := a.Do("POST", "/api/v1/runs", map[string]any{
		"type": "shell", "group": "default", "priority": 10,
		"payload": map[string]string{"cmd": "echo $$ > " + pidFile + "; exec sleep 60"},
	}, &long); code != 201 {
		t.Fatalf("submit long run: HTTP %d", code)
	}

	// The burst: every tenth run takes a second, so the kill below finds
	// runs in flight.
	specs := make([]map[string]any, 500)
	for i := range specs {
		cmd := fmt.Sprintf(`echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT" >> %s; echo run-%d`, execLog, i)
		if i%10 == 0 {
			cmd = fmt.Sprintf(`echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT" >> %s; sleep 1; echo run-%d`, execLog, i)
		}
		specs[i] = map[string]any{"type": "shell", "group": "default", "payload": map[string]string{"cmd": cmd}}
	}
	var batch struct{ Items []proc.Run }
	if code := a.Do("POST", "/api/v1/runs", map[string]any{"runs": specs}, &batch); code != 201 || len(batch.Items) != 500 {
		t.Fatalf("submit batch: HTTP %d, %d runs", code, len(batch.Items))
	}

	// Cancel the long command once it is running.
	pid := awaitPID(t, pidFile)
	var cancelled proc.Run
	a.Do("POST", "/api/v1/runs/"+long.ID+"/cancel", map[string]string{"reason": "e2e"}, &cancelled)
	if got := a.Wait(long.ID, 30*time.Second); got.Status != "cancelled" {
		t.Fatalf("long run after cancel: %s", got.Status)
	}
	awaitGone(t, pid)

	// Kill w2 once a fifth of the burst is done.
	a.Wait(batch.Items[99].ID, time.Minute)
	killed := time.Now()
	w2.Signal(syscall.SIGKILL)

	moved := 0
	var firstMoved time.Duration
	for i, r := range batch.Items {
		got := a.Wait(r.ID, 2*time.Minute)
		if got.Status != "succeeded" {
			t.Fatalf("run %d (%s): %s, error %v", i, r.ID, got.Status, proc.Deref(got.Error))
		}
		var res struct {
			ExitCode int    `json:"exit_code"`
			Stdout   string `json:"stdout"`
		}
		if err := json.Unmarshal(got.Result, &res); err != nil || res.ExitCode != 0 || res.Stdout != fmt.Sprintf("run-%d\n", i) {
			t.Fatalf("run %d result %s", i, got.Result)
		}
		if got.Attempt > 1 {
			moved++
			if w := proc.Deref(got.WorkerID); w != "w1" {
				t.Fatalf("run %d moved at attempt %d but finished on %q", i, got.Attempt, w)
			}
		}
	}
	if moved == 0 {
		t.Fatal("the SIGKILL of w2 caught no run in flight; the test proved nothing")
	}
	firstMoved = time.Since(killed)
	t.Logf("w2 SIGKILLed: %d runs moved to w1 with a new attempt; burst finished %v after the kill", moved, firstMoved.Round(time.Millisecond))

	// No attempt ever executed twice; every run executed.
	seen := map[string]int{}
	runs := map[string]bool{}
	f, err := os.Open(execLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		seen[sc.Text()]++
		runs[strings.Fields(sc.Text())[0]] = true
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("attempt %q executed %d times", k, n)
		}
	}
	if len(runs) != 500 {
		t.Errorf("%d distinct runs executed, want 500", len(runs))
	}
}

func awaitPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("the long command never started (%s)", path)
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process writes
	}
}

// awaitGone waits for a process to exit after its run was cancelled.
func awaitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d of a cancelled run is still alive", pid)
		}
		time.Sleep(20 * time.Millisecond) // polling another process's liveness
	}
}
