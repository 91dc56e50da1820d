package faults

import (
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// TestWorkerPartition: a worker reaches the server through a proxy that
// black-holes its traffic for 6 s (twice the dead timeout of 3 × 1 s
// heartbeats) without closing anything, then lets it through again. The
// server hears nothing, declares the worker dead and requeues its runs on
// the other worker; the commands keep running on the cut-off worker,
// whose results reach the server only after the heal, for attempts that
// are no longer current: they are rejected. Every run completes once; the
// cut-off worker reconnects and serves again.
func TestWorkerPartition(t *testing.T) {
	s := newScenario(t, "worker-partition")
	srv, httpAddr, grpcAddr := proc.StartServer(t, "server", s.serverArgs("", "--heartbeat", "1s")...)
	a := proc.NewAPI(t, httpAddr)
	px := newPartitionProxy(t, grpcAddr)
	cut := worker(t, "w1", px.Addr(), "--capacity", "4", "--prefetch", "-1")
	worker(t, "w2", grpcAddr, "--capacity", "4", "--prefetch", "-1")

	s.submit(a, 40, "1")
	awaitRunning(t, a, 30*time.Second, "w1 running 2 runs", s.executing("w1", 2))
	connects := len(cut.Lines("msg=connected"))
	disconnects := len(cut.Lines("disconnected from server"))
	fault := time.Now()
	px.Partition()
	gone := srv.Await(recoveryBound, "worker gone", "worker=w1")
	s.recovery("detected", proc.LogTime(t, gone).Sub(fault))
	time.Sleep(time.Until(fault.Add(6 * time.Second))) // the outage
	noticed := len(cut.Lines("disconnected from server")) > disconnects
	px.Heal()
	healed := time.Now()
	s.metric("worker_noticed_partition", noticed)
	back := cut.AwaitNth(recoveryBound, connects+1, "msg=connected")
	s.recovery("reconnected_after_heal", back.At.Sub(healed))
	s.metric("stale_on_reconnect", proc.LogField(t, back.Text, "stale"))

	runs := s.settle(a, 2*time.Minute)
	var moved []proc.Run
	for _, r := range runs {
		if r.Attempt > 1 {
			moved = append(moved, r)
			if proc.Deref(r.WorkerID) == "w1" && r.StartedAt != nil && r.StartedAt.Before(healed) {
				t.Errorf("run %s at attempt %d completed by the cut-off worker during the partition", r.ID, r.Attempt)
			}
		}
	}
	if len(moved) == 0 {
		t.Fatal("the partition caught no run in flight: the scenario proved nothing")
	}
	s.metric("requeued", len(moved))
	first, _, _ := span(moved, startedAt)
	_, last, _ := span(moved, finishedAt)
	s.recovery("restarted", first.Sub(fault))
	s.recovery("affected_done", last.Sub(fault))

	// The healed worker serves again.
	deadline := time.Now().Add(30 * time.Second)
	for served := false; !served; {
		for _, id := range s.submit(a, 8, "0.2") {
			if r := a.Wait(id, time.Minute); proc.Deref(r.WorkerID) == "w1" {
				served = true
			}
		}
		if !served && time.Now().After(deadline) {
			t.Fatal("the healed worker takes no new runs")
		}
	}
	s.verdict(s.settle(a, time.Minute))
}

// TestWorkerPartitionFailover: a worker lists two addresses of the server,
// the first through a proxy that black-holes its traffic from some moment
// on and never heals. Operations promises (docs/operations.md, "the
// network between a worker and its server breaks") that the worker
// reconnects to the next address in its list within seconds. A silent
// stream is noticed by gRPC keepalive pings (10 s without hearing from
// the server, 5 s for the answer); without them the worker would wait on
// the dead stream until TCP gave up, about 15 minutes on Linux.
func TestWorkerPartitionFailover(t *testing.T) {
	s := newScenario(t, "worker-partition-failover")
	_, httpAddr, grpcAddr := proc.StartServer(t, "server", s.serverArgs("", "--heartbeat", "1s")...)
	a := proc.NewAPI(t, httpAddr)
	px := newPartitionProxy(t, grpcAddr)
	w := worker(t, "w1", px.Addr()+","+grpcAddr, "--capacity", "2", "--prefetch", "-1")
	w.Await(time.Second, "msg=connected", "server="+px.Addr())

	s.submit(a, 2, "1")
	awaitRunning(t, a, 30*time.Second, "w1 running 2 runs", s.executing("w1", 2))
	fault := time.Now()
	px.Partition()
	const bound = 30 * time.Second // 3 heartbeats would do; seconds, as documented
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	for len(w.Lines("msg=connected", "server="+grpcAddr)) == 0 {
		select {
		case <-deadline.C:
			t.Fatalf("the worker has not failed over to %s %v after its first server was cut off (it noticed: %v)",
				grpcAddr, bound, len(w.Lines("disconnected from server")) > 0)
		case <-time.After(100 * time.Millisecond): // polling another process's log
		}
	}
	s.recovery("failed_over", time.Since(fault))
	s.verdict(s.settle(a, time.Minute))
}
