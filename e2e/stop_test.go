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

// submitShell submits n shell runs that log "$PLUTO_RUN_ID $PLUTO_ATTEMPT"
// to execLog, sleep, and print their index.
func submitShell(t *testing.T, a proc.API, n int, sleep, execLog string) []proc.Run {
	t.Helper()
	specs := make([]map[string]any, n)
	for i := range specs {
		specs[i] = map[string]any{"type": "shell", "group": "default", "payload": map[string]string{
			"cmd": fmt.Sprintf(`echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT" >> %s; sleep %s; echo run-%d`, execLog, sleep, i)}}
	}
	var batch struct{ Items []proc.Run }
	if code := a.Do("POST", "/api/v1/runs", map[string]any{"runs": specs}, &batch); code != 201 || len(batch.Items) != n {
		t.Fatalf("submit: HTTP %d, %d runs", code, len(batch.Items))
	}
	return batch.Items
}

// awaitRunning polls until at least n runs are running.
func awaitRunning(t *testing.T, a proc.API, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var page struct{ Items []proc.Run }
		a.Do("GET", "/api/v1/runs?status=running&limit=100", nil, &page)
		if len(page.Items) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs running after 30s, want %d", len(page.Items), n)
		}
		time.Sleep(50 * time.Millisecond) // polling another process's state
	}
}

// checkOnce fails if an attempt executed twice or a run executed more
// than once, and returns how many runs executed.
func checkOnce(t *testing.T, execLog string) int {
	t.Helper()
	runs := map[string]int{}
	for line, n := range proc.CountLines(t, execLog, -1) {
		if n > 1 {
			t.Errorf("attempt %q executed %d times", line, n)
		}
		runs[strings.Fields(line)[0]] += n
	}
	for id, n := range runs {
		if n > 1 {
			t.Errorf("run %s executed %d times", id, n)
		}
	}
	return len(runs)
}

// TestStopSIGTERMWaitsForRunsInFlight: SIGTERM a server whose worker runs
// shell commands. It refuses new submissions with 503, lets the runs on
// the worker finish, commits them and exits 0 well within the deadline:
// every run that started finished before the server exited. The runs
// still queued in the store run after a restart. Every run acknowledged
// completes, each exactly once, at attempt 1.
func TestStopSIGTERMWaitsForRunsInFlight(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "pluto.db")
	execLog := filepath.Join(dir, "exec.log")
	srv, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", db, "--stop-timeout", "30s")
	a := proc.NewAPI(t, httpAddr)
	w := proc.Start(t, "w1", "worker", "--server", grpcAddr, "--id", "w1", "--capacity", "4", "--shell")
	w.Await(30*time.Second, "connected")

	// Window 8 (capacity 4 + prefetch 4): 4 run, 4 wait on the worker, 4
	// stay queued in the store.
	runs := submitShell(t, a, 12, "2", execLog)
	awaitRunning(t, a, 4)

	began := time.Now()
	srv.Signal(syscall.SIGTERM)
	line := srv.Await(10*time.Second, "graceful stop: taking no new work")
	var refused struct {
		Error struct{ Code, Message string }
	}
	code, err := a.Try("POST", "/api/v1/runs", map[string]any{"type": "shell", "group": "default", "payload": map[string]string{"cmd": "true"}}, &refused)
	if err != nil || code != 503 || refused.Error.Code != "unavailable" || !strings.Contains(refused.Error.Message, "stopping") {
		t.Fatalf("submit while stopping: HTTP %d %+v %v, want 503 unavailable", code, refused, err)
	}
	if code := srv.AwaitExit(30 * time.Second); code != 0 {
		t.Fatalf("server exited %d after SIGTERM:\n%s", code, srv.Log())
	}
	exited := time.Now()
	srv.Await(time.Second, "every run in flight finished")
	executed := proc.CountLines(t, execLog, -1)
	t.Logf("SIGTERM with %s in flight: server exited 0 after %v; %d of %d runs had executed",
		proc.LogField(t, line, "in_flight"), exited.Sub(began).Round(time.Millisecond), len(executed), len(runs))
	if len(executed) < 8 || len(executed) == len(runs) {
		t.Fatalf("%d runs executed before the server exited, want the 8 on the worker and not the queued ones", len(executed))
	}

	restarted := proc.Start(t, "server2", "server", "--store", db, "--http", httpAddr, "--grpc", grpcAddr)
	restarted.Await(30*time.Second, "pluto server started")
	for i, r := range runs {
		a.Wait(r.ID, time.Minute)
		var got struct {
			Status     string    `json:"status"`
			Attempt    int       `json:"attempt"`
			FinishedAt time.Time `json:"finished_at"`
		}
		a.Do("GET", "/api/v1/runs/"+r.ID, nil, &got)
		if got.Status != "succeeded" || got.Attempt != 1 {
			t.Fatalf("run %d (%s): %s at attempt %d", i, r.ID, got.Status, got.Attempt)
		}
		if executed[r.ID+" 1"] > 0 && !got.FinishedAt.Before(exited) {
			t.Errorf("run %d started before the stop but finished at %v, after the server exited (%v)", i, got.FinishedAt, exited)
		}
	}
	if n := checkOnce(t, execLog); n != len(runs) {
		t.Errorf("%d distinct runs executed, want %d", n, len(runs))
	}
}

// TestStopSIGTERMDeadlinePasses: runs outlast --stop-timeout. The server
// still exits 0 within the deadline; the runs keep running on the worker,
// stay running in the store, and after a restart the worker delivers
// their results at attempt 1: nothing lost, nothing run twice.
func TestStopSIGTERMDeadlinePasses(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "pluto.db")
	execLog := filepath.Join(dir, "exec.log")
	srv, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", db, "--stop-timeout", "3s")
	a := proc.NewAPI(t, httpAddr)
	w := proc.Start(t, "w1", "worker", "--server", grpcAddr, "--id", "w1", "--capacity", "2", "--prefetch", "-1", "--shell")
	w.Await(30*time.Second, "connected")
	runs := submitShell(t, a, 2, "6", execLog)
	awaitRunning(t, a, 2)

	began := time.Now()
	srv.Signal(syscall.SIGTERM)
	if code := srv.AwaitExit(10 * time.Second); code != 0 {
		t.Fatalf("server exited %d:\n%s", code, srv.Log())
	}
	if took := time.Since(began); took > 4*time.Second {
		t.Fatalf("stop took %v with --stop-timeout 3s", took)
	}
	srv.Await(time.Second, "deadline reached with runs still on workers", "left=2")

	restarted := proc.Start(t, "server2", "server", "--store", db, "--http", httpAddr, "--grpc", grpcAddr)
	restarted.Await(30*time.Second, "pluto server started")
	for i, r := range runs {
		got := a.Wait(r.ID, time.Minute)
		if got.Status != "succeeded" || got.Attempt != 1 {
			t.Fatalf("run %d (%s): %s at attempt %d, error %v", i, r.ID, got.Status, got.Attempt, proc.Deref(got.Error))
		}
	}
	if n := checkOnce(t, execLog); n != len(runs) {
		t.Errorf("%d distinct runs executed, want %d", n, len(runs))
	}
}

// TestStopSIGTERMStopWorkersOnExit: with --stop-workers-on-exit the workers
// are told to stop too: they finish their runs, report them, and exit 0,
// and so does the server.
func TestStopSIGTERMStopWorkersOnExit(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "pluto.db")
	execLog := filepath.Join(dir, "exec.log")
	srv, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", db, "--stop-timeout", "30s", "--stop-workers-on-exit")
	a := proc.NewAPI(t, httpAddr)
	w1 := proc.Start(t, "w1", "worker", "--server", grpcAddr, "--id", "w1", "--capacity", "2", "--prefetch", "-1", "--shell")
	w2 := proc.Start(t, "w2", "worker", "--server", grpcAddr, "--id", "w2", "--capacity", "2", "--prefetch", "-1", "--shell")
	w1.Await(30*time.Second, "connected")
	w2.Await(30*time.Second, "connected")
	runs := submitShell(t, a, 6, "2", execLog) // 4 on the workers, 2 queued
	awaitRunning(t, a, 4)

	srv.Signal(syscall.SIGTERM)
	for _, w := range []*proc.Proc{w1, w2} {
		if code := w.AwaitExit(30 * time.Second); code != 0 {
			t.Fatalf("%s exited %d:\n%s", w.Name, code, w.Log())
		}
		w.Await(time.Second, "shutdown requested by server")
	}
	if code := srv.AwaitExit(30 * time.Second); code != 0 {
		t.Fatalf("server exited %d:\n%s", code, srv.Log())
	}
	srv.Await(time.Second, "workers_told_to_stop=2")
	srv.Await(time.Second, "every run in flight finished")
	executed := proc.CountLines(t, execLog, -1)

	restarted := proc.Start(t, "server2", "server", "--store", db, "--http", httpAddr, "--grpc", grpcAddr)
	restarted.Await(30*time.Second, "pluto server started")
	succeeded := 0
	for _, r := range runs {
		var got proc.Run
		a.Do("GET", "/api/v1/runs/"+r.ID, nil, &got)
		ran := executed[r.ID+" 1"] > 0
		switch {
		case ran && got.Status == "succeeded" && got.Attempt == 1:
			succeeded++
		case !ran && got.Status == "queued": // never dispatched; no worker is left to run it
		default:
			t.Errorf("run %s: %s at attempt %d (executed: %v)", r.ID, got.Status, got.Attempt, ran)
		}
	}
	if succeeded < 4 || succeeded == len(runs) {
		t.Errorf("%d runs succeeded, want the (at least 4) that were on the workers and not the queued ones", succeeded)
	}
	checkOnce(t, execLog)
}

// TestStopSIGTERMOnPostgres: two servers share PostgreSQL. SIGTERM the
// leader while its worker runs commands that outlast --stop-timeout: the
// other server leads before the stopping one has exited (the lease is
// given up when the stop begins, not when it ends); the stopping server
// exits 0 at the deadline with the runs still on the worker, keeping its
// registration so nobody requeues them; the worker fails over and the
// other server adopts the runs, whose results it accepts at attempt 1.
func TestStopSIGTERMOnPostgres(t *testing.T) {
	storeURL := proc.PGURL(t)
	dir := t.TempDir()
	execLog := filepath.Join(dir, "exec.log")
	s1, http1, grpc1 := proc.StartServer(t, "s1", "--store", storeURL, "--id", "s1", "--stop-timeout", "5s")
	a1 := proc.NewAPI(t, http1)
	awaitLeader := func(a proc.API, want string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			var c proc.ClusterJSON
			if code, err := a.Try("GET", "/api/v1/cluster", nil, &c); err == nil && code == 200 && c.Leader == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not leading after %v", want, within)
			}
			time.Sleep(50 * time.Millisecond) // polling another process's state
		}
	}
	awaitLeader(a1, "s1", 30*time.Second)
	_, http2, grpc2 := proc.StartServer(t, "s2", "--store", storeURL, "--id", "s2")
	a2 := proc.NewAPI(t, http2)
	w := proc.Start(t, "w1", "worker", "--server", grpc1+","+grpc2, "--id", "w1", "--capacity", "2", "--prefetch", "-1", "--shell")
	w.Await(30*time.Second, "connected", grpc1)
	runs := submitShell(t, a1, 2, "7", execLog)
	awaitRunning(t, a1, 2)

	began := time.Now()
	s1.Signal(syscall.SIGTERM)
	awaitLeader(a2, "s2", 3*time.Second)
	select {
	case <-s1.Exited():
		t.Fatal("s1 exited before s2 took the lease: it was not given up when the stop began")
	default:
	}
	if code := s1.AwaitExit(10 * time.Second); code != 0 {
		t.Fatalf("s1 exited %d:\n%s", code, s1.Log())
	}
	if took := time.Since(began); took > 6*time.Second {
		t.Fatalf("stop took %v with --stop-timeout 5s", took)
	}
	s1.Await(time.Second, "deadline reached with runs still on workers", "left=2")
	s1.Await(time.Second, "registration expires instead of being removed")

	for i, r := range runs {
		got := a2.Wait(r.ID, time.Minute)
		if got.Status != "succeeded" || got.Attempt != 1 {
			t.Fatalf("run %d (%s): %s at attempt %d, error %v", i, r.ID, got.Status, got.Attempt, proc.Deref(got.Error))
		}
	}
	if n := checkOnce(t, execLog); n != len(runs) {
		t.Errorf("%d distinct runs executed, want %d", n, len(runs))
	}
}
