package faults

import (
	"syscall"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// TestWorkerSIGKILL: three workers run a backlog of one-second shell runs;
// one of them is SIGKILLed while it runs some. The server declares it
// dead (three heartbeats after it was last heard from), requeues its runs
// with a new attempt, and the other workers run them. Measured with the
// default heartbeat (5 s) and with 1 s heartbeats.
func TestWorkerSIGKILL(t *testing.T) {
	for _, hb := range []string{"5s", "1s"} {
		t.Run("heartbeat="+hb, func(t *testing.T) {
			s := newScenario(t, "worker-sigkill/heartbeat="+hb)
			args := s.serverArgs("")
			if hb != "5s" {
				args = append(args, "--heartbeat", hb) // 5s: the default, no flag
			}
			srv, httpAddr, grpcAddr := proc.StartServer(t, "server", args...)
			a := proc.NewAPI(t, httpAddr)
			worker(t, "w1", grpcAddr, "--capacity", "4", "--prefetch", "-1")
			victim := worker(t, "w2", grpcAddr, "--capacity", "4", "--prefetch", "-1")
			worker(t, "w3", grpcAddr, "--capacity", "4", "--prefetch", "-1")

			s.submit(a, 60, "1")
			held := awaitRunning(t, a, 30*time.Second, "w2 running 2 runs", s.executing("w2", 2))
			fault := time.Now()
			victim.Kill()
			gone := srv.Await(recoveryBound, "worker gone", "worker=w2")
			s.recovery("detected", proc.LogTime(t, gone).Sub(fault))

			runs := s.settle(a, 2*time.Minute)
			var moved []proc.Run
			for _, r := range runs {
				if r.Attempt > 1 {
					moved = append(moved, r)
					if w := proc.Deref(r.WorkerID); w == "w2" {
						t.Errorf("run %s at attempt %d finished on the killed worker", r.ID, r.Attempt)
					}
				}
			}
			if len(moved) == 0 {
				t.Fatalf("the SIGKILL caught no run in flight (w2 ran %d): the scenario proved nothing", len(held))
			}
			s.metric("requeued", len(moved))
			first, _, _ := span(moved, startedAt)
			_, last, _ := span(moved, finishedAt)
			s.recovery("restarted", first.Sub(fault))
			s.recovery("affected_done", last.Sub(fault))
			s.verdict(runs)
		})
	}
}

// TestWorkerSIGSTOP: a worker is frozen (SIGSTOP) while it runs
// three-second commands, for longer than the dead timeout (3 × 1 s
// heartbeats), then thawed (SIGCONT). Its commands finish meanwhile (they
// run in their own processes); the server has requeued them with a new
// attempt on the other worker. When the frozen worker wakes up and reports
// its now stale results they are rejected: every run completes once, at
// attempt 2, on the other worker. The thawed worker reconnects and takes
// new runs again.
func TestWorkerSIGSTOP(t *testing.T) {
	s := newScenario(t, "worker-sigstop")
	srv, httpAddr, grpcAddr := proc.StartServer(t, "server", s.serverArgs("", "--heartbeat", "1s")...)
	a := proc.NewAPI(t, httpAddr)
	frozen := worker(t, "w1", grpcAddr, "--capacity", "2", "--prefetch", "-1")
	worker(t, "w2", grpcAddr, "--capacity", "2", "--prefetch", "-1")

	s.submit(a, 4, "3")
	awaitRunning(t, a, 30*time.Second, "w1 running 2 runs", s.executing("w1", 2))
	connects := len(frozen.Lines("msg=connected"))
	fault := time.Now()
	frozen.Signal(syscall.SIGSTOP)
	gone := srv.Await(recoveryBound, "worker gone", "worker=w1")
	s.recovery("detected", proc.LogTime(t, gone).Sub(fault))
	// Stay frozen past the dead timeout and past the end of the commands,
	// whose results are then waiting in the frozen worker.
	time.Sleep(time.Until(fault.Add(6 * time.Second))) // the outage
	frozen.Signal(syscall.SIGCONT)
	thawed := time.Now()
	back := frozen.AwaitNth(recoveryBound, connects+1, "msg=connected")
	s.recovery("reconnected_after_sigcont", back.At.Sub(thawed))
	s.metric("stale_on_reconnect", proc.LogField(t, back.Text, "stale"))

	runs := s.settle(a, 2*time.Minute)
	var moved []proc.Run
	for _, r := range runs {
		if proc.Deref(r.WorkerID) == "w1" {
			t.Errorf("run %s finished on the frozen worker at attempt %d: its late result was accepted", r.ID, r.Attempt)
		}
		if r.Attempt > 1 {
			moved = append(moved, r)
		}
	}
	if len(moved) < 2 {
		t.Fatalf("%d runs moved off the frozen worker, want its 2", len(moved))
	}
	first, _, _ := span(moved, startedAt)
	_, last, _ := span(moved, finishedAt)
	s.recovery("restarted", first.Sub(fault))
	s.recovery("affected_done", last.Sub(fault))
	executed := proc.CountLines(t, s.execLog, -1)
	for _, r := range moved {
		if n := executed[r.ID+" 1"]; n != 1 {
			t.Errorf("run %s: attempt 1 (on the frozen worker) executed %d times, want 1", r.ID, n)
		}
	}

	// The thawed worker serves again.
	more := s.submit(a, 8, "0.2")
	deadline := time.Now().Add(30 * time.Second)
	for {
		served := false
		for _, id := range more {
			if r := a.Wait(id, time.Minute); proc.Deref(r.WorkerID) == "w1" {
				served = true
			}
		}
		if served {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the thawed worker took none of 8 new runs")
		}
		more = s.submit(a, 8, "0.2")
	}
	s.verdict(s.settle(a, time.Minute))
}
