package e2e

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// TestServerKilledMidBurst: SIGKILL the server while clients submit, start
// it again on the same store: every submission it acknowledged completes,
// and no attempt executes twice.
func TestServerKilledMidBurst(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "pluto.db")
	execLog := filepath.Join(dir, "exec.log")
	srv, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", db, "--heartbeat", "1s")
	w := proc.Start(t, "w1", "worker", "--server", grpcAddr, "--id", "w1", "--capacity", "4", "--shell")
	w.Await(30*time.Second, "connected")
	a := proc.NewAPI(t, httpAddr)

	var acked []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // one client submitting as fast as it can
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var r proc.Run
			code, err := a.Try("POST", "/api/v1/runs", map[string]any{"type": "shell", "group": "default",
				"payload": map[string]string{"cmd": fmt.Sprintf(`echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT" >> %s; sleep 0.02`, execLog)}}, &r)
			if err != nil {
				return // the server is gone
			}
			if code == 201 {
				acked = append(acked, r.ID)
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var page struct{ Items []proc.Run }
		a.Do("GET", "/api/v1/runs?status=succeeded&limit=100", nil, &page)
		if len(page.Items) >= 50 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling another process's state
	}
	srv.Signal(syscall.SIGKILL)
	<-srv.Exited()
	close(stop)
	<-done
	t.Logf("server SIGKILLed after acknowledging %d runs", len(acked))

	restarted := proc.Start(t, "server2", "server", "--store", db, "--heartbeat", "1s", "--http", httpAddr, "--grpc", grpcAddr)
	restarted.Await(30*time.Second, "pluto server started")
	for _, id := range acked {
		if got := a.Wait(id, 2*time.Minute); got.Status != "succeeded" {
			t.Fatalf("acknowledged run %s: %s (error %v)", id, got.Status, proc.Deref(got.Error))
		}
	}
	for k, n := range proc.CountLines(t, execLog, -1) {
		if n > 1 {
			t.Errorf("attempt %q executed %d times", k, n)
		}
	}
}
